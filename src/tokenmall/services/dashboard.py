"""The console's overview (数据概览): the economy's figures now, and its recent settled days.

Every figure here is O(1) or bounded, however big the book: the engine keeps the platform's
totals as it applies commands (SPEC §3), so `overview` reads attributes and never walks the
consumers; the history is one primary-key range of `price_days` (at most DAYS_MAX rows); the
withdrawals in flight are one indexed read of `withdrawal_list` by status.
"""

from typing import Any

import sqlalchemy as sa

from tokenmall.core.accounts import PENDING
from tokenmall.core.engine import Engine
from tokenmall.core.units import Fen, format_fen
from tokenmall.ledger.schema import withdrawal_list
from tokenmall.ledger.store import Store

RANGES_DAYS = (30, 90, 365)  # the chart's range switch
DEFAULT_DAYS = 90
DAYS_MAX = max(RANGES_DAYS)  # within queries.PAGE_MAX: one page of the price history


def overview(engine: Engine) -> dict[str, Any]:
    """The market (queries.market: price, pool, supply, SP outstanding and its backing) and
    the totals an operator watches: cash owed (Σ cash + withdrawing over every consumer,
    merchant and agent, which the engine keeps as `cash_owed`), the day in progress's sales,
    and the dividends, exits and withdrawals so far. Attribute reads only: it runs in the
    writer between batches."""
    # Imported here: services/queries.py imports this module to register `overview`.
    from tokenmall.services import queries  # noqa: PLC0415

    return {
        **queries.market(engine),
        "cash_owed": format_fen(engine.cash_owed),
        "day_sales": format_fen(engine.day_sales),
        "sales": format_fen(engine.sales),
        "dividends_paid": format_fen(engine.dividends_paid),
        "exits": engine.exits,
        "withdrawn": format_fen(engine.withdrawn),
        "agents": len(engine.agents),
    }


def recent_days(store: Store, today: int, days: int) -> list[dict[str, Any]]:
    """The last `days` settled days before day `today` (the day in progress), oldest first,
    each as the price_days read model keeps it (what was owed right after its settlement
    too), with `day_exits`: the forced exits of that day. Days are settled in order from 0,
    so they are the days today - days ... today - 1 (one more is read for the first day's
    exits)."""
    days = max(1, min(days, DAYS_MAX))
    with store.reading() as connection:
        rows = store.price_days(connection, max(-1, today - days - 2), days + 1)
    found: list[dict[str, Any]] = []
    previous_exits = 0  # before day 0, nobody had exited
    for row in rows:
        if row.day >= today - days:
            found.append({**row._asdict(), "day_exits": row.exits - previous_exits})
        previous_exits = row.exits
    return found


def today_exits(figures: dict[str, Any], days: list[dict[str, Any]]) -> int:
    """Forced exits of the day in progress: all of them less those up to the last settlement
    (`days` from recent_days; none settled yet: all of them are today's)."""
    exits: int = figures["exits"]
    if days and days[-1]["day"] == figures["day"] - 1:
        return exits - int(days[-1]["exits"])
    return exits


def withdrawals_in_flight(store: Store) -> dict[str, Any]:
    """How many withdrawals are requested or approved and not yet paid, and their sum: the part
    of cash owed that is on its way out (the status index; the read model, so as of the last
    committed batch)."""
    table = withdrawal_list
    with store.reading() as connection:
        count, total_fen = connection.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(table.c.amount_fen), 0)).where(
                table.c.status.in_(PENDING)
            )
        ).one()
    return {"count": int(count), "amount": format_fen(Fen(int(total_fen)))}
