"""Durable throughput of the ledger: commands/s committed to SQLite and PostgreSQL.

    .venv/bin/python bench/durable.py [--commands 200000] [--runs 3] [--backends sqlite,postgresql]

For each backend and run, a fresh database gets the engine benchmark's command mix (see
bench/engine.py), three ways, each timed from command dicts to committed journal entries
(canonical bytes, rules, hash chain, insert, fsync'd commit):

- group commit, batched: `Ledger.execute` with batches of --batch commands, the path of
  `tokenmall ingest` (one writer thread, many commands per durable write);
- group commit, threads: --threads client threads each submitting one command at a time through
  `GroupCommitter`, which commits whatever has queued up as one transaction;
- baseline: one transaction per command (batches of 1), over the first --baseline-commands.

PostgreSQL: the server at $TOKENMALL_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres);
a scratch database is created and dropped per measurement.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tokenmall.core.params import Params
from tokenmall.ledger.group_commit import GroupCommitter
from tokenmall.ledger.ledger import Ledger, Settings, Submission
from tokenmall.runtime import tune_gc
from tokenmall.workload import MixGenerator

PARAMS = Params().with_overrides({"referral_rates": ["0.10", "0.05"]})
PG_ADMIN_URL = os.environ.get("TOKENMALL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
Command = dict[str, Any]


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


def batched(ledger: Ledger, commands: list[Command], batch: int) -> None:
    for start in range(0, len(commands), batch):
        ledger.execute([Submission.decoded(c) for c in commands[start : start + batch]])


def threaded(ledger: Ledger, commands: list[Command], threads: int) -> int:
    """Returns the number of transactions the committer used."""
    committer = GroupCommitter(ledger)

    def client(share: list[Command]) -> None:
        for command in share:
            committer.submit_prepared(Submission.decoded(command))

    workers = [
        threading.Thread(target=client, args=(commands[index::threads],))
        for index in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    committer.close()
    return committer.batches


def measure(
    backend: str, commands: list[Command], settings: Settings, run: Callable[[Ledger], object]
) -> tuple[float, object]:
    with scratch_database(backend) as url, Ledger.open(url, settings, PARAMS) as ledger:
        start = time.perf_counter()
        detail = run(ledger)
        elapsed = time.perf_counter() - start
        assert ledger.head_seq == len(commands), "every command must have a journal entry"
    return len(commands) / elapsed, detail


def report(label: str, rates: list[float], extra: str = "") -> float:
    median = statistics.median(rates)
    runs = ", ".join(f"{rate:,.0f}" for rate in rates)
    print(
        f"  {label}: {median:,.0f} commands/s (median of {len(rates)}: {runs}){extra}", flush=True
    )
    return median


def bench_backend(backend: str, commands: list[Command], args: argparse.Namespace) -> None:
    settings = Settings(batch_max=args.batch, snapshot_every=args.snapshot_every)
    baseline_commands = commands[: args.baseline_commands]
    grouped, threads, baseline = [], [], []
    batches: list[object] = []
    for _ in range(args.runs):  # interleaved, so that drift hits all three alike
        grouped.append(
            measure(
                backend, commands, settings, lambda ledger: batched(ledger, commands, args.batch)
            )[0]
        )
        rate, used = measure(
            backend, commands, settings, lambda ledger: threaded(ledger, commands, args.threads)
        )
        threads.append(rate)
        batches.append(used)
        baseline.append(
            measure(
                backend,
                baseline_commands,
                settings,
                lambda ledger: batched(ledger, baseline_commands, 1),
            )[0]
        )
    print(f"{backend}:")
    group_rate = report(f"group commit, batches of {args.batch}", grouped)
    average = statistics.median(len(commands) / int(str(b)) for b in batches)
    thread_rate = report(
        f"group commit, {args.threads} client threads", threads, f"; {average:,.0f} per transaction"
    )
    base_rate = report(
        f"baseline, one transaction per command ({len(baseline_commands):,})", baseline
    )
    print(
        f"  speed-up over the baseline: {group_rate / base_rate:,.1f}× batched, "
        f"{thread_rate / base_rate:,.1f}× threads",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--consumers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4_096)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--baseline-commands", type=int, default=3_000)
    parser.add_argument("--snapshot-every", type=int, default=Settings.snapshot_every)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    tune_gc()
    commands = MixGenerator(args.consumers, args.seed).commands(args.commands)
    print(
        f"commands: {len(commands):,} ({args.consumers:,} consumers, settle_day every 1,000); "
        f"snapshot every {args.snapshot_every:,} entries",
        flush=True,
    )
    for backend in args.backends.split(","):
        if backend not in ("sqlite", "postgresql"):
            sys.exit(f"unknown backend {backend!r}")
        bench_backend(backend, commands, args)


if __name__ == "__main__":
    main()
