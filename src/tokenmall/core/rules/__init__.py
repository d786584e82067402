"""The rules of SPEC §4, §9-§11, one module per family of commands. Each rule takes the state,
the command and an `Effects` collector; it checks everything first, in SPEC's error order, and
only then changes the state, posting every balance it changes. A rejected command changes
nothing.

`OPS` also lists each op's fields: the engine checks that the required ones are present and
that none is JSON null before the rule runs (SPEC v2 §4 "Structure checks"), so a rule reads
them without checking again."""

from collections.abc import Callable
from typing import NamedTuple

from tokenmall.core.effects import Effects
from tokenmall.core.fields import Command
from tokenmall.core.rules.accounts import register, register_merchant
from tokenmall.core.rules.agents import end_agent, register_agent
from tokenmall.core.rules.cash import (
    approve_withdrawal,
    complete_withdrawal,
    fail_withdrawal,
    freeze,
    reject_withdrawal,
    unfreeze,
    withdraw,
)
from tokenmall.core.rules.collectibles import (
    claim_collectible,
    gift_collectible,
    issue_collection,
    use_collectible,
)
from tokenmall.core.rules.orders import order, refund
from tokenmall.core.rules.parameters import set_params
from tokenmall.core.rules.points import convert, grant_stable, merchant_redeem, redeem, sell
from tokenmall.core.rules.settlement import settle_day
from tokenmall.core.state import State

Rule = Callable[[State, Command, Effects], None]


class Op(NamedTuple):
    rule: Rule
    required: tuple[str, ...]
    known: tuple[str, ...]  # every field of the op, required or optional


def _op(rule: Rule, required: str = "", optional: str = "") -> Op:
    need, may = tuple(required.split()), tuple(optional.split())
    return Op(rule, need, need + may)


OPS: dict[str, Op] = {
    "register": _op(register, "user", "referrer"),
    "register_merchant": _op(register_merchant, "merchant"),
    "order": _op(order, "id user amount", "pay merchant region"),
    "sell": _op(sell, "points", "user merchant agent"),
    "redeem": _op(redeem, "user points"),
    "convert": _op(convert, "user points"),
    "merchant_redeem": _op(merchant_redeem, "merchant amount"),
    "refund": _op(refund, "order"),
    "grant_stable": _op(grant_stable, "user amount days"),
    "set_params": _op(set_params, "params"),
    "settle_day": _op(settle_day),
    "withdraw": _op(withdraw, "id amount", "user merchant agent"),
    "approve_withdrawal": _op(approve_withdrawal, "id"),
    "reject_withdrawal": _op(reject_withdrawal, "id"),
    "complete_withdrawal": _op(complete_withdrawal, "id reference"),
    "fail_withdrawal": _op(fail_withdrawal, "id"),
    "freeze": _op(freeze, "account"),
    "unfreeze": _op(unfreeze, "account"),
    "register_agent": _op(register_agent, "agent region", "until"),
    "end_agent": _op(end_agent, "agent"),
    "issue_collection": _op(issue_collection, "collection edition value"),
    "claim_collectible": _op(claim_collectible, "user collection"),
    "gift_collectible": _op(gift_collectible, "item from to"),
    "use_collectible": _op(use_collectible, "item user"),
}

V1_OP_NAMES = [
    "register",
    "register_merchant",
    "order",
    "sell",
    "redeem",
    "convert",
    "merchant_redeem",
    "refund",
    "grant_stable",
    "set_params",
    "settle_day",
]
# SPEC v1's ops with v1's fields (an order had no region, a sale no agent: v1 ignored them).
V1_OPS = {name: OPS[name] for name in V1_OP_NAMES} | {
    "order": _op(order, "id user amount", "pay merchant"),
    "sell": _op(sell, "points", "user merchant"),
}
