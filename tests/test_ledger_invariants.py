"""SPEC §6 checked in production (issue 10): at start-up, before every snapshot and at least
every 1,000 commands. A broken invariant is a bug: the writer stops (fail-stop) instead of
committing or serving on."""

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
import zlib
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.test_api import START_TIMEOUT_S, free_port, tokenmall
from tests.test_api_trust import new_token
from tokenmall.core.errors import InvariantViolation
from tokenmall.ledger.ledger import Ledger, Settings, Submission
from tokenmall.ledger.store import StoreError, snapshot_digest

BUGGY_SERVE = Path(__file__).parent / "support" / "buggy_serve.py"


def register(users: range) -> list[Submission]:
    return [Submission.of({"op": "register", "user": f"u{n}"}) for n in users]


def test_a_broken_invariant_stops_the_writer_before_it_commits(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url, Settings(check_every=3)) as ledger:
        ledger.execute(register(range(3)))
        ledger.execute(
            [Submission.of({"op": "order", "id": "o1", "user": "u0", "amount": "10.00"})]
        )
        ledger.engine.pool += 1  # what a bug in a rule would do: money from nowhere
        ledger.execute(register(range(3, 4)))  # 2 commands since the last check: not yet
        with pytest.raises(InvariantViolation, match="after entry 6"):
            ledger.execute(register(range(4, 5)))
        with pytest.raises(InvariantViolation, match="stopped earlier"):
            ledger.execute(register(range(5, 6)))
        head = ledger.head_seq
    assert head == 5  # the batch that showed the violation was not committed
    # the store holds only what was committed before; a new writer starts from it
    with Ledger.open(sqlite_url) as reopened:
        assert reopened.head_seq == 5
        assert reopened.execute(register(range(4, 5)))[0].ok


def test_a_check_of_a_batch_that_did_not_commit_is_forgotten(sqlite_url: str) -> None:
    """A batch is checked before its commit. If the commit then fails, the engine is reloaded
    from the store, and the price checked on the batch's uncommitted state must go too: else the
    next check sees the price fall and stops a writer that has nothing wrong."""
    database = sqlite_url.removeprefix("sqlite:///")
    with Ledger.open(sqlite_url, Settings(check_every=1)) as ledger:
        ledger.execute(register(range(1)))
        with closing(sqlite3.connect(database, isolation_level=None)) as connection:
            connection.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON journal "
                "BEGIN SELECT RAISE(ABORT, 'refused by the store'); END"
            )
        order = {"op": "order", "id": "o1", "user": "u0", "amount": "1000.00"}
        with pytest.raises(StoreError, match="refused by the store"):
            ledger.execute([Submission.of(order)])  # the price rises, is checked; no commit
        with closing(sqlite3.connect(database, isolation_level=None)) as connection:
            connection.execute("DROP TRIGGER refuse")
        assert ledger.execute(register(range(1, 2)))[0].ok
        assert ledger.head_seq == 2


def tamper_snapshot(database: Path) -> None:
    """Add one fen to the pool of the newest snapshot, and sign it again as the writer does
    (the digest binds a snapshot to its entry; it does not stop someone who recomputes it)."""
    with sqlite3.connect(database) as connection:
        seq, hash_hex, blob = connection.execute(
            "SELECT seq, hash, state FROM snapshots ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        state = json.loads(zlib.decompress(blob))
        state["totals"]["pool"] += 1
        text = json.dumps(state, separators=(",", ":")).encode()
        connection.execute(
            "UPDATE snapshots SET state = ?, digest = ? WHERE seq = ?",
            (zlib.compress(text), snapshot_digest(hash_hex, text), seq),
        )


def test_a_ledger_that_breaks_an_invariant_does_not_start(tmp_path: Path) -> None:
    small = Path(__file__).parent / "golden" / "small.jsonl"
    params = Path(__file__).parent / "golden" / "small.params.json"
    assert tokenmall("ingest", str(small), "--params", str(params), cwd=tmp_path).returncode == 0
    tamper_snapshot(tmp_path / "tokenmall.db")
    for args in (("serve", "--port", str(free_port())), ("ingest", str(small))):
        refused = tokenmall(*args, cwd=tmp_path)
        assert refused.returncode == 2, refused.stderr
        (line,) = refused.stderr.splitlines()
        assert "breaks SPEC §6" in line and "money" in line and "audit verify" in line, line
    audit = tokenmall("audit", "verify", cwd=tmp_path)
    assert audit.returncode == 1 and "snapshot at entry 11" in audit.stdout


def test_a_server_whose_rules_break_an_invariant_stops_and_answers_503(tmp_path: Path) -> None:
    """The rules have a bug (tests/support/buggy_serve.py); within 1,000 commands the writer
    sees it, commits nothing more, logs one FATAL line, and every request gets 503."""
    admin, _ = new_token(tmp_path, "admin")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(BUGGY_SERVE), "serve", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {admin}"}

    async def register_many() -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            semaphore = asyncio.Semaphore(50)

            async def one(n: int) -> int:
                async with semaphore:
                    body = {"op": "register", "user": f"u{n}"}
                    return (
                        await client.post("/v1/commands", json=body, headers=headers)
                    ).status_code

            return await asyncio.gather(*(one(n) for n in range(1_500)))

    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        statuses = asyncio.run(register_many())
        assert set(statuses) == {200, 503}
        committed = statuses.count(200)
        assert 0 < committed < 1_000 + 4_096  # caught within a check interval (and a batch)
        assert httpx.get(f"{base}/healthz").status_code == 503
        market = httpx.get(f"{base}/v1/market", headers=headers)
        assert market.status_code == 503 and "invariant" in market.json()["detail"]
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    fatal = [line for line in stderr.splitlines() if "FATAL" in line]
    assert len(fatal) == 1 and "SPEC §6 invariant violated" in fatal[0], stderr
    assert "Traceback" not in stderr
    # what was committed is intact; the journal replays (with the correct rules) to a ledger
    # that passes every check, so the operator can fix the bug and restart
    audit = tokenmall("audit", "verify", cwd=tmp_path)
    assert audit.returncode == 0, audit.stdout
    assert f"ok: {committed} entries" in audit.stdout


def test_an_ingest_whose_rules_break_an_invariant_stops_with_one_line(tmp_path: Path) -> None:
    scenario = tmp_path / "registrations.jsonl"
    scenario.write_text(
        "".join(json.dumps({"op": "register", "user": f"u{n}"}) + "\n" for n in range(1_500))
    )
    ingest = subprocess.run(
        [sys.executable, str(BUGGY_SERVE), "ingest", str(scenario), "--batch-size", "100"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ingest.returncode == 1, ingest.stderr
    (line,) = ingest.stderr.splitlines()
    assert line.startswith("tokenmall: FATAL: SPEC §6 invariant violated: after entry 1000:")
    audit = tokenmall("audit", "verify", cwd=tmp_path)  # what was committed is whole
    assert audit.returncode == 0 and "ok: 900 entries" in audit.stdout, audit.stdout
