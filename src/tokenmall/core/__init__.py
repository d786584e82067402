"""The pure rules core: no I/O, no clock, no randomness, no framework imports.

Everything that talks to files, databases, HTTP or terminals drives this package.
"""

from tokenmall.core.engine import Engine
from tokenmall.core.errors import ErrorCode, InvariantViolation, ParamsError, Rejected
from tokenmall.core.params import Params

__all__ = ["Engine", "ErrorCode", "InvariantViolation", "Params", "ParamsError", "Rejected"]
