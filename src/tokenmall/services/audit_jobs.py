"""The console's audit (审计): `audit verify` run in the background, and the journal read a page
at a time.

A verify is the same check as `tokenmall audit verify` (ledger/audit.verify, unchanged): it
replays the whole journal, so it costs CPU for as long as the ledger is big (about two minutes
per million entries). One runs at a time per server, in a child process watched by a daemon
thread; a second start while one runs gets the running one. Its progress is the number of
journal rows it has read, counted by a thin wrapper around the store that it reads through.

The journal pages read the `journal` table directly by its primary key (seq). Filters by op
and actor have no index (the op is inside the command's JSON), so a filtered page looks through
SCAN_ROWS_MAX entries at most and says where it stopped: a page never costs more than that.
"""

import contextlib
import json
import multiprocessing
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from tokenmall.core.fields import ID_FIELDS
from tokenmall.ledger.audit import AuditReport, verify
from tokenmall.ledger.schema import journal, ledger_meta
from tokenmall.ledger.store import FIRST_SEQ_MIN, JournalRow, Store
from tokenmall.ledger.views import open_reader
from tokenmall.services import queries

PAGE_ROWS = 100  # journal entries per page
SCAN_ROWS_MAX = 20_000  # entries a filtered page looks through before it stops and offers more
FILTER_CHARS_MAX = 80  # the op and actor filters (an actor column is 80 characters)
COUNT_EVERY = 1024  # journal rows between updates of a verify's progress
WATCH_EVERY_S = 0.25  # how often the watching thread copies the progress
CHILD_JOIN_S = 10.0
COMMAND_CHARS_SHOWN = 400  # of each command on the list (the entry page shows it all)
# The fields of a command that name accounts: their statement lines are the entry's changes.
ACCOUNT_FIELDS = ("user", "referrer", "merchant", "agent", "account", "from", "to")
assert set(ACCOUNT_FIELDS) <= ID_FIELDS
_ENTRY = re.compile(r"\bentr(?:y|ies) (\d+)")


# --- verify in the background ----------------------------------------------------------------


@dataclass
class VerifyJob:
    """One run of audit verify: who started it, how far it got, and what it found."""

    number: int
    started_by: str
    started_s: float
    entries_total: int  # the head's seq when it started: what 100 % is
    rows_read: int = 0
    finished_s: float | None = None
    report: AuditReport | None = None
    error: str | None = None  # it could not run at all (the store failed)

    @property
    def running(self) -> bool:
        return self.finished_s is None

    @property
    def percent(self) -> int:
        if not self.running:
            return 100
        if self.entries_total <= 0:
            return 0
        # Every row read, then the snapshots and the invariants: 99 % until the end.
        return min(99, self.rows_read * 100 // self.entries_total)

    @property
    def seconds(self) -> int:
        end = self.finished_s if self.finished_s is not None else time.time()
        return int(end - self.started_s)


class _CountingStore:
    """The store as verify sees it: every call passes through, and the journal rows it reads
    are counted into a number shared with the server (every COUNT_EVERY rows, and at the end)."""

    def __init__(self, store: Store, rows_read: Any) -> None:
        self._store = store
        self._rows_read = rows_read

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def journal_rows(self, connection: sa.Connection, after_seq: int = FIRST_SEQ_MIN) -> Any:
        shared, count = self._rows_read, 0
        for count, row in enumerate(self._store.journal_rows(connection, after_seq), start=1):
            if not count % COUNT_EVERY:
                shared.value = count
            yield row
        shared.value = count


def _verify_in_child(url: str, rows_read: Any, answer: Any) -> None:
    """The child process: audit verify on its own connection to the ledger, its progress in
    `rows_read`, its report (or why it could not run) sent back through `answer`."""
    try:
        store = open_reader(url)
        try:
            found: tuple[str, Any] = ("report", verify(_CountingStore(store, rows_read)))  # type: ignore[arg-type]
        finally:
            store.close()
    except Exception as error:  # the page says what went wrong
        found = ("error", f"{type(error).__name__}: {error}")
    with contextlib.suppress(BrokenPipeError):  # the server is gone: nobody to tell
        answer.send(found)


@dataclass
class VerifyRunner:
    """At most one verify at a time for this server, and the last one's result. The replay
    runs in a child process, so that it does not hold the server's GIL (measured: page renders
    went from 15 ms to a p95 of 270 ms with it in a thread); a daemon thread of the server
    watches it and copies its progress into the job."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    current: VerifyJob | None = None
    _count: int = 0

    def start(self, store: Store, started_by: str) -> tuple[VerifyJob, bool]:
        """Start a verify, or give the one running; True if it started."""
        with self._lock:
            if self.current is not None and self.current.running:
                return self.current, False
            with store.reading() as connection:
                head_seq, _hash = store.head(connection)
            self._count += 1
            job = VerifyJob(self._count, started_by, time.time(), head_seq)
            self.current = job
        thread = threading.Thread(
            target=self._watch,
            args=(store.url, job),
            name=f"audit-verify-{job.number}",
            daemon=True,
        )
        thread.start()
        return job, True

    @staticmethod
    def _watch(url: str, job: VerifyJob) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        rows_read = context.RawValue("q", 0)
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(
            target=_verify_in_child, args=(url, rows_read, sender), name="audit-verify", daemon=True
        )
        try:
            child.start()
            sender.close()  # the child holds its end: EOF here if it dies
            while not receiver.poll(WATCH_EVERY_S):
                job.rows_read = rows_read.value
            kind, found = receiver.recv()
            job.rows_read = rows_read.value
            if kind == "report":
                job.report = found
            else:
                job.error = found
        except EOFError:  # it died (killed, out of memory) before it could answer
            job.error = f"the verify process ended without a result (exit {child.exitcode})"
        except Exception as error:  # it could not start: the page says why
            job.error = f"{type(error).__name__}: {error}"
        finally:
            child.join(CHILD_JOIN_S)
            job.finished_s = time.time()


def broken_seq(report: AuditReport) -> int | None:
    """The first entry a failed verify names ("entry 7 does not match ...", "entries 5-9 are
    missing"), if it names one."""
    found = _ENTRY.search(report.problem or "")
    return int(found[1]) if found else None


# --- the journal -------------------------------------------------------------------------------


def chain(store: Store) -> dict[str, Any]:
    """The head (last seq and hash) and the chain's start (the genesis hash over the starting
    parameters, when it was made, and where SPEC v2 begins)."""
    with store.reading() as connection:
        head_seq, head_hash = store.head(connection)
        meta = connection.execute(
            sa.select(
                ledger_meta.c.chain_format,
                ledger_meta.c.genesis_hash,
                ledger_meta.c.created_at,
                ledger_meta.c.spec_v2_from,
            )
        ).first()
    return {
        "head_seq": head_seq,
        "head_hash": head_hash,
        "format": meta.chain_format if meta else "",
        "genesis_hash": meta.genesis_hash if meta else "",
        "created_at": meta.created_at if meta else "",
        "spec_v2_from": int(meta.spec_v2_from) if meta else 1,
    }


@dataclass(frozen=True)
class JournalPage:
    entries: list[dict[str, Any]]
    older: int | None  # `before` for the page before this one, if there is one
    newer: int | None  # `after` for the page after it
    # A filtered page that found fewer than PAGE_ROWS looked through these entries only (the
    # scan's bound): the cursors go on past them.
    looked_through: tuple[int, int] | None


def journal_page(
    store: Store,
    *,
    after: int | None = None,
    before: int | None = None,
    op: str = "",
    actor: str = "",
) -> JournalPage:
    """Up to PAGE_ROWS entries in seq order: the first ones after `after`, or else the last
    ones before `before` (the newest entries when neither is given), keeping those whose op is
    `op` and whose actor starts with `actor` (either empty: any). Seqs run 1, 2, ... without a
    gap, so a filtered page looks through a window of SCAN_ROWS_MAX seqs at most; the database
    does the filtering (a LIKE on each row of a primary-key range), Python confirms it."""
    op, actor = op[:FILTER_CHARS_MAX], actor[:FILTER_CHARS_MAX]
    forward = after is not None
    with store.reading() as connection:
        head_seq, _hash = store.head(connection)
        span = SCAN_ROWS_MAX if op or actor else head_seq  # unfiltered: PAGE_ROWS rows at most
        if after is not None:
            low, high = after, min(after + span, head_seq)  # the window: (low, high]
        else:
            high = head_seq if before is None else min(before - 1, head_seq)
            low = max(high - span, 0)
        rows = _window(connection, low, high, forward, op, actor)
    full = len(rows) == PAGE_ROWS
    if forward:
        newer = rows[-1].seq if full else high
        older = rows[0].seq if rows else low + 1
    else:
        older = rows[0].seq if full else low + 1
        newer = rows[-1].seq if rows else high
    bounded = (op or actor) and not full and (low > 0 if not forward else high < head_seq)
    return JournalPage(
        [_summary(row) for row in rows if _matches(row, op, actor)],
        older if older > 1 else None,
        newer if newer < head_seq else None,
        (low + 1, high) if bounded else None,
    )


def _window(
    connection: sa.Connection, low: int, high: int, forward: bool, op: str, actor: str
) -> list[JournalRow]:
    """The first (forward) or last PAGE_ROWS rows with low < seq <= high that may match, in
    seq order. The op is inside the command's canonical JSON (compact, keys sorted, no ASCII
    escaping: chain.canonical_command), so `"op":"<op>"` is in its text; SQLite's LIKE
    ignores ASCII case and a nested object may have an "op" too: _matches confirms."""
    query = sa.select(*(journal.c[name] for name in JournalRow._fields)).where(
        journal.c.seq > low, journal.c.seq <= high
    )
    if op:
        needle = '"op":' + json.dumps(op, ensure_ascii=False)
        query = query.where(journal.c.command.contains(needle, autoescape=True))
    if actor:
        query = query.where(journal.c.actor.startswith(actor, autoescape=True))
    order = journal.c.seq if forward else journal.c.seq.desc()
    rows = [JournalRow(*row) for row in connection.execute(query.order_by(order).limit(PAGE_ROWS))]
    return rows if forward else rows[::-1]


def _matches(row: JournalRow, op: str, actor: str) -> bool:
    if actor and not (row.actor or "").startswith(actor):
        return False
    return not op or _op_of(row.command) == op


def _op_of(command_text: str) -> str:
    try:
        command = json.loads(command_text)
    except ValueError:
        return ""
    op = command.get("op") if isinstance(command, dict) else None
    return op if isinstance(op, str) else ""


def _summary(row: JournalRow) -> dict[str, Any]:
    text = row.command
    return {
        "seq": row.seq,
        "recorded_at": row.recorded_at,
        "actor": row.actor or "",
        "op": _op_of(text),
        "outcome": row.outcome,
        "command": text if len(text) <= COMMAND_CHARS_SHOWN else text[:COMMAND_CHARS_SHOWN] + "…",
    }


def journal_entry(store: Store, seq: int) -> dict[str, Any] | None:
    """One entry: its command (pretty), outcome, hashes (its own and the one it chains from:
    the previous entry's, or the genesis hash for the first), and the balance changes of the
    accounts its command names, from their statements (None if there is no such entry)."""
    seq = min(seq, queries.SEQ_MAX)
    with store.reading() as connection:
        row = connection.execute(
            sa.select(*(journal.c[name] for name in JournalRow._fields)).where(journal.c.seq == seq)
        ).first()
        if row is None:
            return None
        entry = JournalRow(*row)
        head_seq, _head_hash = store.head(connection)
        previous = store.journal_hash(connection, seq - 1)
        if previous is None and seq == 1:
            meta = store.meta(connection)
            previous = meta.genesis_hash if meta else None
    try:
        command = json.loads(entry.command)
        pretty = json.dumps(command, indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        command, pretty = None, entry.command
    return {
        **_summary(entry),
        "command": pretty,
        "key": entry.idem_key,
        "hash": entry.hash,
        "previous_hash": previous,
        "head_seq": head_seq,
        "changes": _changes(store, seq, command) if isinstance(command, dict) else [],
    }


def _changes(store: Store, seq: int, command: dict[str, Any]) -> list[dict[str, Any]]:
    """The statement line at `seq` of each account the command names (a settlement's dividends
    to every holder are not listed: they are each consumer's own statement)."""
    named = []
    for name in ACCOUNT_FIELDS:
        value = command.get(name)
        if isinstance(value, str) and value not in named:
            named.append(value)
    changes = []
    for account in named:
        page = queries.statement(store, account, seq - 1, 1)
        lines = [] if page is None else [line for line in page["lines"] if line["seq"] == seq]
        if lines:
            changes.append({"account": account, "kind": page["kind"], **lines[0]})  # type: ignore[index]
    return changes
