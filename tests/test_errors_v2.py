"""SPEC v2's error codes, structure checks and error order (§4, §9-§12): every rejected command
changes nothing, and when several errors apply the first in the command's list is reported."""

from typing import Any

import pytest

from tests.test_errors import assert_rejected_unchanged, build
from tokenmall.core.engine import Engine
from tokenmall.core.errors import ErrorCode

Command = dict[str, Any]
E = ErrorCode

PARAMS = {
    "referral_rates": ["0.10", "0.05"],
    "agent_rates": ["0.05", "0.03", "0.02"],
    "withdraw_review_above": "10.00",
    "withdraw_daily_max": "15.00",
    "collectible_lock_days": 1,
}
BASE: list[Command] = [
    {"op": "register", "user": "alice"},
    {"op": "register", "user": "bob", "referrer": "alice"},
    {"op": "register", "user": "carol"},
    {"op": "register_merchant", "merchant": "shop"},
    {"op": "register_agent", "agent": "gd", "region": "44"},
    {"op": "register_agent", "agent": "dg", "region": "441902", "until": 5},
    {"op": "order", "id": "o1", "user": "alice", "amount": "100.00", "region": "441902"},
    {"op": "order", "id": "o2", "user": "bob", "amount": "100.00"},
    {"op": "sell", "user": "alice", "points": "10"},
    {"op": "withdraw", "id": "w1", "user": "alice", "amount": "2.00"},  # approved at once
    {"op": "withdraw", "id": "w2", "user": "alice", "amount": "11.00"},  # waits for review
    {"op": "issue_collection", "collection": "vip", "edition": 1, "value": "1.00"},
    {"op": "issue_collection", "collection": "big", "edition": 5, "value": "1000.00"},
    {"op": "claim_collectible", "user": "bob", "collection": "vip"},
    {"op": "freeze", "account": "carol"},
]
FREEZE_SHOP: Command = {"op": "freeze", "account": "shop"}
FREEZE_BOB: Command = {"op": "freeze", "account": "bob"}
USE_VIP: Command = {"op": "use_collectible", "item": "vip#1", "user": "bob"}


def withdraw(account: str, amount: str, kind: str = "user", wid: str = "w9") -> Command:
    return {"op": "withdraw", "id": wid, kind: account, "amount": amount}


def gift(item: str = "vip#1", giver: str = "bob", to: str = "alice") -> Command:
    return {"op": "gift_collectible", "item": item, "from": giver, "to": to}


def claim(user: str, collection: str = "vip") -> Command:
    return {"op": "claim_collectible", "user": user, "collection": collection}


# (name, extra setup after BASE, command, expected code)
V2_CASES: list[tuple[str, list[Command], Any, ErrorCode]] = [
    # structure (SPEC v2 §4): ids, nulls, items, one seller, regions, terms, editions
    ("id with a space", [], {"op": "register", "user": "a b"}, E.INVALID_COMMAND),
    ("id with a slash", [], {"op": "register", "user": "a/b"}, E.INVALID_COMMAND),
    ("id with a hash", [], {"op": "register", "user": "vip#1"}, E.INVALID_COMMAND),
    ("id of 65", [], {"op": "register", "user": "x" * 65}, E.INVALID_COMMAND),
    ("id with a control", [], {"op": "register", "user": "a\x07"}, E.INVALID_COMMAND),
    ("id with zero width", [], {"op": "register", "user": "a\u200b"}, E.INVALID_COMMAND),
    ("unused id field", [], {"op": "settle_day", "agent": "a b"}, E.INVALID_COMMAND),
    ("null id", [], {"op": "settle_day", "reference": None}, E.INVALID_COMMAND),
    (
        "null amount",
        [],
        {"op": "order", "id": "o9", "user": "alice", "amount": None},
        E.INVALID_COMMAND,
    ),
    (
        "null pay",
        [],
        {"op": "order", "id": "o9", "user": "alice", "amount": "1", "pay": None},
        E.INVALID_COMMAND,
    ),
    ("null points", [], {"op": "sell", "user": "alice", "points": None}, E.INVALID_COMMAND),
    (
        "null days",
        [],
        {"op": "grant_stable", "user": "alice", "amount": "1", "days": None},
        E.INVALID_COMMAND,
    ),
    ("null params", [], {"op": "set_params", "params": None}, E.INVALID_COMMAND),
    (
        "null until",
        [],
        {"op": "register_agent", "agent": "sz", "region": "4403", "until": None},
        E.INVALID_COMMAND,
    ),
    ("item a number", [], {"op": "use_collectible", "item": 1, "user": "bob"}, E.INVALID_COMMAND),
    (
        "item of 81",
        [],
        {"op": "use_collectible", "item": "v" * 81, "user": "bob"},
        E.INVALID_COMMAND,
    ),
    ("empty item", [], {"op": "use_collectible", "item": "", "user": "bob"}, E.UNKNOWN_ITEM),
    (
        "sell by two",
        [],
        {"op": "sell", "user": "alice", "merchant": "shop", "points": "1"},
        E.INVALID_COMMAND,
    ),
    ("sell by an agent", [], {"op": "sell", "agent": "gd", "points": "1"}, E.INVALID_COMMAND),
    ("sell by nobody", [], {"op": "sell", "points": "1"}, E.INVALID_COMMAND),
    ("withdraw by nobody", [], {"op": "withdraw", "id": "w9", "amount": "1"}, E.INVALID_COMMAND),
    ("withdraw by two", [], {**withdraw("alice", "1"), "agent": "gd"}, E.INVALID_COMMAND),
    (
        "region of 4",
        [],
        {"op": "order", "id": "o9", "user": "alice", "amount": "1", "region": "4419"},
        E.INVALID_COMMAND,
    ),
    (
        "region on a stable order",
        [],
        {
            "op": "order",
            "id": "o9",
            "user": "alice",
            "amount": "1",
            "pay": "stable",
            "merchant": "shop",
            "region": 441902,
        },
        E.INVALID_COMMAND,
    ),
    (
        "region of wide digits",
        [],
        {"op": "order", "id": "o9", "user": "alice", "amount": "1", "region": "44190\uff12"},
        E.INVALID_COMMAND,
    ),
    (
        "agent region of 3",
        [],
        {"op": "register_agent", "agent": "sz", "region": "440"},
        E.INVALID_COMMAND,
    ),
    (
        "until negative",
        [],
        {"op": "register_agent", "agent": "sz", "region": "4403", "until": -1},
        E.INVALID_COMMAND,
    ),
    (
        "until a string",
        [],
        {"op": "register_agent", "agent": "sz", "region": "4403", "until": "5"},
        E.INVALID_COMMAND,
    ),
    (
        "until true",
        [],
        {"op": "register_agent", "agent": "sz", "region": "4403", "until": True},
        E.INVALID_COMMAND,
    ),
    *[
        (
            f"edition {edition!r}",
            [],
            {"op": "issue_collection", "collection": "c2", "edition": edition, "value": "1"},
            E.INVALID_COMMAND,
        )
        for edition in (0, 1_000_001, "5", True, 5.0)
    ],
    ("gift to oneself", [], gift(to="bob"), E.INVALID_COMMAND),
    # frozen accounts (SPEC v2 §4)
    ("sell frozen", [], {"op": "sell", "user": "carol", "points": "1"}, E.ACCOUNT_FROZEN),
    ("redeem frozen", [], {"op": "redeem", "user": "carol", "points": "1"}, E.ACCOUNT_FROZEN),
    ("convert frozen", [], {"op": "convert", "user": "carol", "points": "1"}, E.ACCOUNT_FROZEN),
    (
        "stable order by frozen",
        [],
        {
            "op": "order",
            "id": "o9",
            "user": "carol",
            "amount": "1",
            "pay": "stable",
            "merchant": "shop",
        },
        E.ACCOUNT_FROZEN,
    ),
    (
        "stable order at frozen",
        [FREEZE_SHOP],
        {
            "op": "order",
            "id": "o9",
            "user": "bob",
            "amount": "100",
            "pay": "stable",
            "merchant": "shop",
        },
        E.ACCOUNT_FROZEN,
    ),
    (
        "merchant_redeem frozen",
        [FREEZE_SHOP],
        {"op": "merchant_redeem", "merchant": "shop", "amount": "1"},
        E.ACCOUNT_FROZEN,
    ),
    ("withdraw frozen", [], withdraw("carol", "1"), E.ACCOUNT_FROZEN),
    ("claim frozen", [], claim("carol", "nope"), E.ACCOUNT_FROZEN),
    ("gift to frozen", [], gift(to="carol"), E.ACCOUNT_FROZEN),
    ("use frozen", [FREEZE_BOB], USE_VIP, E.ACCOUNT_FROZEN),
    # freeze / unfreeze
    ("freeze nobody", [], {"op": "freeze", "account": "ghost"}, E.UNKNOWN_ACCOUNT),
    ("freeze frozen", [], {"op": "freeze", "account": "carol"}, E.INVALID_STATE),
    ("unfreeze not frozen", [], {"op": "unfreeze", "account": "gd"}, E.INVALID_STATE),
    # withdrawals (SPEC v2 §9)
    ("withdraw by no agent", [], withdraw("ghost", "1", "agent"), E.UNKNOWN_AGENT),
    ("withdraw by no merchant", [], withdraw("ghost", "1", "merchant"), E.UNKNOWN_MERCHANT),
    ("withdraw id again", [], withdraw("gd", "1", "agent", "w1"), E.DUPLICATE_WITHDRAWAL),
    ("withdraw below minimum", [], withdraw("gd", "0.99", "agent"), E.BELOW_MINIMUM),
    ("withdraw above cash", [], withdraw("gd", "5.01", "agent"), E.INSUFFICIENT_CASH),
    # rejected withdrawals still count towards the day's limit (SPEC v2 §2)
    (
        "withdraw over the day",
        [{"op": "reject_withdrawal", "id": "w2"}],
        withdraw("alice", "2.01"),
        E.OVER_DAILY_LIMIT,
    ),
    ("approve nothing", [], {"op": "approve_withdrawal", "id": "w9"}, E.UNKNOWN_WITHDRAWAL),
    ("approve approved", [], {"op": "approve_withdrawal", "id": "w1"}, E.INVALID_STATE),
    (
        "complete requested",
        [],
        {"op": "complete_withdrawal", "id": "w2", "reference": "T1"},
        E.INVALID_STATE,
    ),
    ("fail requested", [], {"op": "fail_withdrawal", "id": "w2"}, E.INVALID_STATE),
    (
        "reject paid",
        [{"op": "complete_withdrawal", "id": "w1", "reference": "T1"}],
        {"op": "reject_withdrawal", "id": "w1"},
        E.INVALID_STATE,
    ),
    (
        "fail paid",
        [{"op": "complete_withdrawal", "id": "w1", "reference": "T1"}],
        {"op": "fail_withdrawal", "id": "w1"},
        E.INVALID_STATE,
    ),
    (
        "complete twice",
        [{"op": "complete_withdrawal", "id": "w1", "reference": "T1"}],
        {"op": "complete_withdrawal", "id": "w1", "reference": "T1"},
        E.INVALID_STATE,
    ),
    (
        "approve rejected",
        [{"op": "reject_withdrawal", "id": "w2"}],
        {"op": "approve_withdrawal", "id": "w2"},
        E.INVALID_STATE,
    ),
    # agents (SPEC v2 §10)
    (
        "agent region taken",
        [],
        {"op": "register_agent", "agent": "gz", "region": "44"},
        E.REGION_TAKEN,
    ),
    ("end no agent", [], {"op": "end_agent", "agent": "alice"}, E.UNKNOWN_AGENT),
    (
        "end twice",
        [{"op": "end_agent", "agent": "gd"}],
        {"op": "end_agent", "agent": "gd"},
        E.INVALID_STATE,
    ),
    # collectibles (SPEC v2 §11)
    (
        "issue again",
        [],
        {"op": "issue_collection", "collection": "vip", "edition": 1, "value": "1"},
        E.DUPLICATE_COLLECTION,
    ),
    (
        "issue value 0",
        [],
        {"op": "issue_collection", "collection": "c2", "edition": 1, "value": "0"},
        E.INVALID_AMOUNT,
    ),
    ("claim nothing", [], claim("alice", "nope"), E.UNKNOWN_COLLECTION),
    ("claim sold out", [], claim("alice"), E.SOLD_OUT),
    ("claim beyond EP", [], claim("alice", "big"), E.INSUFFICIENT_POINTS),
    ("use no item", [], {"op": "use_collectible", "item": "vip#9", "user": "bob"}, E.UNKNOWN_ITEM),
    ("use not held", [], {"op": "use_collectible", "item": "vip#1", "user": "alice"}, E.NOT_OWNER),
    ("use twice", [USE_VIP], USE_VIP, E.ALREADY_USED),
    ("gift held too briefly", [], gift(), E.LOCKED),
    ("gift to no consumer", [], gift(to="shop"), E.UNKNOWN_USER),
]

V2_ORDER_CASES: list[tuple[str, list[Command], Any, ErrorCode]] = [
    (
        "duplicate withdrawal before unknown user",
        [],
        withdraw("ghost", "1", wid="w1"),
        E.DUPLICATE_WITHDRAWAL,
    ),
    ("unknown user before frozen", [], withdraw("ghost", "0"), E.UNKNOWN_USER),
    ("frozen before invalid amount", [], withdraw("carol", "0"), E.ACCOUNT_FROZEN),
    ("invalid amount before below minimum", [], withdraw("alice", "0.001"), E.INVALID_AMOUNT),
    ("below minimum before insufficient cash", [], withdraw("bob", "0.50"), E.BELOW_MINIMUM),
    ("insufficient cash before daily limit", [], withdraw("alice", "100.00"), E.INSUFFICIENT_CASH),
    (
        "frozen before invalid points",
        [],
        {"op": "sell", "user": "carol", "points": "0"},
        E.ACCOUNT_FROZEN,
    ),
    (
        "unknown merchant before frozen buyer",
        [],
        {
            "op": "order",
            "id": "o9",
            "user": "carol",
            "amount": "1",
            "pay": "stable",
            "merchant": "ghost",
        },
        E.UNKNOWN_MERCHANT,
    ),
    (
        "frozen buyer before insufficient SP",
        [],
        {
            "op": "order",
            "id": "o9",
            "user": "carol",
            "amount": "1000",
            "pay": "stable",
            "merchant": "shop",
        },
        E.ACCOUNT_FROZEN,
    ),
    ("claim: unknown user first", [], claim("ghost", "nope"), E.UNKNOWN_USER),
    ("claim: frozen before unknown collection", [], claim("carol", "nope"), E.ACCOUNT_FROZEN),
    (
        "claim: sold out before insufficient points",
        [],
        claim("carol", "vip") | {"user": "bob"},
        E.SOLD_OUT,
    ),
    ("gift: unknown item first", [], gift(item="nope", giver="ghost", to="ghost2"), E.UNKNOWN_ITEM),
    ("gift: not owner before unknown user", [], gift(giver="alice", to="ghost"), E.NOT_OWNER),
    ("gift: unknown user before frozen", [FREEZE_BOB], gift(to="ghost"), E.UNKNOWN_USER),
    ("gift: frozen giver before used", [USE_VIP, FREEZE_BOB], gift(), E.ACCOUNT_FROZEN),
    ("gift: used before locked", [USE_VIP], gift(), E.ALREADY_USED),
    (
        "use: not owner before frozen",
        [FREEZE_BOB],
        {"op": "use_collectible", "item": "vip#1", "user": "carol"},
        E.NOT_OWNER,
    ),
    ("use: frozen before used", [USE_VIP, FREEZE_BOB], USE_VIP, E.ACCOUNT_FROZEN),
    (
        "duplicate account before region taken",
        [],
        {"op": "register_agent", "agent": "alice", "region": "44"},
        E.DUPLICATE_ACCOUNT,
    ),
    (
        "withdrawal state: unknown first",
        [],
        {"op": "fail_withdrawal", "id": "nope"},
        E.UNKNOWN_WITHDRAWAL,
    ),
]


@pytest.mark.parametrize(
    ("extra", "command", "expected"),
    [pytest.param(e, c, code, id=name) for name, e, c, code in V2_CASES + V2_ORDER_CASES],
)
def test_v2_rejection_changes_nothing(extra: list[Command], command: Any, expected: E) -> None:
    engine = build(BASE + extra, PARAMS)
    assert_rejected_unchanged(engine, command, expected)


def test_base_is_what_the_cases_assume() -> None:
    engine = build(BASE, PARAMS)
    alice, gd = engine.consumers["alice"], engine.agents["gd"]
    # o1 in 441902: gd (44) 5 %, dg (441902) 2 %; no city agent. alice sold 10 EP.
    assert (gd.cash, engine.agents["dg"].cash) == (500, 200)
    assert alice.cash + alice.withdrawing + alice.withdrawn == alice.cash_out
    assert alice.withdrawing == 1300 and engine.withdrawn_today["alice"] == 1300
    assert [engine.withdrawals[w].status for w in ("w1", "w2")] == ["approved", "requested"]
    assert engine.consumers["carol"].frozen
    assert engine.items["vip#1"].owner == "bob"


def accepted(engine: Engine, *commands: Command) -> None:
    for command in commands:
        assert engine.try_apply(command) is None, command


def test_a_frozen_account_still_buys_earns_and_is_credited() -> None:
    engine = build(BASE, PARAMS)
    accepted(
        engine, FREEZE_BOB, {"op": "freeze", "account": "gd"}, {"op": "freeze", "account": "alice"}
    )
    cash_before = engine.agents["gd"].cash
    accepted(
        engine, {"op": "order", "id": "o9", "user": "bob", "amount": "10.00", "region": "440300"}
    )
    assert engine.agents["gd"].cash == cash_before + 50  # 5 % of 10.00
    # Withdrawals already made may still be reviewed and settled.
    accepted(
        engine,
        {"op": "approve_withdrawal", "id": "w2"},
        {"op": "complete_withdrawal", "id": "w2", "reference": "TX-9"},
    )
    assert engine.consumers["alice"].withdrawn == 1100


def test_the_day_limit_starts_again_after_a_settlement() -> None:
    engine = build(BASE, PARAMS)
    accepted(engine, {"op": "reject_withdrawal", "id": "w2"})
    assert engine.try_apply(withdraw("alice", "2.01")) == E.OVER_DAILY_LIMIT
    accepted(engine, {"op": "settle_day"}, withdraw("alice", "2.01"))


def test_an_ended_agent_frees_its_region_and_keeps_its_cash() -> None:
    engine = build(BASE, PARAMS)
    accepted(
        engine,
        {"op": "end_agent", "agent": "gd"},
        {"op": "register_agent", "agent": "gz", "region": "44"},
        {"op": "order", "id": "o9", "user": "bob", "amount": "10.00", "region": "440300"},
    )
    assert engine.agents["gd"].cash == 500 and engine.agents["gz"].cash == 50
    accepted(engine, withdraw("gd", "5.00", "agent"))


def test_an_agent_earns_up_to_its_last_day() -> None:
    engine = build(BASE, PARAMS)  # dg earns until day 5
    for day in range(6):
        accepted(
            engine,
            {"op": "order", "id": f"d{day}", "user": "bob", "amount": "10.00", "region": "441902"},
            {"op": "settle_day"},
        )
    accepted(
        engine, {"op": "order", "id": "d6", "user": "bob", "amount": "10.00", "region": "441902"}
    )
    assert engine.agents["dg"].commissions == 200 + 6 * 20  # days 0-5, not day 6


def test_a_refund_takes_commissions_back_as_far_as_cash_allows() -> None:
    engine = build(BASE, PARAMS)
    accepted(
        engine,
        {"op": "order", "id": "o9", "user": "bob", "amount": "200.00", "region": "441902"},
        withdraw("dg", "5.00", "agent", "wd"),
    )  # dg: 2.00 + 4.00 earned, 5.00 withdrawn
    accepted(engine, {"op": "refund", "order": "o9"})
    dg, gd = engine.agents["dg"], engine.agents["gd"]
    assert (dg.cash, dg.commissions, dg.withdrawing) == (0, 500, 500)  # took 1.00 of 4.00
    assert (gd.cash, gd.commissions) == (500, 500)  # took all 10.00 back
    assert engine.agent_commissions == 1000


def test_valid_ids_of_any_script() -> None:
    engine = build(BASE, PARAMS)
    accepted(
        engine,
        {"op": "register", "user": "张三"},
        {"op": "register", "user": "ＡＢＣ"},
        {"op": "register", "user": "ABC"},
        {"op": "register", "user": "a_b-c.d:e@f"},
        {"op": "register", "user": "x" * 64},
        {"op": "register", "user": "٣"},
    )
    assert "ＡＢＣ" in engine.consumers and "ABC" in engine.consumers  # no normalisation
