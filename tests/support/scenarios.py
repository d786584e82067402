"""The shipped example scenarios (examples/scenarios/), cut short for tests."""

from dataclasses import replace
from pathlib import Path

from tokenmall.sim.scenario import Scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent.parent / "examples" / "scenarios"


def shipped(name: str, days: int) -> Scenario:
    """A shipped scenario cut to its first `days` days."""
    return replace(load_scenario(SCENARIOS / f"{name}.toml"), days=days)


def short_file(folder: Path, name: str, days: int) -> Path:
    """The shipped year-long scenario `name` cut to `days` days, as folder/short.toml."""
    text = (SCENARIOS / f"{name}.toml").read_text()
    assert "days = 365" in text, name
    short = folder / "short.toml"
    short.write_text(text.replace("days = 365", f"days = {days}"))
    return short
