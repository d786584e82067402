"""The durable ledger (tokenmall.ledger): what it stores must be what `replay` computes.

Every test that touches a database runs on both backends (the `db_url` fixture: a fresh SQLite
file and a fresh PostgreSQL database) unless it says why not. The command line is run as a real
subprocess, as a user runs it.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import SETUP, commands, param_overrides
from tests.support.workload import MixGenerator
from tokenmall.core.canonical import StateJson, canonical_json
from tokenmall.core.params import Params
from tokenmall.jsonl import replay_lines
from tokenmall.ledger.audit import verify
from tokenmall.ledger.ledger import IDEMPOTENCY_CONFLICT, Ledger, Result, Settings, Submission
from tokenmall.ledger.store import Store, StoreError, resolve_url
from tokenmall.ledger.views import export_lines, open_reader, read_meta, read_state

GOLDEN = Path(__file__).parent / "golden"
EXIT_BAD_INPUT = 2
Command = dict[str, Any]
SMALL_PARAMS = Params().with_overrides(json.loads((GOLDEN / "small.params.json").read_text()))
MIXED_OVERRIDES = {"referral_rates": ["0.10", "0.05"], "quota_multiple": "1"}
MIXED_PARAMS = Params().with_overrides(MIXED_OVERRIDES)


# -- helpers ----------------------------------------------------------------------------------


@contextmanager
def reader(url: str) -> Iterator[Store]:
    store = open_reader(resolve_url(url))
    try:
        yield store
    finally:
        store.close()


def state_of(url: str) -> StateJson:
    with reader(url) as store:
        return read_state(store)


def exported(url: str) -> list[str]:
    with reader(url) as store:
        return list(export_lines(store))


def head_of(url: str) -> tuple[int, str]:
    with reader(url) as store, store.reading() as connection:
        return Store.head(connection)


def journal_length(url: str) -> int:
    """Entries in the journal; 0 when there is no SQLite file at all."""
    resolved = resolve_url(url)
    database = sa.make_url(resolved).database
    if resolved.startswith("sqlite") and not Path(database or "").exists():
        return 0
    with reader(url) as store, store.reading() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM journal")).scalar_one()
    return int(count)


def snapshot_rows(url: str) -> list[tuple[int, str, str | None]]:
    """(seq, snapshot hash, hash of the journal entry at seq) for every stored snapshot."""
    with reader(url) as store, store.reading() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT s.seq, s.hash, j.hash FROM snapshots s "
                "LEFT JOIN journal j ON j.seq = s.seq ORDER BY s.seq"
            )
        ).all()
    return [(int(seq), str(snap_hash), entry_hash) for seq, snap_hash, entry_hash in rows]


def replay(commands_: Sequence[Command], params: Params) -> StateJson:
    return replay_lines([json.dumps(command).encode() for command in commands_], params)


def submissions(commands_: Sequence[Command]) -> list[Submission]:
    return [Submission.of(command) for command in commands_]


def execute_in_batches(ledger: Ledger, commands_: Sequence[Command], sizes: Sequence[int]) -> None:
    """Apply `commands_` in consecutive batches of the given sizes (cycled); checks that each
    command got the next seq."""
    start, batches = 0, 0
    while start < len(commands_):
        size = sizes[batches % len(sizes)]
        chunk = commands_[start : start + size]
        results = ledger.execute(submissions(chunk))
        assert [result.seq for result in results] == list(
            range(ledger.head_seq - len(chunk) + 1, ledger.head_seq + 1)
        )
        assert not any(result.replayed for result in results)
        start += size
        batches += 1


def golden_commands(name: str) -> list[Command]:
    lines = (GOLDEN / f"{name}.jsonl").read_bytes().splitlines()
    assert all(line.strip() for line in lines)  # no blank lines: line number == seq
    return [json.loads(line) for line in lines]


def mix(count: int, seed: int, consumers: int = 200, settle_every: int = 100) -> list[Command]:
    return MixGenerator(consumers, seed, settle_every=settle_every).commands(count)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


# -- 1. the stored state is the replayed state ------------------------------------------------


SMALL_V2_PARAMS = Params().with_overrides(json.loads((GOLDEN / "small-v2.params.json").read_text()))


@pytest.mark.parametrize(
    ("name", "params"),
    [("small", SMALL_PARAMS), ("seed100", Params()), ("small-v2", SMALL_V2_PARAMS)],
)
def test_golden_scenarios_through_the_ledger(db_url: str, name: str, params: Params) -> None:
    commands_ = golden_commands(name)
    expected_bytes = (GOLDEN / f"{name}.expected.json").read_text()
    with Ledger.open(db_url, Settings(batch_max=16), params) as ledger:
        execute_in_batches(ledger, commands_, [1, 16, 5])
    state = state_of(db_url)
    assert canonical_json(state) == expected_bytes
    assert state == replay(commands_, params)
    with reader(db_url) as store:
        assert json.loads(read_meta(store).params_json) == params.as_json()


def test_mixed_stream_in_uneven_batches_equals_replay(db_url: str) -> None:
    stream = mix(3_000, seed=11)
    expected = replay(stream, MIXED_PARAMS)
    assert len(expected["errors"]) > 20  # the mix holds rejected commands
    codes = {error["line"]: error["code"] for error in expected["errors"]}
    results: list[Result] = []
    with Ledger.open(db_url, Settings(batch_max=1_500), MIXED_PARAMS) as ledger:
        start = 0
        for size in (1, 2, 997, 3, 1_500, 40, 457):
            results += ledger.execute(submissions(stream[start : start + size]))
            start += size
        assert start == len(stream)
        with pytest.raises(ValueError, match="at most 1500"):
            ledger.execute(submissions(stream[:1_501]))
        assert ledger.head_seq == len(stream)
    assert results == [Result(seq, codes.get(seq, "ok")) for seq in range(1, len(stream) + 1)]
    state = state_of(db_url)
    assert state == expected
    assert canonical_json(state) == canonical_json(expected)


# -- 2. restart -------------------------------------------------------------------------------


@pytest.mark.parametrize("snapshot_every", [7, None])
def test_restart_gives_the_same_state_and_continues(
    db_url: str, snapshot_every: int | None
) -> None:
    stream = mix(400, seed=5, consumers=60, settle_every=45)
    first, rest = stream[:250], stream[250:]
    config = Settings() if snapshot_every is None else Settings(snapshot_every=snapshot_every)
    with Ledger.open(db_url, config, MIXED_PARAMS) as ledger:
        execute_in_batches(ledger, first, [1, 3, 11, 40, 2])
        head = (ledger.head_seq, ledger.head_hash)
    before = state_of(db_url)
    assert before == replay(first, MIXED_PARAMS)
    assert head_of(db_url) == head == (250, head[1])

    snapshots = snapshot_rows(db_url)
    if snapshot_every is None:
        assert snapshots == []
    else:
        assert len(snapshots) == Settings().snapshots_kept
        for seq, snap_hash, entry_hash in snapshots:
            assert 0 < seq <= 250
            assert snap_hash == entry_hash  # each snapshot is of a real journal entry
        assert snapshots[-1][0] > 250 - 40  # the newest is recent

    with Ledger.open(db_url, config) as ledger:  # an existing ledger keeps its own params
        assert (ledger.head_seq, ledger.head_hash) == head
        assert ledger.snapshot_seq == (snapshots[-1][0] if snapshots else 0)
        assert state_of(db_url) == before
        execute_in_batches(ledger, rest, [17, 1, 60])
        assert ledger.head_seq == len(stream)
    assert state_of(db_url) == replay(stream, MIXED_PARAMS)

    with Ledger.open(db_url, Settings()) as ledger:  # and once more, settings changed
        assert ledger.head_seq == len(stream)
    assert state_of(db_url) == replay(stream, MIXED_PARAMS)
    with reader(db_url) as store:
        report = verify(store)
    assert report.ok, report.problem
    assert report.entries == len(stream)


def test_explicit_snapshot_is_stored_once_and_used(db_url: str) -> None:
    stream = mix(120, seed=8, consumers=30)
    with Ledger.open(db_url) as ledger:
        ledger.snapshot()  # nothing journaled yet: no snapshot of the empty ledger
        execute_in_batches(ledger, stream, [50])
        ledger.snapshot()
        ledger.snapshot()  # no new entry since: nothing to add
    snapshots = snapshot_rows(db_url)
    assert [seq for seq, *_ in snapshots] == [120]
    assert snapshots[0][1] == snapshots[0][2]
    with Ledger.open(db_url) as ledger:
        assert ledger.snapshot_seq == 120
    assert state_of(db_url) == replay(stream, Params())


# -- 3. export --------------------------------------------------------------------------------


def keyed_stream() -> list[tuple[Command, str | None]]:
    """A mix with rejected commands, a parameter change, and a key on every fifth command."""
    stream = mix(300, seed=21, consumers=40, settle_every=60)
    stream.insert(150, {"op": "set_params", "params": {"dividend_rate": "0.1"}})
    stream.insert(151, {"op": "bogus"})
    return [
        (command, f"req-{index}-é" if index % 5 == 0 else None)
        for index, command in enumerate(stream)
    ]


def test_export_replays_to_the_state_and_reingests(db_url: str, tmp_path: Path) -> None:
    stream = keyed_stream()
    with Ledger.open(db_url, Settings(), MIXED_PARAMS) as ledger:
        for start in range(0, len(stream), 64):
            chunk = stream[start : start + 64]
            ledger.execute([Submission.of(command, key) for command, key in chunk])
    state = state_of(db_url)
    assert state["errors"]
    lines = exported(db_url)
    assert len(lines) == len(stream)
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)

    decoded = [json.loads(line) for line in lines]
    for (command, key), entry in zip(stream, decoded, strict=True):
        assert entry.pop("key", None) == key
        assert entry == command

    # replay (with the ledger's own starting params) of the export is the ledger's state
    with reader(db_url) as store:
        params = Params().with_overrides(json.loads(read_meta(store).params_json))
    assert params.as_json() == MIXED_PARAMS.as_json()
    from_export = replay_lines([line.removesuffix("\n").encode() for line in lines], params)
    assert from_export == state
    assert canonical_json(from_export) == canonical_json(state)

    # re-ingesting the export into a fresh store gives the same state and the same export
    copy_url = f"sqlite:///{tmp_path / 'copy.db'}"
    with Ledger.open(copy_url, Settings(), params) as copy:
        results = copy.execute([Submission.of(json.loads(line)) for line in lines])
    assert not any(result.replayed for result in results)
    assert state_of(copy_url) == state
    assert exported(copy_url) == lines


# -- 4. idempotency keys ----------------------------------------------------------------------


REGISTER_ALICE: Command = {"op": "register", "user": "alice"}
ORDER: Command = {"op": "order", "id": "o1", "user": "alice", "amount": "100.00"}


def test_same_key_same_command_replays_the_first_result(db_url: str) -> None:
    with Ledger.open(db_url) as ledger:
        assert ledger.execute([Submission.of(REGISTER_ALICE)]) == [Result(1, "ok")]
        first = ledger.execute([Submission.of(ORDER, "pay-1")])
        assert first == [Result(2, "ok")]
        state, head = state_of(db_url), head_of(db_url)
        # the same command, fields in another order, key as a field or as the argument
        again = ledger.execute(
            [
                Submission.of(dict(reversed(ORDER.items())), "pay-1"),
                Submission.of({**ORDER, "key": "pay-1"}),
            ]
        )
        assert again == [Result(2, "ok", replayed=True)] * 2
        assert state_of(db_url) == state
        assert head_of(db_url) == head
        assert journal_length(db_url) == 2
    assert state_of(db_url)["sales"] == "100.00"


def test_a_replayed_rejection_stays_rejected(db_url: str) -> None:
    sell = {"op": "sell", "user": "bob", "points": "1"}
    bob = [
        {"op": "register", "user": "bob"},
        {"op": "order", "id": "o1", "user": "bob", "amount": "100.00"},
    ]
    assert replay([*bob, sell], Params())["errors"] == []  # the sell would succeed now
    with Ledger.open(db_url) as ledger:
        assert ledger.execute([Submission.of(sell, "sell-1")]) == [Result(1, "unknown_user")]
        ledger.execute(submissions(bob))
        state = state_of(db_url)
        # but the key's first outcome stands
        results = ledger.execute([Submission.of(sell, "sell-1")])
        assert results == [Result(1, "unknown_user", replayed=True)]
        assert not results[0].ok
        assert state_of(db_url) == state
        assert journal_length(db_url) == 3
    assert state_of(db_url)["errors"] == [{"line": 1, "code": "unknown_user"}]


def test_same_key_other_command_is_a_conflict_without_an_entry(db_url: str) -> None:
    with Ledger.open(db_url) as ledger:
        ledger.execute([Submission.of(REGISTER_ALICE, "k")])
        state = state_of(db_url)
        results = ledger.execute(
            [
                Submission.of({"op": "register", "user": "mallory"}, "k"),
                Submission.of({**REGISTER_ALICE, "extra": 1}, "k"),
                Submission.of({"op": "register", "user": "bob"}),
            ]
        )
        assert results == [
            Result(None, IDEMPOTENCY_CONFLICT),
            Result(None, IDEMPOTENCY_CONFLICT),
            Result(2, "ok"),
        ]
        assert not results[0].ok
        assert not results[0].replayed
    state_after = state_of(db_url)
    assert sorted(state_after["users"]) == ["alice", "bob"]
    assert state_after["errors"] == state["errors"] == []
    assert journal_length(db_url) == 2
    assert [json.loads(line).get("key") for line in exported(db_url)] == ["k", None]


def test_keys_inside_one_batch(db_url: str) -> None:
    with Ledger.open(db_url) as ledger:
        results = ledger.execute(
            [
                Submission.of(REGISTER_ALICE, "a"),
                Submission.of(REGISTER_ALICE, "a"),  # replay of the entry just above
                Submission.of(REGISTER_ALICE),  # no key: applied again, and rejected
                Submission.of({"op": "register", "user": "bob"}, "a"),  # conflict
                Submission.of({"op": "register", "user": "bob"}, "b"),
                Submission.of({"op": "register", "user": "bob", "key": "b"}),
                Submission.of({"op": "sell", "user": "bob", "points": "1"}, "c"),
                Submission.of({"op": "sell", "user": "bob", "points": "1"}, "c"),
            ]
        )
    assert results == [
        Result(1, "ok"),
        Result(1, "ok", replayed=True),
        Result(2, "duplicate_account"),
        Result(None, IDEMPOTENCY_CONFLICT),
        Result(3, "ok"),
        Result(3, "ok", replayed=True),
        Result(4, "insufficient_points"),
        Result(4, "insufficient_points", replayed=True),
    ]
    assert journal_length(db_url) == 4
    assert state_of(db_url)["errors"] == [
        {"line": 2, "code": "duplicate_account"},
        {"line": 4, "code": "insufficient_points"},
    ]


def test_keys_survive_a_restart(db_url: str) -> None:
    with Ledger.open(db_url, Settings(snapshot_every=1)) as ledger:
        ledger.execute([Submission.of(REGISTER_ALICE, "k1"), Submission.of(ORDER, "k2")])
    with Ledger.open(db_url, Settings(snapshot_every=1)) as ledger:
        results = ledger.execute(
            [
                Submission.of(ORDER, "k2"),
                Submission.of({**ORDER, "amount": "5.00"}, "k2"),
                Submission.of(REGISTER_ALICE, "k1"),
            ]
        )
    assert results == [
        Result(2, "ok", replayed=True),
        Result(None, IDEMPOTENCY_CONFLICT),
        Result(1, "ok", replayed=True),
    ]
    assert journal_length(db_url) == 2
    assert state_of(db_url)["sales"] == "100.00"


def test_keys_expire_after_the_retention_period(db_url: str) -> None:
    settle: Command = {"op": "settle_day"}
    clock = FakeClock(T0)
    config = Settings(key_retention_days=30, clock=clock)
    with Ledger.open(db_url, config) as ledger:
        assert ledger.execute([Submission.of(settle, "daily")]) == [Result(1, "ok")]
        ledger.execute([Submission.of(REGISTER_ALICE, "other")])
        for inside in (timedelta(days=30) - timedelta(seconds=1), timedelta(days=30)):
            clock.now = T0 + inside
            assert ledger.execute([Submission.of(settle, "daily")]) == [
                Result(1, "ok", replayed=True)
            ]
            assert state_of(db_url)["day"] == 1
        # one microsecond past the retention period the key is forgotten: applied again
        clock.now = T0 + timedelta(days=30, microseconds=1)
        assert ledger.execute([Submission.of(settle, "daily")]) == [Result(3, "ok")]
        assert state_of(db_url)["day"] == 2
        # ... and an expired key may now name another command without a conflict
        bob = {"op": "register", "user": "bob"}
        assert ledger.execute([Submission.of(bob, "other")]) == [Result(4, "ok")]
        # the re-used key is honoured again, from its new entry
        clock.now = T0 + timedelta(days=45)
        assert ledger.execute(
            [Submission.of(settle, "daily"), Submission.of(REGISTER_ALICE, "daily")]
        ) == [Result(3, "ok", replayed=True), Result(None, IDEMPOTENCY_CONFLICT)]
    # a reopened ledger keeps the same clock rule
    clock.now = T0 + timedelta(days=61)
    with Ledger.open(db_url, config) as ledger:
        assert ledger.execute([Submission.of(settle, "daily")]) == [Result(5, "ok")]
    assert state_of(db_url)["day"] == 3
    assert journal_length(db_url) == 5


def test_unusual_but_valid_keys_round_trip(db_url: str) -> None:
    keys = ["x" * 255, "é" * 255, "键 with spaces", "🙂" * 10, "'\"\\;--"]
    users = [{"op": "register", "user": f"u{index}"} for index in range(len(keys))]
    with Ledger.open(db_url) as ledger:
        first = ledger.execute(
            [Submission.of(user, key) for user, key in zip(users, keys, strict=True)]
        )
    assert first == [Result(seq, "ok") for seq in range(1, len(keys) + 1)]
    with Ledger.open(db_url) as ledger:
        again = ledger.execute(
            [Submission.of({**user, "key": key}) for user, key in zip(users, keys, strict=True)]
        )
    assert again == [Result(seq, "ok", replayed=True) for seq in range(1, len(keys) + 1)]
    assert [json.loads(line)["key"] for line in exported(db_url)] == keys


def test_the_key_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="given twice"):
        Submission.of({**REGISTER_ALICE, "key": "a"}, "b")
    with pytest.raises(ValueError, match="given twice"):
        Submission.of({**REGISTER_ALICE, "key": "a"}, "a")


BAD_KEYS: list[object] = [
    "",
    5,
    True,
    1.5,
    ["k"],
    {"k": 1},
    "x" * 256,
    "a\nb",
    "\t",
    "\x1f",
    "\x00",
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_bad_keys_are_refused(key: object) -> None:
    with pytest.raises(ValueError, match="key"):
        Submission.of({**REGISTER_ALICE, "key": key})
    if isinstance(key, str):
        with pytest.raises(ValueError, match="key"):
            Submission.of(REGISTER_ALICE, key)


def test_a_submission_holds_the_command_without_its_key() -> None:
    submission = Submission.of({"user": "alice", "op": "register", "key": "k"})
    assert submission.key == "k"
    assert submission.command == REGISTER_ALICE
    assert submission.canonical == '{"op":"register","user":"alice"}'
    with pytest.raises(ValueError):
        Submission.of({"op": "order", "id": "o", "user": "a", "amount": float("nan")})


def test_a_command_the_journal_cannot_encode_is_refused_up_front() -> None:
    with pytest.raises(ValueError):
        Submission.of({"op": "register", "user": "\ud800"})


def test_what_is_applied_is_what_is_journaled(sqlite_url: str) -> None:
    command: Command = {"op": "set_params", "params": {"referral_rates": ("0.1",)}}
    try:
        submission = Submission.of(command)
    except ValueError:
        return  # refusing what is not plain JSON data up front would do too
    with Ledger.open(sqlite_url) as ledger:
        outcome = ledger.execute([submission])[0].outcome
    with Ledger.open(sqlite_url) as ledger:  # the journal must still load
        assert ledger.head_seq == 1
    journaled = replay_lines([line.encode() for line in exported(sqlite_url)], Params())
    assert state_of(sqlite_url) == journaled
    assert outcome == (journaled["errors"][0]["code"] if journaled["errors"] else "ok")


# -- 5. a single writer -----------------------------------------------------------------------


def test_a_second_writer_is_refused_while_the_first_is_open(db_url: str) -> None:
    with Ledger.open(db_url) as first:
        first.execute([Submission.of(REGISTER_ALICE)])
        for _ in range(2):  # refused every time, and the refusal leaves the lock alone
            with pytest.raises(StoreError, match=r"another tokenmall writer .*stop it first"):
                Ledger.open(db_url)
        # readers take no lock
        assert sorted(state_of(db_url)["users"]) == ["alice"]
        first.execute([Submission.of({"op": "register", "user": "bob"})])
    with Ledger.open(db_url) as second:
        assert second.head_seq == 2
        second.execute([Submission.of({"op": "register", "user": "carol"})])
    assert sorted(state_of(db_url)["users"]) == ["alice", "bob", "carol"]


HOLDER = """
import sys
from tokenmall.ledger.ledger import Ledger
with Ledger.open(sys.argv[1]):
    print("ready", flush=True)
    sys.stdin.readline()
"""


def test_a_writer_in_another_process_blocks_the_cli(db_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, db_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == b"ready\n", holder.stderr
        message = one_line_failure(tokenmall("ingest", GOLDEN / "small.jsonl", "--db", db_url))
        assert "another tokenmall writer" in message
        if db_url.startswith("sqlite"):
            assert f"pid {holder.pid}" in message
        assert journal_length(db_url) == 0  # a reader is not a writer: it reads meanwhile
        holder.stdin.write(b"\n")
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    done = tokenmall("ingest", GOLDEN / "small.jsonl", "--db", db_url)
    assert done.returncode == 0, done.stderr
    assert journal_length(db_url) == 11


# -- 6. the command line ----------------------------------------------------------------------


def tokenmall(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if k != "TOKENMALL_DB"}
    environment["PYTHONIOENCODING"] = "utf-8"
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", *map(str, args)],
        capture_output=True,
        env=environment,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def ok_output(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    return result.stdout.decode("utf-8")


def one_line_failure(result: subprocess.CompletedProcess[bytes]) -> str:
    """Exit status 2, nothing on stdout, exactly one line on stderr, no traceback."""
    message = result.stderr.decode("utf-8")
    assert "Traceback" not in message, message
    assert result.returncode == EXIT_BAD_INPUT, message
    assert result.stdout == b""
    assert message.endswith("\n")
    assert len(message.splitlines()) == 1, message
    assert message.startswith("tokenmall: error: ")
    return message


def summary(applied: int, rejected: int, replayed: int, skipped: int) -> str:
    return (
        f"{applied} applied, {rejected} rejected by the rules, {replayed} already applied "
        f"(same key), {skipped} done by an earlier run; journal head: entry "
    )


def test_cli_ingest_state_and_ingest_again(db_url: str, tmp_path: Path) -> None:
    small, params = GOLDEN / "small.jsonl", GOLDEN / "small.params.json"
    expected = (GOLDEN / "small.expected.json").read_bytes()
    first = tokenmall("ingest", small, "--db", db_url, "--params", params, "--batch-size", "4")
    assert first.stderr == b""
    assert f"{small}: {summary(11, 0, 0, 0)}11, hash " in ok_output(first)
    state = tokenmall("state", "--db", db_url)
    assert state.stderr == b""
    assert state.stdout == expected
    head = head_of(db_url)

    # the same file again (same params): everything was done by the earlier run
    again = tokenmall("ingest", small, "--db", db_url, "--params", params)
    assert ok_output(again) == f"{small}: {summary(0, 0, 0, 11)}11, hash {head[1]}\n"
    assert canonical_json(state_of(db_url)).encode() == expected
    assert head_of(db_url) == head

    # other starting params on an existing ledger: refused, nothing applied
    defaults = tmp_path / "defaults.json"
    defaults.write_text("{}")
    refused = tokenmall("ingest", GOLDEN / "seed100.jsonl", "--db", db_url, "--params", defaults)
    assert "other starting parameters" in one_line_failure(refused)
    assert head_of(db_url) == head
    # no --params: the ledger keeps its own
    ok_output(tokenmall("ingest", GOLDEN / "seed100.jsonl", "--db", db_url))
    assert head_of(db_url)[0] == 11 + len(golden_commands("seed100"))
    with reader(db_url) as store:
        assert json.loads(read_meta(store).params_json) == SMALL_PARAMS.as_json()


def write_lines(path: Path, lines: Sequence[str | bytes]) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


GOOD_LINES = [
    '{"op": "register", "user": "alice", "key": "r-alice"}',
    '{"op": "order", "id": "o1", "user": "alice", "amount": "100.00"}',
]


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [
        ("{op: register}", "not a JSON object"),
        ('["op", "register"]', "not a JSON object"),
        ('{"op": "register", "user": "bob", "key": ""}', "key"),
        ('{"op": "register", "user": "bob", "key": "' + "k" * 256 + '"}', "key"),
        ('{"op": "register", "user": "bob", "key": "a\\u0007"}', "printable"),
        ('{"op": "register", "user": "bob", "key": "r-alice"}', "idempotency_conflict"),
    ],
    ids=["not-json", "array", "empty-key", "long-key", "bell-key", "reuse"],
)
def test_cli_ingest_refuses_a_file_with_a_bad_line(
    sqlite_url: str, tmp_path: Path, bad_line: str, fragment: str
) -> None:
    scenario = write_lines(tmp_path / "bad.jsonl", [*GOOD_LINES, "", bad_line, *GOOD_LINES])
    message = one_line_failure(tokenmall("ingest", scenario, "--db", sqlite_url))
    assert "bad.jsonl:4: " in message
    assert fragment in message
    assert journal_length(sqlite_url) == 0


def test_cli_bad_line_leaves_an_existing_ledger_unchanged(db_url: str, tmp_path: Path) -> None:
    ok_output(tokenmall("ingest", write_lines(tmp_path / "good.jsonl", GOOD_LINES), "--db", db_url))
    before, head = state_of(db_url), head_of(db_url)
    scenario = write_lines(
        tmp_path / "bad.jsonl", ['{"op": "register", "user": "bob"}', "[]", *GOOD_LINES]
    )
    assert "bad.jsonl:2:" in one_line_failure(tokenmall("ingest", scenario, "--db", db_url))
    # a key in the file that the store holds for another command
    conflicting = write_lines(
        tmp_path / "conflict.jsonl",
        [
            '{"op": "register", "user": "bob"}',
            '{"op": "register", "user": "carol", "key": "r-alice"}',
        ],
    )
    message = one_line_failure(tokenmall("ingest", conflicting, "--db", db_url))
    assert "idempotency_conflict" in message
    assert "r-alice" in message
    assert "journal entry 1" in message
    assert head_of(db_url) == head
    assert state_of(db_url) == before
    # the same key for the same command is fine: replayed, not applied twice
    repeat = write_lines(tmp_path / "repeat.jsonl", [GOOD_LINES[0], '{"op": "settle_day"}'])
    assert summary(1, 0, 1, 0) in ok_output(tokenmall("ingest", repeat, "--db", db_url))
    assert journal_length(db_url) == 3


@pytest.mark.parametrize("command", [["state"], ["journal", "export"], ["audit", "verify"]])
def test_cli_readers_on_a_missing_database(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "missing.db"
    message = one_line_failure(tokenmall(*command, "--db", missing))
    assert "no ledger at" in message
    assert list(tmp_path.iterdir()) == []


def test_cli_db_option_environment_and_default(tmp_path: Path) -> None:
    small = GOLDEN / "small.jsonl"
    env_db, missing = tmp_path / "env.db", tmp_path / "missing.db"
    ok_output(tokenmall("ingest", small, env={"TOKENMALL_DB": str(env_db)}))
    assert env_db.exists()
    state = ok_output(tokenmall("state", env={"TOKENMALL_DB": str(env_db)}))
    assert json.loads(state) == replay(golden_commands("small"), Params())
    # --db (here a sqlite:/// URL) wins over $TOKENMALL_DB
    via_option = tokenmall(
        "state", "--db", f"sqlite:///{env_db}", env={"TOKENMALL_DB": str(missing)}
    )
    assert ok_output(via_option) == state
    # $TOKENMALL_DB naming a missing file: refused, and nothing created
    assert "no ledger at" in one_line_failure(
        tokenmall("journal", "export", env={"TOKENMALL_DB": str(missing)})
    )
    assert not missing.exists()
    # neither: tokenmall.db in the working directory
    work = tmp_path / "work"
    work.mkdir()
    ok_output(tokenmall("ingest", small, cwd=work))
    assert canonical_json(state_of(str(work / "tokenmall.db"))) == state


def test_cli_ingest_refuses_standard_input(sqlite_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", "ingest", "-", "--db", sqlite_url],
        input=(GOLDEN / "small.jsonl").read_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert "standard input" in one_line_failure(result)
    assert journal_length(sqlite_url) == 0


def test_cli_export_with_params_out_replays_to_the_state(sqlite_url: str, tmp_path: Path) -> None:
    lines = [
        json.dumps({**command, "key": key} if key else command)
        for command, key in keyed_stream()[:200]
    ]
    scenario = write_lines(tmp_path / "mix.jsonl", lines)
    params = tmp_path / "params.json"
    params.write_text(json.dumps(MIXED_OVERRIDES))
    ok_output(tokenmall("ingest", scenario, "--db", sqlite_url, "--params", params))
    state = tokenmall("state", "--db", sqlite_url)
    assert state.returncode == 0
    assert json.loads(state.stdout)["errors"]

    params_out = tmp_path / "params-out.json"
    export = tokenmall("journal", "export", "--db", sqlite_url, "--params-out", params_out)
    assert export.stderr == b""
    export_file = tmp_path / "export.jsonl"
    export_file.write_bytes(ok_output(export).encode())
    replayed = tokenmall("replay", "--params", params_out, export_file)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == state.stdout
    # the original file replays to the same state too (no blank lines: line == seq)
    original = replay_lines(scenario.read_bytes().splitlines(), MIXED_PARAMS)
    assert canonical_json(original).encode() == state.stdout

    # without --params-out, a ledger with non-default params gets a one-line note
    plain = tokenmall("journal", "export", "--db", sqlite_url)
    assert plain.stdout == export.stdout
    note = plain.stderr.decode()
    assert len(note.splitlines()) == 1
    assert "--params-out" in note


def test_cli_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.db"
    text = "these are my notes, not a SQLite database; " * 4
    not_a_db.write_text(text)
    for command in (["state"], ["ingest", GOLDEN / "small.jsonl"]):
        assert "not a database" in one_line_failure(tokenmall(*command, "--db", not_a_db))
    assert not_a_db.read_text() == text


def test_cli_a_refused_ingest_creates_no_ledger(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    first = tmp_path / "p1.json"
    first.write_text('{"referral_rates": ["0.20"]}')
    bad = write_lines(tmp_path / "bad.jsonl", [GOOD_LINES[0], "not json"])
    one_line_failure(tokenmall("ingest", bad, "--db", db, "--params", first))
    fixed = write_lines(tmp_path / "fixed.jsonl", GOOD_LINES)
    ok_output(tokenmall("ingest", fixed, "--db", db, "--params", GOLDEN / "small.params.json"))


# -- 7. property: random commands in random batches equal replay ------------------------------


KEYS = ["k0", "k1", "k2"]


@settings(max_examples=25, deadline=None)
@given(
    overrides=param_overrides,
    keyed=st.lists(
        st.tuples(commands, st.one_of(st.none(), st.none(), st.sampled_from(KEYS))), max_size=40
    ),
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=6),
    snapshot_every=st.integers(1, 15),
)
def test_random_batches_equal_replay(
    tmp_path_factory: pytest.TempPathFactory,
    overrides: dict[str, Any],
    keyed: list[tuple[Command, str | None]],
    sizes: list[int],
    snapshot_every: int,
) -> None:
    params = Params().with_overrides(overrides)
    url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'ledger.db'}"
    stream: list[tuple[Command, str | None]] = [(command, None) for command in SETUP] + keyed

    # the model: a key's first command is journaled; later ones replay it or conflict
    journaled: list[Command] = []
    first: dict[str, tuple[str, int]] = {}
    expected_seq: list[tuple[int | None, bool]] = []
    for command, key in stream:
        text = json.dumps(command, sort_keys=True)
        if key is not None and key in first:
            first_text, seq = first[key]
            expected_seq.append((seq, True) if first_text == text else (None, False))
            continue
        journaled.append(command)
        if key is not None:
            first[key] = (text, len(journaled))
        expected_seq.append((len(journaled), False))
    expected = replay(journaled, params)
    codes = {error["line"]: error["code"] for error in expected["errors"]}
    expected_results = [
        Result(seq, codes.get(seq, "ok"), replayed)
        if seq is not None
        else Result(None, IDEMPOTENCY_CONFLICT)
        for seq, replayed in expected_seq
    ]

    results: list[Result] = []
    config = Settings(snapshot_every=snapshot_every)
    with Ledger.open(url, config, params) as ledger:
        start, index = 0, 0
        while start < len(stream):
            size = sizes[index % len(sizes)]
            chunk = stream[start : start + size]
            results += ledger.execute([Submission.of(command, key) for command, key in chunk])
            start, index = start + size, index + 1
        head = (ledger.head_seq, ledger.head_hash)
    assert results == expected_results
    assert head[0] == len(journaled)
    assert state_of(url) == expected
    with Ledger.open(url, config) as reopened:
        assert (reopened.head_seq, reopened.head_hash) == head
    assert state_of(url) == expected
