"""Helpers shared by the unit tests: building engines and applying accepted commands."""

from typing import Any

from tokenmall.core.engine import Engine
from tokenmall.core.invariants import check_invariants
from tokenmall.core.params import Params

EP = 10**8  # units per EP
Command = dict[str, Any]


def make_engine(**overrides: Any) -> Engine:
    return Engine(Params().with_overrides(overrides))


def run(engine: Engine, *commands: Command) -> None:
    """Apply each command (it must be accepted) and check every SPEC §6 invariant after it."""
    for command in commands:
        before = engine.price()
        code = engine.try_apply(command)
        assert code is None, f"{command} rejected with {code}"
        check_invariants(engine, before)
