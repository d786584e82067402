"""报表 (the daily report): what happened on one UTC day, in integers of fen (EP in 1e-8
units), for the console's page and its XLSX, which both show `DailyReport`.

A day is every journal entry recorded on that UTC date (the same day as the withdrawal
list's filter and reconciliation's). Its figures are the `day_totals` read model's row for
the day (ledger/projections.py `DayTotals`), which the writer adds each batch's part to in
the batch's own transaction: the engine's results, never computed again here, in one
primary-key read however big the book.
"""

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from tokenmall.ledger.projections import DayTotals
from tokenmall.ledger.store import Store

DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

DailyReport = DayTotals  # the report is the day's totals as the ledger keeps them


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


def daily_report(store: Store, day: str) -> DailyReport:
    """The report of a UTC day (all zero if no entry was recorded on it)."""
    with store.reading() as connection:
        return store.day_totals(connection, day)


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
    ("exits", "count"),
)


def lines(report: DailyReport) -> list[Line]:
    return [Line(key, unit, int(getattr(report, key))) for key, unit in FIGURES]
