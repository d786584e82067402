"""Each SPEC §6 check finds the corruption it is for (the production writer relies on them:
tests/test_ledger_invariants.py), and a healthy engine passes them all."""

from collections.abc import Callable

import pytest

from tokenmall.core.engine import Engine
from tokenmall.core.invariants import invariant_violations
from tokenmall.core.params import Params
from tokenmall.core.units import Fen


def busy_engine() -> Engine:
    """Consumers with EP, SP, quota, levels and dividends; a merchant with SP and EP."""
    engine = Engine(Params().with_overrides({"referral_rates": ["0.10"]}))
    commands: list[dict[str, object]] = [
        {"op": "register", "user": "a"},
        {"op": "register", "user": "b", "referrer": "a"},
        {"op": "register_merchant", "merchant": "m"},
        {"op": "order", "id": "o1", "user": "a", "amount": "1000.00"},
        {"op": "order", "id": "o2", "user": "b", "amount": "500.00"},
        {"op": "convert", "user": "a", "points": "10"},
        {
            "op": "order",
            "id": "o3",
            "user": "a",
            "amount": "5.00",
            "pay": "stable",
            "merchant": "m",
        },
        {"op": "grant_stable", "user": "b", "amount": "30.00", "days": 3},
        {"op": "settle_day"},
        {"op": "merchant_redeem", "merchant": "m", "amount": "5.00"},
        {"op": "sell", "user": "b", "points": "1"},
    ]
    for command in commands:
        assert engine.try_apply(command) is None, command
    assert engine.consumers["a"].level > 0 and engine.consumers["b"].dividends > 0
    return engine


def corrupt_consumer(field: str, delta: int) -> Callable[[Engine], None]:
    def corrupt(engine: Engine) -> None:
        consumer = engine.consumers["b"]
        setattr(consumer, field, getattr(consumer, field) + delta)

    return corrupt


def set_attribute(name: str, delta: int) -> Callable[[Engine], None]:
    return lambda engine: setattr(engine, name, getattr(engine, name) + delta)


def lower_level(engine: Engine) -> None:
    engine.book.level[engine.consumers["a"].slot] = 0


def exit_due(engine: Engine) -> None:
    engine.consumers["b"].quota = Fen(0)


def negative_merchant(engine: Engine) -> None:
    engine.merchants["m"].cash_out = Fen(-1)


CORRUPTIONS: dict[str, tuple[Callable[[Engine], None], str]] = {
    "money from nowhere": (set_attribute("pool", 1), "pool"),
    "EP from nowhere": (corrupt_consumer("ep", 1), "supply"),
    "SP from nowhere": (corrupt_consumer("sp", 1), "sp_outstanding"),
    "a negative balance": (corrupt_consumer("goods", -(10**9)), "negative"),
    "locked SP astray": (corrupt_consumer("locked_sp", 1), "locked SP"),
    "a dividend unpaid for": (corrupt_consumer("dividends", 1), "dividends"),
    "cash out of nowhere": (corrupt_consumer("cash_out", 1), "pool"),
    "a merchant below zero": (negative_merchant, "merchant m"),
    "a level lost": (lower_level, "below the level"),
    "an exit not made": (exit_due, "force-exited"),
    "issued off": (set_attribute("issued", 1), "issued"),
}


def test_a_healthy_engine_passes() -> None:
    engine = busy_engine()
    assert invariant_violations(engine, engine.price()) == []


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_each_corruption_is_found(name: str) -> None:
    engine = busy_engine()
    corrupt, words = CORRUPTIONS[name]
    corrupt(engine)
    problems = invariant_violations(engine)
    assert any(words in problem for problem in problems), problems


def test_a_falling_price_is_found() -> None:
    engine = busy_engine()
    pool_fen, supply_units = engine.price()
    higher = (pool_fen + 1, supply_units)
    assert any("price fell" in problem for problem in invariant_violations(engine, higher))
