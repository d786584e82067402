"""Read-only views of a ledger: its canonical state and its journal as JSONL. Readers take no
writer lock; each reads one consistent state of the database."""

import json
from collections.abc import Iterator
from typing import Any

from tokenmall.core.canonical import StateJson, canonical_state
from tokenmall.ledger.ledger import load_engine_from
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
    """Every journal entry as one JSONL line (its idempotency key back in the "key" field), in
    order: `replay` of these lines gives the ledger's canonical state, errors included."""
    with store.reading() as connection:
        for row in store.journal_rows(connection):
            if row.idem_key is None:
                yield row.command + "\n"
            else:
                command: dict[str, Any] = json.loads(row.command)
                command["key"] = row.idem_key
                yield (
                    json.dumps(command, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                    + "\n"
                )
