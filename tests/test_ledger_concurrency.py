"""Concurrency of the durable ledger, on both backends: many threads through one GroupCommitter,
the bounded queue, shutting down under load, store failures inside a batch, and several
`tokenmall ingest` processes racing for one database.

Nothing here is mocked. Where a test needs the writer thread at an exact point it holds it with a
SQLAlchemy event listener that only waits (`Gate`); the failures are the databases' own: a write
lock held by another connection (SQLite), backends terminated by the server (PostgreSQL), or a
trigger that refuses a row.
"""

import json
import re
import select
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from tests.support.workload import MixGenerator
from tokenmall.core.canonical import StateJson, canonical_state
from tokenmall.core.engine import Engine
from tokenmall.core.params import Params
from tokenmall.jsonl import replay_lines
from tokenmall.ledger.audit import verify
from tokenmall.ledger.chain import OUTCOME_OK, canonical_command
from tokenmall.ledger.group_commit import GroupCommitter, LedgerClosed
from tokenmall.ledger.ledger import IDEMPOTENCY_CONFLICT, Ledger, Result, Settings
from tokenmall.ledger.store import JournalRow, StoreError, resolve_url
from tokenmall.ledger.views import export_lines, open_reader, read_state

Command = dict[str, Any]
THREADS = 48
WAIT_S = 60.0
CLI_TIMEOUT_S = 120


# -- helpers: submitting from threads ---------------------------------------------------------


@dataclass
class Submitted:
    """One submission and what came of it."""

    command: Command
    key: str | None = None
    expect: str | None = None  # the outcome the rules must give, where it is certain
    result: Result | None = None
    error: BaseException | None = None

    def run(self, committer: GroupCommitter) -> None:
        try:
            self.result = committer.submit(self.command, self.key)
        except Exception as error:
            self.error = error

    @property
    def seq(self) -> int:
        assert self.result is not None and self.result.seq is not None
        return self.result.seq

    @property
    def entry(self) -> bool:
        """It made a journal entry of its own (not a key replay, not a key conflict)."""
        return self.result is not None and self.result.seq is not None and not self.result.replayed


def run_threads(targets: list[Callable[[], None]]) -> None:
    """Start every target at once (a barrier) and wait for all of them."""
    barrier = threading.Barrier(len(targets))
    failures: list[BaseException] = []

    def body(target: Callable[[], None]) -> None:
        try:
            barrier.wait(WAIT_S)
            target()
        except BaseException as error:  # a broken test thread must fail the test
            failures.append(error)

    threads = [threading.Thread(target=body, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
        assert not thread.is_alive(), "a submitter never returned"
    assert not failures, failures


def submit_in_thread(committer: GroupCommitter, submitted: Submitted) -> threading.Thread:
    thread = threading.Thread(target=submitted.run, args=(committer,))
    thread.start()
    return thread


def queued_is(committer: GroupCommitter, count: int) -> bool:
    return committer._queued == count


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


def rows_of(parameters: Any, executemany: bool) -> int:
    """Rows in one execution of an INSERT (a single row is one plain execute)."""
    return len(parameters) if executemany else 1


class BatchSizes:
    """Records how many entries each journal insert of a ledger carries (observation only)."""

    def __init__(self, ledger: Ledger) -> None:
        self.sizes: list[int] = []
        sa.event.listen(ledger.store.engine, "before_cursor_execute", self._note)

    def _note(
        self,
        _connection: sa.Connection,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        if statement.startswith("INSERT INTO journal"):
            self.sizes.append(rows_of(parameters, executemany))


@dataclass
class Hold:
    on_hold: Callable[[Any], None] | None
    reached: threading.Event = field(default_factory=threading.Event)
    proceed: threading.Event = field(default_factory=threading.Event)
    rows: int = 0


class Gate:
    """Holds the writer thread just before the journal insert of a chosen batch, inside the
    batch's transaction: the batch's commands are applied in memory, nothing is written yet."""

    def __init__(self, ledger: Ledger) -> None:
        self._lock = threading.Lock()
        self._next: Hold | None = None
        sa.event.listen(ledger.store.engine, "before_cursor_execute", self._hook)

    def hold_next(self, on_hold: Callable[[Any], None] | None = None) -> Hold:
        """Hold the next batch; `on_hold(dbapi_cursor)` runs in the writer thread first."""
        hold = Hold(on_hold)
        with self._lock:
            self._next = hold
        return hold

    def _hook(
        self,
        _connection: sa.Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        if not statement.startswith("INSERT INTO journal"):
            return
        with self._lock:
            hold, self._next = self._next, None
        if hold is None:
            return
        hold.rows = rows_of(parameters, executemany)
        if hold.on_hold is not None:
            hold.on_hold(cursor)
        hold.reached.set()
        hold.proceed.wait(WAIT_S)


# -- helpers: what the store holds ------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    state: StateJson  # read_state
    exported: StateJson  # replay_lines of export_lines
    recomputed: StateJson  # every journal command applied afresh to a new engine
    errors: list[dict[str, Any]]
    rows: list[JournalRow]


def read_store(db_url: str) -> Stored:
    store = open_reader(resolve_url(db_url))
    try:
        state = read_state(store)
        exported = replay_lines(
            (line.removesuffix("\n").encode() for line in export_lines(store)), Params()
        )
        with store.reading() as connection:
            rows = list(store.journal_rows(connection))
    finally:
        store.close()
    engine = Engine(Params())
    errors: list[dict[str, Any]] = []
    for row in rows:
        code = engine.try_apply(json.loads(row.command))
        if code is not None:
            errors.append({"line": row.seq, "code": str(code)})
    return Stored(state, exported, canonical_state(engine, errors), errors, rows)


def memory_state(ledger: Ledger, errors: list[dict[str, Any]]) -> StateJson:
    return canonical_state(ledger.engine, errors)


def check_consistent(db_url: str, ledger: Ledger) -> Stored:
    """The store's state by every route, the writer's in-memory state, a reopened writer's state
    and the audit all agree; `ledger` is closed afterwards."""
    stored = read_store(db_url)
    assert stored.state == stored.exported == stored.recomputed
    assert memory_state(ledger, stored.errors) == stored.state
    assert (ledger.head_seq, ledger.head_hash) == (len(stored.rows), stored.rows[-1].hash)
    ledger.close()
    with Ledger.open(db_url, Settings()) as reopened:
        assert memory_state(reopened, stored.errors) == stored.state
        assert reopened.head_seq == len(stored.rows)
    store = open_reader(resolve_url(db_url))
    try:
        report = verify(store)
    finally:
        store.close()
    assert report.ok, report.problem
    assert report.entries == len(stored.rows)
    return stored


def check_entries(submitted: list[Submitted], rows: list[JournalRow]) -> None:
    """Every acknowledged command is the journal entry it was told, none is lost or doubled."""
    entries = [s for s in submitted if s.entry]
    seqs = [s.seq for s in entries]
    assert sorted(seqs) == [row.seq for row in rows] == list(range(1, len(rows) + 1))
    by_seq = {row.seq: row for row in rows}
    for s in entries:
        assert s.result is not None and s.result.seq is not None
        row = by_seq[s.result.seq]
        assert row.command == canonical_command(s.command)
        assert row.idem_key == s.key
        assert row.outcome == s.result.outcome


# -- many threads, one committer --------------------------------------------------------------


def thread_plan(t: int) -> list[Submitted]:
    """Thread t registers its own consumers and orders; with keys, key replays, a key reused for
    another command, commands the rules reject, and a registration shared with thread t ^ 1."""

    def user(j: int) -> str:
        return f"t{t:02d}u{j}"

    def order(k: int, amount: str, buyer: str) -> Command:
        return {"op": "order", "id": f"t{t:02d}o{k}", "user": buyer, "amount": amount}

    pair = f"pair{t // 2}"
    plan = [
        Submitted({"op": "register", "user": pair}, f"pair-{t // 2}", OUTCOME_OK),
        Submitted({"op": "register", "user": user(0)}, None, OUTCOME_OK),
        Submitted({"op": "register", "user": user(1), "referrer": user(0)}, f"t{t}-r", OUTCOME_OK),
        Submitted({"op": "register", "user": user(2), "referrer": pair}, None, OUTCOME_OK),
        Submitted({"op": "register", "user": user(0)}, None, "duplicate_account"),
        Submitted(order(90, "10.00", f"t{t:02d}nobody"), None, "unknown_user"),
    ]
    for k in range(9):
        command = order(k, f"{10 + k}.{t:02d}", user(k % 3))
        key = f"t{t}-o{k}" if k % 3 == 0 else None
        plan.append(Submitted(command, key, OUTCOME_OK))
        if key is not None:  # the same command with the same key: its first result, no effect
            plan.append(Submitted(dict(command), key, OUTCOME_OK))
    plan += [
        Submitted(order(0, "1.00", user(1)), None, "duplicate_order"),
        Submitted(order(91, "-1", user(1)), None, "invalid_amount"),
        Submitted(order(92, "5.00", user(1)), f"t{t}-o0", IDEMPOTENCY_CONFLICT),
        Submitted({"op": "sell", "user": user(0), "points": "all"}),
        Submitted({"op": "convert", "user": user(1), "points": "0.00000001"}),
    ]
    if t % 16 == 0:
        plan.append(Submitted({"op": "settle_day"}))
    return plan


def test_many_threads_through_one_committer(db_url: str) -> None:
    ledger = Ledger.open(db_url, Settings(batch_max=64, snapshot_every=400))
    sizes = BatchSizes(ledger)
    committer = GroupCommitter(ledger)
    plans = [thread_plan(t) for t in range(THREADS)]
    reads: list[int] = []
    read_failures: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def reader() -> None:  # readers take no lock and always see one consistent state
        try:
            while writing.is_set():
                store = open_reader(resolve_url(db_url))
                try:
                    report = verify(store)
                    assert report.ok, report.problem
                    read_state(store)
                finally:
                    store.close()
                reads.append(report.entries)
        except BaseException as error:
            read_failures.append(error)

    def submitter(plan: list[Submitted]) -> Callable[[], None]:
        def body() -> None:
            for submitted in plan:
                submitted.run(committer)

        return body

    reading = threading.Thread(target=reader)
    reading.start()
    try:
        run_threads([submitter(plan) for plan in plans])
    finally:
        writing.clear()
        reading.join(WAIT_S)
        committer.close()
    assert not read_failures, read_failures
    assert reads, "the reader never completed a read"
    assert reads == sorted(reads)  # each read saw at least what the one before saw

    submitted = [s for plan in plans for s in plan]
    for s in submitted:
        assert s.error is None, (s.command, s.key, s.error)
        assert s.result is not None
        if s.expect is not None:
            assert s.result.outcome == s.expect, (s.command, s.key, s.result)

    stored = check_consistent(db_url, ledger)
    rows = stored.rows
    check_entries(submitted, rows)
    replays = [s for s in submitted if s.result is not None and s.result.replayed]
    conflicts = [s for s in submitted if s.result is not None and s.result.seq is None]
    assert len(rows) == len(submitted) - len(replays) - len(conflicts)
    assert len(conflicts) == THREADS
    assert len(replays) == THREADS * 3 + THREADS // 2
    first_of = {s.key: s for s in submitted if s.entry and s.key is not None}
    for s in replays:  # a replay answers with the first submission's entry and outcome
        assert s.key is not None and s.result is not None
        first = first_of[s.key]
        assert first.result is not None
        assert (s.result.seq, s.result.outcome) == (first.result.seq, first.result.outcome)
        assert canonical_command(first.command) == canonical_command(s.command)
    for p in range(THREADS // 2):  # two threads, one key, at the same moment: one entry
        pair = [plans[2 * p][0], plans[2 * p + 1][0]]
        assert sorted(s.entry for s in pair) == [False, True]
        assert pair[0].result is not None and pair[1].result is not None
        assert pair[0].result.seq == pair[1].result.seq
    for plan in plans:  # each thread's entries are in the journal in the order it submitted
        seqs = [s.seq for s in plan if s.entry]
        assert seqs == sorted(seqs)
    assert len(stored.state["users"]) == THREADS * 3 + THREADS // 2

    assert committer.batches >= len(sizes.sizes)  # a batch of key replays only inserts nothing
    assert committer.batches < len(submitted)  # commands really were grouped
    assert max(sizes.sizes) > 1
    assert max(sizes.sizes) <= 64  # batch_max


def test_a_bounded_queue_completes_every_submission_under_load(db_url: str) -> None:
    ledger = Ledger.open(db_url, Settings())
    sizes = BatchSizes(ledger)
    committer = GroupCommitter(ledger, queue_max=4)
    threads, per_thread = 32, 12
    plans = [
        [Submitted({"op": "register", "user": f"q{t}u{i}"}, None, OUTCOME_OK) for i in range(3)]
        + [
            Submitted(
                {"op": "order", "id": f"q{t}o{i}", "user": f"q{t}u{i % 3}", "amount": "12.34"},
                f"q{t}-{i}" if i % 2 else None,
                OUTCOME_OK,
            )
            for i in range(per_thread - 3)
        ]
        for t in range(threads)
    ]
    longest: list[int] = [0]
    sampling = threading.Event()
    sampling.set()

    def sample() -> None:
        while sampling.is_set():
            longest[0] = max(longest[0], committer._queued)
            time.sleep(0.0005)

    def submitter(plan: list[Submitted]) -> Callable[[], None]:
        def body() -> None:
            for submitted in plan:
                submitted.run(committer)

        return body

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run_threads([submitter(plan) for plan in plans])
    finally:
        sampling.clear()
        sampler.join()
        committer.close()
    submitted = [s for plan in plans for s in plan]
    assert all(s.result is not None and s.result.outcome == s.expect for s in submitted)
    assert all(s.entry for s in submitted)
    stored = check_consistent(db_url, ledger)
    check_entries(submitted, stored.rows)
    assert len(stored.rows) == threads * per_thread
    assert longest[0] <= 4
    assert max(sizes.sizes) == 4  # the queue filled up (back-pressure), and never beyond
    assert committer.batches == len(sizes.sizes) >= threads * per_thread // 4


def test_close_under_load_commits_what_was_queued_and_refuses_the_rest(db_url: str) -> None:
    ledger = Ledger.open(db_url, Settings())
    committer = GroupCommitter(ledger, queue_max=8)
    threads = 32
    done: list[list[Submitted]] = [[] for _ in range(threads)]
    acknowledged = threading.Semaphore(0)

    def submitter(t: int) -> Callable[[], None]:
        def body() -> None:
            for i in range(10_000):
                submitted = Submitted({"op": "register", "user": f"c{t}u{i}"}, None, OUTCOME_OK)
                done[t].append(submitted)
                submitted.run(committer)
                if submitted.error is not None:
                    return
                acknowledged.release()

        return body

    def closer() -> None:
        for _ in range(300):
            acknowledged.acquire(timeout=WAIT_S)
        committer.close()

    run_threads([*(submitter(t) for t in range(threads)), closer])
    assert not committer._thread.is_alive()
    submitted: list[Submitted] = []
    for attempts in done:
        *accepted, last = attempts
        assert isinstance(last.error, LedgerClosed), last.error  # each thread stopped there
        assert all(s.error is None and s.result is not None for s in accepted)
        assert all(s.result.outcome == OUTCOME_OK for s in accepted if s.result is not None)
        submitted += accepted
    with pytest.raises(LedgerClosed):
        committer.submit({"op": "register", "user": "late"})
    stored = check_consistent(db_url, ledger)
    check_entries(submitted, stored.rows)  # acknowledged = committed; refused = absent
    assert len(stored.rows) == len(submitted) >= 300


# -- a store failure inside a batch -----------------------------------------------------------


@dataclass
class Fault:
    inject: Callable[[], None]
    remove: Callable[[], None]
    on_hold: Callable[[Any], None] | None = None


def is_sqlite(db_url: str) -> bool:
    return resolve_url(db_url).startswith("sqlite")


def sqlite_path(db_url: str) -> str:
    database = sa.make_url(resolve_url(db_url)).database
    assert database is not None
    return database


def write_lock_fault(db_url: str) -> Fault:
    """SQLite: another connection holds the write lock; the writer gives up after its busy
    timeout (shortened from 5 s to 0.2 s on the writer's connection to keep the test quick)."""
    blocker = sqlite3.connect(sqlite_path(db_url), isolation_level=None, timeout=WAIT_S)

    def inject() -> None:
        blocker.execute("BEGIN IMMEDIATE")

    def remove() -> None:
        blocker.execute("ROLLBACK")
        blocker.close()

    def shorten_busy_timeout(cursor: Any) -> None:  # runs in the writer thread
        cursor.connection.execute("PRAGMA busy_timeout = 200")

    return Fault(inject, remove, shorten_busy_timeout)


def terminate_fault(db_url: str) -> Fault:
    """PostgreSQL: the server terminates every connection of the writer, the one that holds the
    writer lock (and does the writes) included, as an administrator or a failover would."""

    def inject() -> None:
        with psycopg.connect(db_url, autocommit=True) as admin:
            terminated = admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            ).fetchone()
        assert terminated is not None and terminated[0] >= 1

    return Fault(inject, lambda: None)


def refuse_rows(db_url: str, table: str, condition: str, message: str) -> None:
    """A trigger by which the database itself refuses rows of `table` matching `condition`."""
    if is_sqlite(db_url):
        with closing(sqlite3.connect(sqlite_path(db_url), isolation_level=None)) as connection:
            connection.execute(
                f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} WHEN {condition} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        return
    with psycopg.connect(db_url, autocommit=True) as connection:
        connection.execute(
            f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$"
        )
        connection.execute(
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW "
            f"WHEN ({condition}) EXECUTE FUNCTION refuse_{table}()"
        )


def drop_refusal(db_url: str, table: str) -> None:
    if is_sqlite(db_url):
        with closing(sqlite3.connect(sqlite_path(db_url), isolation_level=None)) as connection:
            connection.execute(f"DROP TRIGGER refuse_{table}")
        return
    with psycopg.connect(db_url, autocommit=True) as connection:
        connection.execute(f"DROP TRIGGER refuse_{table} ON {table}")


def fail_one_batch(
    ledger: Ledger, committer: GroupCommitter, followers: list[Submitted], fault: Fault
) -> Submitted:
    """Commit a lead command alone while `followers` queue up behind it in order, then let the
    followers' batch (all of them, one transaction) meet the fault. Returns the lead."""
    gate = Gate(ledger)
    first = gate.hold_next()
    lead = Submitted({"op": "register", "user": "lead"}, None, OUTCOME_OK)
    threads = [submit_in_thread(committer, lead)]
    assert first.reached.wait(WAIT_S)
    for count, submitted in enumerate(followers, 1):  # enqueued in exactly this order
        threads.append(submit_in_thread(committer, submitted))
        wait_until(partial(queued_is, committer, count), "the follower is queued")
    second = gate.hold_next(fault.on_hold)
    first.proceed.set()
    assert second.reached.wait(WAIT_S)
    assert second.rows == len(followers)  # one batch holds every follower
    fault.inject()
    second.proceed.set()
    for thread in threads:
        thread.join(WAIT_S)
    fault.remove()
    return lead


def followers_of(tag: str, count: int) -> list[Submitted]:
    registrations = [
        Submitted({"op": "register", "user": f"{tag}{i}"}, f"{tag}-{i}" if i % 2 else None)
        for i in range(count // 2)
    ]
    orders = [
        Submitted({"op": "order", "id": f"{tag}o{i}", "user": f"{tag}{i}", "amount": "20.00"})
        for i in range(count - count // 2)
    ]
    return registrations + orders


def check_failed_batch(
    db_url: str, ledger: Ledger, committer: GroupCommitter, lead: Submitted, failed: list[Submitted]
) -> None:
    """Every waiter of the failed batch got the same exception and nothing of the batch stayed,
    in the store or in memory; the ledger goes on, and the same commands then succeed."""
    assert lead.result is not None and lead.result.outcome == OUTCOME_OK
    assert all(s.result is None and s.error is not None for s in failed)
    # One batch, one failure: each waiter raises its own exception, caused by the same one.
    assert len({id(s.error.__cause__) for s in failed if s.error is not None}) == 1
    stored = read_store(db_url)
    assert [row.command for row in stored.rows] == [canonical_command(lead.command)]
    assert memory_state(ledger, stored.errors) == stored.state  # nothing half-applied
    assert ledger.head_seq == 1
    retried = [Submitted(s.command, s.key, OUTCOME_OK) for s in failed]
    registrations = [s for s in retried if s.command["op"] == "register"]
    run_threads([partial(s.run, committer) for s in registrations])  # then their orders
    run_threads([partial(s.run, committer) for s in retried if s not in registrations])
    committer.close()
    for s in retried:  # e.g. no duplicate_account: the failed registrations left no trace
        assert s.result is not None and s.result.outcome == OUTCOME_OK, (s.command, s.result)
        assert not s.result.replayed
    stored = check_consistent(db_url, ledger)
    check_entries([lead, *retried], stored.rows)


def test_a_store_failure_fails_every_waiter_of_its_batch_and_nothing_else(db_url: str) -> None:
    ledger = Ledger.open(db_url, Settings(snapshot_every=1_000_000))
    committer = GroupCommitter(ledger)
    fault = write_lock_fault(db_url) if is_sqlite(db_url) else terminate_fault(db_url)
    followers = followers_of("f", 24)
    lead = fail_one_batch(ledger, committer, followers, fault)
    expected = "database is locked" if is_sqlite(db_url) else "terminat|server closed"
    assert re.search(expected, str(followers[0].error)), followers[0].error
    check_failed_batch(db_url, ledger, committer, lead, followers)


def test_a_row_refused_mid_batch_takes_back_the_whole_batch(db_url: str) -> None:
    ledger = Ledger.open(db_url, Settings(snapshot_every=1_000_000))
    committer = GroupCommitter(ledger)
    refuse_rows(db_url, "journal", "NEW.command LIKE '%poison%'", "refused by the store")
    followers = followers_of("p", 24)
    poison = Submitted({"op": "register", "user": "poison"})
    followers.insert(15, poison)  # rows before it are inserted, then the insert fails
    lead = fail_one_batch(ledger, committer, followers, Fault(lambda: None, lambda: None))
    assert "refused by the store" in str(poison.error)
    drop_refusal(db_url, "journal")
    followers.remove(poison)
    check_failed_batch(db_url, ledger, committer, lead, [*followers, poison])


def test_a_store_failure_reaches_the_submitter_as_store_error(db_url: str) -> None:
    ledger = Ledger.open(db_url, Settings())
    refuse_rows(db_url, "journal", "NEW.command LIKE '%poison%'", "refused by the store")
    try:
        with GroupCommitter(ledger) as committer, pytest.raises(StoreError):
            committer.submit({"op": "register", "user": "poison"})
    finally:
        ledger.close()


def test_a_failed_snapshot_does_not_fail_commands_that_committed(db_url: str) -> None:
    ledger = Ledger.open(db_url, Settings(snapshot_every=1))
    committer = GroupCommitter(ledger)
    refuse_rows(db_url, "snapshots", "1 = 1", "no room for snapshots")
    submitted = [Submitted({"op": "register", "user": f"s{i}"}, None, OUTCOME_OK) for i in range(4)]
    for s in submitted:
        s.run(committer)
    committer.close()
    stored = read_store(db_url)
    ledger.close()
    journaled = {row.command for row in stored.rows}
    for s in submitted:
        # An exception must mean "not committed": a client that retries without a key would
        # otherwise apply its command twice.
        committed = canonical_command(s.command) in journaled
        assert (s.error is None) == committed, (s.command, s.error)


def test_a_writer_that_lost_its_postgresql_lock_stops_writing(postgres_url: str) -> None:
    """Writes go through the session that holds the advisory lock. When that session dies (a
    network blip), the writer cannot commit; while another writer holds the lock it stays
    refused; once the lock is free it takes it again and reloads, so it continues from the other
    writer's entries instead of forking the chain."""
    first = Ledger.open(postgres_url, Settings())
    with GroupCommitter(first) as committer:
        assert committer.submit({"op": "register", "user": "x"}).ok
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            # Only this test's database: the server may hold other programs' advisory locks.
            lost = admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks "
                "WHERE locktype = 'advisory' "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchall()
        assert lost == [(True,)]
        second = Ledger.open(postgres_url, Settings())  # the lock is free: it gets it
        with GroupCommitter(second) as other:
            assert other.submit({"op": "register", "user": "y"}).ok
            for user in ("z0", "z1"):  # the dead session, then the lock held by `second`
                with pytest.raises(StoreError):
                    committer.submit({"op": "register", "user": user})
        second.close()
        result = committer.submit({"op": "register", "user": "z2"})
        assert result.ok and result.seq == 3
        assert set(first.engine.consumers) == {"x", "y", "z2"}
    first.close()
    store = open_reader(resolve_url(postgres_url))
    try:
        assert verify(store).ok
        assert set(read_state(store)["users"]) == {"x", "y", "z2"}
    finally:
        store.close()


# -- several ingest processes on one database -------------------------------------------------

LOCK_MESSAGE = b"another tokenmall writer"
PAUSE_PROGRAM = """
import os, sys, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
prefix, release = sys.argv[1].upper(), sys.argv[2]
@event.listens_for(Engine, "after_cursor_execute")
def _pause(conn, cursor, statement, parameters, context, executemany):
    global prefix
    if prefix and statement.lstrip().upper().startswith(prefix):
        prefix = ""
        os.write(1, b"PAUSED\\n")
        while not os.path.exists(release):
            time.sleep(0.01)
from tokenmall.cli import main
sys.argv = ["tokenmall", *sys.argv[3:]]
main()
"""


def tokenmall(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", *map(str, args)],
        capture_output=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def start_ingest(path: Path, db_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tokenmall.cli", "ingest", str(path), "--db", db_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def write_file(directory: Path, name: str, seed: int, count: int) -> list[str]:
    """A MixGenerator file whose accounts and orders are this file's own; returns its lines as
    `journal export` prints them."""
    prefix = f"{name}-"
    lines: list[str] = []
    for number, command in enumerate(MixGenerator(200, seed).commands(count)):
        line = {
            field: prefix + value
            if field in ("user", "referrer", "merchant", "id", "order")
            else value
            for field, value in command.items()
        }
        if number % 5 == 0:
            line["key"] = f"{prefix}{number}"
        lines.append(json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    (directory / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def assert_lost_the_lock(process: subprocess.Popen[bytes], holder: int | None = None) -> None:
    stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
    assert process.returncode == 2, (stdout, stderr)
    assert stdout == b""
    assert stderr.count(b"\n") == 1 and LOCK_MESSAGE in stderr, stderr
    if holder is not None:
        assert f"(pid {holder})".encode() in stderr, stderr


def test_concurrent_ingest_processes_take_turns_as_the_one_writer(
    db_url: str, tmp_path: Path
) -> None:
    names = ["a", "b", "c"]
    files = {name: write_file(tmp_path, name, seed, 4_000) for seed, name in enumerate(names)}
    files["d"] = write_file(tmp_path, "d", 9, 1_000)

    # 1. Three ingests start together on a ledger that does not exist yet; the losers are
    # refused (never blocked, never half-started) and retried until each has had its turn.
    pending = list(names)
    rounds = 0
    while pending:
        rounds += 1
        assert rounds <= 40, "the ingests never all got their turn"
        processes = {name: start_ingest(tmp_path / f"{name}.jsonl", db_url) for name in pending}
        pending = []
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
            if process.returncode == 0:
                assert b" 0 done by an earlier run; journal head: entry" in stdout
                continue
            assert process.returncode == 2 and LOCK_MESSAGE in stderr, (stdout, stderr)
            assert stderr.count(b"\n") == 1
            pending.append(name)
        time.sleep(0.05)

    # 2. While one writer holds the ledger (held inside its first batch), every other ingest
    # is refused with exit status 2 and a message naming the other writer.
    release = tmp_path / "release"
    ingest_d = ["ingest", str(tmp_path / "d.jsonl"), "--db", db_url, "--batch-size", "100"]
    holder = subprocess.Popen(
        [sys.executable, "-c", PAUSE_PROGRAM, "INSERT INTO journal", str(release), *ingest_d],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert holder.stdout is not None
    ready, _, _ = select.select([holder.stdout], [], [], WAIT_S)
    assert ready and holder.stdout.readline() == b"PAUSED\n", holder.communicate()
    losers = [start_ingest(tmp_path / f"{name}.jsonl", db_url) for name in [*names, "d"]]
    for loser in losers:
        assert_lost_the_lock(loser, holder.pid if is_sqlite(db_url) else None)
    release.touch()
    stdout, stderr = holder.communicate(timeout=CLI_TIMEOUT_S)
    assert holder.returncode == 0, stderr
    again = tokenmall("ingest", tmp_path / "a.jsonl", "--db", db_url)  # nothing left to do
    assert again.returncode == 0, again.stderr
    assert b": 0 applied, 0 rejected by the rules" in again.stdout

    # The journal is each file whole, one after another: no two writers ever interleaved.
    export = tokenmall("journal", "export", "--db", db_url)
    assert export.returncode == 0, export.stderr
    # each line as the file had it: without the "actor" the export adds (the ingest's user)
    exported = [
        json.dumps(
            {k: v for k, v in json.loads(line).items() if k != "actor"},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        for line in export.stdout.decode("utf-8").splitlines()
    ]
    assert len(exported) == sum(len(lines) for lines in files.values())
    blocks: list[str] = []
    offset = 0
    while offset < len(exported):
        name = next(n for n, lines in files.items() if exported[offset] == lines[0])
        assert exported[offset : offset + len(files[name])] == files[name]
        blocks.append(name)
        offset += len(files[name])
    assert sorted(blocks[:3]) == names and blocks[3] == "d"

    exported_file = tmp_path / "export.jsonl"
    exported_file.write_bytes(export.stdout)
    state = tokenmall("state", "--db", db_url)
    replayed = tokenmall("replay", exported_file)
    assert state.returncode == replayed.returncode == 0
    assert state.stdout == replayed.stdout
    audit = tokenmall("audit", "verify", "--db", db_url)
    assert audit.returncode == 0, audit.stdout


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    stray = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not stray, f"threads left running: {stray}"
