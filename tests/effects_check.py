"""What the tests check of every applied command's result (core/effects.py): its postings and
events account for every balance that changed, and for every asset the postings sum to the
change of the platform totals. Used after every step of the property tests."""

from collections import defaultdict
from typing import NamedTuple

from tokenmall.core.accounts import AGENT_FIELDS, CONSUMER_FIELDS, MERCHANT_FIELDS
from tokenmall.core.effects import (
    NAME_OF_FIELD,
    Applied,
    Exited,
    Field,
    LevelReached,
    Reentered,
    StatusChanged,
)
from tokenmall.core.state import State


class Before(NamedTuple):
    balances: dict[str, tuple[int, ...]]
    assets: dict[str, int]


def asset_totals(state: State) -> dict[str, int]:
    """Per asset, the platform total that postings of it must change by."""
    return {
        "EP": state.issued - state.burned - state.treasury,  # held by consumers and merchants
        "SP": state.sp_outstanding,
        "locked SP": sum(grant.locked_fen for grant in state.vesting),
        # money paid to accounts: what came in, less what is still in the pool or left it
        "money": (
            state.contributions
            + state.mint_funding
            + state.leftover_to_pool
            - state.refund_withdrawals
            - state.pool
        ),
        # SPEC v2: money the platform owes (cash and withdrawing), and what it paid out.
        "owed": state.cash_owed,
        "paid out": state.withdrawn,
    }


def capture(state: State) -> Before:
    balances = {c.id: c.balances() for c in state.consumers.values()}
    balances.update((m.id, m.balances()) for m in state.merchants.values())
    balances.update((a.id, a.balances()) for a in state.agents.values())
    return Before(balances, asset_totals(state))


ASSET_FIELDS = {Field.EP: "EP", Field.SP: "SP", Field.LOCKED_SP: "locked SP"}
ASSET_FIELDS[Field.CASH_OUT] = "money"
ASSET_FIELDS |= {Field.CASH: "owed", Field.WITHDRAWING: "owed", Field.WITHDRAWN: "paid out"}


def fields_of(state: State, account: str) -> tuple[str, ...]:
    if account in state.consumers:
        return CONSUMER_FIELDS
    return MERCHANT_FIELDS if account in state.merchants else AGENT_FIELDS


def check_applied(before: Before, state: State, applied: Applied) -> None:
    """The postings and events of `applied` are exactly what changed from `before`."""
    expected = {name: list(values) for name, values in before.balances.items()}
    sums: dict[str, int] = defaultdict(int)
    for account, field, amount in applied.all_postings():
        assert amount != 0, f"a zero posting to {account}"
        fields = fields_of(state, account)
        row = expected.setdefault(account, [0] * len(fields))
        row[fields.index(NAME_OF_FIELD[field])] += amount
        if field in ASSET_FIELDS:
            sums[ASSET_FIELDS[field]] += amount
    for event in applied.events:
        if isinstance(event, LevelReached | Exited | Reentered):
            row = expected.setdefault(event.account, [0] * len(CONSUMER_FIELDS))
            if isinstance(event, LevelReached):
                row[CONSUMER_FIELDS.index("level")] = event.level
            else:
                row[CONSUMER_FIELDS.index("exited")] = int(isinstance(event, Exited))
        elif isinstance(event, StatusChanged):  # a flag, not a posting
            fields = fields_of(state, event.account)
            row = expected.setdefault(event.account, [0] * len(fields))
            flag = "ended" if event.status == "ended" else "frozen"
            row[fields.index(flag)] = int(event.status != "unfrozen")
    after = capture(state)
    for name, values in after.balances.items():
        assert tuple(expected.get(name, [0] * len(values))) == values, (name, applied)
    changed = {n for n, v in after.balances.items() if before.balances.get(n) != v}
    assert changed <= set(applied.accounts()), changed - set(applied.accounts())
    for asset, total in after.assets.items():
        assert sums[asset] == total - before.assets[asset], (asset, applied.op)
