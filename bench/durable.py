"""Durable throughput of the ledger: commands/s committed to SQLite and PostgreSQL.

    .venv/bin/python bench/durable.py [--commands 200000] [--runs 3] [--backends sqlite,postgresql]

For each backend and run, a fresh database gets the engine benchmark's command mix (see
bench/engine.py), four ways, each timed from command dicts to committed journal entries
(canonical bytes, rules, hash chain, insert, fsync'd commit):

- group commit, batched: `Ledger.execute` with batches of --batch commands, the path of
  `tokenmall ingest` (one writer thread, many commands per durable write);
- the same with the read models deferred (`ingest --defer-read-models`);
- the server's writer process: --clients coroutines on one event loop, each submitting one
  command at a time through `WriterClient` to the writer process (ledger/writer.py), the path
  of `tokenmall serve` without its HTTP layer (bench/http.py measures the whole server). What
  queued up while the writer applied one message is the next message, one transaction. Timed
  from the first submission to the last result; the process is started before;
- baseline: one transaction per command (batches of 1), over the first --baseline-commands.

PostgreSQL: the server at $TOKENMALL_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres);
a scratch database is created and dropped per measurement.
"""

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The repository's root: the command mixes and models in tests/support are shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.workload import MixGenerator

# The scratch databases and parameters of bench/ingest.py (which older builds can run too).
from ingest import PARAMS, scratch_database
from tokenmall.ledger.ledger import Ledger, Settings, Submission
from tokenmall.ledger.writer import WriterClient
from tokenmall.runtime import tune_gc

Command = dict[str, Any]
Mode = Callable[[], tuple[float, int]]  # one measurement: commands/s, transactions


def batched(ledger: Ledger, commands: list[Command], batch: int) -> int:
    """Returns the number of transactions used, like the others."""
    for start in range(0, len(commands), batch):
        ledger.execute([Submission.decoded(c) for c in commands[start : start + batch]])
    return -(-len(commands) // batch)


def through_the_writer(
    backend: str, commands: list[Command], settings: Settings, clients: int
) -> tuple[float, int]:
    """Commands/s and transactions with `clients` coroutines submitting to the writer process."""
    with scratch_database(backend) as url:
        Ledger.open(url, settings, PARAMS).close()  # a new ledger with the benchmark's params
        return asyncio.run(submit_to_the_writer(url, commands, settings, clients))


async def submit_to_the_writer(
    url: str, commands: list[Command], settings: Settings, clients: int
) -> tuple[float, int]:
    writer = WriterClient(url, settings)  # returns once the writer process has loaded the ledger
    writer.attach()
    try:

        async def client(share: list[Command]) -> None:
            for command in share:
                await writer.submit(Submission.decoded(command))

        start = time.perf_counter()
        await asyncio.gather(*(client(commands[index::clients]) for index in range(clients)))
        elapsed = time.perf_counter() - start
        assert writer.head_seq == len(commands), "every command must have a journal entry"
    finally:
        await writer.close()
    return len(commands) / elapsed, writer.batches


def measure(
    backend: str, commands: list[Command], settings: Settings, run: Callable[[Ledger], int]
) -> tuple[float, int]:
    with scratch_database(backend) as url, Ledger.open(url, settings, PARAMS) as ledger:
        start = time.perf_counter()
        transactions = run(ledger)
        elapsed = time.perf_counter() - start
        assert ledger.head_seq == len(commands), "every command must have a journal entry"
    return len(commands) / elapsed, transactions


def bench_backend(backend: str, commands: list[Command], args: argparse.Namespace) -> None:
    settings = Settings(batch_max=args.batch, snapshot_every=args.snapshot_every)
    deferred = Settings(batch_max=args.batch, snapshot_every=args.snapshot_every, read_models=False)
    first = commands[: args.baseline_commands]
    baseline = f"baseline, one transaction per command ({len(first):,} commands)"
    modes: dict[str, tuple[list[Command], Mode]] = {
        f"group commit, batches of {args.batch:,}": (
            commands,
            lambda: measure(
                backend, commands, settings, lambda ledger: batched(ledger, commands, args.batch)
            ),
        ),
        f"group commit, batches of {args.batch:,}, read models deferred": (
            commands,
            lambda: measure(
                backend, commands, deferred, lambda ledger: batched(ledger, commands, args.batch)
            ),
        ),
        f"the server's writer process, {args.clients} coroutines": (
            commands,
            lambda: through_the_writer(backend, commands, settings, args.clients),
        ),
        baseline: (
            first,
            lambda: measure(backend, first, settings, lambda ledger: batched(ledger, first, 1)),
        ),
    }
    rates: dict[str, list[float]] = {label: [] for label in modes}
    sizes: dict[str, list[float]] = {label: [] for label in modes}
    for _ in range(args.runs):  # interleaved, so that the machine's drift hits every mode alike
        for label, (mode_commands, mode) in modes.items():
            rate, transactions = mode()
            rates[label].append(rate)
            sizes[label].append(len(mode_commands) / transactions)
    print(f"{backend}:")
    base_rate = statistics.median(rates[baseline])
    for label in modes:
        median = statistics.median(rates[label])
        runs = ", ".join(f"{rate:,.0f}" for rate in rates[label])
        print(
            f"  {label}: {median:,.0f} commands/s (median of {args.runs}: {runs}); "
            f"{statistics.median(sizes[label]):,.0f} per transaction; "
            f"{median / base_rate:,.1f}× the baseline",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--consumers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4_096)
    parser.add_argument(
        "--clients", type=int, default=64, help="coroutines submitting to the writer process"
    )
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
