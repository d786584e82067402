"""Every error code of SPEC §4/§7, the order in which they are checked, and that a rejected
command changes nothing (SPEC §4: "applies completely or is rejected ... and changes nothing").

The base scenario (default parameters):
- alice: 21 EP from o1; 7 EP converted at P = 60/35.7, floor(11.7647) = 11.76 SP; 2.00 SP paid at
  shop (order s1): 14 EP and 9.76 SP.
- bob, referred by alice: 14.7 EP from o2. carol: registered, holds nothing.
- merchant shop: 2.00 SP. Orders o1 and o2 (cash), s1 (stable), all of day 0.
"""

import json
from typing import Any

import pytest

from tokenmall.core.canonical import canonical_json, canonical_state
from tokenmall.core.engine import Engine
from tokenmall.core.errors import ErrorCode, ParamsError, Rejected
from tokenmall.core.invariants import check_invariants
from tokenmall.core.params import Params

Command = dict[str, Any]

BASE: list[Command] = [
    {"op": "register", "user": "alice"},
    {"op": "register", "user": "bob", "referrer": "alice"},
    {"op": "register", "user": "carol"},
    {"op": "register_merchant", "merchant": "shop"},
    {"op": "order", "id": "o1", "user": "alice", "amount": "100.00"},
    {"op": "order", "id": "o2", "user": "bob", "amount": "100.00"},
    {"op": "convert", "user": "alice", "points": "7"},
    {
        "op": "order",
        "id": "s1",
        "user": "alice",
        "amount": "2.00",
        "pay": "stable",
        "merchant": "shop",
    },
]

LONG_ID = "x" * 65
SETTLE: Command = {"op": "settle_day"}
REFUND_O2: Command = {"op": "refund", "order": "o2"}


def build(setup: list[Command], params: dict[str, Any] | None = None) -> Engine:
    engine = Engine(Params().with_overrides(params or {}))
    for command in setup:
        before = engine.price()
        engine.apply(command)
        check_invariants(engine, before)
    return engine


def snapshot(engine: Engine) -> str:
    """Canonical state plus what it does not print: params, orders, vesting, hidden totals."""
    orders = {
        order.id: (order.refunded, order.day, order.buyer_units, order.referrer_grants)
        for order in engine.orders.records(engine.day)
    }
    closed = engine.orders.closed_items()
    vesting = [(g.user, g.per_settlement_fen, g.days_left, g.locked_fen) for g in engine.vesting]
    hidden = (
        sorted(engine.withdrawn_today.items()),
        sorted(engine.region_agents.items()),
        engine.refund_withdrawals,
        engine.dividend_funds,
        engine.leftover_to_pool,
        engine.leftover_to_platform,
        engine.last_price,
    )
    extra = json.dumps([engine.params.as_json(), orders, closed, vesting, hidden], sort_keys=True)
    return canonical_json(canonical_state(engine, [])) + extra


def assert_rejected_unchanged(engine: Engine, command: Any, expected: ErrorCode) -> None:
    before = snapshot(engine)
    before_price = engine.price()
    with pytest.raises(Rejected) as caught:
        engine.apply(command)
    assert caught.value.code == expected
    assert snapshot(engine) == before
    check_invariants(engine, before_price)
    # try_apply reports the same code, and still changes nothing.
    assert engine.try_apply(command) == expected
    assert snapshot(engine) == before


def test_base_scenario() -> None:
    engine = build(BASE)
    alice = engine.consumers["alice"]
    assert (alice.ep, alice.sp) == (14 * 10**8, 976)
    assert engine.merchants["shop"].sp == 200
    assert engine.consumers["bob"].ep == 1_470_000_000


# (name, extra setup after BASE, command, expected code)
CASES: list[tuple[str, list[Command], Any, ErrorCode]] = [
    # invalid_command: structure, checked before anything else
    ("not an object", [], ["op", "register"], ErrorCode.INVALID_COMMAND),
    ("a string", [], "register", ErrorCode.INVALID_COMMAND),
    ("missing op", [], {"user": "dave"}, ErrorCode.INVALID_COMMAND),
    ("register without user", [], {"op": "register"}, ErrorCode.INVALID_COMMAND),
    ("user not a string", [], {"op": "register", "user": 5}, ErrorCode.INVALID_COMMAND),
    ("user empty", [], {"op": "register", "user": ""}, ErrorCode.INVALID_COMMAND),
    ("user 65 chars", [], {"op": "register", "user": LONG_ID}, ErrorCode.INVALID_COMMAND),
    (
        "referrer null",
        [],
        {"op": "register", "user": "dave", "referrer": None},
        ErrorCode.INVALID_COMMAND,
    ),
    (
        "merchant id list",
        [],
        {"op": "register_merchant", "merchant": ["m"]},
        ErrorCode.INVALID_COMMAND,
    ),
    (
        "order without amount",
        [],
        {"op": "order", "id": "o9", "user": "alice"},
        ErrorCode.INVALID_COMMAND,
    ),
    (
        "order without id",
        [],
        {"op": "order", "user": "alice", "amount": "1"},
        ErrorCode.INVALID_COMMAND,
    ),
    (
        "order merchant not an id",
        [],
        {"op": "order", "id": "o9", "user": "alice", "amount": "1", "merchant": 7},
        ErrorCode.INVALID_COMMAND,
    ),
    (
        "sell with user and merchant",
        [],
        {"op": "sell", "user": "alice", "merchant": "shop", "points": "1"},
        ErrorCode.INVALID_COMMAND,
    ),
    ("sell with neither", [], {"op": "sell", "points": "1"}, ErrorCode.INVALID_COMMAND),
    ("sell without points", [], {"op": "sell", "user": "alice"}, ErrorCode.INVALID_COMMAND),
    ("redeem without points", [], {"op": "redeem", "user": "alice"}, ErrorCode.INVALID_COMMAND),
    ("convert without user", [], {"op": "convert", "points": "1"}, ErrorCode.INVALID_COMMAND),
    (
        "merchant_redeem without amount",
        [],
        {"op": "merchant_redeem", "merchant": "shop"},
        ErrorCode.INVALID_COMMAND,
    ),
    ("refund order id a number", [], {"op": "refund", "order": 1}, ErrorCode.INVALID_COMMAND),
    (
        "grant_stable without days",
        [],
        {"op": "grant_stable", "user": "alice", "amount": "1"},
        ErrorCode.INVALID_COMMAND,
    ),
    ("set_params without params", [], {"op": "set_params"}, ErrorCode.INVALID_COMMAND),
    # unknown_op
    ("unknown op", [], {"op": "fly"}, ErrorCode.UNKNOWN_OP),
    ("op in capitals", [], {"op": "REGISTER", "user": "dave"}, ErrorCode.UNKNOWN_OP),
    ("op a number", [], {"op": 5}, ErrorCode.UNKNOWN_OP),
    ("op null", [], {"op": None}, ErrorCode.INVALID_COMMAND),  # SPEC v2: op null is missing
    # duplicate_account
    (
        "register existing user",
        [],
        {"op": "register", "user": "alice"},
        ErrorCode.DUPLICATE_ACCOUNT,
    ),
    (
        "register a merchant's id",
        [],
        {"op": "register", "user": "shop"},
        ErrorCode.DUPLICATE_ACCOUNT,
    ),
    (
        "merchant with a user's id",
        [],
        {"op": "register_merchant", "merchant": "alice"},
        ErrorCode.DUPLICATE_ACCOUNT,
    ),
    (
        "merchant twice",
        [],
        {"op": "register_merchant", "merchant": "shop"},
        ErrorCode.DUPLICATE_ACCOUNT,
    ),
    # unknown_referrer
    (
        "referrer unknown",
        [],
        {"op": "register", "user": "dave", "referrer": "ghost"},
        ErrorCode.UNKNOWN_REFERRER,
    ),
    (
        "referrer is a merchant",
        [],
        {"op": "register", "user": "dave", "referrer": "shop"},
        ErrorCode.UNKNOWN_REFERRER,
    ),
    # duplicate_order
    (
        "cash order id reused",
        [],
        {"op": "order", "id": "o1", "user": "alice", "amount": "1"},
        ErrorCode.DUPLICATE_ORDER,
    ),
    (
        "stable order id reused for cash",
        [],
        {"op": "order", "id": "s1", "user": "bob", "amount": "1"},
        ErrorCode.DUPLICATE_ORDER,
    ),
    (
        "refunded order id reused",
        [REFUND_O2],
        {"op": "order", "id": "o2", "user": "bob", "amount": "1"},
        ErrorCode.DUPLICATE_ORDER,
    ),
    # unknown_user
    (
        "order by nobody",
        [],
        {"op": "order", "id": "o9", "user": "ghost", "amount": "1"},
        ErrorCode.UNKNOWN_USER,
    ),
    (
        "order by a merchant",
        [],
        {"op": "order", "id": "o9", "user": "shop", "amount": "1"},
        ErrorCode.UNKNOWN_USER,
    ),
    ("sell by nobody", [], {"op": "sell", "user": "ghost", "points": "1"}, ErrorCode.UNKNOWN_USER),
    (
        "redeem by nobody",
        [],
        {"op": "redeem", "user": "ghost", "points": "1"},
        ErrorCode.UNKNOWN_USER,
    ),
    (
        "convert by a merchant",
        [],
        {"op": "convert", "user": "shop", "points": "1"},
        ErrorCode.UNKNOWN_USER,
    ),
    (
        "grant to nobody",
        [],
        {"op": "grant_stable", "user": "ghost", "amount": "1", "days": 1},
        ErrorCode.UNKNOWN_USER,
    ),
    # unknown_merchant
    (
        "stable order at nobody",
        [],
        {
            "op": "order",
            "id": "o9",
            "user": "alice",
            "amount": "1",
            "pay": "stable",
            "merchant": "x",
        },
        ErrorCode.UNKNOWN_MERCHANT,
    ),
    (
        "stable order without merchant",
        [],
        {"op": "order", "id": "o9", "user": "alice", "amount": "1", "pay": "stable"},
        ErrorCode.UNKNOWN_MERCHANT,
    ),
    (
        "stable order at a consumer",
        [],
        {
            "op": "order",
            "id": "o9",
            "user": "alice",
            "amount": "1",
            "pay": "stable",
            "merchant": "bob",
        },
        ErrorCode.UNKNOWN_MERCHANT,
    ),
    (
        "sell by no merchant",
        [],
        {"op": "sell", "merchant": "ghost", "points": "1"},
        ErrorCode.UNKNOWN_MERCHANT,
    ),
    (
        "sell by a consumer as merchant",
        [],
        {"op": "sell", "merchant": "alice", "points": "1"},
        ErrorCode.UNKNOWN_MERCHANT,
    ),
    (
        "merchant_redeem by nobody",
        [],
        {"op": "merchant_redeem", "merchant": "ghost", "amount": "1"},
        ErrorCode.UNKNOWN_MERCHANT,
    ),
    # invalid_payment
    *[
        (
            f"pay {pay!r}",
            [],
            {"op": "order", "id": "o9", "user": "alice", "amount": "1", "pay": pay},
            ErrorCode.INVALID_PAYMENT,
        )
        for pay in ["card", "CASH", 1, True, ["cash"]]
    ],
    # insufficient_stable
    (
        "stable order above SP",
        [],
        {
            "op": "order",
            "id": "o9",
            "user": "alice",
            "amount": "9.77",
            "pay": "stable",
            "merchant": "shop",
        },
        ErrorCode.INSUFFICIENT_STABLE,
    ),
    (
        "stable order with no SP",
        [],
        {
            "op": "order",
            "id": "o9",
            "user": "bob",
            "amount": "0.01",
            "pay": "stable",
            "merchant": "shop",
        },
        ErrorCode.INSUFFICIENT_STABLE,
    ),
    (
        "merchant_redeem above SP",
        [],
        {"op": "merchant_redeem", "merchant": "shop", "amount": "2.01"},
        ErrorCode.INSUFFICIENT_STABLE,
    ),
    # insufficient_points
    (
        "sell one unit too many",
        [],
        {"op": "sell", "user": "alice", "points": "14.00000001"},
        ErrorCode.INSUFFICIENT_POINTS,
    ),
    (
        "redeem too many",
        [],
        {"op": "redeem", "user": "bob", "points": "15"},
        ErrorCode.INSUFFICIENT_POINTS,
    ),
    (
        "convert with nothing",
        [],
        {"op": "convert", "user": "carol", "points": "1"},
        ErrorCode.INSUFFICIENT_POINTS,
    ),
    (
        "merchant sells EP it lacks",
        [],
        {"op": "sell", "merchant": "shop", "points": "1"},
        ErrorCode.INSUFFICIENT_POINTS,
    ),
    # unknown_order / not_refundable / refund_window_closed / points_already_used
    ("refund of nothing", [], {"op": "refund", "order": "ghost"}, ErrorCode.UNKNOWN_ORDER),
    ("refund of a stable order", [], {"op": "refund", "order": "s1"}, ErrorCode.NOT_REFUNDABLE),
    ("refund twice", [REFUND_O2], REFUND_O2, ErrorCode.NOT_REFUNDABLE),
    ("refund of yesterday", [SETTLE], REFUND_O2, ErrorCode.REFUND_WINDOW_CLOSED),
    (
        "refund after the buyer converted",
        [],
        {"op": "refund", "order": "o1"},
        ErrorCode.POINTS_ALREADY_USED,
    ),
    (
        "refund after the buyer sold one unit",
        [{"op": "sell", "user": "bob", "points": "0.00000001"}],
        REFUND_O2,
        ErrorCode.POINTS_ALREADY_USED,
    ),
    # invalid_params
    *[
        (
            f"params {params!r}",
            [],
            {"op": "set_params", "params": params},
            ErrorCode.INVALID_PARAMS,
        )
        for params in [
            ["dividend_rate", "0.1"],
            "dividend_rate=0.1",
            {"no_such_param": "1"},
            {"initial_price": "1"},
            {"initial_price": "2"},
            {"dividend_rate": 0.2},
            {"dividend_rate": "1.01"},
            {"contribution_rate": "0"},
            {"sell_fee_rate": "1"},
            {"buyer_share": "0.8", "referral_rates": ["0.1", "0.15"]},
            {"referral_rates": ["0.1", "0.1", "0.1"]},
            {"referral_rates": "0.1"},
            {"total_issuance": "35.69999999"},
            {"total_issuance": "1.123456789"},
            {"level_thresholds": ["300", "100"]},
            {"level_thresholds": ["100", "100"]},
            {"level_thresholds": ["0", "100"]},
            {"level_thresholds": [str(n) for n in range(1, 22)]},
            {"dividend_remainder": "burn"},
            {"exit_enabled": "true"},
            {"exit_enabled": 1},
            {"quota_multiple": "-1"},
            {"dividend_rate": "0.1", "unknown": "x"},
        ]
    ],
]


@pytest.mark.parametrize(
    ("extra", "command", "expected"),
    [pytest.param(extra, command, code, id=name) for name, extra, command, code in CASES],
)
def test_rejection_changes_nothing(extra: list[Command], command: Any, expected: ErrorCode) -> None:
    engine = build(BASE + extra)
    assert_rejected_unchanged(engine, command, expected)


BAD_MONEY: list[Any] = [
    "-5",
    "1e9",
    "NaN",
    "Infinity",
    "1.005",
    "1.000",  # three decimals written (decisions 8)
    "0",
    "0.00",
    "",
    " 1",
    "1 ",
    "1.",
    ".5",
    "+1",
    "1,00",
    "\uff11",  # fullwidth digit one (decisions 9)
    "0" * 64 + "1",  # 65 characters (decisions 7)
    5,
    1.5,
    True,
    ["1"],
]

BAD_POINTS: list[Any] = [
    "-1",
    "0",
    "0.00000000",
    "0.000000001",  # nine decimals
    "1e2",
    "abc",
    "ALL",
    "",
    3,
]


@pytest.mark.parametrize("amount", BAD_MONEY, ids=repr)
@pytest.mark.parametrize(
    "template",
    [
        {"op": "order", "id": "o9", "user": "alice"},
        {"op": "order", "id": "o9", "user": "alice", "pay": "stable", "merchant": "shop"},
        {"op": "merchant_redeem", "merchant": "shop"},
        {"op": "grant_stable", "user": "alice", "days": 2},
    ],
    ids=["cash order", "stable order", "merchant_redeem", "grant_stable"],
)
def test_invalid_money_amount(template: Command, amount: Any) -> None:
    engine = build(BASE)
    assert_rejected_unchanged(engine, {**template, "amount": amount}, ErrorCode.INVALID_AMOUNT)


@pytest.mark.parametrize("points", BAD_POINTS, ids=repr)
@pytest.mark.parametrize(
    "template",
    [
        {"op": "sell", "user": "alice"},
        {"op": "sell", "merchant": "shop"},
        {"op": "redeem", "user": "alice"},
        {"op": "convert", "user": "alice"},
    ],
    ids=["sell user", "sell merchant", "redeem", "convert"],
)
def test_invalid_points(template: Command, points: Any) -> None:
    engine = build(BASE)
    assert_rejected_unchanged(engine, {**template, "points": points}, ErrorCode.INVALID_AMOUNT)


@pytest.mark.parametrize(
    "command",
    [
        {"op": "sell", "user": "carol", "points": "all"},
        {"op": "redeem", "user": "carol", "points": "all"},
        {"op": "convert", "user": "carol", "points": "all"},
        {"op": "sell", "merchant": "shop", "points": "all"},
    ],
    ids=["sell", "redeem", "convert", "merchant sell"],
)
def test_all_of_nothing_is_invalid_amount(command: Command) -> None:
    engine = build(BASE)
    assert_rejected_unchanged(engine, command, ErrorCode.INVALID_AMOUNT)


@pytest.mark.parametrize("days", [0, -1, 3651, True, False, 5.0, "5", [5]], ids=repr)
def test_invalid_grant_days(days: Any) -> None:
    engine = build(BASE)
    command = {"op": "grant_stable", "user": "alice", "amount": "1.00", "days": days}
    assert_rejected_unchanged(engine, command, ErrorCode.INVALID_AMOUNT)


@pytest.mark.parametrize("days", [1, 3650])
def test_grant_days_bounds_are_accepted(days: int) -> None:
    engine = build(BASE)
    assert (
        engine.try_apply({"op": "grant_stable", "user": "alice", "amount": "1", "days": days})
        is None
    )


# -- merchant_redeem: quantity zero, issuance exhausted ------------------------------------------

# Price 2,000,000 CNY per EP = 2 fen per 1e-8 EP: 0.01 buys floor(1/2) = 0 units.
EXPENSIVE: dict[str, Any] = {"initial_price": "2000000"}
EXPENSIVE_SETUP: list[Command] = [
    {"op": "register", "user": "alice"},
    {"op": "register_merchant", "merchant": "shop"},
    {"op": "register_merchant", "merchant": "poor"},
    {"op": "grant_stable", "user": "alice", "amount": "1.00", "days": 1},
    SETTLE,
    {
        "op": "order",
        "id": "s1",
        "user": "alice",
        "amount": "0.01",
        "pay": "stable",
        "merchant": "shop",
    },
]

# total_issuance 21: o1 takes it all. alice's 20.00 SP dividend paid to shop buys
# floor(20.00 / (30/21)) = 14 EP, none in the treasury: 14 would have to be minted.
CAPPED: dict[str, Any] = {"total_issuance": "21"}
CAPPED_SETUP: list[Command] = [
    {"op": "register", "user": "alice"},
    {"op": "register_merchant", "merchant": "shop"},
    {"op": "order", "id": "o1", "user": "alice", "amount": "100.00"},
    SETTLE,
    {
        "op": "order",
        "id": "s1",
        "user": "alice",
        "amount": "20.00",
        "pay": "stable",
        "merchant": "shop",
    },
]


def test_merchant_redeem_of_less_than_one_unit_is_invalid_amount() -> None:
    engine = build(EXPENSIVE_SETUP, EXPENSIVE)
    assert engine.merchants["shop"].sp == 1
    command = {"op": "merchant_redeem", "merchant": "shop", "amount": "0.01"}
    assert_rejected_unchanged(engine, command, ErrorCode.INVALID_AMOUNT)


def test_merchant_redeem_beyond_total_issuance_is_exhausted() -> None:
    engine = build(CAPPED_SETUP, CAPPED)
    assert engine.merchants["shop"].sp == 2000
    command = {"op": "merchant_redeem", "merchant": "shop", "amount": "20.00"}
    assert_rejected_unchanged(engine, command, ErrorCode.ISSUANCE_EXHAUSTED)


def test_merchant_redeem_from_the_treasury_works_at_the_cap() -> None:
    engine = build([*CAPPED_SETUP, {"op": "convert", "user": "alice", "points": "14"}], CAPPED)
    # The treasury now holds 14 EP: nothing needs minting.
    assert (
        engine.try_apply({"op": "merchant_redeem", "merchant": "shop", "amount": "20.00"}) is None
    )
    assert engine.merchants["shop"].ep == 14 * 10**8
    assert engine.issued == 21 * 10**8


# -- the order of errors when several apply --------------------------------------------------------

# (name, extra setup after BASE, command, expected code)
ORDER_CASES: list[tuple[str, list[Command], Any, ErrorCode]] = [
    ("missing op before anything", [], {"user": 5, "op_": "fly"}, ErrorCode.INVALID_COMMAND),
    # SPEC v2: ids are checked wherever they appear, before the op; its own fields after it.
    ("bad id before unknown op", [], {"op": "fly", "user": 5}, ErrorCode.INVALID_COMMAND),
    ("unknown op before its fields", [], {"op": "fly", "points": None}, ErrorCode.UNKNOWN_OP),
    (
        "bad id before duplicate account",
        [],
        {"op": "register", "user": "alice", "referrer": ""},
        ErrorCode.INVALID_COMMAND,
    ),
    (
        "duplicate account before unknown referrer",
        [],
        {"op": "register", "user": "alice", "referrer": "ghost"},
        ErrorCode.DUPLICATE_ACCOUNT,
    ),
    (
        "missing amount before duplicate order",
        [],
        {"op": "order", "id": "o1", "user": "ghost"},
        ErrorCode.INVALID_COMMAND,
    ),
    (
        "bad user id before duplicate order",
        [],
        {"op": "order", "id": "o1", "user": 7, "amount": "1"},
        ErrorCode.INVALID_COMMAND,
    ),
    (
        "duplicate order before unknown user",
        [],
        {"op": "order", "id": "o1", "user": "ghost", "amount": "1"},
        ErrorCode.DUPLICATE_ORDER,
    ),
    (
        "duplicate order before everything after it",
        [],
        {"op": "order", "id": "o1", "user": "ghost", "amount": "-1", "pay": "card"},
        ErrorCode.DUPLICATE_ORDER,
    ),
    (
        "unknown user before invalid amount",
        [],
        {"op": "order", "id": "o9", "user": "ghost", "amount": "-1", "pay": "card"},
        ErrorCode.UNKNOWN_USER,
    ),
    (
        "invalid amount before invalid payment",
        [],
        {"op": "order", "id": "o9", "user": "alice", "amount": "0", "pay": "card"},
        ErrorCode.INVALID_AMOUNT,
    ),
    (
        "invalid payment before unknown merchant",
        [],
        {"op": "order", "id": "o9", "user": "alice", "amount": "1", "pay": "card", "merchant": "x"},
        ErrorCode.INVALID_PAYMENT,
    ),
    (
        "unknown merchant before insufficient stable",
        [],
        {
            "op": "order",
            "id": "o9",
            "user": "bob",
            "amount": "99",
            "pay": "stable",
            "merchant": "x",
        },
        ErrorCode.UNKNOWN_MERCHANT,
    ),
    (
        "sell: ambiguous seller before unknown user",
        [],
        {"op": "sell", "user": "ghost", "merchant": "ghost", "points": "x"},
        ErrorCode.INVALID_COMMAND,
    ),
    (
        "sell: unknown user before invalid amount",
        [],
        {"op": "sell", "user": "ghost", "points": "-1"},
        ErrorCode.UNKNOWN_USER,
    ),
    (
        "sell: unknown merchant before invalid amount",
        [],
        {"op": "sell", "merchant": "ghost", "points": "-1"},
        ErrorCode.UNKNOWN_MERCHANT,
    ),
    (
        "sell: invalid amount before insufficient points",
        [],
        {"op": "sell", "user": "alice", "points": "1000.000000001"},
        ErrorCode.INVALID_AMOUNT,
    ),
    (
        "redeem: unknown user before invalid amount",
        [],
        {"op": "redeem", "user": "ghost", "points": "all"},
        ErrorCode.UNKNOWN_USER,
    ),
    (
        "convert: invalid amount before insufficient points",
        [],
        {"op": "convert", "user": "carol", "points": "0"},
        ErrorCode.INVALID_AMOUNT,
    ),
    (
        "merchant_redeem: unknown merchant before invalid amount",
        [],
        {"op": "merchant_redeem", "merchant": "ghost", "amount": "0"},
        ErrorCode.UNKNOWN_MERCHANT,
    ),
    (
        "merchant_redeem: invalid amount before insufficient stable",
        [],
        {"op": "merchant_redeem", "merchant": "shop", "amount": "5.001"},
        ErrorCode.INVALID_AMOUNT,
    ),
    (
        "refund: unknown order",
        [SETTLE],
        {"op": "refund", "order": "ghost"},
        ErrorCode.UNKNOWN_ORDER,
    ),
    (
        "refund: not refundable (stable) before window closed",
        [SETTLE],
        {"op": "refund", "order": "s1"},
        ErrorCode.NOT_REFUNDABLE,
    ),
    (
        "refund: not refundable (refunded) before window closed",
        [REFUND_O2, SETTLE],
        REFUND_O2,
        ErrorCode.NOT_REFUNDABLE,
    ),
    (
        "refund: window closed before points already used",
        [SETTLE],
        {"op": "refund", "order": "o1"},
        ErrorCode.REFUND_WINDOW_CLOSED,
    ),
    (
        "grant_stable: unknown user before invalid amount",
        [],
        {"op": "grant_stable", "user": "ghost", "amount": "0", "days": 0},
        ErrorCode.UNKNOWN_USER,
    ),
    (
        "grant_stable: bad amount and bad days",
        [],
        {"op": "grant_stable", "user": "alice", "amount": "0", "days": 0},
        ErrorCode.INVALID_AMOUNT,
    ),
    (
        "grant_stable: missing days before unknown user",
        [],
        {"op": "grant_stable", "user": "ghost", "amount": "1"},
        ErrorCode.INVALID_COMMAND,
    ),
    (
        "set_params: initial_price and an unknown key",
        [],
        {"op": "set_params", "params": {"initial_price": "1", "bogus": 1}},
        ErrorCode.INVALID_PARAMS,
    ),
]


@pytest.mark.parametrize(
    ("extra", "command", "expected"),
    [pytest.param(extra, command, code, id=name) for name, extra, command, code in ORDER_CASES],
)
def test_first_error_in_spec_order_wins(
    extra: list[Command], command: Any, expected: ErrorCode
) -> None:
    engine = build(BASE + extra)
    assert_rejected_unchanged(engine, command, expected)


def test_merchant_redeem_insufficient_stable_before_zero_quantity() -> None:
    engine = build(EXPENSIVE_SETUP, EXPENSIVE)
    # poor holds no SP, and 0.01 would buy 0 units anyway: insufficient_stable comes first.
    command = {"op": "merchant_redeem", "merchant": "poor", "amount": "0.01"}
    assert_rejected_unchanged(engine, command, ErrorCode.INSUFFICIENT_STABLE)


def test_merchant_redeem_zero_quantity_before_issuance_exhausted() -> None:
    engine = build(EXPENSIVE_SETUP, {**EXPENSIVE, "total_issuance": "0"})
    command = {"op": "merchant_redeem", "merchant": "shop", "amount": "0.01"}
    assert_rejected_unchanged(engine, command, ErrorCode.INVALID_AMOUNT)
    # 0.02 buys 1 unit, which cannot be minted under a cap of 0.
    engine.apply(
        {
            "op": "order",
            "id": "s2",
            "user": "alice",
            "amount": "0.01",
            "pay": "stable",
            "merchant": "shop",
        }
    )
    command = {"op": "merchant_redeem", "merchant": "shop", "amount": "0.02"}
    assert_rejected_unchanged(engine, command, ErrorCode.ISSUANCE_EXHAUSTED)


def test_rejected_order_does_not_reserve_its_id() -> None:
    engine = build(BASE)
    assert engine.try_apply({"op": "order", "id": "o9", "user": "ghost", "amount": "1"}) == (
        ErrorCode.UNKNOWN_USER
    )
    assert engine.try_apply({"op": "order", "id": "o9", "user": "carol", "amount": "1"}) is None


def test_every_error_code_is_covered() -> None:
    from tests.test_errors_v2 import V2_CASES, V2_ORDER_CASES  # noqa: PLC0415 (imports this)

    covered = {code for _, _, _, code in CASES + ORDER_CASES + V2_CASES + V2_ORDER_CASES}
    covered |= {ErrorCode.INVALID_AMOUNT, ErrorCode.ISSUANCE_EXHAUSTED}
    assert covered == set(ErrorCode)


def test_error_codes_are_the_spec_strings() -> None:
    assert {str(code) for code in ErrorCode} == {
        "invalid_command",
        "unknown_op",
        "duplicate_account",
        "unknown_referrer",
        "duplicate_order",
        "unknown_user",
        "unknown_merchant",
        "invalid_amount",
        "invalid_payment",
        "insufficient_stable",
        "insufficient_points",
        "issuance_exhausted",
        "unknown_order",
        "not_refundable",
        "refund_window_closed",
        "points_already_used",
        "invalid_params",
        "account_frozen",
        "unknown_account",
        "unknown_agent",
        "invalid_state",
        "duplicate_withdrawal",
        "unknown_withdrawal",
        "below_minimum",
        "insufficient_cash",
        "over_daily_limit",
        "region_taken",
        "duplicate_collection",
        "unknown_collection",
        "sold_out",
        "unknown_item",
        "not_owner",
        "already_used",
        "locked",
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {"initial_price": "0"},
        {"initial_price": 1},
        {"contribution_rate": "1.5"},
        {"buyer_share": "0.9", "referral_rates": ["0.2"]},
        {"unknown": "1"},
        {"level_thresholds": "100"},
    ],
    ids=repr,
)
def test_invalid_start_params_raise_params_error(overrides: dict[str, Any]) -> None:
    with pytest.raises(ParamsError):
        Params().with_overrides(overrides)


def test_params_not_an_object_raise_params_error() -> None:
    with pytest.raises(ParamsError):
        Params().with_overrides(["initial_price", "1"])
