"""tokenmall: an exact, auditable engine for consumption-appreciation points economies."""

__version__ = "0.1.0"
