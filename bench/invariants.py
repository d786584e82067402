"""What checking SPEC §6 in production costs (issue 10).

    .venv/bin/python bench/invariants.py [--commands 100000] [--consumers 10000] [--runs 3]

1. One `check_invariants` pass over an engine that ran the durable benchmark's command mix
   (bench/engine.py) with --consumers consumers: the median of 21 passes, in ms.
2. The durable ledger on SQLite, batched as `ingest` runs it, with the writer's default checks
   (before committing a batch once 1,000 commands went unchecked) against a baseline that checks
   only at start-up and before snapshots; interleaved runs, medians.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

# The repository's root: the command mixes and models in tests/support are shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.workload import MixGenerator

from durable import batched, measure
from ingest import PARAMS
from tokenmall.core.engine import Engine
from tokenmall.core.invariants import check_invariants
from tokenmall.ledger.ledger import Settings
from tokenmall.runtime import tune_gc

NEVER = 10**15


def check_cost_ms(commands: list[dict[str, object]]) -> float:
    engine = Engine(PARAMS)
    for command in commands:
        engine.try_apply(command)
    times = []
    for _ in range(21):
        started = time.perf_counter()
        check_invariants(engine)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--consumers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4_096)
    args = parser.parse_args()
    tune_gc()
    commands = MixGenerator(args.consumers, 2026).commands(args.commands)
    print(f"one check, {args.consumers:,} consumers: {check_cost_ms(commands):.2f} ms", flush=True)
    modes = {
        "checks every 1,000 commands (default)": Settings(batch_max=args.batch),
        "baseline: start-up and snapshots only": Settings(batch_max=args.batch, check_every=NEVER),
    }
    rates: dict[str, list[float]] = {label: [] for label in modes}
    for _ in range(args.runs):  # interleaved, so that drift hits both alike
        for label, settings in modes.items():
            rate, _ = measure(
                "sqlite", commands, settings, lambda ledger: batched(ledger, commands, args.batch)
            )
            rates[label].append(rate)
    medians = {label: statistics.median(values) for label, values in rates.items()}
    for label, values in rates.items():
        runs = ", ".join(f"{rate:,.0f}" for rate in values)
        print(
            f"  SQLite, batches of {args.batch:,}, {label}: "
            f"{medians[label]:,.0f} commands/s ({runs})"
        )
    default, baseline = medians.values()
    print(f"  cost of the checks: {(1 - default / baseline) * 100:.1f} % of throughput")


if __name__ == "__main__":
    main()
