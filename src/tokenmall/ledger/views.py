"""Read-only views of a ledger: its canonical state and its journal as JSONL. Readers take no
writer lock; each reads one consistent state of the database."""

import json
from collections.abc import Iterator
from typing import Any

from tokenmall.core.canonical import StateJson, canonical_state
from tokenmall.ledger.ledger import load_engine_from
from tokenmall.ledger.projections import balances_kind
from tokenmall.ledger.store import LedgerMeta, Store, StoreError


def open_reader(url: str) -> Store:
    store = Store(url, create=False)
    try:
        store.check_schema()
    except StoreError:
        store.close()
        raise
    return store


def read_state(store: Store) -> StateJson:
    """SPEC §7's canonical state. A rejected entry is listed in `errors` with its journal
    sequence number as its `line`: the line it has in `journal export`."""
    with store.reading() as connection:
        engine, *_ = load_engine_from(store, connection)
        errors = [{"line": seq, "code": code} for seq, code in store.rejected_entries(connection)]
    return canonical_state(engine, errors)


def read_meta(store: Store) -> LedgerMeta:
    with store.reading() as connection:
        meta = store.meta(connection)
    if meta is None:
        raise StoreError("the database holds no ledger")
    return meta


def export_lines(store: Store) -> Iterator[str]:
    """Every journal entry as one JSONL line, in order, with its idempotency key back in the
    "key" field and who submitted it in "actor": `replay` of these lines (which ignores fields
    no command has) gives the ledger's canonical state, errors included."""
    with store.reading() as connection:
        for row in store.journal_rows(connection):
            if row.idem_key is None and row.actor is None:
                yield row.command + "\n"
                continue
            command: dict[str, Any] = json.loads(row.command)
            for name, value in (("key", row.idem_key), ("actor", row.actor)):
                if value is not None:
                    command[name] = value
            text = json.dumps(command, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            yield text + "\n"


def account_kind(store: Store, account_id: str) -> str | None:
    """ "consumer", "merchant", "agent", or None for no such account. From the statements (an
    account's first line is its registration) when they cover the whole journal, else from
    the state."""
    with store.reading() as connection:
        if store.meta(connection) is None:
            return None
        if store.projected_seq(connection) >= store.head(connection)[0]:
            first = store.first_statement_line(connection, account_id)
            return None if first is None else balances_kind(first)
        engine, *_ = load_engine_from(store, connection)
    if account_id in engine.consumers:
        return "consumer"
    if account_id in engine.merchants:
        return "merchant"
    return "agent" if account_id in engine.agents else None
