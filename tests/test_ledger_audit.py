"""Tampering with a durable ledger behind the writer's back, and what the audit says about it.

Each test builds a real ledger of 300 MixGenerator commands (every fifth with an idempotency key,
a snapshot every few batches), closes it, edits its tables directly with SQL as someone with
write access to the database would, then runs `audit.verify` and/or `tokenmall audit verify`;
on SQLite and on PostgreSQL (`db_url`). To keep the file fast, a test that tries several
tamperings of one kind builds its ledger once and puts the tables back between them
(`Db.tampering`), checking that the restored ledger passes again.

What the audit can prove is limited by what the database holds: the chain has no anchor outside
it, so whoever can rewrite every table can forge a consistent history (see
`test_truncation_with_a_consistent_head` and `test_a_complete_forgery_only_changes_the_head_hash`):
only a head hash published elsewhere catches that.
"""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
import sqlalchemy as sa

from tests.support.workload import MixGenerator
from tokenmall.cli import main
from tokenmall.core.engine import Engine
from tokenmall.core.params import Params
from tokenmall.core.snapshot import take_snapshot
from tokenmall.ledger.audit import AuditReport, verify
from tokenmall.ledger.chain import OUTCOME_OK, canonical_command, entry_hash, genesis_hash
from tokenmall.ledger.ledger import Ledger, Settings, Submission
from tokenmall.ledger.store import JournalRow, StoreError, resolve_url, snapshot_digest
from tokenmall.ledger.views import open_reader, read_state

COMMANDS = 300
BATCH = 16
SNAPSHOT_EVERY = 50  # with batches of 16: snapshots at entries 64, 128, 192 and 256
KEY_EVERY = 5
START = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
EXIT_AUDIT_FAILED = 1
HASH_CHAIN = "does not match the hash chain: it was edited, or entries were reordered"
SNAPSHOT_DIFFERS = (
    "(does not match the state recomputed from the journal|is unreadable or was edited)"
)
# A forged history whose entries are each consistent shows in a later outcome or snapshot.
STATE_BETRAYED = (
    r"(entry \d+ records '\w+' but the rules give '\w+'"
    rf"|the snapshot at entry \d+ {SNAPSHOT_DIFFERS})$"
)
JOURNAL_COLUMNS = ("recorded_at", "idem_key", "outcome", "command", "hash")
TABLES = ("ledger_meta", "ledger_head", "journal", "snapshots")
HUGE_SALE = "9999.00000000"  # EP: far more than anyone in the workload holds

Tamper = Callable[["Db"], str]  # edits the database; returns a regex the problem must match


class StepClock:
    """A second later at every call, so that batches have distinct `recorded_at`."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return START + timedelta(seconds=self.calls)


def ledger_settings() -> Settings:
    return Settings(
        snapshot_every=SNAPSHOT_EVERY, snapshots_kept=COMMANDS, batch_max=BATCH, clock=StepClock()
    )


def workload() -> list[dict[str, Any]]:
    commands = MixGenerator(40, seed=7, settle_every=60).commands(COMMANDS)
    return [
        {**command, "key": f"key-{index}"} if index % KEY_EVERY == 0 else command
        for index, command in enumerate(commands)
    ]


def build_ledger(url: str) -> None:
    commands = workload()
    with Ledger.open(url, ledger_settings()) as ledger:
        for start in range(0, len(commands), BATCH):
            chunk = commands[start : start + BATCH]
            results = ledger.execute([Submission.of(command) for command in chunk])
            assert [result.seq for result in results] == list(
                range(start + 1, start + 1 + len(chunk))
            )
        # A retried keyed command is answered from the journal, without a new entry.
        (again,) = ledger.execute([Submission.of(commands[0])])
        assert again.replayed
        assert again.seq == 1


class Db:
    """Direct SQL on a ledger's database, behind the writer's back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(resolve_url(url))

    def close(self) -> None:
        self.engine.dispose()

    def sql(self, *statements: str, **params: Any) -> None:
        """The statements in one transaction, each with the same named parameters."""
        with self.engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement), params)

    def _all(self, query: str, **params: Any) -> list[sa.Row[Any]]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.text(query), params).all())

    @contextlib.contextmanager
    def tampering(self, case: str) -> Iterator[None]:
        """Whatever the block does to the ledger's tables is undone after it; the restored
        ledger must pass the audit again."""
        saved = {table: self._all(f"SELECT * FROM {table}") for table in TABLES}
        yield
        with self.engine.begin() as connection:
            for table, rows in saved.items():
                connection.execute(sa.text(f"DELETE FROM {table}"))
                columns = list(rows[0]._fields)
                connection.execute(
                    sa.text(
                        f"INSERT INTO {table} ({', '.join(columns)}) "
                        f"VALUES ({', '.join(':' + column for column in columns)})"
                    ),
                    [row._asdict() for row in rows],
                )
        report = audit(self.url)
        assert report.ok, f"{case}: the restored ledger fails: {report.problem}"

    # -- reads ---------------------------------------------------------------------------------

    def journal(self) -> list[JournalRow]:
        rows = self._all(
            "SELECT seq, recorded_at, idem_key, outcome, command, hash, actor FROM journal "
            "ORDER BY seq"
        )
        return [JournalRow(int(row[0]), *tuple(row)[1:]) for row in rows]

    def entry(self, seq: int) -> JournalRow:
        (row,) = [row for row in self.journal() if row.seq == seq]
        return row

    def find(
        self,
        *,
        after: int = 0,
        op: str | None = None,
        ok: bool | None = None,
        keyed: bool | None = None,
    ) -> JournalRow:
        """The first entry after `after` with these properties."""
        for row in self.journal():
            if (
                row.seq > after
                and (op is None or json.loads(row.command)["op"] == op)
                and (ok is None or (row.outcome == OUTCOME_OK) == ok)
                and (keyed is None or (row.idem_key is not None) == keyed)
            ):
                return row
        raise AssertionError(f"the workload has no such entry after {after}")

    def head(self) -> tuple[int, str]:
        (row,) = self._all("SELECT seq, hash FROM ledger_head")
        return int(row.seq), str(row.hash)

    def params_json(self) -> str:
        (row,) = self._all("SELECT params FROM ledger_meta")
        return str(row.params)

    def genesis(self) -> str:
        (row,) = self._all("SELECT genesis_hash FROM ledger_meta")
        return str(row.genesis_hash)

    def snapshot_seqs(self) -> list[int]:
        return [int(row.seq) for row in self._all("SELECT seq FROM snapshots ORDER BY seq")]

    def snapshot_state(self, seq: int) -> dict[str, Any]:
        (row,) = self._all("SELECT state FROM snapshots WHERE seq = :seq", seq=seq)
        state: dict[str, Any] = json.loads(zlib.decompress(row.state))
        return state

    # -- writes --------------------------------------------------------------------------------

    def set_column(self, seq: int, column: str, value: str | None) -> None:
        assert column in JOURNAL_COLUMNS
        self.sql(f"UPDATE journal SET {column} = :value WHERE seq = :seq", seq=seq, value=value)

    def update_entries(self, rows: list[JournalRow]) -> None:
        """Overwrite every column but seq of these entries, found by their seq."""
        assignments = ", ".join(f"{column} = :{column}" for column in JOURNAL_COLUMNS)
        with self.engine.begin() as connection:
            connection.execute(
                sa.text(f"UPDATE journal SET {assignments} WHERE seq = :seq"),
                [row._asdict() for row in rows],
            )

    def insert_entry(self, row: JournalRow) -> None:
        columns = ", ".join(JournalRow._fields)
        values = ", ".join(f":{name}" for name in JournalRow._fields)
        self.sql(f"INSERT INTO journal ({columns}) VALUES ({values})", **row._asdict())

    def delete_entries(self, first: int, last: int) -> None:
        self.sql("DELETE FROM journal WHERE seq BETWEEN :first AND :last", first=first, last=last)

    def set_head(self, seq: int, hash_hex: str) -> None:
        self.sql("UPDATE ledger_head SET seq = :seq, hash = :hash", seq=seq, hash=hash_hex)

    def set_snapshot(
        self,
        seq: int,
        state: dict[str, Any] | None,
        hash_hex: str | None,
        *,
        redigest: bool = False,
    ) -> None:
        """Edit a snapshot's state and/or hash; with `redigest`, also its digest, as an attacker
        who knows `snapshot_digest` would."""
        if state is not None:
            blob = zlib.compress(json.dumps(state, separators=(",", ":")).encode())
            self.sql("UPDATE snapshots SET state = :blob WHERE seq = :seq", seq=seq, blob=blob)
        if hash_hex is not None:
            self.sql("UPDATE snapshots SET hash = :hash WHERE seq = :seq", seq=seq, hash=hash_hex)
        if redigest:
            (row,) = self._all("SELECT hash, state FROM snapshots WHERE seq = :seq", seq=seq)
            digest = snapshot_digest(row.hash, zlib.decompress(row.state))
            self.sql("UPDATE snapshots SET digest = :d WHERE seq = :seq", seq=seq, d=digest)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Db]:
    """A closed ledger of COMMANDS entries on the backend of `db_url`, ready to be tampered with."""
    build_ledger(db_url)
    database = Db(db_url)
    yield database
    database.close()


def audit(url: str) -> AuditReport:
    store = open_reader(resolve_url(url))
    try:
        return verify(store)
    finally:
        store.close()


@dataclass(frozen=True)
class CliResult:
    status: int
    stdout: str
    stderr: str


def audit_cli(url: str, *, in_process: bool = True) -> CliResult:
    """`tokenmall audit verify --db URL`: through `tokenmall.cli.main` in this process (an
    exception escaping it is what would be a traceback), or as a real subprocess."""
    argv = ["tokenmall", "audit", "verify", "--db", url]
    if not in_process:
        result = subprocess.run(
            [sys.executable, "-m", "tokenmall.cli", *argv[1:]],
            capture_output=True,
            text=True,
            encoding="utf-8",
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
            timeout=60,
            check=False,
        )
        return CliResult(result.returncode, result.stdout, result.stderr)
    stdout, stderr = io.StringIO(), io.StringIO()
    status: int | str | None = 0
    with (
        patch.object(sys, "argv", argv),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            main()
        except SystemExit as exit_:
            status = exit_.code
    assert isinstance(status, int)
    return CliResult(status, stdout.getvalue(), stderr.getvalue())


def first_entry_named(problem: str) -> int:
    match = re.search(r"entr(?:y|ies) (\d+)", problem)
    assert match is not None, f"the problem names no entry: {problem}"
    return int(match.group(1))


def assert_fails(url: str, pattern: str, case: str = "") -> str:
    """The audit fails with a problem that matches `pattern`; the problem."""
    report = audit(url)
    assert report.problem is not None, f"{case}: the audit passed"
    assert not report.ok
    assert re.match(pattern, report.problem), f"{case}: {report.problem}"
    return report.problem


def rechained(rows: list[JournalRow], previous_hash: str) -> list[JournalRow]:
    """The rows with every hash recomputed, as an attacker who knows the algorithm would."""
    out: list[JournalRow] = []
    for row in rows:
        previous_hash = entry_hash(
            previous_hash,
            row.seq,
            row.recorded_at,
            row.idem_key,
            row.outcome,
            row.command,
            row.actor,
        )
        out.append(row._replace(hash=previous_hash))
    return out


def altered(command_text: str) -> str:
    """The command with one value changed (an order's amount, else some other field)."""
    command = json.loads(command_text)
    if "amount" in command:
        command["amount"] = "1.00" if command["amount"] != "1.00" else "2.00"
    else:
        name = next(
            (name for name in sorted(command) if name != "op" and isinstance(command[name], str)),
            "op",
        )
        command[name] += "9"
    return canonical_command(command)


def with_command(row: JournalRow, **fields: Any) -> JournalRow:
    return row._replace(command=canonical_command({**json.loads(row.command), **fields}))


def forge(
    db: Db,
    seq: int,
    edit: Callable[[JournalRow], JournalRow],
    *,
    recompute_outcomes: bool = False,
    snapshots: str = "keep",
) -> None:
    """Edit entry `seq`, re-hash it and every later entry, and move the head to the new last
    hash. With `recompute_outcomes`, every outcome is what the rules give for the forged history;
    `snapshots`: "keep" the rows, "rehash" (their hash column follows the forged chain), or
    "recompute" (state and hash both forged)."""
    engine = Engine(Params().with_overrides(json.loads(db.params_json())))
    snapshot_seqs = set(db.snapshot_seqs())
    forged: list[JournalRow] = []
    states: dict[int, dict[str, Any]] = {}
    previous = db.genesis()
    for original in db.journal():
        row = edit(original) if original.seq == seq else original
        if recompute_outcomes or snapshots == "recompute":
            code = engine.try_apply(json.loads(row.command))
            if recompute_outcomes:
                row = row._replace(outcome=OUTCOME_OK if code is None else str(code))
        if row.seq >= seq:
            (row,) = rechained([row], previous)
            forged.append(row)
            if row.seq in snapshot_seqs and snapshots == "recompute":
                states[row.seq] = take_snapshot(engine)
        previous = row.hash
    db.update_entries(forged)
    db.set_head(forged[-1].seq, forged[-1].hash)
    for row in forged:
        if row.seq in snapshot_seqs and snapshots != "keep":
            db.set_snapshot(row.seq, states.get(row.seq), row.hash, redigest=True)


# -- 1. an untouched ledger -----------------------------------------------------------------------


def test_an_untouched_ledger_passes(ledger: Db) -> None:
    journal = ledger.journal()
    snapshot_seqs = ledger.snapshot_seqs()
    # The fixture is what the tampering tests assume.
    assert [row.seq for row in journal] == list(range(1, COMMANDS + 1))
    assert sum(row.idem_key is not None for row in journal) == COMMANDS // KEY_EVERY
    rejected = sum(row.outcome != OUTCOME_OK for row in journal)
    assert rejected > 0
    assert len(snapshot_seqs) >= 3
    assert snapshot_seqs[-1] < COMMANDS  # entries after the newest snapshot: the writer's tail
    assert ledger.head() == (COMMANDS, journal[-1].hash)

    report = audit(ledger.url)
    assert report.ok, report.problem
    assert report.entries == len(journal) == COMMANDS
    assert report.head_hash == journal[-1].hash
    assert report.rejected == rejected
    assert report.snapshots_checked == len(snapshot_seqs)

    result = audit_cli(ledger.url, in_process=False)
    assert result.status == 0, result.stderr
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.startswith(f"audit: ok: {COMMANDS} entries ({rejected} rejected")


# -- 2. editing one column of one entry -----------------------------------------------------------


@dataclass(frozen=True)
class ColumnEdit:
    pick: Callable[[Db], JournalRow]
    column: str
    value: Callable[[JournalRow], str | None]


def _shifted(row: JournalRow) -> str:
    return row.recorded_at.replace("2025-", "2024-", 1)


def _flipped(row: JournalRow) -> str:
    return row.hash[:-1] + ("1" if row.hash[-1] == "0" else "0")


def _altered(row: JournalRow) -> str:
    return altered(row.command)


COLUMN_EDITS = {
    "command-amount": ColumnEdit(
        lambda db: db.find(after=70, op="order", ok=True), "command", _altered
    ),
    "command-first-entry": ColumnEdit(lambda db: db.entry(1), "command", _altered),
    "command-last-entry": ColumnEdit(lambda db: db.entry(COMMANDS), "command", _altered),
    "outcome-rejected-to-ok": ColumnEdit(
        lambda db: db.find(after=70, ok=False), "outcome", lambda _row: OUTCOME_OK
    ),
    "outcome-ok-to-rejected": ColumnEdit(
        lambda db: db.find(after=70, ok=True), "outcome", lambda _row: "insufficient_points"
    ),
    "key-changed": ColumnEdit(
        lambda db: db.find(after=70, keyed=True), "idem_key", lambda _row: "forged-key"
    ),
    "key-added": ColumnEdit(
        lambda db: db.find(after=70, keyed=False), "idem_key", lambda _row: "forged-key"
    ),
    "key-removed": ColumnEdit(
        lambda db: db.find(after=70, keyed=True), "idem_key", lambda _row: None
    ),
    "recorded_at": ColumnEdit(lambda db: db.find(after=70), "recorded_at", _shifted),
    "hash": ColumnEdit(lambda db: db.find(after=70), "hash", _flipped),
}


def edit_column(name: str) -> Tamper:
    def tamper(db: Db) -> str:
        edit = COLUMN_EDITS[name]
        row = edit.pick(db)
        value = edit.value(row)
        assert value != getattr(row, edit.column)
        db.set_column(row.seq, edit.column, value)
        return rf"entry {row.seq} {HASH_CHAIN}$"

    return tamper


def test_an_edited_column_names_that_entry(ledger: Db) -> None:
    """The command, the outcome, the key (changed, added, removed), recorded_at or the hash of
    one entry (the first, one in the middle, the last): the audit names exactly that entry."""
    for name in COLUMN_EDITS:
        with ledger.tampering(name):
            assert_fails(ledger.url, edit_column(name)(ledger), name)


def test_an_absent_key_made_empty_is_detected(ledger: Db) -> None:
    """Setting an unkeyed entry's idem_key to '' leaves every hash unchanged. It is not
    harmless: `journal export` then writes `"key":""` on that line, which `ingest` refuses."""
    row = ledger.find(after=70, keyed=False)
    ledger.set_column(row.seq, "idem_key", "")
    problem = assert_fails(ledger.url, ".")
    assert first_entry_named(problem) == row.seq


# -- 3. deleting entries --------------------------------------------------------------------------


def delete_middle(db: Db) -> str:
    db.delete_entries(100, 100)
    return r"entry 100 is missing \(deleted\): the journal goes from entry 99 to entry 101$"


def delete_run(db: Db) -> str:
    db.delete_entries(100, 109)
    return r"entry 100 is missing \(deleted\): the journal goes from entry 99 to entry 110$"


def delete_first(db: Db) -> str:
    db.delete_entries(1, 1)
    return r"entry 1 is missing \(deleted\): the journal goes from entry 0 to entry 2$"


def delete_last(db: Db) -> str:
    db.delete_entries(COMMANDS, COMMANDS)
    return (
        rf"entries {COMMANDS}-{COMMANDS} are missing \(deleted\): the journal ends at entry "
        rf"{COMMANDS - 1} but the head records entry {COMMANDS}$"
    )


def delete_tail(db: Db) -> str:
    db.delete_entries(COMMANDS - 9, COMMANDS)
    return (
        rf"entries {COMMANDS - 9}-{COMMANDS} are missing \(deleted\): the journal ends at entry "
        rf"{COMMANDS - 10} but the head records entry {COMMANDS}$"
    )


def test_deleted_entries_are_named(ledger: Db) -> None:
    for tamper in (delete_middle, delete_run, delete_first, delete_last, delete_tail):
        with ledger.tampering(tamper.__name__):
            assert_fails(ledger.url, tamper(ledger), tamper.__name__)


def test_truncation_with_a_consistent_head(ledger: Db) -> None:
    """Deleting the newest entries and pointing ledger_head at the new last one is a truncation
    the chain cannot reveal: the remaining prefix is a valid chain, and nothing in the database
    records how long the journal was. The audit catches it only while a snapshot taken after the
    cut is still there (an attacker can delete that too: snapshots are caches). What always
    differs is the head hash, so the defence is to publish `audit: ok`'s head hash elsewhere and
    compare."""
    published_head = ledger.head()[1]
    for keep in (COMMANDS - 1, 250):
        with ledger.tampering(f"keep {keep}"):
            cut_hash = ledger.entry(keep).hash
            later_snapshots = [seq for seq in ledger.snapshot_seqs() if seq > keep]
            ledger.delete_entries(keep + 1, COMMANDS)
            ledger.set_head(keep, cut_hash)
            report = audit(ledger.url)
            if later_snapshots:
                expected = f"the snapshot at entry {later_snapshots[0]} has no journal entry"
                assert report.problem == expected
                ledger.sql("DELETE FROM snapshots WHERE seq > :keep", keep=keep)
                report = audit(ledger.url)
            assert report.ok, report.problem
            assert report.entries == keep
            assert report.head_hash == cut_hash != published_head


# -- 4. reordering entries ------------------------------------------------------------------------


def swap_contents(db: Db) -> str:
    """Entries 150 and 151 exchange every column but seq."""
    first, second = db.entry(150), db.entry(151)
    db.update_entries([second._replace(seq=150), first._replace(seq=151)])
    return rf"entry 150 {HASH_CHAIN}$"


def swap_seqs(db: Db) -> str:
    """Entries 150 and 151 exchange their seq numbers."""
    db.sql(
        "UPDATE journal SET seq = -1 WHERE seq = :a",
        "UPDATE journal SET seq = :a WHERE seq = :b",
        "UPDATE journal SET seq = :b WHERE seq = -1",
        a=150,
        b=151,
    )
    return rf"entry 150 {HASH_CHAIN}$"


def swap_distant(db: Db) -> str:
    first, second = db.entry(150), db.entry(170)
    db.update_entries([second._replace(seq=150), first._replace(seq=170)])
    return rf"entry 150 {HASH_CHAIN}$"


def test_reordered_entries_name_the_first_one_moved(ledger: Db) -> None:
    for tamper in (swap_contents, swap_seqs, swap_distant):
        with ledger.tampering(tamper.__name__):
            assert_fails(ledger.url, tamper(ledger), tamper.__name__)


# -- 5. a rewritten chain -------------------------------------------------------------------------


def forge_outcome(db: Db) -> str:
    """A sale of far more points than the seller holds, re-hashed but still recorded as ok."""
    row = db.find(after=70, op="sell", ok=True)
    forge(db, row.seq, lambda row: with_command(row, points=HUGE_SALE))
    return rf"entry {row.seq} records 'ok' but the rules give 'insufficient_points'$"


def test_a_rewritten_chain_is_caught_by_the_rules_or_a_snapshot(ledger: Db) -> None:
    """An attacker edits an entry and re-hashes it and every later entry with entry_hash, and
    moves the head. A changed outcome is caught at that entry. An outcome-preserving edit (an
    order's amount), or a consistent one (the oversized sale recorded as rejected), changes the
    state: a later outcome differs, or at the latest the next snapshot does, whether the
    attacker leaves the snapshots' hash column alone or rewrites it, and whether they record
    the outcomes the rules give for the forged history or not."""
    with ledger.tampering("forged outcome"):
        assert_fails(ledger.url, forge_outcome(ledger), "forged outcome")

    order = ledger.find(after=70, op="order", ok=True)
    next_snapshot = min(seq for seq in ledger.snapshot_seqs() if seq >= order.seq)
    for recompute_outcomes in (False, True):
        for snapshots in ("keep", "rehash"):
            case = f"amount, outcomes recomputed {recompute_outcomes}, snapshots {snapshots}"
            with ledger.tampering(case):
                forge(
                    ledger,
                    order.seq,
                    lambda row: row._replace(command=altered(row.command)),
                    recompute_outcomes=recompute_outcomes,
                    snapshots=snapshots,
                )
                problem = assert_fails(ledger.url, STATE_BETRAYED, case)
                assert order.seq <= first_entry_named(problem) <= next_snapshot, case

    sale = ledger.find(after=70, op="sell", ok=True)
    next_snapshot = min(seq for seq in ledger.snapshot_seqs() if seq >= sale.seq)
    with ledger.tampering("consistent rejection"):
        forge(
            ledger,
            sale.seq,
            lambda row: with_command(row, points=HUGE_SALE)._replace(outcome="insufficient_points"),
        )
        problem = assert_fails(ledger.url, STATE_BETRAYED, "consistent rejection")
        assert sale.seq < first_entry_named(problem) <= next_snapshot


def test_a_complete_forgery_only_changes_the_head_hash(ledger: Db) -> None:
    """The limit of any self-contained audit: an attacker who rewrites an entry, recomputes every
    later outcome with the rules, every later hash, every later snapshot and the head, has
    written a ledger that is internally consistent. The audit passes; only its head hash, when
    compared with one published before the forgery, reveals it."""
    published_head = ledger.head()[1]
    row = ledger.find(after=70, op="order", ok=True)
    forge(
        ledger,
        row.seq,
        lambda row: row._replace(command=altered(row.command)),
        recompute_outcomes=True,
        snapshots="recompute",
    )
    report = audit(ledger.url)
    assert report.ok, report.problem
    assert report.entries == COMMANDS
    assert report.head_hash != published_head


def test_a_forged_command_that_is_not_json_names_its_entry(ledger: Db) -> None:
    row = ledger.find(after=70)
    forge(ledger, row.seq, lambda row: row._replace(command="not json"))
    problem = assert_fails(ledger.url, ".")
    assert first_entry_named(problem) == row.seq


def test_a_forged_deeply_nested_command_is_reported(ledger: Db) -> None:
    row = ledger.find(after=70)
    forge(ledger, row.seq, lambda row: row._replace(command="[" * 100_000 + "]" * 100_000))
    problem = assert_fails(ledger.url, ".")
    assert first_entry_named(problem) == row.seq


# -- 6. the starting parameters and the snapshots -------------------------------------------------


def _edited_params(db: Db) -> str:
    params = json.loads(db.params_json())
    assert params["sell_fee_rate"] != "0"
    params["sell_fee_rate"] = "0"
    return json.dumps(params, sort_keys=True)


def edit_params(db: Db) -> str:
    db.sql("UPDATE ledger_meta SET params = :params", params=_edited_params(db))
    return r"the starting parameters were edited \(genesis hash differs\)$"


def edit_params_and_genesis(db: Db) -> str:
    """The genesis hash recomputed too: entry 1 no longer chains from it."""
    params_json = _edited_params(db)
    db.sql(
        "UPDATE ledger_meta SET params = :params, genesis_hash = :genesis",
        params=params_json,
        genesis=genesis_hash(params_json),
    )
    return rf"entry 1 {HASH_CHAIN}$"


def _richer(state: dict[str, Any]) -> tuple[str, int]:
    """Give the first consumer with stable points 1.00 CNY more, in place; (user, old sp)."""
    for row in state["consumers"]:
        if row[4] > 0:
            user, sp = row[0], row[4]
            row[4] = sp + 100
            return user, sp
    raise AssertionError("no consumer holds stable points in the snapshot")


def _edit_snapshot(db: Db, seq: int) -> str:
    state = db.snapshot_state(seq)
    _richer(state)
    db.set_snapshot(seq, state, None)
    return rf"the snapshot at entry {seq} {SNAPSHOT_DIFFERS}$"


def edit_first_snapshot(db: Db) -> str:
    return _edit_snapshot(db, db.snapshot_seqs()[0])


def edit_last_snapshot(db: Db) -> str:
    return _edit_snapshot(db, db.snapshot_seqs()[-1])


def edit_snapshot_hash(db: Db) -> str:
    seq = db.snapshot_seqs()[1]
    db.set_snapshot(seq, None, db.entry(seq - 1).hash)
    return rf"the snapshot at entry {seq} {SNAPSHOT_DIFFERS}$"


def move_snapshot(db: Db) -> str:
    seq = db.snapshot_seqs()[1]
    db.sql("UPDATE snapshots SET seq = :new WHERE seq = :seq", seq=seq, new=seq + 1)
    return rf"the snapshot at entry {seq + 1} {SNAPSHOT_DIFFERS}$"


def move_snapshot_past_the_end(db: Db) -> str:
    seq = db.snapshot_seqs()[1]
    db.sql("UPDATE snapshots SET seq = :new WHERE seq = :seq", seq=seq, new=COMMANDS + 5)
    return rf"the snapshot at entry {COMMANDS + 5} has no journal entry$"


def test_edited_params_and_snapshots_are_detected(ledger: Db) -> None:
    """Edited starting parameters (alone: the genesis check; with a recomputed genesis hash:
    entry 1), and a snapshot whose state (a balance), hash or seq was edited."""
    for tamper in (
        edit_params,
        edit_params_and_genesis,
        edit_first_snapshot,
        edit_last_snapshot,
        edit_snapshot_hash,
        move_snapshot,
        move_snapshot_past_the_end,
    ):
        with ledger.tampering(tamper.__name__):
            assert_fails(ledger.url, tamper(ledger), tamper.__name__)


def test_unreadable_params_or_snapshot_fail_in_one_line(ledger: Db) -> None:
    """Garbage where JSON (or zlib) belongs is reported as an unreadable store: one line, no
    traceback, a non-zero status (today 2 with `tokenmall: error:` on stderr, not the audit's
    1: the ledger is treated as damaged rather than as failing the audit)."""
    seq = ledger.snapshot_seqs()[0]
    for statement, named in (
        ("UPDATE ledger_meta SET params = 'not json'", "starting parameters are unreadable"),
        ("UPDATE snapshots SET state = :junk WHERE seq = :seq", f"snapshot at entry {seq}"),
    ):
        with ledger.tampering(statement):
            ledger.sql(statement, junk=b"\x00junk", seq=seq)
            result = audit_cli(ledger.url)
            assert result.status in (1, 2), statement
            output = result.stdout + result.stderr
            assert "Traceback" not in output
            assert len(output.splitlines()) == 1, output
            assert named in output


# -- 6b. the writer on a tampered ledger ----------------------------------------------------------


def tail_edit(db: Db) -> str:
    row = db.find(after=db.snapshot_seqs()[-1] + 5)
    db.set_column(row.seq, "command", altered(row.command))
    return f"journal entry {row.seq} does not match the hash chain"


def tail_delete(db: Db) -> str:
    seq = db.snapshot_seqs()[-1] + 5
    db.delete_entries(seq, seq)
    return f"journal entry {seq} does not match the hash chain"


def tail_delete_last(db: Db) -> str:
    delete_last(db)
    return f"the journal ends at entry {COMMANDS - 1} but the ledger's head is entry {COMMANDS}"


def tail_append(db: Db) -> str:
    append_entry(db)
    return f"the journal ends at entry {COMMANDS + 1} but the ledger's head is entry {COMMANDS}"


def tail_forged_outcome(db: Db) -> str:
    row = db.find(after=db.snapshot_seqs()[-1], op="sell", ok=True)
    forge(db, row.seq, lambda row: with_command(row, points=HUGE_SALE))
    return f"journal entry {row.seq} records 'ok' but the rules give 'insufficient_points'"


def test_the_writer_refuses_a_tampered_tail(ledger: Db) -> None:
    """At start the writer replays the journal after the newest snapshot, checking its chain,
    its outcomes and the head: tampering there stops it (and every reader) with StoreError
    instead of serving balances computed from a forged journal."""
    for tamper in (tail_edit, tail_delete, tail_delete_last, tail_append, tail_forged_outcome):
        with ledger.tampering(tamper.__name__):
            message = re.escape(tamper(ledger))
            with pytest.raises(StoreError, match=message):
                Ledger.open(ledger.url, ledger_settings())
            store = open_reader(resolve_url(ledger.url))
            try:
                with pytest.raises(StoreError, match=message):
                    read_state(store)
            finally:
                store.close()
            assert not audit(ledger.url).ok


def test_an_edit_before_the_newest_snapshot_is_left_to_the_audit(ledger: Db) -> None:
    """The writer checks only the tail after the newest snapshot (that is what makes it start
    fast), so an entry edited before it does not stop the writer: its balances come from the
    snapshot, which predates the edit. The audit, which replays everything, names the entry."""
    expected = edit_column("command-amount")(ledger)
    with Ledger.open(ledger.url, ledger_settings()) as writer:
        assert writer.head_seq == COMMANDS
    assert_fails(ledger.url, expected)


def test_the_writer_does_not_serve_a_tampered_snapshot(ledger: Db) -> None:
    seq = ledger.snapshot_seqs()[-1]
    state = ledger.snapshot_state(seq)
    user, _ = _richer(state)
    with Ledger.open(ledger.url, ledger_settings()) as writer:
        true_sp = writer.engine.consumers[user].sp
    ledger.set_snapshot(seq, state, None)
    try:
        writer = Ledger.open(ledger.url, ledger_settings())
    except StoreError:
        return
    with writer:
        served = writer.engine.consumers[user].sp
    assert served == true_sp, f"{user} has {served - true_sp} fen of stable points out of nowhere"


def test_the_writer_refuses_a_forged_tail_entry_that_is_not_json(ledger: Db) -> None:
    row = ledger.find(after=ledger.snapshot_seqs()[-1])
    forge(ledger, row.seq, lambda row: row._replace(command="not json"))
    with pytest.raises(StoreError):
        Ledger.open(ledger.url, ledger_settings())


# -- 7. entries added and the head row ------------------------------------------------------------


def append_entry(db: Db, *, move_head: bool = False, outcome: str = OUTCOME_OK) -> JournalRow:
    """A well-formed entry after the last one, hashed with the real algorithm."""
    last = db.entry(COMMANDS)
    command = canonical_command({"op": "register", "user": "intruder"})
    (row,) = rechained(
        [JournalRow(COMMANDS + 1, last.recorded_at, None, outcome, command, "", None)], last.hash
    )
    db.insert_entry(row)
    if move_head:
        db.set_head(row.seq, row.hash)
    return row


def append(db: Db) -> str:
    append_entry(db)
    return (
        rf"entries {COMMANDS + 1}-{COMMANDS + 1} were added outside the writer: "
        rf"the head records entry {COMMANDS}$"
    )


def append_with_head_and_forged_outcome(db: Db) -> str:
    """The intruder also moves the head, but records an accepted registration as rejected."""
    row = append_entry(db, move_head=True, outcome="unknown_referrer")
    return rf"entry {row.seq} records 'unknown_referrer' but the rules give 'ok'$"


def head_hash_replaced(db: Db) -> str:
    db.set_head(COMMANDS, db.entry(COMMANDS - 1).hash)
    return rf"entry {COMMANDS} is not the entry the head records \(replaced\)$"


def head_moved_back(db: Db) -> str:
    db.set_head(COMMANDS - 1, db.entry(COMMANDS - 1).hash)
    return rf"entries {COMMANDS}-{COMMANDS} were added outside the writer"


def head_moved_forward(db: Db) -> str:
    db.set_head(COMMANDS + 1, db.entry(COMMANDS).hash)
    return rf"entries {COMMANDS + 1}-{COMMANDS + 1} are missing \(deleted\)"


def test_appended_entries_and_a_moved_head_are_detected(ledger: Db) -> None:
    """An entry appended outside the writer with a valid hash (head not updated; or updated,
    with an outcome the rules do not give), and a head row edited on its own."""
    for tamper in (
        append,
        append_with_head_and_forged_outcome,
        head_hash_replaced,
        head_moved_back,
        head_moved_forward,
    ):
        with ledger.tampering(tamper.__name__):
            assert_fails(ledger.url, tamper(ledger), tamper.__name__)


def test_an_entry_inserted_before_the_first_is_detected(ledger: Db) -> None:
    """What the hidden row does: a later submission with key "hidden" is answered as a replay of
    entry 0 (not applied), or refused as idempotency_conflict if its command differs, and
    `tokenmall state` lists {"line": 0, ...} among its errors, while `audit verify` says ok."""
    first = ledger.entry(1)
    ledger.insert_entry(
        JournalRow(
            0, first.recorded_at, "hidden", "insufficient_points", first.command, "0" * 64, None
        )
    )
    assert_fails(ledger.url, ".")


def test_a_deleted_or_duplicated_head_row_is_reported_in_one_line(ledger: Db) -> None:
    """Like an unreadable snapshot: one line that says what is wrong (the head), no traceback,
    a non-zero status."""
    for statement in (
        "DELETE FROM ledger_head",
        "INSERT INTO ledger_head (id, seq, hash) SELECT 2, seq, hash FROM ledger_head",
    ):
        with ledger.tampering(statement):
            ledger.sql(statement)
            result = audit_cli(ledger.url)
            output = result.stdout + result.stderr
            assert result.status in (1, 2), statement
            assert "Traceback" not in output
            assert len(output.splitlines()) == 1, output
            assert "head" in output, output


# -- 8. the command line --------------------------------------------------------------------------

CLI_CASES: dict[str, Tamper] = {
    "edit": edit_column("command-amount"),
    "outcome": edit_column("outcome-rejected-to-ok"),
    "delete": delete_middle,
    "delete-last": delete_last,
    "reorder": swap_contents,
    "rewritten-chain": forge_outcome,
    "params": edit_params_and_genesis,
    "snapshot": edit_first_snapshot,
    "append": append,
}


def test_audit_verify_exits_1_with_one_line_naming_the_entry(ledger: Db) -> None:
    """One tampering of each kind: status 1, stderr empty, one line on stdout that starts with
    "audit: FAILED:" and names the first entry (or entries) affected. The first case also runs
    the real console command in a subprocess; the others call its entry point in-process (an
    exception escaping it would fail the test, as a traceback would), which is ten times faster."""
    for index, (case, tamper) in enumerate(CLI_CASES.items()):
        with ledger.tampering(case):
            pattern = tamper(ledger)
            runs = [audit_cli(ledger.url)]
            if index == 0:
                runs.append(audit_cli(ledger.url, in_process=False))
            for result in runs:
                assert result.status == EXIT_AUDIT_FAILED, f"{case}: {result}"
                assert result.stderr == "", case
                lines = result.stdout.splitlines()
                assert len(lines) == 1, f"{case}: {result.stdout}"
                assert lines[0].startswith("audit: FAILED: "), case
                problem = lines[0].removeprefix("audit: FAILED: ")
                assert re.match(pattern, problem), f"{case}: {problem}"
                assert re.search(r"entr(y|ies) \d+", problem), f"{case}: {problem}"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ({"op": "register", "user": "\ud800"}, "a string is not valid Unicode (a lone surrogate)"),
        ({"op": "order", "amount": float("nan")}, "a number is out of range"),
        ({"op": "order", "amount": object()}, "not made of JSON values"),
    ],
)
def test_what_cannot_be_journaled_says_why(command: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        canonical_command(command)


def test_canonical_bytes_sort_keys_and_leave_out_the_key() -> None:
    command = {"user": "é", "op": "register", "key": "k1", "z": [1, {"b": 2, "a": 1}]}
    assert canonical_command(command) == '{"op":"register","user":"é","z":[1,{"a":1,"b":2}]}'
