"""The reference model (tests/reference_model.py) against SPEC v2.

Every golden replays to its exact bytes; every v2 command's error codes come in SPEC order; and
the v2 rules (cash, withdrawals, freezing, agents, collectibles) give values worked out by hand
from SPEC here, in the comments next to each assertion. Each replay also checks every SPEC §6
invariant after every line (``replay_with_invariants``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.reference_model import (
    Ledger,
    canonical_json,
    canonical_state,
    canonical_state_v1,
    check_invariants,
    replay_reference,
    replay_with_invariants,
    run_reference,
)

GOLDEN = Path(__file__).parent / "golden"

Command = dict[str, Any] | str


def _lines(commands: Sequence[Command]) -> list[str]:
    return [c if isinstance(c, str) else json.dumps(c) for c in commands]


def replay(commands: Sequence[Command], params: dict[str, Any] | None = None) -> Ledger:
    """Replay, asserting every invariant after every line."""
    led, problems = replay_with_invariants(_lines(commands), params)
    assert problems == []
    return led


def rejected(
    setup: Sequence[Command], command: Command, params: dict[str, Any] | None = None
) -> str:
    """The code ``command`` is rejected with after ``setup``; asserts it changed nothing."""
    before = replay(setup, params)
    after = replay([*setup, command], params)
    assert after.errors[:-1] == before.errors
    assert after.errors, "the command was applied"
    number, code = after.errors[-1]
    assert number == len(setup) + 1, "the command was applied"
    state_before, state_after = canonical_state(before), canonical_state(after)
    del state_before["errors"], state_after["errors"]
    assert state_after == state_before
    return code


def applied(
    setup: Sequence[Command], command: Command, params: dict[str, Any] | None = None
) -> Ledger:
    led = replay([*setup, command], params)
    assert all(number != len(setup) + 1 for number, _ in led.errors), led.errors
    return led


def op(name: str, **fields: Any) -> dict[str, Any]:
    return {"op": name, **fields}


def gift(item: Any, giver: Any, receiver: Any) -> dict[str, Any]:
    return {"op": "gift_collectible", "item": item, "from": giver, "to": receiver}


# alice buys 100.00 at default parameters: c = 30.00, she gets floor(30 × 0.70 / 1) = 21 EP,
# pool 30.00, supply 21, quota 200.00.
ALICE_BUYS: list[Command] = [
    op("register", user="alice"),
    op("register", user="bob"),
    op("register_merchant", merchant="shop"),
    op("order", id="o1", user="alice", amount="100.00"),
]
# She sells 10 EP at P = 30/21: payout floor(10 × 30/21 × 0.9 × 100) fen = floor(1285.71) =
# 12.85; cash 12.85, quota 187.15, pool 17.15, supply 11.
ALICE_SOLD: list[Command] = [*ALICE_BUYS, op("sell", user="alice", points="10")]

AGENT_RATES = {"agent_rates": ["0.05", "0.03", "0.02"]}


# --------------------------------------------------------------------------------------------
# Goldens
# --------------------------------------------------------------------------------------------


def _golden(name: str) -> tuple[list[str], dict[str, Any] | None]:
    lines = (GOLDEN / f"{name}.jsonl").read_text(encoding="utf-8").split("\n")
    params_file = GOLDEN / f"{name}.params.json"
    params = json.loads(params_file.read_text()) if params_file.exists() else None
    return lines, params


@pytest.mark.parametrize("name", ["small", "seed100", "small-v2"])
def test_golden_replays_to_the_v2_bytes(name: str) -> None:
    lines, params = _golden(name)
    led, problems = replay_with_invariants(lines, params)
    assert problems == []
    expected = (GOLDEN / f"{name}.expected.json").read_bytes()
    assert canonical_json(canonical_state(led)).encode("ascii") == expected
    assert canonical_json(replay_reference(lines, params)).encode("ascii") == expected


@pytest.mark.parametrize("name", ["small", "seed100"])
def test_golden_replays_to_the_v1_bytes_too(name: str) -> None:
    lines, params = _golden(name)
    expected = (GOLDEN / f"{name}.expected-v1.json").read_bytes()
    assert canonical_json(canonical_state_v1(run_reference(lines, params))).encode() == expected


@pytest.mark.parametrize("name", ["small", "seed100"])
def test_v1_scenario_every_payout_is_cash(name: str) -> None:
    lines, params = _golden(name)
    _assert_cash_is_cash_out(run_reference(lines, params))


def _assert_cash_is_cash_out(led: Ledger) -> None:
    assert led.consumers
    for consumer in led.consumers.values():
        assert consumer.cash == consumer.cash_out
        assert consumer.withdrawing == consumer.withdrawn == 0
    for merchant in led.merchants.values():
        assert merchant.cash == merchant.cash_out
    total = sum(c.cash_out for c in led.consumers.values())
    assert led.cash_owed == total + sum(m.cash_out for m in led.merchants.values())
    assert led.withdrawn == led.agent_commissions == 0


def test_v1_scenario_with_exits_and_merchant_sales_every_payout_is_cash() -> None:
    # a v1 command mix: quota 0.5 per CNY makes buyers exit as the price rises
    commands: list[Command] = [op("register_merchant", merchant="shop")]
    for n in range(12):
        user = f"c{n:02d}"
        commands += [
            op("register", user=user, **({"referrer": "c00"} if n else {})),
            op("order", id=f"o{n}", user=user, amount=f"{100 + 7 * n}.00"),
        ]
    commands += [
        op("convert", user="c11", points="1"),
        op("order", id="s1", user="c11", amount="1.00", pay="stable", merchant="shop"),
        op("merchant_redeem", merchant="shop", amount="1.00"),
        op("sell", merchant="shop", points="all"),
        op("sell", user="c10", points="2"),
        op("settle_day"),
    ]
    led = replay(commands, {"quota_multiple": "0.5", "referral_rates": ["0.1", "0"]})
    assert led.errors == []
    assert led.exits > 0
    assert led.merchants["shop"].cash_out > 0
    _assert_cash_is_cash_out(led)


def test_small_has_alice_cash_of_her_sale() -> None:
    lines, params = _golden("small")
    state = replay_reference(lines, params)
    # SPEC §8: alice sells 10 EP for 14.28
    assert state["users"]["alice"]["cash"] == state["users"]["alice"]["cash_out"] == "14.28"
    assert state["cash_owed"] == "14.28"


def test_forced_exit_pays_cash_even_when_frozen() -> None:
    # quota_multiple 0.1: alice's quota is 10.00 while her 21 EP are worth 30.00 at 30/21, so
    # she is sold out at once: payout floor(21 × 30/21 × 0.9) = 27.00, quota 0, pool 3.00.
    led = replay(
        [
            op("register", user="alice"),
            op("freeze", account="alice"),
            op("order", id="o1", user="alice", amount="100.00"),
        ],
        {"quota_multiple": "0.1"},
    )
    alice = led.consumers["alice"]
    assert (alice.ep, alice.quota, alice.exited, led.exits) == (0, 0, True, 1)
    assert alice.cash == alice.cash_out == 2700
    assert led.cash_owed == 2700
    assert led.pool == 300
    assert canonical_state(led)["price"] == "1.42857143"  # the last defined price


def test_sell_credits_cash() -> None:
    led = replay(ALICE_SOLD)
    alice = led.consumers["alice"]
    assert (alice.cash, alice.cash_out, alice.quota, led.pool) == (1285, 1285, 18715, 1715)
    assert led.cash_owed == 1285


# --------------------------------------------------------------------------------------------
# Parameters (SPEC §2 [v2])
# --------------------------------------------------------------------------------------------

VALID_PARAMS = [
    {"withdraw_min": "0.01"},
    {"withdraw_min": "2.00", "withdraw_daily_max": "2.00"},
    {"withdraw_review_above": "0"},
    {"withdraw_review_above": "100.5"},
    {"agent_rates": []},
    {"agent_rates": ["0.5", "0.1", "0.1"], "contribution_rate": "0.3"},  # sum exactly 1
    {"agent_rates": ["0.99"], "contribution_rate": "0.01"},
    {"collectible_lock_days": 0},
    {"collectible_lock_days": 3650},
]
INVALID_PARAMS = [
    {"withdraw_min": "0"},
    {"withdraw_min": "0.00"},
    {"withdraw_min": "0.001"},
    {"withdraw_min": 1},
    {"withdraw_min": "-1"},
    {"withdraw_daily_max": "0.99"},  # < withdraw_min 1.00
    {"withdraw_min": "5.00", "withdraw_daily_max": "4.99"},
    {"withdraw_review_above": "-0.01"},
    {"withdraw_review_above": "1.001"},
    {"withdraw_review_above": None},
    {"agent_rates": ["0", "0", "0", "0"]},
    {"agent_rates": ["1"]},
    {"agent_rates": ["1.0"]},
    {"agent_rates": [0.05]},
    {"agent_rates": "0.05"},
    {"agent_rates": ["0.5", "0.21"]},  # 0.30 + 0.71 > 1
    {"collectible_lock_days": -1},
    {"collectible_lock_days": 3651},
    {"collectible_lock_days": "30"},
    {"collectible_lock_days": True},
    {"collectible_lock_days": 30.0},
    {"collectible_lock_day": 30},  # unknown key
]


@pytest.mark.parametrize("params", VALID_PARAMS)
def test_valid_v2_params(params: dict[str, Any]) -> None:
    run_reference([], params)
    led = replay([op("set_params", params=params)])
    assert led.errors == []


@pytest.mark.parametrize("params", INVALID_PARAMS)
def test_invalid_v2_params(params: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        run_reference([], params)
    assert rejected([], op("set_params", params=params)) == "invalid_params"


def test_set_params_null_is_invalid_command() -> None:
    assert rejected([], op("set_params", params=None)) == "invalid_command"


def test_v2_param_defaults() -> None:
    params = run_reference([]).params
    assert params.withdraw_min == 100
    assert params.withdraw_daily_max == 5_000_000
    assert params.withdraw_review_above == 0
    assert sum(params.agent_rates) == 0
    assert params.collectible_lock_days == 30


# --------------------------------------------------------------------------------------------
# Structure checks (SPEC §4 [v2])
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user",
    ["a b", "a/b", "a#b", "", "x" * 65, "tab\there", "zw\u200bsp", "nbsp\u00a0", 5, None, ["a"]],
)
def test_invalid_ids(user: Any) -> None:
    assert rejected([], op("register", user=user)) == "invalid_command"


@pytest.mark.parametrize("user", ["x" * 64, "用户一", "ÅÉ", "a_b-c.d:e@f", "٣٤", "ＡＢＣ"])
def test_valid_ids(user: str) -> None:
    led = applied([], op("register", user=user))
    assert user in led.consumers


def test_ids_compare_exactly() -> None:
    led = replay([op("register", user="ＡＢＣ"), op("register", user="ABC")])
    assert led.errors == []
    assert sorted(led.consumers) == ["ABC", "ＡＢＣ"]


@pytest.mark.parametrize(
    "name", ["user", "referrer", "merchant", "agent", "account", "from", "to", "id", "order"]
)
def test_id_fields_are_checked_in_commands_that_ignore_them(name: str) -> None:
    assert rejected([], {"op": "settle_day", name: "not an id"}) == "invalid_command"


@pytest.mark.parametrize("name", ["collection", "reference"])
def test_id_fields_checked_everywhere_even_null(name: str) -> None:
    assert rejected(ALICE_BUYS, {"op": "settle_day", name: None}) == "invalid_command"


def test_op_checks_come_in_spec_order() -> None:
    assert rejected([], {"user": "alice"}) == "invalid_command"  # op missing
    assert rejected([], {"op": None}) == "invalid_command"
    assert rejected([], "[1, 2]") == "invalid_command"
    assert rejected([], '{"op": "settle_day", "x": NaN}') == "invalid_command"
    # a bad id comes before unknown_op; the op-dependent checks come after it
    assert rejected([], {"op": "nope", "user": "a b"}) == "invalid_command"
    assert rejected([], {"op": "nope", "amount": None}) == "unknown_op"
    assert rejected([], {"op": "nope", "item": 5}) == "unknown_op"
    assert rejected([], {"op": 7}) == "unknown_op"


def test_null_rule_wins_over_amount_and_payment_codes() -> None:
    order = {"op": "order", "id": "o9", "user": "alice", "amount": "1.00"}
    assert rejected(ALICE_BUYS, {**order, "amount": None}) == "invalid_command"
    assert rejected(ALICE_BUYS, {**order, "amount": "0"}) == "invalid_amount"
    assert rejected(ALICE_BUYS, {**order, "pay": None}) == "invalid_command"
    assert rejected(ALICE_BUYS, {**order, "pay": "card"}) == "invalid_payment"
    assert rejected(ALICE_BUYS, {**order, "region": None}) == "invalid_command"
    assert rejected(ALICE_BUYS, op("sell", user="alice", points=None)) == "invalid_command"
    grant = op("grant_stable", user="alice", amount="1.00", days=None)
    assert rejected(ALICE_BUYS, grant) == "invalid_command"
    # a null in a field the op does not have is an ignored extra (reading R2)
    applied(ALICE_BUYS, {"op": "settle_day", "amount": None})


def test_required_fields() -> None:
    assert rejected(ALICE_SOLD, op("withdraw", user="alice", amount="1.00")) == "invalid_command"
    assert rejected(ALICE_SOLD, op("withdraw", id="w", user="alice")) == "invalid_command"
    assert rejected(ALICE_SOLD, op("complete_withdrawal", id="w")) == "invalid_command"
    assert rejected([], op("register_agent", agent="gd")) == "invalid_command"
    assert rejected([], op("issue_collection", collection="c", edition=1)) == "invalid_command"
    assert rejected(ALICE_BUYS, op("claim_collectible", user="alice")) == "invalid_command"
    assert rejected(ALICE_BUYS, {"op": "gift_collectible", "item": "c#1", "from": "alice"}) == (
        "invalid_command"
    )
    assert rejected(ALICE_BUYS, op("use_collectible", item="c#1")) == "invalid_command"
    assert rejected([], op("freeze")) == "invalid_command"
    assert rejected([], op("end_agent")) == "invalid_command"


def test_seller_must_be_exactly_one() -> None:
    setup = [*ALICE_SOLD, op("register_agent", agent="gd", region="44")]
    both = op("withdraw", id="w", user="alice", agent="gd", amount="1.00")
    assert rejected(setup, both) == "invalid_command"
    assert rejected(setup, op("withdraw", id="w", amount="1.00")) == "invalid_command"
    assert rejected(setup, op("sell", user="alice", agent="gd", points="1")) == "invalid_command"
    assert rejected(setup, op("sell", agent="gd", points="1")) == "invalid_command"  # R4
    assert rejected(setup, op("sell", points="1")) == "invalid_command"


@pytest.mark.parametrize("region", ["44190", "4419021", "44190a", "４４１９０２", 441902, "44"])
def test_order_region_is_six_ascii_digits(region: Any) -> None:
    cash = op("order", id="o9", user="alice", amount="1.00", region=region)
    assert rejected(ALICE_BUYS, cash) == "invalid_command"
    stable = {**cash, "pay": "stable", "merchant": "shop"}
    assert rejected(ALICE_BUYS, stable) == "invalid_command"  # checked on stable orders too


@pytest.mark.parametrize(
    ("region", "until"),
    [
        ("4", 0),
        ("441", 0),
        ("44190", 0),
        ("4419021", 0),
        ("４４", 0),
        (44, 0),
        ("", 0),
        ("44", -1),
        ("44", "5"),
        ("44", True),
        ("44", 1.5),
        ("44", 10**41),
    ],
)
def test_register_agent_structure(region: Any, until: Any) -> None:
    assert rejected([], op("register_agent", agent="gd", region=region, until=until)) == (
        "invalid_command"
    )


@pytest.mark.parametrize("edition", [0, -1, 1_000_001, "2", True, 2.0, 10**41])
def test_edition_structure(edition: Any) -> None:
    issue = op("issue_collection", collection="c", edition=edition, value="1.00")
    assert rejected([], issue) == "invalid_command"


def test_edition_bounds_apply() -> None:
    led = replay([op("issue_collection", collection="c", edition=1_000_000, value="1.00")])
    assert led.collections["c"].edition == 1_000_000


@pytest.mark.parametrize("item", [5, None, "x" * 81, ["c#1"]])
def test_item_structure(item: Any) -> None:
    assert rejected(ALICE_BUYS, gift(item, "alice", "bob")) == "invalid_command"
    assert rejected(ALICE_BUYS, op("use_collectible", item=item, user="alice")) == (
        "invalid_command"
    )


def test_item_strings_up_to_80_code_points_are_items() -> None:
    assert rejected(ALICE_BUYS, gift("藏" * 80, "alice", "bob")) == "unknown_item"
    assert rejected(ALICE_BUYS, gift("", "alice", "bob")) == "unknown_item"


def test_gift_to_self_is_invalid_command_before_anything() -> None:
    assert rejected(ALICE_BUYS, gift("nothing#1", "alice", "alice")) == "invalid_command"


# --------------------------------------------------------------------------------------------
# freeze / unfreeze
# --------------------------------------------------------------------------------------------


def test_freeze_errors() -> None:
    assert rejected(ALICE_BUYS, op("freeze", account="o1")) == "unknown_account"  # an order id
    assert rejected(ALICE_BUYS, op("unfreeze", account="carol")) == "unknown_account"
    assert rejected(ALICE_BUYS, op("unfreeze", account="alice")) == "invalid_state"
    frozen = [*ALICE_BUYS, op("freeze", account="alice")]
    assert rejected(frozen, op("freeze", account="alice")) == "invalid_state"
    led = applied(frozen, op("unfreeze", account="alice"))
    assert led.consumers["alice"].frozen is False


def test_freeze_any_kind_of_account() -> None:
    led = replay(
        [
            *ALICE_BUYS,
            op("register_agent", agent="gd", region="44"),
            op("freeze", account="shop"),
            op("freeze", account="gd"),
            op("end_agent", agent="gd"),
            op("unfreeze", account="gd"),
        ]
    )
    assert led.errors == []
    state = canonical_state(led)
    assert state["merchants"]["shop"]["frozen"] is True
    assert state["agents"]["gd"]["frozen"] is False
    assert state["agents"]["gd"]["ended"] is True


FROZEN_ALICE = [*ALICE_SOLD, op("freeze", account="alice")]


def test_sell_redeem_convert_account_frozen_place() -> None:
    for name in ("sell", "redeem", "convert"):
        assert rejected(FROZEN_ALICE, op(name, user="carol", points="0")) == "unknown_user"
        assert rejected(FROZEN_ALICE, op(name, user="alice", points="0")) == "account_frozen"
        assert rejected(FROZEN_ALICE, op(name, user="alice", points="1000")) == "account_frozen"
        assert rejected(FROZEN_ALICE, op(name, user="bob", points="0")) == "invalid_amount"


def test_merchant_sell_and_redeem_account_frozen_place() -> None:
    setup = [*ALICE_BUYS, op("freeze", account="shop")]
    sell = op("sell", merchant="shop", points="0")
    assert rejected(setup, sell) == "account_frozen"  # before invalid_amount
    assert rejected(setup, op("sell", merchant="nope", points="0")) == "unknown_merchant"
    redeem = op("merchant_redeem", merchant="shop", amount="0")
    assert rejected(setup, redeem) == "account_frozen"  # before invalid_amount
    redeem = op("merchant_redeem", merchant="nope", amount="1.00")
    assert rejected(setup, redeem) == "unknown_merchant"


def test_stable_order_account_frozen_place() -> None:
    # alice has 0 SP: insufficient_stable would apply, account_frozen comes first
    stable = op("order", id="o9", user="alice", amount="1.00", pay="stable", merchant="shop")
    assert rejected(FROZEN_ALICE, stable) == "account_frozen"
    assert rejected(FROZEN_ALICE, {**stable, "merchant": "nope"}) == "unknown_merchant"
    assert rejected(FROZEN_ALICE, {**stable, "amount": "0"}) == "invalid_amount"
    assert rejected(FROZEN_ALICE, {**stable, "id": "o1"}) == "duplicate_order"
    shop_frozen = [*ALICE_BUYS, op("freeze", account="shop")]
    assert rejected(shop_frozen, stable) == "account_frozen"
    assert rejected(ALICE_BUYS, stable) == "insufficient_stable"


def test_frozen_consumer_may_buy_for_cash_and_is_paid_dividends() -> None:
    led = replay(
        [
            op("register", user="alice"),
            op("freeze", account="alice"),
            op("order", id="o1", user="alice", amount="100.00"),
            op("grant_stable", user="alice", amount="1.00", days=1),
            op("settle_day"),
            op("refund", order="o1"),  # day 1: the window is closed, not a frozen error
        ]
    )
    assert led.errors == [(6, "refund_window_closed")]
    alice = led.consumers["alice"]
    # 21 EP; F1 = floor(100 × 0.20) = 20.00 all to alice; F2 = 10.00 carried (no levels);
    # the grant releases 1.00.
    assert (alice.ep, alice.dividends, alice.sp, led.carry) == (21 * 10**8, 2000, 2100, 1000)


def test_refund_is_not_blocked_by_a_frozen_buyer() -> None:
    led = applied([*ALICE_BUYS, op("freeze", account="alice")], op("refund", order="o1"))
    assert led.consumers["alice"].ep == 0
    assert led.refunds == 10000


# --------------------------------------------------------------------------------------------
# withdraw (SPEC §9)
# --------------------------------------------------------------------------------------------


def test_withdraw_effect_and_review() -> None:
    led = applied(ALICE_SOLD, op("withdraw", id="w1", user="alice", amount="5.00"))
    alice = led.consumers["alice"]
    assert (alice.cash, alice.withdrawing, alice.withdrawn) == (785, 500, 0)
    assert led.cash_owed == 1285  # still owed until paid
    # withdraw_review_above 0.00: every withdrawal waits for review
    assert canonical_state(led)["withdrawals"] == {
        "w1": {"account": "alice", "amount": "5.00", "reference": None, "status": "requested"}
    }


def test_withdraw_at_most_review_above_is_approved_at_once() -> None:
    params = {"withdraw_review_above": "5.00"}
    led = replay(
        [
            *ALICE_SOLD,
            op("withdraw", id="w1", user="alice", amount="5.00"),
            op("withdraw", id="w2", user="alice", amount="5.01"),
        ],
        params,
    )
    assert led.errors == []
    assert (led.withdrawals["w1"].status, led.withdrawals["w2"].status) == (
        "approved",
        "requested",
    )
    assert led.consumers["alice"].cash == 1285 - 500 - 501


def test_withdraw_errors_in_spec_order() -> None:
    setup = [
        *ALICE_SOLD,
        op("register_agent", agent="gd", region="44"),
        op("withdraw", id="w1", user="alice", amount="1.00"),
    ]
    # duplicate_withdrawal first, even for an unknown user and a bad amount
    assert rejected(setup, op("withdraw", id="w1", user="carol", amount="0")) == (
        "duplicate_withdrawal"
    )
    # an order's id is not a withdrawal's (separate namespaces)
    applied(setup, op("withdraw", id="o1", user="alice", amount="1.00"))
    # unknown_user / unknown_merchant / unknown_agent by kind, before the amount
    assert rejected(setup, op("withdraw", id="w2", user="shop", amount="0")) == "unknown_user"
    assert rejected(setup, op("withdraw", id="w2", merchant="alice", amount="0")) == (
        "unknown_merchant"
    )
    assert rejected(setup, op("withdraw", id="w2", agent="alice", amount="0")) == ("unknown_agent")
    frozen = [*setup, op("freeze", account="alice")]
    assert rejected(frozen, op("withdraw", id="w2", user="alice", amount="0")) == ("account_frozen")
    for amount in ("0", "0.00", "0.001", "-1", "1e2", 5):
        assert rejected(setup, op("withdraw", id="w2", user="alice", amount=amount)) == (
            "invalid_amount"
        )
    # below_minimum before insufficient_cash: gd and shop hold no cash
    assert rejected(setup, op("withdraw", id="w2", agent="gd", amount="0.99")) == ("below_minimum")
    assert rejected(setup, op("withdraw", id="w2", merchant="shop", amount="0.99")) == (
        "below_minimum"
    )
    assert rejected(setup, op("withdraw", id="w2", agent="gd", amount="1.00")) == (
        "insufficient_cash"
    )
    # alice has 12.85 − 1.00 = 11.85
    assert rejected(setup, op("withdraw", id="w2", user="alice", amount="11.86")) == (
        "insufficient_cash"
    )
    led = applied(setup, op("withdraw", id="w2", user="alice", amount="11.85"))
    assert led.consumers["alice"].cash == 0


def test_insufficient_cash_before_over_daily_limit() -> None:
    params = {"withdraw_daily_max": "10.00"}
    assert rejected(ALICE_SOLD, op("withdraw", id="w", user="alice", amount="12.86"), params) == (
        "insufficient_cash"
    )
    assert rejected(ALICE_SOLD, op("withdraw", id="w", user="alice", amount="10.01"), params) == (
        "over_daily_limit"
    )


def test_over_daily_limit_counts_every_withdrawal_and_settle_day_resets_it() -> None:
    params = {"withdraw_daily_max": "10.00"}
    setup = [
        *ALICE_SOLD,
        op("withdraw", id="w1", user="alice", amount="6.00"),
        op("withdraw", id="w3", user="alice", amount="4.00"),  # today: exactly 10.00
        op("reject_withdrawal", id="w3"),  # cash back to 6.85, but still counted today
    ]
    assert replay(setup, params).errors == []
    assert rejected(setup, op("withdraw", id="w4", user="alice", amount="1.00"), params) == (
        "over_daily_limit"
    )
    assert rejected(setup[:-2], op("withdraw", id="w2", user="alice", amount="4.01"), params) == (
        "over_daily_limit"
    )
    led = applied(
        [*setup, op("settle_day")], op("withdraw", id="w4", user="alice", amount="6.85"), params
    )
    assert led.consumers["alice"].cash == 0
    assert led.withdrawn_today == {"alice": 685}
    assert led.consumers["alice"].withdrawing == 600 + 685  # w1 and w4 wait for review


def test_daily_limit_on_the_default_of_50000() -> None:
    # the default limit only bites with more cash: an agent earning 10% of 600,000.00
    params = {"agent_rates": ["0.1"]}
    setup = [
        op("register", user="alice"),
        op("register_agent", agent="gd", region="44"),
        op("order", id="o1", user="alice", amount="600000.00", region="440304"),
        op("withdraw", id="w1", agent="gd", amount="50000.00"),
    ]
    assert replay(setup, params).agents["gd"].withdrawing == 5_000_000
    assert rejected(setup, op("withdraw", id="w2", agent="gd", amount="1.00"), params) == (
        "over_daily_limit"
    )
    # below_minimum comes before over_daily_limit
    assert rejected(setup, op("withdraw", id="w2", agent="gd", amount="0.99"), params) == (
        "below_minimum"
    )


# --------------------------------------------------------------------------------------------
# The withdrawal state machine
# --------------------------------------------------------------------------------------------

MACHINE: list[Command] = [
    *ALICE_SOLD,
    op("withdraw", id="wr", user="alice", amount="1.00"),
    op("withdraw", id="wa", user="alice", amount="1.00"),
    op("approve_withdrawal", id="wa"),
    op("withdraw", id="wp", user="alice", amount="1.00"),
    op("approve_withdrawal", id="wp"),
    op("complete_withdrawal", id="wp", reference="T-1"),
    op("withdraw", id="wj", user="alice", amount="1.00"),
    op("reject_withdrawal", id="wj"),
    op("withdraw", id="wf", user="alice", amount="1.00"),
    op("approve_withdrawal", id="wf"),
    op("fail_withdrawal", id="wf"),
]
STATUS_OF = {"wr": "requested", "wa": "approved", "wp": "paid", "wj": "rejected", "wf": "failed"}
TRANSITIONS = {
    "approve_withdrawal": {"requested": "approved"},
    "reject_withdrawal": {"requested": "rejected", "approved": "rejected"},
    "complete_withdrawal": {"approved": "paid"},
    "fail_withdrawal": {"approved": "failed"},
}


def test_machine_setup_balances() -> None:
    led = replay(MACHINE)
    assert led.errors == []
    assert {wid: w.status for wid, w in led.withdrawals.items()} == STATUS_OF
    alice = led.consumers["alice"]
    # 12.85 − wr − wa − wp (wj and wf came back); withdrawing wr + wa; withdrawn wp
    assert (alice.cash, alice.withdrawing, alice.withdrawn) == (985, 200, 100)
    assert (led.cash_owed, led.withdrawn) == (1185, 100)
    assert led.withdrawals["wp"].reference == "T-1"
    assert led.withdrawals["wf"].reference is None


@pytest.mark.parametrize("name", sorted(TRANSITIONS))
@pytest.mark.parametrize("wid", sorted(STATUS_OF))
def test_withdrawal_transitions(name: str, wid: str) -> None:
    command = (
        op(name, id=wid, reference="T-2") if name == "complete_withdrawal" else op(name, id=wid)
    )
    target = TRANSITIONS[name].get(STATUS_OF[wid])
    if target is None:
        assert rejected(MACHINE, command) == "invalid_state"
        return
    led = applied(MACHINE, command)
    assert led.withdrawals[wid].status == target
    alice = led.consumers["alice"]
    if target == "paid":
        assert (alice.cash, alice.withdrawing, alice.withdrawn) == (985, 100, 200)
        assert (led.cash_owed, led.withdrawn) == (1085, 200)
        assert led.withdrawals[wid].reference == "T-2"
    elif target in ("rejected", "failed"):
        assert (alice.cash, alice.withdrawing, alice.withdrawn) == (1085, 100, 100)
        assert (led.cash_owed, led.withdrawn) == (1185, 100)
    else:
        assert (alice.cash, alice.withdrawing, alice.withdrawn) == (985, 200, 100)


@pytest.mark.parametrize("name", sorted(TRANSITIONS))
def test_unknown_withdrawal(name: str) -> None:
    for wid in ("zz", "o1"):  # o1 is an order, not a withdrawal
        command = (
            op(name, id=wid, reference="T") if name == "complete_withdrawal" else op(name, id=wid)
        )
        assert rejected(MACHINE, command) == "unknown_withdrawal"


def test_complete_reference_must_be_an_id() -> None:
    command = op("complete_withdrawal", id="wa", reference="T 1")
    assert rejected(MACHINE, command) == "invalid_command"


def test_frozen_accounts_withdrawals_still_move() -> None:
    led = replay(
        [
            *MACHINE,
            op("freeze", account="alice"),
            op("complete_withdrawal", id="wa", reference="T-3"),
            op("approve_withdrawal", id="wr"),
            op("fail_withdrawal", id="wr"),
            op("withdraw", id="wx", user="alice", amount="1.00"),
        ]
    )
    assert led.errors == [(len(MACHINE) + 5, "account_frozen")]
    alice = led.consumers["alice"]
    assert (alice.cash, alice.withdrawing, alice.withdrawn) == (1085, 0, 200)


# --------------------------------------------------------------------------------------------
# Regional agents (SPEC §10)
# --------------------------------------------------------------------------------------------

AGENTS: list[Command] = [
    op("register", user="alice"),
    op("register_agent", agent="gd", region="44"),
    op("register_agent", agent="sz", region="4403"),
    op("register_agent", agent="ft", region="440304"),
]


def test_commissions_by_province_city_district() -> None:
    led = replay(
        [*AGENTS, op("order", id="o1", user="alice", amount="33.33", region="440304")],
        AGENT_RATES,
    )
    # floor(33.33 × 0.05) = floor(1.6665) = 1.66; × 0.03 = 0.9999 → 0.99; × 0.02 = 0.6666 → 0.66
    assert [led.agents[a].commissions for a in ("gd", "sz", "ft")] == [166, 99, 66]
    assert [led.agents[a].cash for a in ("gd", "sz", "ft")] == [166, 99, 66]
    assert led.agent_commissions == 331
    assert led.cash_owed == 331
    # the pool and the buyer do not pay: c = floor(33.33 × 0.30) = 9.99, 6.993 EP, quota 66.66
    assert led.pool == 999
    assert led.consumers["alice"].ep == 699_300_000
    assert led.consumers["alice"].quota == 6666
    assert led.orders["o1"].commissions == [("gd", 166), ("sz", 99), ("ft", 66)]


def test_commissions_only_to_the_prefixes_held() -> None:
    led = replay(
        [
            *AGENTS,
            op("order", id="o1", user="alice", amount="100.00", region="440399"),  # gd, sz
            op("order", id="o2", user="alice", amount="100.00", region="110101"),  # nobody
            op("order", id="o3", user="alice", amount="100.00"),  # no region
        ],
        AGENT_RATES,
    )
    assert [led.agents[a].commissions for a in ("gd", "sz", "ft")] == [500, 300, 0]
    assert led.agent_commissions == 800


def test_missing_and_zero_agent_rates_pay_nothing() -> None:
    order = op("order", id="o1", user="alice", amount="100.00", region="440304")
    led = replay([*AGENTS, order], {"agent_rates": ["0", "0.03"]})
    assert [led.agents[a].commissions for a in ("gd", "sz", "ft")] == [0, 300, 0]
    led = replay([*AGENTS, order])  # defaults: all 0
    assert led.agent_commissions == 0
    # a commission that rounds to 0 fen is not paid: floor(0.01 × 0.05) = 0
    led = replay([*AGENTS, {**order, "amount": "0.19"}], AGENT_RATES)
    assert [led.agents[a].commissions for a in ("gd", "sz", "ft")] == [0, 0, 0]


def test_stable_order_ignores_region() -> None:
    led = replay(
        [
            *AGENTS,
            op("register_merchant", merchant="shop"),
            op("grant_stable", user="alice", amount="10.00", days=1),
            op("settle_day"),
            op(
                "order",
                id="s1",
                user="alice",
                amount="10.00",
                pay="stable",
                merchant="shop",
                region="440304",
            ),
        ],
        AGENT_RATES,
    )
    assert led.errors == []
    assert led.agent_commissions == 0
    assert led.merchants["shop"].sp == 1000


def test_until_is_the_last_day_an_agent_earns() -> None:
    led = replay(
        [
            op("register", user="alice"),
            op("register_agent", agent="gd", region="44", until=1),
            op("order", id="o1", user="alice", amount="100.00", region="440304"),  # day 0
            op("settle_day"),
            op("order", id="o2", user="alice", amount="100.00", region="440304"),  # day 1
            op("settle_day"),
            op("order", id="o3", user="alice", amount="100.00", region="440304"),  # day 2
        ],
        AGENT_RATES,
    )
    assert led.errors == []
    assert led.agents["gd"].commissions == 1000
    assert canonical_state(led)["agents"]["gd"]["until"] == 1


def test_ended_agent_earns_nothing_and_frozen_agent_earns() -> None:
    led = replay(
        [
            *AGENTS,
            op("end_agent", agent="sz"),
            op("freeze", account="ft"),
            op("order", id="o1", user="alice", amount="100.00", region="440304"),
        ],
        AGENT_RATES,
    )
    assert [led.agents[a].commissions for a in ("gd", "sz", "ft")] == [500, 0, 200]


def test_register_agent_errors() -> None:
    setup = [*AGENTS, op("register_merchant", merchant="shop")]
    # duplicate_account (any kind of account) before region_taken
    for taken_id in ("alice", "shop", "gd"):
        assert rejected(setup, op("register_agent", agent=taken_id, region="44")) == (
            "duplicate_account"
        )
    assert rejected(setup, op("register_agent", agent="gd2", region="44")) == "region_taken"
    assert rejected(setup, op("register_agent", agent="ft2", region="440304")) == "region_taken"
    # end_agent frees the region
    led = applied(
        [*setup, op("end_agent", agent="gd")], op("register_agent", agent="gd2", region="44")
    )
    assert (led.agents["gd"].ended, led.agents["gd2"].region) == (True, "44")
    # an agent id blocks consumers and merchants
    assert rejected(setup, op("register", user="gd")) == "duplicate_account"
    assert rejected(setup, op("register_merchant", merchant="sz")) == "duplicate_account"
    assert rejected(setup, op("register", user="bob", referrer="gd")) == "unknown_referrer"


def test_end_agent_errors() -> None:
    assert rejected(AGENTS, op("end_agent", agent="alice")) == "unknown_agent"
    assert rejected(AGENTS, op("end_agent", agent="nobody")) == "unknown_agent"
    ended = [*AGENTS, op("end_agent", agent="gd")]
    assert rejected(ended, op("end_agent", agent="gd")) == "invalid_state"


def test_ended_agent_keeps_and_withdraws_its_cash() -> None:
    led = replay(
        [
            *AGENTS,
            op("order", id="o1", user="alice", amount="100.00", region="440304"),
            op("end_agent", agent="gd"),
            op("withdraw", id="w1", agent="gd", amount="5.00"),
            op("approve_withdrawal", id="w1"),
            op("complete_withdrawal", id="w1", reference="BANK:1"),
        ],
        AGENT_RATES,
    )
    assert led.errors == []
    gd = canonical_state(led)["agents"]["gd"]
    assert (gd["cash"], gd["commissions"], gd["withdrawn"]) == ("0.00", "5.00", "5.00")
    assert canonical_state(led)["withdrawn"] == "5.00"


def test_refund_takes_commissions_back_capped_by_cash() -> None:
    params = {"agent_rates": ["0.05", "0", "0.02"]}
    setup = [
        *AGENTS,
        op("order", id="o1", user="alice", amount="100.00", region="440304"),
        # gd: 5.00 earned, 4.00 of it now withdrawing; ft: 2.00 earned
        op("withdraw", id="w1", agent="gd", amount="4.00"),
    ]
    led = applied(setup, op("refund", order="o1"), params)
    gd, ft = led.agents["gd"], led.agents["ft"]
    # gd gives back min(5.00, 1.00) = 1.00, ft min(2.00, 2.00) = 2.00
    assert (gd.cash, gd.withdrawing, gd.commissions) == (0, 400, 400)
    assert (ft.cash, ft.commissions) == (0, 0)
    assert led.agent_commissions == 400
    assert led.cash_owed == 400
    led = replay([*setup, op("refund", order="o1"), op("reject_withdrawal", id="w1")], params)
    # the platform carries the 1.00 it could not take back: gd keeps 4.00
    assert (led.agents["gd"].cash, led.agents["gd"].commissions) == (400, 400)


def test_refund_takes_back_from_frozen_and_ended_agents() -> None:
    led = replay(
        [
            *AGENTS,
            op("order", id="o1", user="alice", amount="100.00", region="440304"),
            op("end_agent", agent="gd"),
            op("freeze", account="sz"),
            op("freeze", account="alice"),
            op("refund", order="o1"),
        ],
        AGENT_RATES,
    )
    assert led.errors == []
    assert [led.agents[a].commissions for a in ("gd", "sz", "ft")] == [0, 0, 0]
    assert [led.agents[a].cash for a in ("gd", "sz", "ft")] == [0, 0, 0]
    assert led.agent_commissions == led.cash_owed == 0


# --------------------------------------------------------------------------------------------
# Digital collectibles (SPEC §11)
# --------------------------------------------------------------------------------------------

VIP = op("issue_collection", collection="vip", edition=2, value="5.00")


def test_issue_collection_errors() -> None:
    setup = [VIP]
    dup = op("issue_collection", collection="vip", edition=1, value="0")
    assert rejected(setup, dup) == "duplicate_collection"  # before invalid_amount
    for value in ("0", "0.00", "1.001", 5, "-1"):
        issue = op("issue_collection", collection="c2", edition=1, value=value)
        assert rejected(setup, issue) == "invalid_amount"
    assert rejected(setup, op("issue_collection", collection="c2", edition=1, value=None)) == (
        "invalid_command"
    )
    led = applied(setup, op("issue_collection", collection="c2", edition=3, value="0.01"))
    assert canonical_state(led)["collections"]["c2"] == {
        "claimed": 0,
        "edition": 3,
        "value": "0.01",
    }


def test_claim_rounds_up_in_favour_of_the_pool() -> None:
    led = replay([*ALICE_SOLD, VIP, op("claim_collectible", user="alice", collection="vip")])
    assert led.errors == []
    # pool 17.15 = 1715 fen, supply 11 EP = 1.1e9 units:
    # qty = ceil(500 × 1_100_000_000 / 1715) = ceil(320_699_708.45...) = 320_699_709
    alice = led.consumers["alice"]
    assert alice.ep == 1_100_000_000 - 320_699_709
    assert led.supply == 1_100_000_000 - 320_699_709
    assert led.burned == 1_000_000_000 + 320_699_709
    assert led.pool == 1715
    assert (alice.quota, alice.goods) == (18715 - 500, 500)
    state = canonical_state(led)
    assert state["users"]["alice"]["ep"] == "7.79300291"
    assert state["collections"]["vip"]["claimed"] == 1
    assert state["items"] == {
        "vip#1": {"acquired_day": 0, "gifts": 0, "owner": "alice", "used": False}
    }


def test_claim_quota_never_below_zero() -> None:
    # quota_multiple 0 and exits off: alice holds 21 EP with quota 0; a claim takes min(0, 5.00)
    led = replay(
        [*ALICE_BUYS, VIP, op("claim_collectible", user="alice", collection="vip")],
        {"quota_multiple": "0", "exit_enabled": False},
    )
    # qty = ceil(500 × 2_100_000_000 / 3000) = 350_000_000 exactly
    assert (led.consumers["alice"].ep, led.consumers["alice"].quota) == (1_750_000_000, 0)


def test_claim_errors_in_spec_order() -> None:
    setup = [*ALICE_BUYS, op("issue_collection", collection="one", edition=1, value="5.00"), VIP]
    claim = op("claim_collectible", user="alice", collection="one")
    done = [*setup, claim]
    assert rejected(done, {**claim, "user": "carol"}) == "unknown_user"
    assert rejected(done, {**claim, "user": "shop"}) == "unknown_user"
    frozen = [*done, op("freeze", account="bob")]
    # bob: frozen, the collection unknown or sold out, no EP: account_frozen first
    assert rejected(frozen, op("claim_collectible", user="bob", collection="nope")) == (
        "account_frozen"
    )
    assert rejected(done, op("claim_collectible", user="bob", collection="nope")) == (
        "unknown_collection"
    )
    # sold_out before insufficient_points: bob holds no EP
    assert rejected(done, op("claim_collectible", user="bob", collection="one")) == "sold_out"
    assert rejected(done, op("claim_collectible", user="bob", collection="vip")) == (
        "insufficient_points"
    )
    led = applied(done, op("claim_collectible", user="alice", collection="vip"))
    assert sorted(led.items) == ["one#1", "vip#1"]


def test_sold_out_after_edition_claims() -> None:
    claims = [op("claim_collectible", user="alice", collection="vip")] * 2
    setup = [*ALICE_BUYS, VIP, *claims]
    assert replay(setup).collections["vip"].claimed == 2
    assert rejected(setup, claims[0]) == "sold_out"


def test_insufficient_points_by_one_unit() -> None:
    # alice holds 21 EP at P = 30/21; a value of 30.01 costs ceil(3001 × 2.1e9 / 3000) =
    # 2_100_700_000 units > 2_100_000_000
    setup = [*ALICE_BUYS, op("issue_collection", collection="big", edition=5, value="30.01")]
    claim = op("claim_collectible", user="alice", collection="big")
    assert rejected(setup, claim) == "insufficient_points"


GIFT_SETUP: list[Command] = [
    *ALICE_BUYS,
    VIP,
    op("claim_collectible", user="alice", collection="vip"),
]
LOCK2 = {"collectible_lock_days": 2}


def test_gift_locked_by_holding_period() -> None:
    give = gift("vip#1", "alice", "bob")
    assert rejected(GIFT_SETUP, give, LOCK2) == "locked"  # day 0 < 0 + 2
    day1 = [*GIFT_SETUP, op("settle_day")]
    assert rejected(day1, give, LOCK2) == "locked"  # day 1 < 2
    day2 = [*day1, op("settle_day")]
    led = applied(day2, give, LOCK2)
    assert canonical_state(led)["items"]["vip#1"] == {
        "acquired_day": 2,
        "gifts": 1,
        "owner": "bob",
        "used": False,
    }
    # bob's own holding period starts on day 2
    assert rejected([*day2, give], gift("vip#1", "bob", "alice"), LOCK2) == "locked"
    led = replay(
        [*day2, give, op("settle_day"), op("settle_day"), gift("vip#1", "bob", "alice")], LOCK2
    )
    assert led.errors == []
    assert (led.items["vip#1"].owner, led.items["vip#1"].gifts) == ("alice", 2)


def test_gift_with_no_lock() -> None:
    led = applied(GIFT_SETUP, gift("vip#1", "alice", "bob"), {"collectible_lock_days": 0})
    assert (led.items["vip#1"].owner, led.items["vip#1"].acquired_day) == ("bob", 0)


def test_gift_errors_in_spec_order() -> None:
    lock0 = {"collectible_lock_days": 0}
    setup = [*GIFT_SETUP, op("register", user="carol")]
    assert rejected(setup, gift("vip#2", "alice", "bob"), lock0) == "unknown_item"
    assert rejected(setup, gift("vip", "alice", "bob"), lock0) == "unknown_item"
    # not_owner before unknown_user
    assert rejected(setup, gift("vip#1", "bob", "nobody"), lock0) == "not_owner"
    assert rejected(setup, gift("vip#1", "ghost", "bob"), lock0) == "not_owner"
    # unknown_user (to) before account_frozen (from)
    frozen_alice = [*setup, op("freeze", account="alice")]
    assert rejected(frozen_alice, gift("vip#1", "alice", "nobody"), lock0) == "unknown_user"
    assert rejected(setup, gift("vip#1", "alice", "shop"), lock0) == "unknown_user"
    assert rejected(frozen_alice, gift("vip#1", "alice", "bob"), lock0) == "account_frozen"
    frozen_bob = [*setup, op("freeze", account="bob")]
    assert rejected(frozen_bob, gift("vip#1", "alice", "bob"), lock0) == "account_frozen"
    # account_frozen before already_used; already_used before locked
    used = [*setup, op("use_collectible", item="vip#1", user="alice")]
    used_frozen = [*used, op("freeze", account="bob")]
    assert rejected(used_frozen, gift("vip#1", "alice", "bob"), LOCK2) == "account_frozen"
    assert rejected(used, gift("vip#1", "alice", "bob"), LOCK2) == "already_used"
    assert rejected(setup, gift("vip#1", "alice", "bob"), LOCK2) == "locked"
    applied(setup, gift("vip#1", "alice", "carol"), lock0)


def test_use_errors_in_spec_order() -> None:
    use = op("use_collectible", item="vip#1", user="alice")
    assert rejected(GIFT_SETUP, {**use, "item": "vip#9"}) == "unknown_item"
    assert rejected(GIFT_SETUP, {**use, "item": ""}) == "unknown_item"
    assert rejected(GIFT_SETUP, {**use, "user": "bob"}) == "not_owner"
    assert rejected(GIFT_SETUP, {**use, "user": "nobody"}) == "not_owner"
    frozen = [*GIFT_SETUP, op("freeze", account="alice")]
    assert rejected(frozen, use) == "account_frozen"
    used = [*GIFT_SETUP, use]
    assert rejected([*used, op("freeze", account="alice")], use) == "account_frozen"
    assert rejected(used, use) == "already_used"
    led = replay(used)
    assert led.items["vip#1"].used is True


# --------------------------------------------------------------------------------------------
# Canonical state and invariants
# --------------------------------------------------------------------------------------------


def test_empty_state_has_every_v2_field() -> None:
    state = replay_reference([])
    assert list(state) == sorted(state)
    for name in ("agents", "withdrawals", "collections", "items", "users", "merchants"):
        assert state[name] == {}
    assert (state["cash_owed"], state["withdrawn"], state["agent_commissions"]) == (
        "0.00",
        "0.00",
        "0.00",
    )
    assert canonical_json(state).endswith("\n}\n")


def test_maps_sort_by_code_point() -> None:
    led = replay(
        [
            op("register", user="b"),
            op("register", user="Z"),
            op("register", user="ä"),
            op("register", user="a"),
        ]
    )
    assert list(canonical_state(led)["users"]) == ["Z", "a", "b", "ä"]
    user = canonical_state(led)["users"]["a"]
    assert list(user) == sorted(user)
    assert set(user) >= {"cash", "withdrawing", "withdrawn", "frozen"}


def test_check_invariants_finds_a_broken_ledger() -> None:
    led = replay(MACHINE)
    assert check_invariants(led) == []
    led.consumers["alice"].cash += 1
    problems = check_invariants(led)
    assert any("cash + withdrawing + withdrawn" in p for p in problems)
    assert any("cash_owed" in p for p in problems)
    led = replay([*GIFT_SETUP])
    led.items["vip#1"].owner = "shop"
    assert any("owner is not a consumer" in p for p in check_invariants(led))
    led = replay(MACHINE)
    led.withdrawals["wr"].status = "paid"
    assert any("open withdrawals" in p for p in check_invariants(led))
    led = replay(ALICE_SOLD)
    assert any("price fell" in p for p in check_invariants(led, previous_price=led.last_price * 2))


def test_small_v2_story() -> None:
    lines, params = _golden("small-v2")
    led = run_reference(lines, params)
    # SPEC §8: gd 5.00 and dg02 2.00 from o1 (no city agent); o3's 2.50 / 1.00 given back
    assert (led.agents["gd"].commissions, led.agents["dg02"].commissions) == (500, 200)
    assert led.errors == [(11, "account_frozen"), (24, "sold_out"), (25, "locked")]
    alice = led.consumers["alice"]
    assert (alice.cash, alice.withdrawn, led.cash_owed) == (1058, 1200, 1758)
