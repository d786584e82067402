"""`Ledger.execute_all`: batches applied while the one before commits on a second thread.

It must store exactly what `Ledger.execute` stores one batch after the other (journal,
state, read models, snapshots), see the keys and payments of the batch still committing,
and leave memory equal to the store when a commit fails or the caller stops early. A
failing commit is a real one: a trigger in the database refuses a chosen entry.
"""

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.test_ledger import (
    MIXED_PARAMS,
    T0,
    Command,
    FakeClock,
    exported,
    head_of,
    mix,
    reader,
    replay,
    snapshot_rows,
    state_of,
)
from tests.test_ledger_statements import read_tables
from tokenmall.ledger.audit import verify
from tokenmall.ledger.ledger import DUPLICATE_PAYMENT, Ledger, Result, Settings, Submission
from tokenmall.ledger.store import StoreError

BATCH = 40
Batch = tuple[list[Submission], None]


def stream() -> list[Command]:
    """A mix in which every tenth command carries a key and every cash order a payment id,
    and each batch starts by repeating the last keyed command and the last paid order of
    the batch before it: a key to replay and a payment already taken, both still committing
    when the pipeline applies them."""
    commands: list[Command] = []
    last_keyed: Command | None = None
    last_paid: Command | None = None
    for index, generated in enumerate(mix(1_200, seed=11, consumers=60, settle_every=90)):
        if len(commands) % BATCH == 0 and last_keyed is not None and last_paid is not None:
            commands += [last_keyed, {**last_paid, "id": f"again-{index}"}]
        command = generated if index % 10 else {**generated, "key": f"k{index}"}
        if index % 10 == 0:
            last_keyed = command
        if command["op"] == "order" and "amount" in command:
            command = {**command, "payment_id": f"pay-{command['id']}"}
            last_paid = command
        commands.append(command)
    return commands


def batches(commands: Sequence[Command]) -> Iterator[Batch]:
    for first in range(0, len(commands), BATCH):
        yield [Submission.of(c) for c in commands[first : first + BATCH]], None


def settings() -> Settings:
    # Snapshots and SPEC §6 checks fall inside the pipeline, not only at batch boundaries.
    return Settings(batch_max=BATCH, snapshot_every=300, check_every=70, clock=FakeClock(T0))


def head_after(results: Sequence[Result], count: int) -> int:
    """The journal's head after the first `count` submissions (replays and duplicate
    payments add no entry)."""
    return max(r.seq or 0 for r in results[:count])


def one_after_another(url: str, commands: Sequence[Command]) -> list[Result]:
    with Ledger.open(url, settings(), MIXED_PARAMS) as ledger:
        return [r for batch, _ in batches(commands) for r in ledger.execute(batch)]


def reference_run(tmp_path: Path, commands: Sequence[Command]) -> tuple[str, list[Result]]:
    """A SQLite ledger with `commands` applied one batch after the other, and the results."""
    reference = f"sqlite:///{tmp_path / 'serial.db'}"
    return reference, one_after_another(reference, commands)


def tables(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every read-model row and taken payment, as stored."""
    queries = {
        "statement_lines": "SELECT account, seq, op, balances FROM statement_lines",
        "dividend_blocks": "SELECT block, seq, payments FROM dividend_blocks",
        "consumer_slots": "SELECT account, slot FROM consumer_slots",
        "price_days": "SELECT * FROM price_days",
        "payments": "SELECT payment_id, seq FROM payments",
    }
    with reader(url) as store, store.reading() as connection:
        return {
            table: sorted(tuple(row) for row in connection.execute(sa.text(query)))
            for table, query in queries.items()
        }


def assert_same_ledger(url: str, reference: str) -> None:
    """The same journal (times included: the clock is fixed), state and stored rows."""
    assert exported(url) == exported(reference)
    assert state_of(url) == state_of(reference)
    assert tables(url) == tables(reference)


def test_pipelined_batches_store_what_one_batch_after_another_stores(
    db_url: str, tmp_path: Path
) -> None:
    commands = stream()
    reference, expected = reference_run(tmp_path, commands)
    assert any(r.replayed for r in expected)  # the stream exercises what it is meant to
    assert any(r.outcome == DUPLICATE_PAYMENT for r in expected)

    with Ledger.open(db_url, settings(), MIXED_PARAMS) as ledger:
        got = [r for results in ledger.execute_all(batches(commands)) for r in results]
        assert (ledger.head_seq, ledger.head_hash) == head_of(reference)

    assert got == expected
    assert_same_ledger(db_url, reference)
    assert read_tables(db_url) == read_tables(reference)
    snapshots = snapshot_rows(db_url)
    assert [seq for seq, _, _ in snapshots] == [seq for seq, _, _ in snapshot_rows(reference)]
    assert snapshots and all(taken == entry for _, taken, entry in snapshots)
    with reader(db_url) as store:
        report = verify(store)  # the snapshots hold the state at their entries
    assert report.ok, report.problem


def refuse_entry(url: str, seq: int) -> None:
    """Make the database refuse to journal entry `seq` (a failing commit, for real)."""
    with reader(url) as store, store.engine.begin() as connection:
        if store.is_sqlite:
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse BEFORE INSERT ON journal WHEN NEW.seq = {seq} "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
            return
        connection.exec_driver_sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.seq = {seq} THEN RAISE EXCEPTION 'refused by the test'; END IF; "
            "RETURN NEW; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON journal FOR EACH ROW EXECUTE FUNCTION refuse()"
        )


def allow_entries(url: str) -> None:
    with reader(url) as store, store.engine.begin() as connection:
        connection.exec_driver_sql(
            "DROP TRIGGER refuse" + ("" if store.is_sqlite else " ON journal")
        )


def test_a_failed_commit_drops_the_batch_applied_after_it(db_url: str, tmp_path: Path) -> None:
    commands = stream()
    reference, expected = reference_run(tmp_path, commands)
    with Ledger.open(db_url, settings(), MIXED_PARAMS) as ledger:
        refuse_entry(db_url, head_after(expected, 3 * BATCH) + 5)  # in the fourth batch
        got: list[Result] = []
        with pytest.raises(StoreError, match=r"the commit failed.*refused by the test"):
            for results in ledger.execute_all(batches(commands)):
                got += results
        # Three batches committed and acknowledged; the fifth, applied in memory while the
        # fourth failed, went with it: memory is the store again.
        assert got == expected[: 3 * BATCH]
        assert ledger.head_seq == head_of(db_url)[0] == head_after(expected, 3 * BATCH)
        allow_entries(db_url)
        for results in ledger.execute_all(batches(commands[3 * BATCH :])):
            got += results
    assert got == expected
    assert_same_ledger(db_url, reference)


def test_a_caller_that_stops_early_leaves_the_ledger_at_its_head(
    db_url: str, tmp_path: Path
) -> None:
    commands = stream()
    reference, expected = reference_run(tmp_path, commands)
    with Ledger.open(db_url, settings(), MIXED_PARAMS) as ledger:
        pipeline = ledger.execute_all(batches(commands))
        first = next(pipeline)  # the second batch is committing meanwhile
        pipeline.close()
        assert len(first) == BATCH
        # The batch that was committing has committed; nothing later was applied.
        assert ledger.head_seq == head_of(db_url)[0] == head_after(expected, 2 * BATCH)
        for batch, _ in batches(commands[2 * BATCH :]):
            ledger.execute(batch)
    assert_same_ledger(db_url, reference)


def test_a_batch_too_large_is_refused_before_anything_is_applied(
    sqlite_url: str, tmp_path: Path
) -> None:
    commands = stream()
    reference, expected = reference_run(tmp_path, commands[:BATCH])
    first, too_large = (
        [Submission.of(c) for c in commands[:BATCH]],
        [Submission.of(c) for c in commands[BATCH : 3 * BATCH]],
    )
    with Ledger.open(sqlite_url, settings(), MIXED_PARAMS) as ledger:
        with pytest.raises(ValueError, match=f"at most {BATCH} commands"):
            list(ledger.execute_all([(first, None), (too_large, None)]))
        assert ledger.head_seq == head_of(sqlite_url)[0] == head_after(expected, BATCH)
    assert state_of(sqlite_url) == state_of(reference)


def test_a_refused_commit_is_a_store_error_one_batch_at_a_time(db_url: str) -> None:
    """The serial path too. On PostgreSQL journal entries go in by COPY, whose errors psycopg
    raised as its own: the writer did not take them for a failed commit."""
    commands = stream()
    with Ledger.open(db_url, settings(), MIXED_PARAMS) as ledger:
        first, second = list(batches(commands))[:2]
        ledger.execute(first[0])
        head = ledger.head_seq
        refuse_entry(db_url, head + 1)
        with pytest.raises(StoreError, match=r"the commit failed.*refused by the test"):
            ledger.execute(second[0])
        assert ledger.head_seq == head_of(db_url)[0] == head
        allow_entries(db_url)
        assert all(r.seq is None or r.seq > head for r in ledger.execute(second[0]))


def test_rows_with_any_text_are_stored_exactly(sqlite_url: str) -> None:
    """SQLite takes a batch's rows as one JSON array, whose strings SQLite cuts at NUL: rows
    holding one go in one by one. Either way what is read back is what was written."""
    # Ids are letters and digits of any script (SPEC v2 §4); a payment id is any text.
    users = ["plain", "张三", "ＡＢＣ", "a.b@c", "٣٤", "x" * 64]
    texts = ["nul\x00inside", "😀 emoji", "line\u2028sep", 'quote" back\\slash', "\x01", "é"]
    commands: list[Command] = [{"op": "register_merchant", "merchant": "m"}]
    for index, (user, text) in enumerate(zip(users, texts, strict=True)):
        commands += [
            {"op": "register", "user": user, "key": f"key {user[:4]!r} ✓"},
            {
                "op": "order",
                "id": f"o{index}",
                "user": user,
                "amount": "100.00",
                "payment_id": f"pay {text}",
            },
        ]
    with Ledger.open(sqlite_url, settings(), MIXED_PARAMS) as ledger:
        # One command a batch: those with a NUL go one way, the others the other.
        for results in ledger.execute_all(([Submission.of(c)], None) for c in commands):
            assert all(r.ok for r in results)
    assert state_of(sqlite_url) == replay(commands, MIXED_PARAMS)
    paid = {str(payment) for payment, _ in tables(sqlite_url)["payments"]}
    assert paid == {f"pay {text}" for text in texts}
    keys = [json.loads(line).get("key") for line in exported(sqlite_url)]
    assert keys == [c.get("key") for c in commands]
    with reader(sqlite_url) as store:
        assert verify(store).ok
