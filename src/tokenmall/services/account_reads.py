"""Reads for the console's account and collectible pages (会员 / 商家 / 代理, 数字藏品).

The engine reads (registered in services/queries.py ENGINE_QUERIES) run in the ledger's writer
process between batches, so each does bounded work: a page of at most PAGE_ROWS_MAX rows, and a
search scans at most SCAN_ROWS_MAX accounts per request (the page says where it stopped, and
the next page goes on from there). Cursors are positions in registration order: accounts and
collections are never removed, so a position always names the same one.

The store read (items_held) sees committed batches, as services/queries.py's do.
"""

from itertools import islice
from typing import Any

import sqlalchemy as sa

from tokenmall.core.accounts import (
    AGENT_FIELDS,
    CONSUMER_FIELDS,
    MERCHANT_FIELDS,
    Agent,
    Consumer,
    Merchant,
)
from tokenmall.core.canonical import shown_balances
from tokenmall.core.engine import Engine
from tokenmall.core.units import Fen, format_fen
from tokenmall.ledger.projections import stored_account
from tokenmall.ledger.schema import item_moves
from tokenmall.ledger.store import Store

KINDS = ("consumer", "merchant", "agent")
PAGE_ROWS_MAX = 100
SCAN_ROWS_MAX = 50_000  # accounts a search looks at per request (a few ms in the writer)
SEARCH_CHARS_MAX = 64  # an id is at most 64 characters
REFERRAL_LEVELS = (1, 2)


def account_row(holder: Consumer | Merchant | Agent) -> dict[str, Any]:
    """An account's id, kind and balances as SPEC §7 shows them (the fields of its kind), with
    what else names it (a consumer's referrer, an agent's region and term)."""
    if isinstance(holder, Consumer):
        shown = shown_balances(CONSUMER_FIELDS, holder.balances())
        return {"id": holder.id, "kind": "consumer", "referrer": holder.referrer, **shown}
    if isinstance(holder, Merchant):
        return {
            "id": holder.id,
            "kind": "merchant",
            **shown_balances(MERCHANT_FIELDS, holder.balances()),
        }
    shown = shown_balances(AGENT_FIELDS, holder.balances())
    return {
        "id": holder.id,
        "kind": "agent",
        "region": holder.region,
        "until": holder.until,
        **shown,
    }


def _accounts_of(engine: Engine, kind: str, start: int) -> Any:
    """The accounts of a kind in registration order, from position `start`."""
    if kind == "consumer":
        return engine.book.owners[start : start + SCAN_ROWS_MAX]  # a list: slice, not skip
    holders = engine.merchants if kind == "merchant" else engine.agents
    return islice(holders.values(), start, None)


def account_count(engine: Engine, kind: str) -> int:
    if kind == "consumer":
        return len(engine.consumers)
    return len(engine.merchants if kind == "merchant" else engine.agents)


def accounts_page(
    engine: Engine, kind: str, search: str, after: int, limit: int = PAGE_ROWS_MAX
) -> dict[str, Any]:
    """A page of the accounts of `kind` (consumer, merchant or agent) whose id contains `search`
    (ignoring case; "" matches all), from position `after` in registration order. `next_after`
    continues (None at the end); `scanned_to` is the position the scan reached."""
    if kind not in KINDS:
        raise ValueError(f"no such kind {kind!r}")
    limit = max(1, min(limit, PAGE_ROWS_MAX))
    needle = search[:SEARCH_CHARS_MAX].casefold()
    total = account_count(engine, kind)
    rows: list[dict[str, Any]] = []
    position = after
    for holder in islice(_accounts_of(engine, kind, after), SCAN_ROWS_MAX):
        position += 1
        if needle in holder.id.casefold():
            rows.append(account_row(holder))
            if len(rows) == limit:
                break
    return {
        "kind": kind,
        "total": total,
        "rows": rows,
        "after": after,
        "scanned_to": position,
        "next_after": position if position < total else None,
    }


def referrals(
    engine: Engine, account_id: str, after_slots: tuple[int, int], limit: int = PAGE_ROWS_MAX
) -> list[dict[str, Any]] | None:
    """The two levels below a consumer: those it referred (level 1) and those they referred
    (level 2), each in registration order after its consumer slot in `after_slots`: how many
    in all, and a page. None if `account_id` is no consumer. Referrers are fixed at
    registration and kept only on each consumer (SPEC §3), so this looks at every consumer once
    per level: ~7 ms each for 100,000 consumers."""
    if account_id not in engine.consumers:
        return None
    limit = max(1, min(limit, PAGE_ROWS_MAX))
    owners = engine.book.owners
    level_1 = [owner for owner in owners if owner.referrer == account_id]
    referred = {owner.id for owner in level_1}
    level_2 = [owner for owner in owners if owner.referrer in referred] if referred else []
    levels = []
    for level, below, after_slot in zip(
        REFERRAL_LEVELS, (level_1, level_2), after_slots, strict=True
    ):
        page = [owner for owner in below if owner.slot > after_slot][:limit]
        more = len(page) == limit and page[-1] is not below[-1]
        levels.append(
            {
                "level": level,
                "total": len(below),
                "rows": [account_row(owner) for owner in page],
                "next_after": page[-1].slot if more else None,
            }
        )
    return levels


def collections_page(engine: Engine, after: int, limit: int = PAGE_ROWS_MAX) -> dict[str, Any]:
    """Collections in the order they were issued, from position `after`: edition, value and
    how many were claimed."""
    limit = max(1, min(limit, PAGE_ROWS_MAX))
    chosen = list(islice(engine.collections.values(), after, after + limit))
    end = after + len(chosen)
    return {
        "total": len(engine.collections),
        "rows": [
            {
                "id": collection.id,
                "edition": collection.edition,
                "value": format_fen(collection.value_fen),
                "claimed": collection.claimed,
                "left": collection.edition - collection.claimed,
            }
            for collection in chosen
        ],
        "next_after": end if end < len(engine.collections) else None,
    }


def collection_claims(
    engine: Engine, collection_id: str, after_serial: int, limit: int = PAGE_ROWS_MAX
) -> dict[str, Any] | None:
    """A collection and its claimed items by serial after `after_serial`, each as it stands
    (owner, the day it was acquired, gifts, used). None if no such collection."""
    collection = engine.collections.get(collection_id)
    if collection is None:
        return None
    limit = max(1, min(limit, PAGE_ROWS_MAX))
    first = max(after_serial, 0) + 1
    last = min(collection.claimed, first + limit - 1)
    items = []
    for serial in range(first, last + 1):
        item = engine.items[f"{collection.id}#{serial}"]
        items.append(
            {
                "item": item.id,
                "serial": serial,
                "owner": item.owner,
                "acquired_day": item.acquired_day,
                "gifts": item.gifts,
                "used": item.used,
            }
        )
    return {
        "collection": {
            "id": collection.id,
            "edition": collection.edition,
            "value": format_fen(Fen(collection.value_fen)),
            "claimed": collection.claimed,
        },
        "items": items,
        "next_after": last if last < collection.claimed else None,
    }


def items_held(
    store: Store, account_id: str, after_seq: int, limit: int = PAGE_ROWS_MAX
) -> dict[str, Any]:
    """The collectibles an account holds now (used ones too): the items whose latest move left
    them with it, by that move's journal entry after `after_seq`."""
    limit = max(1, min(limit, PAGE_ROWS_MAX))
    mine = item_moves.alias("mine")
    newer = item_moves.alias("newer")
    query = (
        sa.select(mine.c.item, mine.c.seq, mine.c.action)
        .where(
            mine.c.account == stored_account(account_id),
            mine.c.seq > after_seq,
            ~sa.exists().where(newer.c.item == mine.c.item, newer.c.seq > mine.c.seq),
        )
        .order_by(mine.c.seq)
        .limit(limit)
    )
    with store.reading() as connection:
        rows = connection.execute(query).all()
    return {
        "items": [
            {"item": item, "seq": int(seq), "used": action == "use"} for item, seq, action in rows
        ],
        "next_after": int(rows[-1][1]) if len(rows) == limit else None,
    }


def claimers(store: Store, items: list[str]) -> dict[str, tuple[int, str]]:
    """Who claimed each of these items (at most a page), and in which journal entry."""
    if not items:
        return {}
    query = sa.select(item_moves.c.item, item_moves.c.seq, item_moves.c.account).where(
        item_moves.c.item.in_(items[:PAGE_ROWS_MAX]), item_moves.c.action == "claim"
    )
    with store.reading() as connection:
        return {item: (int(seq), account) for item, seq, account in connection.execute(query)}
