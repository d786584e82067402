"""SPEC §6 as code: every invariant, checked in one O(n) pass over the accounts.

Tests run it after every step; the ledger will run it at commit. A violation is a bug:
`check_invariants` raises InvariantViolation, which nothing in tokenmall catches.
"""

from bisect import bisect_right

from tokenmall.core.accounts import PENDING, Agent, Consumer, Merchant
from tokenmall.core.errors import InvariantViolation
from tokenmall.core.state import TOTALS, State
from tokenmall.core.units import Price


def invariant_violations(engine: State, previous_price: Price | None = None) -> list[str]:
    """Every broken invariant, in words (empty when all hold)."""
    problems: list[str] = []
    _check_price(engine, previous_price, problems)
    _check_non_negative(engine, problems)
    _check_supply(engine, problems)
    _check_stable_points(engine, problems)
    _check_money(engine, problems)
    _check_levels_and_exits(engine, problems)
    _check_cash(engine, problems)
    _check_collectibles(engine, problems)
    return problems


def check_invariants(engine: State, previous_price: Price | None = None) -> None:
    problems = invariant_violations(engine, previous_price)
    if problems:
        raise InvariantViolation("; ".join(problems))


def _check_price(engine: State, previous: Price | None, problems: list[str]) -> None:
    pool_fen, supply_units = engine.price()
    if pool_fen <= 0 or supply_units <= 0:
        problems.append(f"price {pool_fen}/{supply_units} is not positive")
    if previous is not None and pool_fen * previous[1] < previous[0] * supply_units:
        problems.append(f"price fell from {previous} to {(pool_fen, supply_units)}")


# Each check reads the ConsumerBook's columns (C-level sums and mins over lists) rather than
# each Consumer's properties: the ledger runs these in production, every 1,000 commands, and
# over 10,000 consumers that is several times faster (bench/invariants.py).


def _check_non_negative(engine: State, problems: list[str]) -> None:
    totals = {name: getattr(engine, name) for name in TOTALS}
    problems.extend(f"{name} = {value} < 0" for name, value in totals.items() if value < 0)
    book = engine.book
    columns = (book.ep, book.sp, book.quota, book.dividends)
    owners = book.owners
    if (owners and min(min(column) for column in columns) < 0) or any(
        min(c.locked_sp, c.cash_out, c.goods) < 0 for c in owners
    ):
        problems.extend(
            f"consumer {c.id} has a negative balance"
            for c in owners
            if min(c.ep, c.sp, c.locked_sp, c.quota, c.cash_out, c.goods, c.dividends) < 0
        )
    for merchant in engine.merchants.values():
        if min(merchant.balances()) < 0:
            problems.append(f"merchant {merchant.id} has a negative balance")
    for agent in engine.agents.values():
        if min(agent.balances()) < 0:
            problems.append(f"agent {agent.id} has a negative balance")
    if any(min(c.cash, c.withdrawing, c.withdrawn) < 0 for c in owners):
        problems.append("a consumer has negative cash")


def _check_supply(engine: State, problems: list[str]) -> None:
    held = sum(engine.book.ep) + sum(m.ep for m in engine.merchants.values())
    if engine.supply != held + engine.treasury:
        problems.append(f"supply {engine.supply} != held {held} + treasury {engine.treasury}")
    if engine.issued != engine.supply + engine.burned:
        problems.append(f"issued {engine.issued} != supply + burned")
    if engine.issued > engine.params.total_issuance_units:
        problems.append(f"issued {engine.issued} exceeds total_issuance")
    if engine.supply > 0 and engine.pool <= 0:
        problems.append("EP circulate with an empty pool")


def _check_stable_points(engine: State, problems: list[str]) -> None:
    held = sum(engine.book.sp) + sum(m.sp for m in engine.merchants.values())
    if engine.sp_outstanding != held:
        problems.append(f"sp_outstanding {engine.sp_outstanding} != SP held {held}")
    locked = sum(c.locked_sp for c in engine.book.owners)
    vesting = sum(grant.locked_fen for grant in engine.vesting)
    if locked != vesting:
        problems.append(f"locked SP {locked} != SP still vesting {vesting}")


def _check_money(engine: State, problems: list[str]) -> None:
    cash_out: int = sum(c.cash_out for c in engine.book.owners)
    cash_out += sum(m.cash_out for m in engine.merchants.values())
    expected_pool = (
        engine.contributions
        + engine.mint_funding
        - cash_out
        - engine.refund_withdrawals
        + engine.leftover_to_pool
    )
    if engine.pool != expected_pool:
        problems.append(f"pool {engine.pool} != money in minus money out {expected_pool}")
    if sum(engine.book.dividends) != engine.dividends_paid:
        problems.append("consumers' dividends != dividends_paid")
    accounted = (
        engine.dividends_paid + engine.carry + engine.leftover_to_pool + engine.leftover_to_platform
    )
    if accounted != engine.dividend_funds:
        problems.append(f"dividend funds {engine.dividend_funds} != paid + kept {accounted}")


def _check_levels_and_exits(engine: State, problems: list[str]) -> None:
    thresholds = engine.params.level_thresholds_units
    pool_fen, supply_units = engine.price()
    book = engine.book
    # Levels: a consumer below the level its EP reach. Only a consumer holding at least the
    # first threshold can be (the level is never negative).
    first = thresholds[0] if thresholds else None
    for slot, (ep, level) in enumerate(zip(book.ep, book.level, strict=True)):
        if first is not None and ep >= first and level < bisect_right(thresholds, ep):
            problems.append(f"consumer {book.owners[slot].id} is below the level its EP reach")
    if not engine.params.exit_enabled:
        return
    for slot, (ep, quota) in enumerate(zip(book.ep, book.quota, strict=True)):
        if ep > 0 and ep * pool_fen >= quota * supply_units:
            problems.append(f"consumer {book.owners[slot].id} should have been force-exited")


def _check_cash(engine: State, problems: list[str]) -> None:
    """SPEC v2 §6: what each account was paid is its cash, in withdrawals, or paid out; the
    platform's totals are the sums; `withdrawing` is the sum of the pending withdrawals."""
    owed = paid_out = 0
    sellers: list[Consumer | Merchant] = [*engine.book.owners, *engine.merchants.values()]
    for account in sellers:
        if account.cash_out != account.cash + account.withdrawing + account.withdrawn:
            problems.append(f"{account.id}: cash_out != cash + withdrawing + withdrawn")
        owed += account.cash + account.withdrawing
        paid_out += account.withdrawn
    commissions = 0
    for agent in engine.agents.values():
        if agent.commissions != agent.cash + agent.withdrawing + agent.withdrawn:
            problems.append(f"{agent.id}: commissions != cash + withdrawing + withdrawn")
        owed += agent.cash + agent.withdrawing
        paid_out += agent.withdrawn
        commissions += agent.commissions
    if engine.cash_owed != owed:
        problems.append(f"cash_owed {engine.cash_owed} != owed {owed}")
    if engine.withdrawn != paid_out:
        problems.append(f"withdrawn {engine.withdrawn} != paid out {paid_out}")
    if engine.agent_commissions != commissions:
        problems.append(f"agent_commissions {engine.agent_commissions} != {commissions}")
    pending: dict[str, int] = {}
    for withdrawal in engine.withdrawals.values():
        if withdrawal.status in PENDING:
            pending[withdrawal.account] = pending.get(withdrawal.account, 0) + withdrawal.amount_fen
    everyone: list[Consumer | Merchant | Agent] = [*sellers, *engine.agents.values()]
    for holder in everyone:
        if holder.withdrawing != pending.get(holder.id, 0):
            problems.append(f"{holder.id}: withdrawing != its pending withdrawals")


def _check_collectibles(engine: State, problems: list[str]) -> None:
    claimed: dict[str, int] = {}
    for item in engine.items.values():
        if item.owner not in engine.consumers:
            problems.append(f"item {item.id} is held by {item.owner!r}, not a consumer")
        of = item.id.rpartition("#")[0]
        claimed[of] = claimed.get(of, 0) + 1
    for collection in engine.collections.values():
        if not 0 <= collection.claimed <= collection.edition:
            problems.append(f"collection {collection.id}: claimed beyond its edition")
        if claimed.get(collection.id, 0) != collection.claimed:
            problems.append(f"collection {collection.id}: claimed != its items")
