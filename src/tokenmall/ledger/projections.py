"""Read models the writer keeps beside the journal: each account's statement (every change to
its balances, by journal entry) and the daily price history. Pure: the ledger writes what this
module computes in the same transaction as the entries, so the two can never disagree.

A statement line holds an account's balances *after* an entry; the change is the difference to
the line before it (read time), so no balance has to be known before a forced exit (出局) hits
an account that the command did not name.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import ne
from typing import Any, NamedTuple

from tokenmall.core.engine import Engine
from tokenmall.core.units import format_fen, format_price, format_units

# Balance fields of each kind of account, in the order they are stored.
CONSUMER_FIELDS = (
    "ep",
    "sp",
    "locked_sp",
    "quota",
    "level",
    "cash_out",
    "goods",
    "dividends",
    "exited",
)
MERCHANT_FIELDS = ("ep", "sp", "cash_out")
FORMAT_OF_FIELD = {
    "ep": format_units,
    "sp": format_fen,
    "locked_sp": format_fen,
    "quota": format_fen,
    "cash_out": format_fen,
    "goods": format_fen,
    "dividends": format_fen,
}
# Commands that may change any consumer: compare them all.
TOUCHES_EVERYONE = frozenset({"settle_day", "set_params"})

Balances = tuple[int, ...]


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


@dataclass
class Projection:
    """What one batch adds to the read models."""

    statement: list[StatementRow] = field(default_factory=list)
    price_days: list[PriceDayRow] = field(default_factory=list)


def stored_account(account_id: str) -> str:
    """An account id as the statement table holds it: PostgreSQL text cannot hold NUL, which
    SPEC allows in ids, so NUL is written as \\0 (and a backslash doubled, to stay unique)."""
    if "\x00" not in account_id and "\\" not in account_id:
        return account_id
    return account_id.replace("\\", "\\\\").replace("\x00", "\\0")


def balances_of(engine: Engine, account_id: str) -> Balances | None:
    consumer = engine.consumers.get(account_id)
    if consumer is not None:
        book, slot = engine.book, consumer.slot
        return (
            book.ep[slot],
            book.sp[slot],
            consumer.locked_sp,
            book.quota[slot],
            book.level[slot],
            consumer.cash_out,
            consumer.goods,
            book.dividends[slot],
            int(consumer.exited),
        )
    merchant = engine.merchants.get(account_id)
    if merchant is None:
        return None
    return (merchant.ep, merchant.sp, merchant.cash_out)


def accounts_named(engine: Engine, command: Mapping[str, Any]) -> list[str]:
    """The accounts a command can change, besides forced exits (which the engine reports):
    the ones it names, a buyer's referrers, a refunded order's buyer and referrers."""
    op = command.get("op")
    named = [
        value for name in ("user", "merchant") if type(value := command.get(name)) is str and value
    ]
    if op == "order" and named:
        named.extend(_referrers(engine, named[0]))
    elif op == "refund":
        order_id = command.get("order")
        refunded = engine.orders.get(order_id) if type(order_id) is str else None
        if refunded is not None:
            named = [refunded.user, *(referrer for referrer, _ in refunded.referrer_grants)]
    return named


def _referrers(engine: Engine, user_id: str) -> list[str]:
    """The referrers an order by `user_id` may grant EP to (SPEC §4: up the chain)."""
    chain: list[str] = []
    consumer = engine.consumers.get(user_id)
    while consumer is not None and consumer.referrer is not None:
        if len(chain) >= len(engine.rates.referral):
            break
        chain.append(consumer.referrer)
        consumer = engine.consumers.get(consumer.referrer)
    return chain


class Projector:
    """Applies commands to an engine and records what changed. Install it on a ledger's engine
    (it turns on the engine's exit log) and pass every command through `apply`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._exited: list[str] = []
        engine.exit_log = self._exited

    def apply(self, command: Mapping[str, Any], seq: int, out: Projection) -> str | None:
        """Apply one command (the engine's error code if rejected, else None) and add its
        statement lines and price day, if any, to `out`."""
        engine = self.engine
        op = command.get("op")
        if type(op) is str and op in TOUCHES_EVERYONE:
            return self._apply_to_everyone(command, seq, out)
        names = accounts_named(engine, command)
        before = {name: balances_of(engine, name) for name in names}
        code = engine.try_apply(command)
        if code is None:
            self._record(_unique([*names, *self._exited]), before, seq, str(op), out)
        self._exited.clear()
        return code

    def _apply_to_everyone(
        self, command: Mapping[str, Any], seq: int, out: Projection
    ) -> str | None:
        """settle_day or set_params: find the changed consumers by comparing the book's columns
        (list operations in C, not one tuple per consumer); vesting releases and forced exits
        change the few fields outside the book."""
        engine = self.engine
        book = engine.book
        columns_before = [list(column) for column in _columns(engine)]
        vesting = {grant.user for grant in engine.vesting}
        before = {name: balances_of(engine, name) for name in vesting}
        day_before = (engine.day, engine.day_sales, engine.dividends_paid)
        code = engine.try_apply(command)
        if code is not None:
            self._exited.clear()
            return code
        changed_slots: set[int] = set()
        for old, new in zip(columns_before, _columns(engine), strict=True):
            changed_slots.update(compress(range(len(old)), map(ne, old, new)))
        owners = book.owners
        names = [*vesting, *self._exited, *(owners[slot].id for slot in sorted(changed_slots))]
        self._record(_unique(names), before, seq, str(command["op"]), out)
        self._exited.clear()
        if engine.day != day_before[0]:
            out.price_days.append(_price_day(engine, seq, day_before))
        return None

    def _record(
        self,
        names: list[str],
        before: Mapping[str, Balances | None],
        seq: int,
        op: str,
        out: Projection,
    ) -> None:
        engine, rows = self.engine, out.statement
        for name in names:
            after = balances_of(engine, name)
            if after is not None and after != before.get(name):
                rows.append(StatementRow(stored_account(name), seq, op, _encode(after)))


def _columns(engine: Engine) -> tuple[list[int], ...]:
    book = engine.book
    return (book.ep, book.sp, book.quota, book.dividends, book.level)


def _unique(names: list[str]) -> list[str]:
    """In first-seen order, each once."""
    return list(dict.fromkeys(names))


def _encode(balances: Balances) -> str:
    return ",".join(map(str, balances))


def _price_day(engine: Engine, seq: int, day_before: tuple[int, int, int]) -> PriceDayRow:
    day, sales_fen, dividends_before_fen = day_before
    return PriceDayRow(
        day,
        seq,
        format_price(engine.price()),
        format_fen(engine.pool),
        format_units(engine.supply),
        format_fen(sales_fen),
        format_fen(engine.dividends_paid - dividends_before_fen),
    )


def balances_kind(text: str) -> str:
    """Whose balances a stored line holds: "consumer" or "merchant" (by how many fields)."""
    return "consumer" if text.count(",") + 1 == len(CONSUMER_FIELDS) else "merchant"


def decode_balances(text: str) -> dict[str, int]:
    values = [int(part) for part in text.split(",")]
    fields = CONSUMER_FIELDS if len(values) == len(CONSUMER_FIELDS) else MERCHANT_FIELDS
    return dict(zip(fields, values, strict=True))


def format_balances(balances: Mapping[str, int]) -> dict[str, Any]:
    """For the API: amounts as decimal strings, the level as a number, exited as a boolean."""
    shown: dict[str, Any] = {}
    for name, value in balances.items():
        if name == "exited":
            shown[name] = bool(value)
        elif name == "level":
            shown[name] = value
        else:
            shown[name] = FORMAT_OF_FIELD[name](value)
    return shown


def format_changes(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, Any]:
    """The fields that changed, as signed differences (exited: its new value)."""
    changes: dict[str, Any] = {}
    for name, value in after.items():
        delta = value - before.get(name, 0)
        if not delta:
            continue
        if name == "exited":
            changes[name] = bool(value)
        elif name == "level":
            changes[name] = delta
        else:
            text = FORMAT_OF_FIELD[name](abs(delta))
            changes[name] = f"-{text}" if delta < 0 else f"+{text}"
    return changes
