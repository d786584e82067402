"""Read models the writer keeps beside the journal: each account's statement (every change to
its balances, by journal entry) and the daily price history. Pure: the ledger writes what this
module computes in the same transaction as the entries, so the two can never disagree.

Both are written from what the engine says each command changed (`Applied`, core/effects.py):
a statement line for every account a command posted to or named in an event (a registration,
a level, an exit), holding its balances *after* the entry; a price day for every settlement.
The change shown for a line is the difference to the line before it, at read time.

Beside them, `day_totals`: what each UTC day's entries did, as sums (orders, sales, refunds,
contributions, dividends, withdrawals, referral grants, agent commissions, exits), one row a
day added to by every batch. The figures the engine keeps as running totals are taken as the
difference of those totals across the day's entries; the rest are counted from what each
command changed. The console's daily report (报表) is one read of it.

A settlement pays every holder, which would make a line per holder and day (most of the rows,
and most of a durable ingest's time). Instead it writes what it paid as `DividendBlock` rows:
one 8-byte little-endian integer of fen per consumer slot, BLOCK_SLOTS slots a row, blocks that
paid nobody left out. A dividend line is derived on read (`with_dividend`): the account's
balances after its line before, plus the payment (SP and dividends up, quota down). That is
exact because any other change to the account writes a line of its own: a holder that also
changed otherwise in the settlement (an exit, a vesting release) has a line at that entry,
which already holds the payment, and the derived one is not shown.
"""

import sys
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tokenmall.core.accounts import (
    AGENT_FIELDS,
    CONSUMER_FIELDS,
    FAILED,
    MERCHANT_FIELDS,
    PAID,
    REJECTED,
)
from tokenmall.core.canonical import SHOW_FIELD
from tokenmall.core.effects import (
    Applied,
    CollectionIssued,
    DaySettled,
    Field,
    ItemMoved,
    Payouts,
    Registered,
    WithdrawalChanged,
)
from tokenmall.core.engine import Engine
from tokenmall.core.errors import Rejected
from tokenmall.core.units import format_fen, format_price, format_units

Balances = tuple[int, ...]

FLAGS = ("exited", "frozen", "ended")  # balance fields that are yes or no
BLOCK_SLOTS = 1024  # consumer slots per dividend row: a statement reads 8 KiB of a settlement
PAYMENT_BYTES = 8
_EP = Field.EP  # a module global: reading an enum member off its class costs ~70 ns
_SP, _QUOTA, _DIVIDENDS = (CONSUMER_FIELDS.index(name) for name in ("sp", "quota", "dividends"))


class StatementRow(NamedTuple):
    account: str  # stored_account(id)
    seq: int
    op: str
    balances: str  # the balances after the entry, comma-separated integers (fen, 1e-8 EP)


class PriceDayRow(NamedTuple):
    """A settled day (日结): the state right after its settle_day entry."""

    day: int
    seq: int
    price: str
    pool: str
    supply: str
    sales: str  # net sales of the day that this settlement paid dividends from
    dividends: str  # paid by this settlement
    # What the platform owed right after it (for the console's pool-against-owed chart):
    cash_owed: str  # Σ cash + withdrawing of every account
    sp_outstanding: str
    exits: int  # forced exits (出局) so far, all days: a day's is the difference


class DividendBlock(NamedTuple):
    """What a settlement (entry `seq`) paid the consumers of slots block × BLOCK_SLOTS on."""

    block: int
    seq: int
    payments: bytes  # PAYMENT_BYTES a slot, unsigned little-endian fen; as many slots as then


class WithdrawalRow(NamedTuple):
    """A withdrawal as a step left it; inserted by its request, updated by later steps."""

    id: str
    account: str
    amount_fen: int
    status: str
    reference: str | None
    requested_seq: int
    requested_at: str
    updated_seq: int


class ItemMoveRow(NamedTuple):
    item: str
    seq: int
    action: str  # claim, gift or use
    account: str
    giver: str | None


class SlotRow(NamedTuple):
    account: str  # stored_account(id)
    slot: int


@dataclass(slots=True)
class DayTotals:
    """What one UTC day's journal entries did (a batch's part of it, until written: the store
    adds a batch's to the day's row). Integers: fen, EP in 1e-8 units, counts."""

    day: str  # YYYY-MM-DD, of the entries' recorded_at
    first_seq: int | None = None  # the day's first entry, applied or rejected (None: none)
    last_seq: int | None = None
    cash_orders: int = 0
    sales_fen: int = 0  # gross: every applied cash order's amount (the engine's `sales`)
    refunds: int = 0
    refunds_fen: int = 0
    contributions_fen: int = 0  # to the pool, gross (the engine's `contributions`)
    settlements: int = 0
    dividends_fen: int = 0
    withdrawals_requested: int = 0
    withdrawals_requested_fen: int = 0
    withdrawals_paid: int = 0
    withdrawals_paid_fen: int = 0
    withdrawals_returned: int = 0  # rejected or failed: the money went back to cash
    withdrawals_returned_fen: int = 0
    referral_units: int = 0  # EP granted to referrers, net of refunds' reclaims
    agent_commissions_fen: int = 0  # net of refunds' take-backs
    exits: int = 0  # forced exits (出局)

    @property
    def entries(self) -> int:
        if self.first_seq is None or self.last_seq is None:
            return 0
        return self.last_seq - self.first_seq + 1

    @property
    def net_sales_fen(self) -> int:
        return self.sales_fen - self.refunds_fen


# The sums of DayTotals, in its order: a day's row is the sum of its batches' (the seq range
# aside). One definition for the table, the upsert and the report.
DAY_SUMS = tuple(DayTotals.__dataclass_fields__)[3:]
assert DAY_SUMS[0] == "cash_orders"

# Running totals of the engine whose change over a day's entries is the day's figure.
_ENGINE_SUMS = (
    ("sales_fen", "sales"),
    ("refunds_fen", "refunds"),
    ("contributions_fen", "contributions"),
    ("dividends_fen", "dividends_paid"),
    ("agent_commissions_fen", "agent_commissions"),
    ("exits", "exits"),
)


def _engine_sums(engine: Engine) -> tuple[int, ...]:
    return tuple(getattr(engine, name) for _field, name in _ENGINE_SUMS)


@dataclass
class Projection:
    """What one batch adds to the read models."""

    statement: list[StatementRow] = field(default_factory=list)
    price_days: list[PriceDayRow] = field(default_factory=list)
    dividends: list[DividendBlock] = field(default_factory=list)
    slots: list[SlotRow] = field(default_factory=list)
    withdrawals: list[WithdrawalRow] = field(default_factory=list)
    item_moves: list[ItemMoveRow] = field(default_factory=list)
    day_totals: dict[str, DayTotals] = field(default_factory=dict)  # by day
    recorded_at: str = ""  # the batch's time (a rebuild sets each entry's)


def stored_account(account_id: str) -> str:
    """An account id as the statement table holds it: PostgreSQL text cannot hold NUL, which
    SPEC allows in ids, so NUL is written as \\0 (and a backslash doubled, to stay unique)."""
    if "\x00" not in account_id and "\\" not in account_id:
        return account_id
    return account_id.replace("\\", "\\\\").replace("\x00", "\\0")


def balances_of(engine: Engine, account_id: str) -> Balances | None:
    """An account's balances now, in CONSUMER_FIELDS' or MERCHANT_FIELDS' order."""
    holder = engine.account(account_id)
    return None if holder is None else holder.balances()


class Projector:
    """Applies commands to an engine and turns what each changed into read-model rows.

    The day's totals that are changes of the engine's running totals are added when the day
    of the entries changes and by `close`, which must run before `out` is written."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._day = ""  # the day of the entries since the mark
        self._mark = _engine_sums(engine)

    def apply(self, command: Mapping[str, Any], seq: int, out: Projection) -> str | None:
        """Apply one command (the engine's error code if rejected, else None) and add its
        statement lines, price day and day totals, if any, to `out`."""
        day = out.recorded_at[:10]
        if day != self._day:
            self.close(out)
            self._day = day
        totals = out.day_totals.get(day)
        if totals is None:
            totals = out.day_totals[day] = DayTotals(day, seq)
        totals.last_seq = seq
        try:
            applied = self.engine.apply(command)
        except Rejected as rejected:
            return rejected.code
        op = applied.op
        if op in {"order", "refund"}:
            _count_order(self.engine, command, applied, totals)
        record(self.engine, applied, seq, out)
        return None

    def close(self, out: Projection) -> None:
        """Add to the day's totals in `out` how the engine's running totals changed over the
        entries applied since the last close."""
        now = _engine_sums(self.engine)
        totals = out.day_totals.get(self._day)
        if totals is not None:
            for (name, _total), before, after in zip(_ENGINE_SUMS, self._mark, now, strict=True):
                setattr(totals, name, getattr(totals, name) + after - before)
        self._mark = now


def _count_order(
    engine: Engine, command: Mapping[str, Any], applied: Applied, totals: DayTotals
) -> None:
    """An applied order's or refund's counts and referral EP, from the engine's record of the
    order (`OrderBook`: whether it was paid in cash, the EP each referrer was granted)."""
    if applied.op == "order":
        grants = engine.orders.cash_grants(command["id"])
        if grants is not None:
            totals.cash_orders += 1
            totals.referral_units += sum(units for _referrer, units in grants)
        return
    grants = engine.orders.cash_grants(command["order"])
    totals.refunds += 1
    if grants is not None:  # what the refund took back from those the order granted EP
        referrers = {referrer for referrer, _units in grants}
        totals.referral_units += sum(
            amount
            for account, posted, amount in applied.postings
            if posted == _EP and account in referrers
        )


def record(engine: Engine, applied: Applied, seq: int, out: Projection) -> None:
    """The rows of one applied command: a statement line per account it changed other than
    by a dividend, a settlement's dividends as blocks, and the day it settled, if it did."""
    if applied.events or applied.payouts is not None:
        accounts = _accounts_and_events(engine, applied, seq, out)
    else:  # most commands: an order, a sale, a grant
        accounts = [posting[0] for posting in applied.postings]
    consumers, merchants, op = engine.consumers, engine.merchants, applied.op
    append = out.statement.append
    new_row = tuple.__new__  # skips StatementRow's Python-level __new__: a line per change
    for account in dict.fromkeys(accounts):
        holder = consumers.get(account) or merchants.get(account) or engine.agents.get(account)
        if holder is not None:
            balances = ",".join(map(str, holder.balances()))
            stored = stored_account(account) if "\x00" in account or "\\" in account else account
            append(new_row(StatementRow, (stored, seq, op, balances)))


def _accounts_and_events(engine: Engine, applied: Applied, seq: int, out: Projection) -> list[str]:
    """The accounts to write lines for; the price day, slots and dividend blocks recorded."""
    accounts = [posting[0] for posting in applied.postings]
    totals = out.day_totals[out.recorded_at[:10]]
    for event in applied.events:
        if isinstance(event, DaySettled):
            out.price_days.append(_price_day(engine, applied, event, seq))
            totals.settlements += 1
        elif isinstance(event, WithdrawalChanged):
            # Not a statement line (the postings hold what the step changed): the list of
            # withdrawals as they stand.
            withdrawal = engine.withdrawals[event.withdrawal]
            out.withdrawals.append(
                WithdrawalRow(
                    event.withdrawal,
                    event.account,
                    withdrawal.amount_fen,
                    event.status,
                    withdrawal.reference,
                    seq,
                    out.recorded_at,
                    seq,
                )
            )
            _count_withdrawal(totals, applied.op, event.status, withdrawal.amount_fen)
        elif isinstance(event, ItemMoved):
            action = "use" if event.used else "claim" if event.giver is None else "gift"
            out.item_moves.append(ItemMoveRow(event.item, seq, action, event.account, event.giver))
        elif isinstance(event, CollectionIssued):
            continue
        else:
            accounts.append(event.account)
            if isinstance(event, Registered) and event.kind == "consumer":
                out.slots.append(SlotRow(stored_account(event.account), _slot(engine, event)))
    if applied.payouts is not None and not _record_payouts(applied.payouts, seq, out):
        accounts.extend(applied.payouts.accounts())  # too large for the blocks: lines instead
    return accounts


def _count_withdrawal(totals: DayTotals, op: str, status: str, amount_fen: int) -> None:
    """A withdrawal's step in the day's totals: its request (whether it waits for review or
    was approved at once, under withdraw_review_above), its payment, or its return to cash."""
    if op == "withdraw":
        totals.withdrawals_requested += 1
        totals.withdrawals_requested_fen += amount_fen
    elif status == PAID:
        totals.withdrawals_paid += 1
        totals.withdrawals_paid_fen += amount_fen
    elif status in (REJECTED, FAILED):
        totals.withdrawals_returned += 1
        totals.withdrawals_returned_fen += amount_fen


def _slot(engine: Engine, event: Registered) -> int:
    return engine.consumers[event.account].slot


def _record_payouts(payouts: Payouts, seq: int, out: Projection) -> bool:
    """Add the settlement's payments per slot as blocks; False if one does not fit 8 bytes."""
    totals = list(payouts.holding) or [0] * len(payouts.owners)
    for slots, payments in payouts.levels:
        for slot, fen in zip(slots, payments, strict=True):
            totals[slot] += fen
    blocks = []
    for block, start in enumerate(range(0, len(totals), BLOCK_SLOTS)):
        part = totals[start : start + BLOCK_SLOTS]
        if not any(part):
            continue
        try:
            packed = array("Q", part)
        except OverflowError:  # a payment of 2**64 fen or more: not in this world, but exact
            return False
        if sys.byteorder == "big":
            packed.byteswap()
        blocks.append(DividendBlock(block, seq, packed.tobytes()))
    out.dividends.extend(blocks)
    return True


def with_dividend(balances: str, fen: int) -> str:
    """A consumer's stored balances after a dividend of `fen` (SP and dividends up, quota
    down): the balances of a derived statement line."""
    values = [int(part) for part in balances.split(",")]
    values[_SP] += fen
    values[_QUOTA] -= fen
    values[_DIVIDENDS] += fen
    return _encode(tuple(values))


def _encode(balances: Balances) -> str:
    return ",".join(map(str, balances))


def _price_day(engine: Engine, applied: Applied, settled: DaySettled, seq: int) -> PriceDayRow:
    return PriceDayRow(
        settled.day,
        seq,
        format_price(applied.price),
        format_fen(applied.pool_fen),
        format_units(applied.supply_units),
        format_fen(settled.sales_fen),
        format_fen(settled.dividends_fen),
        format_fen(engine.cash_owed),
        format_fen(engine.sp_outstanding),
        engine.exits,
    )


# Whose balances a stored line holds, by how many fields it has (each kind has its own count:
# tests/test_projections.py checks that they differ).
_KIND_OF_COUNT = {
    len(CONSUMER_FIELDS): ("consumer", CONSUMER_FIELDS),
    len(MERCHANT_FIELDS): ("merchant", MERCHANT_FIELDS),
    len(AGENT_FIELDS): ("agent", AGENT_FIELDS),
}
assert len(_KIND_OF_COUNT) == 3


def balances_kind(text: str) -> str:
    """Whose balances a stored line holds: "consumer", "merchant" or "agent"."""
    return _KIND_OF_COUNT[text.count(",") + 1][0]


def decode_balances(text: str) -> dict[str, int]:
    values = [int(part) for part in text.split(",")]
    return dict(zip(_KIND_OF_COUNT[len(values)][1], values, strict=True))


def format_balances(balances: Mapping[str, int]) -> dict[str, Any]:
    """For the API: as SPEC §7 shows balances (core/canonical.py)."""
    return {name: SHOW_FIELD[name](value) for name, value in balances.items()}


def format_changes(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, Any]:
    """The fields that changed, as signed differences (a flag: its new value)."""
    changes: dict[str, Any] = {}
    for name, value in after.items():
        delta = value - before.get(name, 0)
        if not delta:
            continue
        if name in FLAGS:
            changes[name] = bool(value)
        elif name == "level":
            changes[name] = delta
        else:
            text = SHOW_FIELD[name](abs(delta))
            changes[name] = f"-{text}" if delta < 0 else f"+{text}"
    return changes
