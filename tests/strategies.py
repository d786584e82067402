"""Hypothesis strategies for SPEC commands: mostly meaningful, some invalid, a few garbage."""

import json
from typing import Any

from hypothesis import strategies as st

USERS = [f"u{i}" for i in range(6)]
# Registered before every run: a referral tree two levels deep, and two merchants.
SETUP: list[dict[str, Any]] = [
    {"op": "register", "user": "u0"},
    {"op": "register", "user": "u1", "referrer": "u0"},
    {"op": "register", "user": "u2", "referrer": "u1"},
    {"op": "register", "user": "u3", "referrer": "u2"},
    {"op": "register_merchant", "merchant": "m0"},
    {"op": "register_agent", "agent": "a0", "region": "44"},
    {"op": "register_agent", "agent": "a1", "region": "441902", "until": 2},
    {"op": "issue_collection", "collection": "c0", "edition": 3, "value": "2.00"},
    # Cash to withdraw and an item to gift, when the parameters allow (else rejected).
    {"op": "order", "id": "s0", "user": "u0", "amount": "300.00", "region": "441902"},
    {"op": "sell", "user": "u0", "points": "5"},
    {"op": "claim_collectible", "user": "u0", "collection": "c0"},
]
MERCHANTS = ["m0", "m1"]
ORDER_IDS = [f"o{i}" for i in range(12)]

valid_money = st.integers(1, 50_000).map(lambda fen: f"{fen // 100}.{fen % 100:02d}")
money = st.one_of(
    valid_money,
    valid_money,
    valid_money,
    st.sampled_from(["0", "0.00", "-5", "1e3", "1.005", "NaN", "", "１２", 7]),
)
valid_points = st.integers(1, 400_000_000).map(
    lambda units: f"{units // 10**8}.{units % 10**8:08d}"
)
points = st.one_of(
    valid_points,
    valid_points,
    st.just("all"),
    st.sampled_from(["0", "abc", "1.123456789", "1e2"]),
)
user = st.sampled_from(USERS[:4] * 3 + USERS[4:] + ["nobody"])
merchant = st.sampled_from([*MERCHANTS, "ghost"])
order_id = st.sampled_from(ORDER_IDS)
# SPEC v2
AGENTS = ["a0", "a1", "a2"]
agent = st.sampled_from([*AGENTS, "ghost"])
account = st.sampled_from([*USERS[:4], "m0", "a0", "a1", "ghost"])
withdrawal_id = st.sampled_from([f"w{i}" for i in range(6)])
region = st.sampled_from(["441902", "440300", "110101", "4419", 441902])
agent_region = st.sampled_from(["44", "4419", "441902", "11", "440"])
collection = st.sampled_from(["c0", "c1", "nope"])
item = st.sampled_from(["c0#1", "c0#2", "c0#3", "c1#1", "nope", ""])
small_money = st.one_of(
    st.integers(1, 2_000).map(lambda fen: f"{fen // 100}.{fen % 100:02d}"), money
)
bad_id = st.sampled_from(["a b", "x/y", "", "x" * 65, None, 5])


def _command(op: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"op": st.just(op), **fields})


def _room_for_agents(overrides: dict[str, Any]) -> bool:
    """A contribution rate of 1 leaves no room for agents (SPEC v2 §2): such sets are left
    out rather than drawn and refused at the start of a run."""
    rates = overrides.get("agent_rates", [])
    return overrides.get("contribution_rate") != "1" or all(rate == "0" for rate in rates)


rate = st.sampled_from(["0", "0.05", "0.1", "0.3", "0.5", "1"])
param_overrides: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "contribution_rate": st.sampled_from(["0.1", "0.3", "1"]),
        "buyer_share": st.sampled_from(["0", "0.4", "0.7"]),
        "referral_rates": st.lists(st.sampled_from(["0", "0.1", "0.15"]), max_size=2),
        "sell_fee_rate": st.sampled_from(["0", "0.1", "0.5"]),
        "quota_multiple": st.sampled_from(["0", "0.5", "1", "2", "4"]),
        "exit_enabled": st.booleans(),
        "dividend_rate": rate,
        "level_dividend_rate": rate,
        "level_thresholds": st.sampled_from([[], ["1"], ["1", "5", "20"], ["0.5", "2"]]),
        "dividend_remainder": st.sampled_from(["carry", "pool", "platform"]),
        "total_issuance": st.sampled_from(["30", "1000", "100000000"]),
        "withdraw_min": st.sampled_from(["0.01", "1.00", "5.00"]),
        "withdraw_daily_max": st.sampled_from(["5.00", "50.00", "50000.00"]),
        "withdraw_review_above": st.sampled_from(["0.00", "3.00", "100.00"]),
        "agent_rates": st.lists(st.sampled_from(["0", "0.02", "0.05"]), max_size=3),
        "collectible_lock_days": st.sampled_from([0, 1, 2]),
    },
).filter(_room_for_agents)

commands = st.one_of(
    _command("register", user=user),
    _command("register", user=user, referrer=user),
    _command("register_merchant", merchant=merchant),
    _command("order", id=order_id, user=user, amount=money),
    _command("order", id=order_id, user=user, amount=money),
    _command("order", id=order_id, user=user, amount=money),
    _command(
        "order", id=order_id, user=user, amount=money, pay=st.just("stable"), merchant=merchant
    ),
    _command("order", id=order_id, user=user, amount=money, pay=st.sampled_from(["card", 1])),
    _command("sell", user=user, points=points),
    _command("sell", merchant=merchant, points=points),
    _command("redeem", user=user, points=points),
    _command("convert", user=user, points=points),
    _command("merchant_redeem", merchant=merchant, amount=money),
    _command("refund", order=order_id),
    _command("grant_stable", user=user, amount=money, days=st.sampled_from([1, 2, 3, 0, True])),
    _command("set_params", params=param_overrides),
    _command("settle_day"),
    _command("settle_day"),
    st.sampled_from([{}, {"op": "bogus"}, {"op": None}, {"op": "order"}, {"op": "sell"}]),
    # SPEC v2
    _command("order", id=order_id, user=user, amount=money, region=region),
    _command("order", id=order_id, user=user, amount=money, region=region),
    _command("withdraw", id=withdrawal_id, user=user, amount=small_money),
    _command("withdraw", id=withdrawal_id, user=user, amount=small_money),
    _command("withdraw", id=withdrawal_id, merchant=merchant, amount=small_money),
    _command("withdraw", id=withdrawal_id, agent=agent, amount=small_money),
    _command("approve_withdrawal", id=withdrawal_id),
    _command("approve_withdrawal", id=withdrawal_id),
    _command("reject_withdrawal", id=withdrawal_id),
    _command("complete_withdrawal", id=withdrawal_id, reference=st.sampled_from(["T1", "T2"])),
    _command("complete_withdrawal", id=withdrawal_id, reference=st.sampled_from(["T1", "T2"])),
    _command("fail_withdrawal", id=withdrawal_id),
    _command("freeze", account=account),
    _command("unfreeze", account=account),
    _command("unfreeze", account=account),
    _command("register_agent", agent=agent, region=agent_region),
    _command("register_agent", agent=agent, region=agent_region, until=st.sampled_from([0, 3, -1])),
    _command("end_agent", agent=agent),
    _command(
        "issue_collection", collection=collection, edition=st.sampled_from([1, 2, 0]), value=money
    ),
    _command("claim_collectible", user=user, collection=collection),
    _command("claim_collectible", user=user, collection=collection),
    _command("gift_collectible", item=item, **{"from": user, "to": user}),
    _command("gift_collectible", item=st.just("c0#1"), **{"from": st.just("u0"), "to": user}),
    _command("gift_collectible", item=st.just("c0#1"), **{"from": st.just("u0"), "to": user}),
    _command("withdraw", id=withdrawal_id, user=st.just("u0"), amount=small_money),
    _command("withdraw", id=withdrawal_id, user=st.just("u0"), amount=small_money),
    _command("reject_withdrawal", id=withdrawal_id),
    _command("use_collectible", item=item, user=user),
    _command("sell", agent=agent, points=points),
    _command("register", user=bad_id),
    _command("settle_day", reference=bad_id),
)


def as_line(command: dict[str, Any]) -> str:
    return json.dumps(command)
