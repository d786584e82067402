"""Batched durable ingest with and without read models, for comparing two builds.

    .venv/bin/python bench/ingest.py [--commands 100000] [--runs 1] [--backends sqlite,postgresql]

The batched mode of bench/durable.py (`Ledger.execute` with batches of 4,096, what `tokenmall
ingest` does) on the engine benchmark's mix, with statements and price history written in the
same transactions ("read models") and without them ("deferred"). It uses nothing newer than
`Ledger`, `Settings` and `Submission`, so an older build runs it too: put its `src/` first on
PYTHONPATH (a `git worktree` of the older commit) and alternate the two.

`--bare-insert` measures instead what one statement line costs SQLite alone: rows shaped like
`statement_lines` (random accounts among 10,000, keyed by account and seq), inserted 8,000 a
durable transaction, as a rowid table and as a WITHOUT ROWID one.

PostgreSQL: the server at $TOKENMALL_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/
postgres); a scratch database is created and dropped per run.
"""

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

# The repository's root: the command mix in tests/support is shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.workload import MixGenerator

from tokenmall.core.params import Params
from tokenmall.ledger.ledger import Ledger, Settings, Submission
from tokenmall.runtime import tune_gc

PARAMS = Params().with_overrides({"referral_rates": ["0.10", "0.05"]})
PG_ADMIN_URL = os.environ.get("TOKENMALL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 4_096


@contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(dir=".") as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
        return
    name = f"tokenmall_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def ingest(
    backend: str, commands: list[dict[str, Any]], read_models: bool, serial: bool = False
) -> float:
    """Commands per second, from command dicts to committed entries."""
    settings = Settings(batch_max=BATCH, read_models=read_models)
    with scratch_database(backend) as url, Ledger.open(url, settings, PARAMS) as ledger:
        start = time.perf_counter()
        batches = (
            ([Submission.decoded(c) for c in commands[first : first + BATCH]], None)
            for first in range(0, len(commands), BATCH)
        )
        if hasattr(ledger, "execute_all") and not serial:  # pipelined, as `tokenmall ingest`
            for _results in ledger.execute_all(batches):
                pass
        else:  # one batch after the other (an older build has nothing else)
            for batch, _progress in batches:
                ledger.execute(batch)
        return len(commands) / (time.perf_counter() - start)


def bare_insert(rows_total: int) -> None:
    """Microseconds a statement-shaped row costs a durable SQLite insert, by table layout."""
    rows = [
        (f"u{random.randrange(10_000):09d}", seq, "order", "12345678901,2345,0,600000,1,0,0,2345,0")
        for seq in range(rows_total)
    ]
    for layout in ("", " WITHOUT ROWID"):
        with tempfile.TemporaryDirectory(dir=".") as directory:
            connection = sqlite3.connect(Path(directory) / "bare.db")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute(
                "CREATE TABLE s (account TEXT, seq BIGINT, op VARCHAR(40), balances TEXT,"
                f" PRIMARY KEY (account, seq)){layout}"
            )
            start = time.perf_counter()
            for first in range(0, len(rows), 8_000):
                connection.executemany(
                    "INSERT INTO s VALUES (?, ?, ?, ?)", rows[first : first + 8_000]
                )
                connection.commit()
            elapsed = time.perf_counter() - start
            connection.close()
        print(f"{layout.strip() or 'rowid'} table: {elapsed / len(rows) * 1e6:.2f} µs a row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--bare-insert", action="store_true", help="SQLite rows alone")
    parser.add_argument(
        "--compare-serial",
        action="store_true",
        help="also one batch after the other (Ledger.execute), alternating with pipelined",
    )
    args = parser.parse_args()
    if args.bare_insert:
        random.seed(1)
        bare_insert(2 * args.commands)
        return
    tune_gc()
    commands = MixGenerator(10_000, 2026).commands(args.commands)
    for backend in args.backends.split(","):
        for read_models in (True, False):
            modes = (False, True) if args.compare_serial else (False,)
            rates: dict[bool, list[float]] = {serial: [] for serial in modes}
            for _ in range(args.runs):
                for serial in modes:
                    rates[serial].append(ingest(backend, commands, read_models, serial))
            for serial, runs in rates.items():
                label = "read models" if read_models else "deferred"
                label += ", one batch after the other" if serial else ""
                listed = ", ".join(f"{rate:,.0f}" for rate in runs)
                print(f"{backend}, {label}: {statistics.median(runs):,.0f} commands/s ({listed})")


if __name__ == "__main__":
    main()
