"""Reads for the entry points (the HTTP API now, the web pages later): JSON-ready dicts. Reads
of the engine run in the ledger's writer process between batches, so what they see is a
committed state, never a batch half applied; statements and the price history come from the
store, whose read transactions see only committed batches."""

import heapq
from collections import Counter
from collections.abc import Callable
from typing import Any

from tokenmall.core.accounts import AGENT_FIELDS, CONSUMER_FIELDS, MERCHANT_FIELDS
from tokenmall.core.canonical import shown_balances
from tokenmall.core.engine import Engine
from tokenmall.core.units import Fen, format_fen, format_price, format_units
from tokenmall.ledger.projections import (
    balances_kind,
    decode_balances,
    format_balances,
    format_changes,
    stored_account,
)
from tokenmall.ledger.store import Store
from tokenmall.services import (
    account_reads,
    consumer_view,
    dashboard,
    merchant_view,
    param_preview,
)

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
    """An account's balances as SPEC §7 shows them (the one field list of each kind), with
    its id, kind and what else identifies it (a consumer's referrer, an agent's region)."""
    consumer = engine.consumers.get(account_id)
    if consumer is not None:
        return {
            "id": consumer.id,
            "kind": "consumer",
            "referrer": consumer.referrer,
            **shown_balances(CONSUMER_FIELDS, consumer.balances()),
        }
    merchant = engine.merchants.get(account_id)
    if merchant is not None:
        return {
            "id": merchant.id,
            "kind": "merchant",
            **shown_balances(MERCHANT_FIELDS, merchant.balances()),
        }
    agent = engine.agents.get(account_id)
    if agent is None:
        return None
    return {
        "id": agent.id,
        "kind": "agent",
        "region": agent.region,
        "until": agent.until,
        **shown_balances(AGENT_FIELDS, agent.balances()),
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


PAGE_MAX = 500  # lines or days per page
SEQ_MAX = 2**63 - 1  # the largest journal seq (and day) a BIGINT column holds


def statement(store: Store, account_id: str, after_seq: int, limit: int) -> dict[str, Any] | None:
    """One page of an account's statement: every journal entry that changed its balances, in
    order, with the balances after it and the change, and its items' moves in those entries.
    `next_after` continues the page. None for an account that does not exist (every account's
    first line is its registration)."""
    after_seq = min(after_seq, SEQ_MAX)  # nothing lies beyond; the database cannot take more
    with store.reading() as connection:
        before_text, lines = store.statement(connection, account_id, after_seq, limit)
        # Any line tells the kind; only an empty page needs a look for the account's first one.
        any_text = before_text or (lines[0][-1] if lines else None)
        if any_text is None:
            any_text = store.first_statement_line(connection, account_id)
        # The items it claimed, gave, received or used in the entries this page covers (a
        # gift or a use changes no balance, so it has no line of its own).
        upto_seq = lines[-1][0] if len(lines) == limit else SEQ_MAX
        # (as the statement table does: PostgreSQL text cannot hold a v1 id's NUL)
        moves = store.item_moves_of(connection, stored_account(account_id), after_seq, upto_seq)
    if any_text is None:
        return None
    kind = balances_kind(any_text)
    before = decode_balances(before_text) if before_text is not None else {}
    shown = []
    for seq, recorded_at, actor, op, text in lines:
        after = decode_balances(text)
        shown.append(
            {
                "seq": seq,
                "recorded_at": recorded_at,
                "actor": actor,  # who submitted the entry: "role:token id", or "cli:user"
                "op": op,
                "changes": format_changes(before, after),
                "balances": format_balances(after),
            }
        )
        before = after
    next_after = lines[-1][0] if len(lines) == limit else None
    items = [
        {"seq": m.seq, "item": m.item, "action": m.action, "account": m.account, "giver": m.giver}
        for m in moves
    ]
    return {
        "account": account_id,
        "kind": kind,
        "lines": shown,
        "items": items,
        "next_after": next_after,
    }


# What the price history shows any caller of the market: what was owed (PriceDayRow's other
# fields) is the console's.
PUBLIC_DAY_FIELDS = ("day", "seq", "price", "pool", "supply", "sales", "dividends")


def price_history(store: Store, after_day: int, limit: int) -> dict[str, Any]:
    """Settled days (日结) in order, each with the price, pool and supply right after its
    settlement, that day's net sales and the dividends it paid. The price never falls, so a
    day's close is also the next day's open. `next_after_day` continues the page."""
    with store.reading() as connection:
        rows = store.price_days(connection, min(after_day, SEQ_MAX), limit)
    return {
        "days": [{name: getattr(row, name) for name in PUBLIC_DAY_FIELDS} for row in rows],
        "next_after_day": rows[-1].day if len(rows) == limit else None,
    }


def today(engine: Engine) -> dict[str, Any]:
    """The day in progress, for the end of the price history."""
    return {
        "day": engine.day,
        "price": format_price(engine.price()),
        "pool": format_fen(engine.pool),
        "supply": format_units(engine.supply),
        "sales": format_fen(engine.day_sales),
    }


# The reads the ledger's writer process answers from its engine, between batches, by name.
ENGINE_QUERIES: dict[str, Callable[..., Any]] = {
    "merchant_view": merchant_view.merchant_view,  # the merchant cashier (商家收银)
    "params": param_preview.current_params,  # the console's 参数设置
    "market": market,
    "account": account,
    "top_holders": top_holders,
    "levels": levels,
    "today": today,
    "overview": dashboard.overview,  # the console's 数据概览
    # the console's 会员 / 商家 / 代理 and 数字藏品 pages
    "accounts_page": account_reads.accounts_page,
    "referrals": account_reads.referrals,
    "collections_page": account_reads.collections_page,
    "collection_claims": account_reads.collection_claims,
    "h5_account": consumer_view.account_view,  # the consumer pages (H5)
}


def withdrawal_list(
    store: Store,
    *,
    status: str | None = None,
    account: str | None = None,
    day: str | None = None,
    after: int = 0,
    limit: int = PAGE_MAX,
) -> dict[str, Any]:
    """Withdrawals as they stand (提现列表), oldest request first; continue with `after` = the
    page's `next_after`."""
    with store.reading() as connection:
        rows = store.withdrawal_rows(
            connection, status=status, account=account, day=day, after_seq=after, limit=limit
        )
    return {
        "withdrawals": [
            {
                "id": row.id,
                "account": row.account,
                "amount": format_fen(Fen(row.amount_fen)),
                "status": row.status,
                "reference": row.reference,
                "requested_seq": row.requested_seq,
                "requested_at": row.requested_at,
                "updated_seq": row.updated_seq,
            }
            for row in rows
        ],
        "next_after": rows[-1].requested_seq if len(rows) == limit else None,
    }


def provenance(store: Store, item: str) -> dict[str, Any] | None:
    """Every move of a collectible (claimed, gifted, used), by journal entry; None if none."""
    with store.reading() as connection:
        rows = store.item_move_rows(connection, item)
    if not rows:
        return None
    moves = [
        {"seq": row.seq, "action": row.action, "account": row.account, "giver": row.giver}
        for row in rows
    ]
    return {"item": item, "owner": rows[-1].account, "moves": moves}
