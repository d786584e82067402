"""Read models of the engine for the API: JSON-ready dicts. Callers hold the ledger's read
lock, so what they read is a committed state, never a batch half applied."""

import heapq
from collections import Counter
from typing import Any

from tokenmall.core.engine import Engine
from tokenmall.core.units import format_fen, format_price, format_units

TOP_HOLDERS = 10


def market(engine: Engine) -> dict[str, Any]:
    """Price, pool, supply, unissued EP, and the SP outstanding beside what backs them: the EP
    the platform took in for them (treasury), valued at the price (floor, to the fen)."""
    pool_fen, supply_units = engine.price()
    backing_fen = engine.treasury * pool_fen // supply_units
    return {
        "price": format_price(engine.price()),
        "pool": format_fen(engine.pool),
        "supply": format_units(engine.supply),
        "unissued": format_units(engine.params.total_issuance_units - engine.issued),
        "treasury": format_units(engine.treasury),
        "sp_outstanding": format_fen(engine.sp_outstanding),
        "sp_backing": format_fen(backing_fen),
        "day": engine.day,
        "consumers": len(engine.consumers),
        "merchants": len(engine.merchants),
    }


def account(engine: Engine, account_id: str) -> dict[str, Any] | None:
    consumer = engine.consumers.get(account_id)
    if consumer is not None:
        return {
            "id": consumer.id,
            "kind": "consumer",
            "referrer": consumer.referrer,
            "ep": format_units(consumer.ep),
            "sp": format_fen(consumer.sp),
            "locked_sp": format_fen(consumer.locked_sp),
            "quota": format_fen(consumer.quota),
            "level": consumer.level,
            "cash_out": format_fen(consumer.cash_out),
            "goods": format_fen(consumer.goods),
            "dividends": format_fen(consumer.dividends),
            "exited": consumer.exited,
        }
    merchant = engine.merchants.get(account_id)
    if merchant is None:
        return None
    return {
        "id": merchant.id,
        "kind": "merchant",
        "ep": format_units(merchant.ep),
        "sp": format_fen(merchant.sp),
        "cash_out": format_fen(merchant.cash_out),
    }


def top_holders(engine: Engine) -> list[dict[str, str]]:
    """股东排行: the consumers holding the most EP (ties by id), at most TOP_HOLDERS."""
    book = engine.book
    top = heapq.nsmallest(
        TOP_HOLDERS,
        range(len(book.owners)),
        key=lambda slot: (-book.ep[slot], book.owners[slot].id),
    )
    return [
        {"user": book.owners[slot].id, "ep": format_units(book.ep[slot])}
        for slot in top
        if book.ep[slot] > 0
    ]


def levels(engine: Engine) -> list[dict[str, Any]]:
    """Each level's threshold, how many consumers are at it, and how many have reached it
    (at it or above; levels only rise)."""
    at_level = Counter(engine.book.level)
    thresholds = engine.params.level_thresholds_units
    rows, reached = [], 0
    for level in range(len(thresholds), 0, -1):
        reached += at_level[level]
        rows.append(
            {
                "level": level,
                "threshold_ep": format_units(thresholds[level - 1]),
                "consumers": at_level[level],
                "reached": reached,
            }
        )
    return rows[::-1]
