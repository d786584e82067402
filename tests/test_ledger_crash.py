"""`tokenmall ingest` killed with SIGKILL at any moment, then run again, leaves the ledger holding
every command of the file exactly once: its state is `tokenmall replay` of the file byte for
byte, the audit passes, and the journal has one entry per command.

The ingest runs as a real subprocess on both backends. Kills land at random points (polling the
journal head through SQL), inside the transactions that write snapshots, and before the
first commit; for the last two the child is held at an exact statement by a SQLAlchemy event
listener installed in the child (it only waits, it changes nothing), then killed there.
"""

import json
import random
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.workload import MixGenerator
from tokenmall.core.params import Params
from tokenmall.jsonl import replay_lines
from tokenmall.ledger.store import resolve_url
from tokenmall.ledger.views import open_reader, read_state

COMMANDS = 30_000
CONSUMERS = 2_000
BATCH = 200
SNAPSHOT_EVERY = 3_000
PARAMS = {"referral_rates": ["0.10", "0.05"]}
CLI_TIMEOUT_S = 120
WAIT_S = 60.0
POLL_S = 0.005
TABLES = ("journal", "ledger_meta", "ledger_head", "snapshots", "ingest_sources")

# Run as `python -c PAUSE_PROGRAM PREFIX NTH tokenmall-args...`: the CLI, except that right after
# the NTH statement starting with PREFIX has executed (inside its transaction, before any
# commit), it prints PAUSED and sleeps until it is killed.
PAUSE_PROGRAM = """
import os, sys, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
prefix, nth = sys.argv[1].upper(), int(sys.argv[2])
seen = 0
@event.listens_for(Engine, "after_cursor_execute")
def _pause(conn, cursor, statement, parameters, context, executemany):
    global seen
    if statement.lstrip().upper().startswith(prefix):
        seen += 1
        if seen == nth:
            os.write(1, b"PAUSED\\n")
            time.sleep(3600)
from tokenmall.cli import main
sys.argv = ["tokenmall", *sys.argv[3:]]
main()
"""


@dataclass(frozen=True)
class Scenario:
    path: Path
    params: Path
    lines: list[bytes]
    replayed: bytes  # `tokenmall replay FILE --params P`, the expected final state


def tokenmall(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", *map(str, args)],
        capture_output=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    directory = tmp_path_factory.mktemp("crash")
    choose = random.Random(11)
    lines: list[bytes] = []
    for number, command in enumerate(MixGenerator(CONSUMERS, seed=29).commands(COMMANDS), 1):
        line = dict(command)
        if choose.random() < 0.15:  # unique keys: every line is one journal entry
            key = f"line-{number}" if number % 3 else f"键-{number}/{choose.randrange(10**6)}"
            line["key"] = key
        lines.append(json.dumps(line, ensure_ascii=False).encode())
    assert len(lines) == COMMANDS
    path = directory / "commands.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    params = directory / "params.json"
    params.write_text(json.dumps(PARAMS), encoding="utf-8")
    replayed = tokenmall("replay", path, "--params", params)
    assert replayed.returncode == 0, replayed.stderr
    state = json.loads(replayed.stdout)
    assert 0 < len(state["errors"]) < COMMANDS // 10  # some lines are rejected by the rules
    return Scenario(path, params, lines, replayed.stdout)


class Probe:
    """Reads the ledger's tables directly through SQL while (or after) a child writes them."""

    def __init__(self, db_url: str) -> None:
        self.url = resolve_url(db_url)
        # One pooled connection, reused by every poll (no read transaction is left open).
        self.engine = sa.create_engine(self.url, pool_size=1, max_overflow=0)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.sqlite_path = Path(self.engine.url.database or "") if self.is_sqlite else None

    def close(self) -> None:
        self.engine.dispose()

    def _exists(self) -> bool:
        # Connecting to a missing SQLite file would create it: never do that for the child.
        return self.sqlite_path is None or self.sqlite_path.exists()

    def rows(self, table: str) -> int | None:
        """The table's row count; None while the table does not exist."""
        assert table in TABLES
        if not self._exists():
            return None
        try:
            with self.engine.connect() as connection:
                count = connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
        except sa.exc.DBAPIError:
            return None
        return int(count)

    def snapshot_seqs(self) -> list[int]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT seq FROM snapshots ORDER BY seq"))
            return [int(seq) for (seq,) in rows]

    def progress(self) -> list[tuple[int, int]]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT lines_done, last_seq FROM ingest_sources"))
            return [(int(done), int(last)) for done, last in rows]

    def head_or_zero(self) -> int:
        """The head's seq (one indexed row, cheap enough to poll); 0 before the ledger exists."""
        if not self._exists():
            return 0
        try:
            with self.engine.connect() as connection:
                seq = connection.execute(sa.text("SELECT seq FROM ledger_head")).scalar()
        except sa.exc.DBAPIError:  # no tables yet
            return 0
        return 0 if seq is None else int(seq)  # no head row yet

    def head(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT seq FROM ledger_head")).scalar_one())

    def wait_writer_released(self) -> None:
        """The writer lock of a killed child is released: by the kernel (SQLite's flock) or
        when the server notices the closed connection (PostgreSQL's advisory lock)."""
        deadline = time.monotonic() + 10
        while self._writer_lock_held():
            assert time.monotonic() < deadline, "the killed writer's lock was never released"
            time.sleep(0.01)

    def _writer_lock_held(self) -> bool:
        if self.sqlite_path is not None:
            import fcntl  # noqa: PLC0415 (POSIX only, like the store itself)

            lock = Path(f"{self.sqlite_path}-writer.lock")
            if not lock.exists():
                return False
            with lock.open("a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(handle, fcntl.LOCK_UN)
                return False
        with self.engine.connect() as connection:
            held = connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).scalar_one()
        return int(held) > 0


@pytest.fixture
def probe(db_url: str) -> Iterator[Probe]:
    probe = Probe(db_url)
    yield probe
    probe.close()


def ingest_args(
    scenario: Scenario, db_url: str, snapshot_every: int, batch: int = BATCH
) -> list[str]:
    return [
        "ingest",
        str(scenario.path),
        "--db",
        db_url,
        "--params",
        str(scenario.params),
        "--batch-size",
        str(batch),
        "--snapshot-every",
        str(snapshot_every),
    ]


def start_ingest(
    scenario: Scenario,
    db_url: str,
    *,
    pause_at: tuple[str, int] | None = None,
    snapshot_every: int = SNAPSHOT_EVERY,
) -> subprocess.Popen[bytes]:
    args = ingest_args(scenario, db_url, snapshot_every)
    if pause_at is None:
        argv = [sys.executable, "-m", "tokenmall.cli", *args]
    else:
        prefix, nth = pause_at
        argv = [sys.executable, "-c", PAUSE_PROGRAM, prefix, str(nth), *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def sigkill(process: subprocess.Popen[bytes], probe: Probe) -> None:
    """Kill the child, which must still be running (so it really died in the middle)."""
    assert process.poll() is None, "the ingest ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=WAIT_S)
    assert process.returncode == -signal.SIGKILL
    probe.wait_writer_released()


def wait_paused(process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], WAIT_S)
    assert ready, "the child never reached its pause point"
    line = process.stdout.readline()
    if line != b"PAUSED\n":
        _, stderr = process.communicate(timeout=WAIT_S)
        pytest.fail(f"the child ended before its pause point: {line!r} {stderr.decode()}")


def wait_for_rows(process: subprocess.Popen[bytes], probe: Probe, target: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while probe.head_or_zero() < target:
        if process.poll() is not None:
            _, stderr = process.communicate()
            pytest.fail(f"the ingest exited ({process.returncode}) early: {stderr.decode()}")
        assert time.monotonic() < deadline, f"the journal never reached {target} entries"
        time.sleep(POLL_S)


def check_partial(scenario: Scenario, db_url: str, probe: Probe, entries: int) -> None:
    """What a killed ingest left is exactly the first `entries` lines, committed whole."""
    assert entries % BATCH == 0, f"{entries} entries: a batch was committed in part"
    assert probe.head() == entries
    assert probe.progress() == [(entries, entries)]
    assert max(probe.snapshot_seqs(), default=0) <= entries
    store = open_reader(resolve_url(db_url))
    try:
        state = read_state(store)
    finally:
        store.close()
    params = Params().with_overrides(PARAMS)
    assert state == replay_lines(scenario.lines[:entries], params)


def check_complete(scenario: Scenario, db_url: str, probe: Probe) -> None:
    state = tokenmall("state", "--db", db_url)
    assert state.returncode == 0, state.stderr
    assert state.stdout == scenario.replayed  # no command lost, none applied twice
    audit = tokenmall("audit", "verify", "--db", db_url)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert audit.stdout.startswith(f"audit: ok: {COMMANDS} entries".encode()), audit.stdout
    assert probe.rows("journal") == COMMANDS
    assert probe.head() == COMMANDS
    assert probe.progress() == [(COMMANDS, COMMANDS)]
    assert probe.snapshot_seqs()[-1] == COMMANDS  # the ingest's closing snapshot


def finish_ingest(scenario: Scenario, db_url: str, done_before: int, batch: int = BATCH) -> None:
    """Run the ingest to completion; it skips exactly what earlier runs committed."""
    result = tokenmall(*ingest_args(scenario, db_url, SNAPSHOT_EVERY, batch))
    assert result.returncode == 0, result.stderr
    summary = re.fullmatch(
        rb".*: (\d+) applied, (\d+) rejected by the rules, (\d+) already applied \(same key\), "
        rb"(\d+) done by an earlier run; journal head: entry (\d+), hash [0-9a-f]{64}\n",
        result.stdout,
    )
    assert summary is not None, result.stdout
    applied, rejected, replayed, skipped, head = map(int, summary.groups())
    assert (skipped, replayed, head) == (done_before, 0, COMMANDS)
    assert applied + rejected == COMMANDS - done_before


def test_ingest_killed_again_and_again_resumes_exactly(
    scenario: Scenario, db_url: str, probe: Probe
) -> None:
    seed = random.randrange(2**32)
    choose = random.Random(seed)
    ranges = ((1_000, 8_000), (10_000, 17_000), (19_000, 27_000))
    committed = 0
    for low, high in ranges:
        target = max(choose.randrange(low, high), committed + 1)
        process = start_ingest(scenario, db_url)
        wait_for_rows(process, probe, target)
        sigkill(process, probe)
        entries = probe.rows("journal")
        assert entries is not None
        assert committed < entries < COMMANDS, f"seed {seed}: killed at {entries} entries"
        check_partial(scenario, db_url, probe, entries)
        committed = entries
    finish_ingest(scenario, db_url, committed)
    check_complete(scenario, db_url, probe)
    # Once more: everything is done already, nothing is applied twice.
    finish_ingest(scenario, db_url, COMMANDS)
    assert probe.rows("journal") == COMMANDS


def test_ingest_killed_inside_snapshot_transactions_resumes_exactly(
    scenario: Scenario, db_url: str, probe: Probe
) -> None:
    # 1. Held right after inserting its third snapshot, before that transaction commits.
    process = start_ingest(scenario, db_url, pause_at=("INSERT INTO snapshots", 3))
    wait_paused(process)
    head = probe.head()
    sigkill(process, probe)
    assert head == probe.head() == 3 * SNAPSHOT_EVERY  # the batch before it had committed
    assert probe.snapshot_seqs() == [SNAPSHOT_EVERY, 2 * SNAPSHOT_EVERY]  # the third is gone
    check_partial(scenario, db_url, probe, head)

    # 2. Held after the second snapshot of the run pruned the oldest one (snapshots_kept=3),
    # in the same transaction: the kill must take back the insert and the delete together.
    process = start_ingest(scenario, db_url, pause_at=("DELETE FROM snapshots", 2))
    wait_paused(process)
    head = probe.head()
    sigkill(process, probe)
    seqs = probe.snapshot_seqs()
    assert probe.head() == head > 3 * SNAPSHOT_EVERY
    assert len(seqs) == 3
    assert seqs[0] == SNAPSHOT_EVERY  # the pruned snapshot is back
    assert seqs[-1] < head  # the snapshot being written at the kill is not there
    check_partial(scenario, db_url, probe, head)

    # 3. A snapshot after every batch, killed at a random moment: most of the time is spent
    # writing snapshots, so the kill usually lands inside one.
    process = start_ingest(scenario, db_url, snapshot_every=BATCH)
    wait_for_rows(process, probe, head + random.randrange(2, 12) * BATCH)
    sigkill(process, probe)
    head = probe.head()
    seqs = probe.snapshot_seqs()
    assert len(seqs) <= 3
    check_partial(scenario, db_url, probe, head)

    finish_ingest(scenario, db_url, head, batch=777)  # the position is lines, not batches
    check_complete(scenario, db_url, probe)


def test_ingest_killed_before_its_first_commit_leaves_nothing_behind(
    scenario: Scenario, db_url: str, probe: Probe
) -> None:
    # Inside the migration that creates the tables: the schema is taken back whole.
    process = start_ingest(scenario, db_url, pause_at=("CREATE TABLE", 2))
    wait_paused(process)
    sigkill(process, probe)
    assert all(probe.rows(table) is None for table in TABLES)

    # Inside the transaction that creates the ledger (its starting parameters, its head).
    process = start_ingest(scenario, db_url, pause_at=("INSERT INTO ledger_meta", 1))
    wait_paused(process)
    sigkill(process, probe)
    assert probe.rows("ledger_meta") == probe.rows("ledger_head") == probe.rows("journal") == 0

    # Inside the first batch's transaction: its entries, before and after its ingest position.
    # After the first batch's entries are written, before its commit: the head's update (on
    # PostgreSQL the entries go in with COPY, which SQLAlchemy's events do not see).
    for pause_at in (("UPDATE ledger_head", 1), ("INSERT INTO ingest_sources", 1)):
        process = start_ingest(scenario, db_url, pause_at=pause_at)
        wait_paused(process)
        sigkill(process, probe)
        assert probe.rows("ledger_meta") == probe.rows("ledger_head") == 1
        assert probe.rows("journal") == probe.rows("ingest_sources") == 0
        assert probe.head() == 0

    # While the first pass reads the file (nothing written yet): killed at a random moment.
    process = start_ingest(scenario, db_url)
    time.sleep(random.uniform(0.0, 0.3))
    sigkill(process, probe)
    assert probe.rows("journal") in (None, 0)

    finish_ingest(scenario, db_url, 0)
    check_complete(scenario, db_url, probe)
