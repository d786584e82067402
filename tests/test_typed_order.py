"""`Engine.order` (the order command with typed fields, for the simulator) is exactly
`Engine.apply` of the same order as a JSON object: same result, same error, same state."""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import SETUP, commands, param_overrides
from tokenmall.core.effects import Applied
from tokenmall.core.engine import Engine
from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.fields import FEN_MAX
from tokenmall.core.params import Params
from tokenmall.core.snapshot import take_snapshot
from tokenmall.core.units import Fen, parse_scaled


def _typed(command: dict[str, Any]) -> tuple[Any, ...] | None:
    """The typed call of an order command, if its fields have the types `Engine.order` takes
    (else the command stays a JSON object: the typed entry is not for decoding)."""
    if command.get("op") != "order":
        return None
    order_id, user_id, pay = command.get("id"), command.get("user"), command.get("pay", "cash")
    merchant, region = command.get("merchant"), command.get("region")
    amount_fen = parse_scaled(command.get("amount"), 2)
    if amount_fen is None or set(command) - {
        "op",
        "id",
        "user",
        "amount",
        "pay",
        "merchant",
        "region",
    }:
        return None
    if not all(type(value) is str for value in (order_id, user_id, pay)):
        return None
    if not all(value is None or type(value) is str for value in (merchant, region)):
        return None
    return order_id, user_id, Fen(amount_fen), pay, merchant, region


def _outcome(run: Any) -> tuple[Any, ...] | ErrorCode:
    """What a command did, comparable across engines (a settlement's payouts name its own
    engine's consumers: compared as postings)."""
    try:
        applied: Applied = run()
    except Rejected as rejected:
        return rejected.code
    return (*applied._replace(payouts=None), list(applied.all_postings()))


@settings(max_examples=200, deadline=None)
@given(overrides=param_overrides, batch=st.lists(commands, max_size=60))
def test_the_typed_order_is_the_order_command(
    overrides: dict[str, Any], batch: list[dict[str, Any]]
) -> None:
    params = Params().with_overrides(overrides)
    by_object, by_type = Engine(params), Engine(params)
    typed_calls = 0
    for command in SETUP + batch:
        expected = _outcome(lambda command=command: by_object.apply(command))
        call = _typed(command)
        if call is None:
            got = _outcome(lambda command=command: by_type.apply(command))
        else:
            typed_calls += 1
            got = _outcome(lambda call=call: by_type.order(*call))
        assert got == expected, command
    assert take_snapshot(by_type) == take_snapshot(by_object)
    assert typed_calls > 0  # SETUP has an order


@pytest.mark.parametrize(
    ("amount_fen", "code"),
    [
        (0, ErrorCode.INVALID_AMOUNT),
        (-100, ErrorCode.INVALID_AMOUNT),
        (True, ErrorCode.INVALID_AMOUNT),
        ("100.00", ErrorCode.INVALID_AMOUNT),
        (FEN_MAX + 1, ErrorCode.INVALID_AMOUNT),
    ],
)
def test_a_typed_amount_must_be_positive_fen(amount_fen: Any, code: ErrorCode) -> None:
    engine = Engine()
    engine.apply({"op": "register", "user": "alice"})
    with pytest.raises(Rejected) as rejected:
        engine.order("o1", "alice", amount_fen)
    assert rejected.value.code == code
    assert engine.pool == 0 and "o1" not in engine.orders.today


def test_the_largest_typed_amount_is_one_the_command_takes() -> None:
    """FEN_MAX as "yuan.fen" is within the amount's length limit: both entries accept it."""
    text = f"{FEN_MAX // 100}.{FEN_MAX % 100:02d}"
    assert parse_scaled(text, 2) == FEN_MAX
    by_object, by_type = Engine(), Engine()
    for engine in (by_object, by_type):
        engine.apply({"op": "register", "user": "alice"})
    expected = by_object.apply({"op": "order", "id": "o1", "user": "alice", "amount": text})
    assert by_type.order("o1", "alice", Fen(FEN_MAX)) == expected


@pytest.mark.parametrize(
    ("order_id", "user_id", "merchant_id"),
    [("o 1", "alice", None), ("o1", "", None), ("o1", "alice", "m/0"), ("x" * 65, "alice", None)],
)
def test_typed_ids_are_checked_as_the_command_checks_them(
    order_id: str, user_id: str, merchant_id: str | None
) -> None:
    engine = Engine()
    engine.apply({"op": "register", "user": "alice"})
    with pytest.raises(Rejected) as rejected:
        engine.order(order_id, user_id, Fen(100), "stable" if merchant_id else "cash", merchant_id)
    assert rejected.value.code == ErrorCode.INVALID_COMMAND
    assert not engine.orders.today
