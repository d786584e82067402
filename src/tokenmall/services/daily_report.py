"""报表 (the daily report): what happened on one UTC day, in integers of fen (EP in 1e-8
units), for the console's page and its XLSX, which both show `DailyReport`.

A day is every journal entry recorded on that UTC date (the same day as the withdrawal
list's filter and reconciliation's). Its figures come from what the ledger keeps, with no
rule computed twice:
- sales, refunds and contributions from the day's applied `order` and `refund` entries: an
  order's contribution is the rule's own `floor(amount × contribution_rate)` with the rate
  in force at that entry (the ledger's starting parameters and every set_params before it);
  sales and contributions are gross, as the engine's totals `sales` and `contributions`;
- dividends from the `price_days` read model (the settlements recorded that day);
- withdrawals from the `withdrawal_list` read model (requested that day; paid, rejected or
  failed by an entry of that day);
- agent commissions (net of refunds' take-backs) and the EP granted to referrers from the
  `statement_lines` read model: each account's balances after each entry, differenced.
  Which accounts to read (every agent, and the referrers of the day's buyers) is an engine
  read, `report_accounts`, since referrers never change and agents are never removed.

A referrer force-exited (出局) by the very order that granted it EP has a line that shows
the sale, not the grant: such a grant is left out (the line says the EP were sold).
"""

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from threading import Lock
from typing import Any, Final

import sqlalchemy as sa

from tokenmall.core.engine import Engine
from tokenmall.core.params import Params, Rates
from tokenmall.core.units import MONEY_DECIMALS, parse_scaled
from tokenmall.ledger.projections import decode_balances, stored_account
from tokenmall.ledger.schema import (
    journal,
    ledger_head,
    price_days,
    statement_lines,
    withdrawal_list,
)
from tokenmall.ledger.store import Store

DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
REFERRAL_LEVELS: Final = 2  # SPEC §2: at most two referral rates
CHUNK: Final = 500  # ids bound in one IN (...)


class BadDay(ValueError):
    """Not a day the report can be about."""


def parse_day(text: str) -> str:
    """A YYYY-MM-DD calendar day, checked; BadDay otherwise."""
    if not DAY.fullmatch(text):
        raise BadDay("a day is written 2026-12-01")
    try:
        date.fromisoformat(text)
    except ValueError:
        raise BadDay("there is no such day") from None
    return text


def next_day(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


@dataclass(frozen=True)
class DailyReport:
    day: str
    first_seq: int | None  # the day's first journal entry (None: the journal has none)
    last_seq: int | None
    cash_orders: int = 0
    sales_fen: int = 0  # gross: every applied cash order's amount
    refunds: int = 0
    refunds_fen: int = 0
    contributions_fen: int = 0  # to the pool, gross (as the engine's `contributions`)
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

    @property
    def entries(self) -> int:
        if self.first_seq is None or self.last_seq is None:
            return 0
        return self.last_seq - self.first_seq + 1

    @property
    def net_sales_fen(self) -> int:
        return self.sales_fen - self.refunds_fen


@dataclass(frozen=True)
class Line:
    """One figure of the report as the page and the workbook show it."""

    key: str  # the DailyReport field
    unit: str  # "fen", "count" or "units" (1e-8 EP)
    value: int


# The report's figures in the order shown: (field, unit). Labels live with the page.
FIGURES: Final = (
    ("cash_orders", "count"),
    ("sales_fen", "fen"),
    ("refunds", "count"),
    ("refunds_fen", "fen"),
    ("net_sales_fen", "fen"),
    ("contributions_fen", "fen"),
    ("settlements", "count"),
    ("dividends_fen", "fen"),
    ("withdrawals_requested", "count"),
    ("withdrawals_requested_fen", "fen"),
    ("withdrawals_paid", "count"),
    ("withdrawals_paid_fen", "fen"),
    ("withdrawals_returned", "count"),
    ("withdrawals_returned_fen", "fen"),
    ("referral_units", "units"),
    ("agent_commissions_fen", "fen"),
)


def lines(report: DailyReport) -> list[Line]:
    return [Line(key, unit, int(getattr(report, key))) for key, unit in FIGURES]


# -- the engine read: whose statements to read ------------------------------------------------


def report_accounts(engine: Engine, buyers: Sequence[str]) -> dict[str, Any]:
    """ENGINE_QUERIES "report_accounts": each buyer's referrers up the chain (as an order
    walks it), and every agent (ended ones too: a refund takes commissions back from them)."""
    consumers = engine.consumers
    chains: dict[str, list[str]] = {}
    for buyer in buyers:
        found = consumers.get(buyer)
        chain: list[str] = []
        referrer = None if found is None else found.referrer
        while referrer is not None and len(chain) < REFERRAL_LEVELS:
            chain.append(referrer)
            referrer = consumers[referrer].referrer
        if chain:
            chains[buyer] = chain
    return {"referrers": chains, "agents": sorted(engine.agents)}


# -- the day's entries ----------------------------------------------------------------------


@dataclass
class DayEntries:
    """What the report reads from the day's journal entries, before the statements."""

    day: str
    first_seq: int | None
    last_seq: int | None
    cash_orders: int = 0
    sales_fen: int = 0
    refunds: int = 0
    refunds_fen: int = 0
    contributions_fen: int = 0
    buyer_of_entry: dict[int, str] = field(default_factory=dict)  # order and refund entries

    def buyers(self) -> list[str]:
        return sorted(set(self.buyer_of_entry.values()))


def day_entries(store: Store, day: str, after_seq: int = 0) -> DayEntries:
    """The day's entries read (those after `after_seq` only, for `add`): its seq range, its
    orders and refunds."""
    with store.reading() as connection:
        first_seq, last_seq = _seq_range(connection, day)
        if first_seq is not None and last_seq is not None and first_seq <= after_seq:
            first_seq = after_seq + 1
            if first_seq > last_seq:
                return DayEntries(day, None, None)
        found = DayEntries(day, first_seq, last_seq)
        if first_seq is None or last_seq is None:
            return found
        params = _params_before(store, connection, first_seq)
        rate = Rates(params).contribution  # built again only when a set_params changes it
        orders: dict[str, tuple[int, str]] = {}  # order id -> (amount fen, buyer)
        refunded: list[tuple[int, str]] = []  # (entry, order id)
        for seq, command in _applied(connection, first_seq, last_seq):
            op = command.get("op")
            if op == "set_params":  # from this entry on, its rates
                params = params.with_overrides(command.get("params", {}))
                rate = Rates(params).contribution
            elif op == "order" and command.get("pay", "cash") == "cash":
                amount_fen = parse_scaled(command.get("amount"), MONEY_DECIMALS) or 0
                found.cash_orders += 1
                found.sales_fen += amount_fen
                found.contributions_fen += _contribution_fen(amount_fen, rate)
                orders[str(command["id"])] = (amount_fen, str(command["user"]))
                found.buyer_of_entry[seq] = str(command["user"])
            elif op == "refund":
                refunded.append((seq, str(command["order"])))
        missing = [order for _seq, order in refunded if order not in orders]
        if missing:  # ordered the business day before midnight, refunded after
            orders |= _earlier_orders(connection, first_seq, set(missing))
        for seq, order in refunded:
            amount_fen, buyer = orders.get(order, (0, ""))
            found.refunds += 1
            found.refunds_fen += amount_fen
            if buyer:
                found.buyer_of_entry[seq] = buyer
    return found


def _contribution_fen(amount_fen: int, rate: tuple[int, int]) -> int:
    """The pool's share of a cash order: rules/orders.py `_cash_order`'s c, with its rate."""
    numerator, denominator = rate
    return amount_fen * numerator // denominator


def _seq_range(connection: sa.Connection, day: str) -> tuple[int | None, int | None]:
    """The first and last entry recorded on the day, by binary search over the journal's
    primary key (recorded_at grows with seq; it has no index of its own)."""
    low = connection.execute(sa.select(sa.func.min(journal.c.seq))).scalar_one_or_none()
    head = connection.execute(sa.select(ledger_head.c.seq)).scalar_one_or_none()
    if low is None or head is None:
        return None, None
    first = _first_at_or_after(connection, int(low), int(head), day)
    end = _first_at_or_after(connection, int(low), int(head), day + "U")  # after every time
    if first is None or (end is not None and end <= first):
        return None, None
    return first, (int(head) if end is None else end - 1)


def _first_at_or_after(connection: sa.Connection, low: int, high: int, when: str) -> int | None:
    """The first seq in low..high recorded at or after `when` (UTC text), or None."""
    found = None
    while low <= high:
        middle = (low + high) // 2
        recorded = connection.execute(
            sa.select(journal.c.recorded_at).where(journal.c.seq == middle)
        ).scalar_one_or_none()
        if recorded is None:  # no such entry (a gap): look later
            low = middle + 1
        elif recorded >= when:
            found, high = middle, middle - 1
        else:
            low = middle + 1
    return found


def _applied(
    connection: sa.Connection, first_seq: int, last_seq: int, like: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The applied entries of first..last, their commands decoded, in order, in chunks."""
    after = first_seq - 1
    while True:
        query = sa.select(journal.c.seq, journal.c.command).where(
            journal.c.seq > after, journal.c.seq <= last_seq, journal.c.outcome == "ok"
        )
        if like is not None:
            query = query.where(journal.c.command.like(like))
        rows = connection.execute(query.order_by(journal.c.seq).limit(5_000)).all()
        for seq, text in rows:
            command = json.loads(text)
            if isinstance(command, dict):
                yield int(seq), command
        if len(rows) < 5_000:
            return
        after = int(rows[-1][0])


class _ParamHistory:
    """Every applied set_params, with the entry it took effect at: the journal only grows,
    so each read scans only the entries after the last one seen."""

    def __init__(self) -> None:
        self.lock = Lock()
        self.scanned_seq = 0
        self.changes: list[tuple[int, Any]] = []


_HISTORIES: dict[int, tuple[Store, _ParamHistory]] = {}


def _params_before(store: Store, connection: sa.Connection, seq: int) -> Params:
    """The parameters in force just before entry `seq`."""
    meta = store.meta(connection)
    params = Params()
    if meta is not None:
        params = params.with_overrides(json.loads(meta.params_json))
    kept = _HISTORIES.setdefault(id(store), (store, _ParamHistory()))[1]
    with kept.lock:
        if kept.scanned_seq < seq - 1:
            for found_seq, command in _applied(
                connection, kept.scanned_seq + 1, seq - 1, like="%set_params%"
            ):
                if command.get("op") == "set_params":
                    kept.changes.append((found_seq, command.get("params", {})))
            kept.scanned_seq = seq - 1
        changes = [overrides for at, overrides in kept.changes if at < seq]
    for overrides in changes:
        params = params.with_overrides(overrides)
    return params


def _earlier_orders(
    connection: sa.Connection, first_seq: int, wanted: set[str]
) -> dict[str, tuple[int, str]]:
    """Orders of `wanted` placed before `first_seq`, since the last settlement before it (a
    refund is of the business day's own orders only)."""
    since = connection.execute(
        sa.select(sa.func.max(price_days.c.seq)).where(price_days.c.seq < first_seq)
    ).scalar_one_or_none()
    found: dict[str, tuple[int, str]] = {}
    for _seq, command in _applied(connection, int(since or 0) + 1, first_seq - 1):
        if command.get("op") == "order" and command.get("id") in wanted:
            amount_fen = parse_scaled(command.get("amount"), MONEY_DECIMALS) or 0
            found[str(command["id"])] = (amount_fen, str(command["user"]))
    return found


# -- the whole report ---------------------------------------------------------------------------

# Figures of a report that are sums over its entries: a report of entries a..b plus one of
# b+1..c is the report of a..c. (Paid and returned withdrawals count by the entry of their
# last step, which never changes once they are paid, rejected or failed.)
ADDITIVE: Final = (
    "cash_orders",
    "sales_fen",
    "refunds",
    "refunds_fen",
    "contributions_fen",
    "settlements",
    "dividends_fen",
    "withdrawals_paid",
    "withdrawals_paid_fen",
    "withdrawals_returned",
    "withdrawals_returned_fen",
    "referral_units",
    "agent_commissions_fen",
)


def add(earlier: DailyReport, later: DailyReport) -> DailyReport:
    """The day's report from one of its first entries and one of the entries after them
    (made with `day_entries(..., after_seq=earlier.last_seq)`): today's report, kept up to
    date by reading only what the journal gained since. Withdrawals requested are counted by
    the day they were requested, whole, in each report: the later one's count stands."""
    if later.first_seq is None:  # nothing new (a request is an entry too)
        return earlier
    if earlier.first_seq is None:
        return later
    sums = {name: getattr(earlier, name) + getattr(later, name) for name in ADDITIVE}
    return replace(
        later,
        first_seq=earlier.first_seq,
        withdrawals_requested=later.withdrawals_requested,
        withdrawals_requested_fen=later.withdrawals_requested_fen,
        **sums,
    )


def daily_report(store: Store, entries: DayEntries, accounts: dict[str, Any]) -> DailyReport:
    """The report of the day whose entries were read, with the accounts the engine named."""
    first_seq, last_seq = entries.first_seq, entries.last_seq
    base = DailyReport(
        day=entries.day,
        first_seq=first_seq,
        last_seq=last_seq,
        cash_orders=entries.cash_orders,
        sales_fen=entries.sales_fen,
        refunds=entries.refunds,
        refunds_fen=entries.refunds_fen,
        contributions_fen=entries.contributions_fen,
    )
    if first_seq is None or last_seq is None:
        return base
    with store.reading() as connection:
        settlements, dividends_fen = _dividends(connection, first_seq, last_seq)
        withdrawals = _withdrawals(connection, entries.day, first_seq, last_seq)
        referral_units, commissions_fen = _from_statements(
            connection, entries, accounts, first_seq, last_seq
        )
    return replace(
        base,
        settlements=settlements,
        dividends_fen=dividends_fen,
        referral_units=referral_units,
        agent_commissions_fen=commissions_fen,
        withdrawals_requested=withdrawals[0],
        withdrawals_requested_fen=withdrawals[1],
        withdrawals_paid=withdrawals[2],
        withdrawals_paid_fen=withdrawals[3],
        withdrawals_returned=withdrawals[4],
        withdrawals_returned_fen=withdrawals[5],
    )


def _dividends(connection: sa.Connection, first_seq: int, last_seq: int) -> tuple[int, int]:
    rows = connection.execute(
        sa.select(price_days.c.dividends).where(
            price_days.c.seq >= first_seq, price_days.c.seq <= last_seq
        )
    ).all()
    paid = sum(parse_scaled(text, MONEY_DECIMALS) or 0 for (text,) in rows)
    return len(rows), paid


def _withdrawals(
    connection: sa.Connection, day: str, first_seq: int, last_seq: int
) -> tuple[int, int, int, int, int, int]:
    """(count, fen) of those requested on the day (by requested_at, as the review queue's
    filter), of those paid, and of those rejected or failed, by an entry of the day (the
    withdrawal's last step)."""
    table = withdrawal_list
    count, total = sa.func.count(), sa.func.coalesce(sa.func.sum(table.c.amount_fen), 0)
    requested = connection.execute(
        sa.select(count, total).where(table.c.requested_at >= day, table.c.requested_at < day + "U")
    ).one()
    in_day = (table.c.updated_seq >= first_seq, table.c.updated_seq <= last_seq)
    paid = connection.execute(
        sa.select(count, total).where(table.c.status == "paid", *in_day)
    ).one()
    returned = connection.execute(
        sa.select(count, total).where(table.c.status.in_(("rejected", "failed")), *in_day)
    ).one()
    return (
        int(requested[0]),
        int(requested[1]),
        int(paid[0]),
        int(paid[1]),
        int(returned[0]),
        int(returned[1]),
    )


def _from_statements(
    connection: sa.Connection,
    entries: DayEntries,
    accounts: dict[str, Any],
    first_seq: int,
    last_seq: int,
) -> tuple[int, int]:
    """EP granted to referrers in the day's order and refund entries, and agents' commissions
    in any of its entries: the differences of their statement lines."""
    chains: dict[str, list[str]] = accounts.get("referrers", {})
    agents: list[str] = accounts.get("agents", [])
    referrers = {r for chain in chains.values() for r in chain}
    referral_units = commissions_fen = 0
    for account, seq, before, after in _changes(
        connection, [*referrers, *agents], first_seq, last_seq
    ):
        if "commissions" in after:  # an agent
            commissions_fen += after["commissions"] - before.get("commissions", 0)
            continue
        buyer = entries.buyer_of_entry.get(seq)
        if buyer is None or account not in chains.get(buyer, ()):
            continue
        if after.get("exited") and not before.get("exited"):
            continue  # sold out by the same entry: the line shows the sale (module doc)
        referral_units += after["ep"] - before.get("ep", 0)
    return referral_units, commissions_fen


def _changes(
    connection: sa.Connection, accounts: Iterable[str], first_seq: int, last_seq: int
) -> Iterator[tuple[str, int, dict[str, int], dict[str, int]]]:
    """(account, entry, balances before, balances after) of each statement line of the
    accounts in first..last; "before" is the account's line before (empty: none)."""
    table = statement_lines
    stored = {stored_account(a): a for a in accounts}
    names = sorted(stored)
    for start in range(0, len(names), CHUNK):
        chunk = names[start : start + CHUNK]
        last_before = (
            sa.select(table.c.account, sa.func.max(table.c.seq).label("seq"))
            .where(table.c.account.in_(chunk), table.c.seq < first_seq)
            .group_by(table.c.account)
            .subquery()
        )
        previous = {
            account: decode_balances(text)
            for account, text in connection.execute(
                sa.select(table.c.account, table.c.balances).join(
                    last_before,
                    sa.and_(
                        table.c.account == last_before.c.account,
                        table.c.seq == last_before.c.seq,
                    ),
                )
            )
        }
        rows = connection.execute(
            sa.select(table.c.account, table.c.seq, table.c.balances)
            .where(table.c.account.in_(chunk), table.c.seq >= first_seq, table.c.seq <= last_seq)
            .order_by(table.c.account, table.c.seq)
        )
        for account, seq, text in rows:
            after = decode_balances(text)
            yield stored[account], int(seq), previous.get(account, {}), after
            previous[account] = after
