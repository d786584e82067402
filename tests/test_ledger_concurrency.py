"""Concurrency of the durable ledger, on both backends, through the writer `tokenmall serve`
runs (ledger/writer.py: the ledger in a process of its own, fed by coroutines on one event loop
through a pipe): many concurrent clients and group commit, closing and kill -9 under load, a
store failure inside a batch, a failed snapshot, a writer that lost its PostgreSQL lock; and
several `tokenmall ingest` processes racing for one database.

Nothing here is mocked. Batches are formed as the server forms them: a command goes to the
writer at once if nothing is in flight, else it queues for the next message. The failures are
the databases' own (a trigger that refuses a row, a backend terminated by the server) or the
operating system's (SIGKILL).
"""

import asyncio
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from tests.support.workload import MixGenerator
from tests.support.writer_queries import WRITER_QUERIES
from tokenmall.core.canonical import StateJson, canonical_state
from tokenmall.core.engine import Engine
from tokenmall.core.params import Params
from tokenmall.jsonl import replay_lines
from tokenmall.ledger.audit import verify
from tokenmall.ledger.chain import OUTCOME_OK, canonical_command
from tokenmall.ledger.ledger import IDEMPOTENCY_CONFLICT, Ledger, Result, Settings, Submission
from tokenmall.ledger.store import JournalRow, StoreError, resolve_url
from tokenmall.ledger.views import export_lines, open_reader, read_state
from tokenmall.ledger.writer import LedgerClosed, WriterClient, WriterStopped

Command = dict[str, Any]
CLIENTS = 48
BURST = 200  # commands sent at once: more than a batch of 64 holds
WAIT_S = 60.0
CLI_TIMEOUT_S = 120


# -- helpers: submitting through the writer ---------------------------------------------------


@dataclass
class Submitted:
    """One submission and what came of it."""

    command: Command
    key: str | None = None
    expect: str | None = None  # the outcome the rules must give, where it is certain
    result: Result | None = None
    error: BaseException | None = None

    async def run(self, client: WriterClient) -> None:
        try:
            self.result = await client.submit(Submission.of(self.command, self.key))
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


@asynccontextmanager
async def running_writer(
    db_url: str, settings: Settings | None = None
) -> AsyncIterator[WriterClient]:
    """A writer process on `db_url` and its client in this event loop, as `tokenmall serve` has
    them; closed at the end, unless the test closed it (what was submitted commits, then the
    process exits)."""
    client = WriterClient(db_url, settings, queries=WRITER_QUERIES)
    client.attach()
    try:
        yield client
    finally:
        if not client._closing:
            await client.close()


async def one_by_one(client: WriterClient, plan: list[Submitted]) -> None:
    """A client that waits for each answer before it sends its next command."""
    for submitted in plan:
        await submitted.run(client)


async def all_at_once(client: WriterClient, submitted: list[Submitted]) -> None:
    await asyncio.gather(*(s.run(client) for s in submitted))


def failed_in_the_store(submitted: Submitted) -> bool:
    """Refused with the writer's StoreError (not WriterStopped: the writer is alive)."""
    return submitted.result is None and type(submitted.error) is StoreError


# -- helpers: what the store holds ------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    state: StateJson  # read_state
    exported: StateJson  # replay_lines of export_lines
    recomputed: StateJson  # every journal command applied afresh to a new engine
    errors: list[dict[str, Any]]
    rows: list[JournalRow]


def read_store(db_url: str) -> Stored:
    """The store's state by every route, which must agree."""
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
    stored = Stored(state, exported, canonical_state(engine, errors), errors, rows)
    assert stored.state == stored.exported == stored.recomputed
    return stored


async def writer_agrees(client: WriterClient, db_url: str) -> Stored:
    """What the store holds, and the running writer's engine in memory is the same state."""
    stored = read_store(db_url)
    assert await client.query("engine_state", stored.errors) == stored.state
    assert client.head_seq == len(stored.rows)
    return stored


def reopen(db_url: str) -> Ledger:
    """A new writer of the ledger. On PostgreSQL the server releases a killed writer's lock once
    it notices that its session is gone: a moment, not always at once."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return Ledger.open(db_url, Settings())
        except StoreError as error:
            if "another tokenmall writer" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def check_reopened(db_url: str, stored: Stored) -> None:
    """After the writer stopped: a new writer loads the stored state, and the audit passes."""
    with reopen(db_url) as reopened:
        assert canonical_state(reopened.engine, stored.errors) == stored.state
        assert reopened.head_seq == len(stored.rows)
    store = open_reader(resolve_url(db_url))
    try:
        report = verify(store)
    finally:
        store.close()
    assert report.ok, report.problem
    assert report.entries == len(stored.rows)


def check_entries(
    submitted: list[Submitted], rows: list[JournalRow], unanswered: Sequence[Submitted] = ()
) -> None:
    """Every acknowledged command is the journal entry it was told, none is lost or doubled; any
    other entry is one of `unanswered` (sent, never answered: it may have committed), once."""
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    entries = [s for s in submitted if s.entry]
    assert len({s.seq for s in entries}) == len(entries)
    by_seq = {row.seq: row for row in rows}
    for s in entries:
        row = by_seq[s.seq]
        assert row.command == canonical_command(s.command)
        assert row.idem_key == s.key
        assert s.result is not None and row.outcome == s.result.outcome
    acknowledged = {s.seq for s in entries}
    others = Counter(row.command for row in rows if row.seq not in acknowledged)
    assert set(others) <= {canonical_command(s.command) for s in unanswered}, others
    assert all(count == 1 for count in others.values()), others


# -- many clients, one writer, until it stops -------------------------------------------------


def client_plan(t: int) -> list[Submitted]:
    """Client t registers its own consumers and orders; with keys, key replays, a key reused for
    another command, commands the rules reject, and a registration shared with client t ^ 1."""

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


async def first_act(
    client: WriterClient,
    db_url: str,
    plans: list[list[Submitted]],
    burst: list[Submitted],
    gone: Submitted,
) -> Stored:
    """Every plan's client at once, each waiting for each answer; the burst sent at once; and a
    registration whose request is cancelled while it waits."""
    everyone = [asyncio.create_task(one_by_one(client, plan)) for plan in plans]
    everyone.append(asyncio.create_task(all_at_once(client, burst)))
    cancelled = asyncio.create_task(gone.run(client))
    await asyncio.sleep(0)  # every task has sent or queued its first command
    cancelled.cancel()  # as when an HTTP client goes away: the command may still commit
    await asyncio.gather(*everyone)
    assert cancelled.cancelled()
    return await writer_agrees(client, db_url)


async def until_stopped(client: WriterClient, stop: str, clients: int) -> list[list[Submitted]]:
    """`clients` clients register consumers one at a time until the writer stops: closed, or
    killed, once 300 of their commands were acknowledged. Each client's attempts, in order."""
    done: list[list[Submitted]] = [[] for _ in range(clients)]
    acknowledged = 0
    enough = asyncio.Event()

    async def submitter(t: int) -> None:
        nonlocal acknowledged
        for i in range(10_000):
            submitted = Submitted({"op": "register", "user": f"c{t}u{i}"}, None, OUTCOME_OK)
            done[t].append(submitted)
            await submitted.run(client)
            if submitted.error is not None:
                return
            acknowledged += 1
            if acknowledged == 300:
                enough.set()

    async def stopper() -> None:
        await enough.wait()
        if stop == "close":
            await client.close()
        else:
            pid = client._process.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)  # kill -9, mid-load

    await asyncio.gather(stopper(), *(submitter(t) for t in range(clients)))
    return done


@pytest.mark.parametrize(("backend", "stop"), [("sqlite", "close"), ("postgresql", "kill")])
def test_many_clients_through_the_writer_until_it_stops(
    request: pytest.FixtureRequest, backend: str, stop: str
) -> None:
    """One writer, two acts, a reader in another connection all along.

    First, 48 clients at once, each waiting for each answer; a burst of 200 commands sent at
    once (more than a batch holds); a request cancelled while its command waits. Commands are
    grouped, each gets its own result, key replays and conflicts are answered as such (two
    clients with one key at the same moment: one entry), each client's entries are in its
    order, and the writer's memory is the stored state.

    Then 32 clients submit until the writer stops, once 300 more commands were acknowledged:
    closed as at SIGTERM (the SQLite run) or killed with SIGKILL (the PostgreSQL run). Closing
    commits everything sent or queued and refuses what comes after (LedgerClosed); a kill fails
    every unanswered command (WriterStopped), and the batch in flight may or may not have
    committed. (kill -9 at every point of a commit, on both backends: test_ledger_crash.py.)

    Throughout, every acknowledged command is committed once, at the seq it was told; nothing
    else is but the unanswered; and a new writer loads the same state."""
    db_url: str = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    batch_max = 64
    plans = [client_plan(t) for t in range(CLIENTS)]
    burst = [
        Submitted({"op": "register", "user": f"burst{i}"}, None, OUTCOME_OK) for i in range(BURST)
    ]
    gone = Submitted({"op": "register", "user": "gone"})
    refusal = LedgerClosed if stop == "close" else WriterStopped
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

    async def scenario() -> tuple[Stored, int, list[list[Submitted]]]:
        settings = Settings(batch_max=batch_max, snapshot_every=400)
        async with running_writer(db_url, settings) as client:
            reading.start()  # the ledger exists now
            first = await first_act(client, db_url, plans, burst, gone)
            batches = client.batches
            done = await until_stopped(client, stop, 32)
            with pytest.raises(refusal):
                await client.submit(Submission.of({"op": "register", "user": "late"}))
        return first, batches, done

    reading = threading.Thread(target=reader)
    try:
        first, batches, done = asyncio.run(scenario())
    finally:
        writing.clear()
        if reading.is_alive():
            reading.join(WAIT_S)
    assert not read_failures, read_failures
    assert reads, "the reader never completed a read"
    assert reads == sorted(reads)  # each read saw at least what the one before saw

    # The first act.
    submitted = [s for plan in plans for s in plan] + burst
    for s in submitted:
        assert s.error is None, (s.command, s.key, s.error)
        assert s.result is not None
        if s.expect is not None:
            assert s.result.outcome == s.expect, (s.command, s.key, s.result)
    # Ledger.execute refuses a whole batch over batch_max: the burst, queued at once with the
    # clients' first commands, succeeded, so the client split it. And commands really were
    # grouped.
    assert batches < len(submitted) / 4
    rows = first.rows
    check_entries(submitted, rows, unanswered=[gone])
    gone_committed = sum(row.command == canonical_command(gone.command) for row in rows)
    replays = [s for s in submitted if s.result is not None and s.result.replayed]
    conflicts = [s for s in submitted if s.result is not None and s.result.seq is None]
    assert len(rows) == len(submitted) - len(replays) - len(conflicts) + gone_committed
    assert len(conflicts) == CLIENTS
    assert len(replays) == CLIENTS * 3 + CLIENTS // 2
    first_of = {s.key: s for s in submitted if s.entry and s.key is not None}
    for s in replays:  # a replay answers with the first submission's entry and outcome
        assert s.key is not None and s.result is not None
        first_one = first_of[s.key]
        assert first_one.result is not None
        assert (s.result.seq, s.result.outcome) == (first_one.result.seq, first_one.result.outcome)
        assert canonical_command(first_one.command) == canonical_command(s.command)
    for p in range(CLIENTS // 2):  # two clients, one key, at the same moment: one entry
        pair = [plans[2 * p][0], plans[2 * p + 1][0]]
        assert sorted(s.entry for s in pair) == [False, True]
        assert pair[0].result is not None and pair[1].result is not None
        assert pair[0].result.seq == pair[1].result.seq
    for plan in [*plans, burst]:  # each client's entries are in the order it submitted them
        seqs = [s.seq for s in plan if s.entry]
        assert seqs == sorted(seqs)
    assert len(first.state["users"]) == CLIENTS * 3 + CLIENTS // 2 + BURST + gone_committed

    # The second act, and the whole journal.
    acknowledged: list[Submitted] = []
    for attempts in done:
        *accepted, last = attempts
        assert last.result is None and type(last.error) is refusal, last.error
        assert all(s.error is None and s.result is not None for s in accepted)
        assert all(s.result.outcome == OUTCOME_OK for s in accepted if s.result is not None)
        acknowledged += accepted
    assert len(acknowledged) >= 300
    unanswered = [gone, *(attempts[-1] for attempts in done if stop == "kill")]
    stored = read_store(db_url)
    check_entries(submitted + acknowledged, stored.rows, unanswered)  # refused: absent
    assert len(stored.rows) >= len(first.rows) + len(acknowledged)
    check_reopened(db_url, stored)


# -- a store failure inside a batch; failed snapshots ------------------------------------------


def is_sqlite(db_url: str) -> bool:
    return resolve_url(db_url).startswith("sqlite")


def sqlite_path(db_url: str) -> str:
    database = sa.make_url(resolve_url(db_url)).database
    assert database is not None
    return database


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


def count_rows(db_url: str, table: str) -> int:
    if is_sqlite(db_url):
        with closing(sqlite3.connect(sqlite_path(db_url))) as connection:
            found = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    else:
        with psycopg.connect(db_url) as connection:
            found = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert found is not None
    return int(found[0])


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


def test_store_failures_fail_exactly_the_commands_that_did_not_commit(db_url: str) -> None:
    """The database refuses one row of a batch: every command of that batch (one message to the
    writer, one transaction) fails with a StoreError of its own, nothing of the batch stays in
    the store or in the writer's memory, the command before it is unaffected, and the writer
    goes on: the same commands then commit (no duplicate_account: the failed registrations left
    no trace). All along, a snapshot is due after every entry and the database refuses each
    one: a snapshot is a cache, and failing to save one must not fail a command that committed
    (its client would retry it without a key and apply it twice)."""
    lead = Submitted({"op": "register", "user": "lead"}, None, OUTCOME_OK)
    followers = followers_of("p", 24)
    poison = Submitted({"op": "register", "user": "poison"})
    followers.insert(15, poison)  # rows before it are inserted, then the insert fails
    retried = [Submitted(s.command, s.key, OUTCOME_OK) for s in followers]
    registrations = [s for s in retried if s.command["op"] == "register"]

    async def scenario() -> Stored:
        async with running_writer(db_url, Settings(snapshot_every=1)) as client:
            refuse_rows(db_url, "journal", "NEW.command LIKE '%poison%'", "refused by the store")
            refuse_rows(db_url, "snapshots", "1 = 1", "no room for snapshots")
            # The lead goes to the writer at once; the followers queue behind it and go
            # together, as the next message.
            await asyncio.gather(lead.run(client), *(s.run(client) for s in followers))
            assert client.batches == 2
            stored = await writer_agrees(client, db_url)  # nothing half-applied in memory
            assert [row.command for row in stored.rows] == [canonical_command(lead.command)]

            drop_refusal(db_url, "journal")
            await all_at_once(client, registrations)  # then their orders
            await all_at_once(client, [s for s in retried if s not in registrations])
            return await writer_agrees(client, db_url)

    stored = asyncio.run(scenario())
    assert lead.result is not None and lead.result.seq == 1 and lead.result.ok
    assert all(failed_in_the_store(s) for s in followers), [s.error for s in followers]
    assert all("refused by the store" in str(s.error) for s in followers)
    assert len({id(s.error) for s in followers}) == len(followers)  # each raises its own
    for s in retried:  # e.g. no duplicate_account: the failed registrations left no trace
        assert s.result is not None and s.result.outcome == OUTCOME_OK, (s.command, s.result)
        assert not s.result.replayed
    assert count_rows(db_url, "snapshots") == 0  # every snapshot failed; no command did
    check_entries([lead, *retried], stored.rows)
    assert len(stored.rows) == 1 + len(retried)
    check_reopened(db_url, stored)


def test_a_writer_that_lost_its_postgresql_lock_stops_writing(postgres_url: str) -> None:
    """Writes go through the session that holds the advisory lock. When that session dies (a
    network blip), the writer cannot commit; while another writer (here an in-process one, as
    `tokenmall ingest` would be) holds the lock it stays refused; once the lock is free it takes
    it again and reloads, so it continues from the other writer's entries instead of forking
    the chain."""

    def register(user: str) -> Submission:
        return Submission.of({"op": "register", "user": user})

    async def scenario() -> StateJson:
        async with running_writer(postgres_url) as first:
            assert (await first.submit(register("x"))).ok
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                # Only this test's database: the server may hold other programs' advisory locks.
                lost = admin.execute(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ).fetchall()
            assert lost == [(True,)]
            with Ledger.open(postgres_url, Settings()) as second:  # the lock is free: it gets it
                assert second.execute([register("y")])[0].ok
                for user in ("z0", "z1"):  # the dead session, then the lock held by `second`
                    refused = Submitted(register(user).command)
                    await refused.run(first)
                    assert failed_in_the_store(refused), refused.error
            result = await first.submit(register("z2"))
            assert result.ok and result.seq == 3
            memory: StateJson = await first.query("engine_state", [])
            return memory

    memory = asyncio.run(scenario())
    assert set(memory["users"]) == {"x", "y", "z2"}
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
        # Inside the first batch's transaction, its entries written (PostgreSQL writes them
        # with COPY, which SQLAlchemy does not see; the head's update comes next either way).
        [sys.executable, "-c", PAUSE_PROGRAM, "UPDATE ledger_head", str(release), *ingest_d],
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


def test_answers_bigger_than_the_pipe_arrive_whole_under_uvloop(sqlite_url: str) -> None:
    """The server runs on uvloop, which makes the writer's pipe non-blocking: an answer of
    megabytes (a day report's accounts) must still be read whole, and the writer live on."""
    import uvloop  # noqa: PLC0415 (the server's loop; the other tests use asyncio's own)

    async def ask() -> list[int]:
        client = WriterClient(sqlite_url, Settings(), queries=WRITER_QUERIES)
        client.attach()
        try:
            sizes = [len(await client.query("big_answer", 3_000_000)) for _ in range(40)]
            answers = await asyncio.gather(*(client.query("big_answer", 500_000) for _ in range(8)))
            result = await client.submit(Submission.of({"op": "register", "user": "alice"}))
            assert result.ok and client.stopped is None
            return sizes + [len(answer) for answer in answers]
        finally:
            await client.close()

    assert uvloop.run(ask()) == [3_000_000] * 40 + [500_000] * 8
