"""Engine throughput: replay a generated mix of commands in-process and print commands/second.

    .venv/bin/python bench/engine.py [--commands 200000] [--consumers 10000] [--runs 5]

The mix (SPEC §4 ops): consumers register with referral chains (80 % referred), ~70 % cash
orders, SP orders at merchants, sells, converts, redeems, merchant redemptions, refunds, locked-SP
grants, and a settle_day every 1,000 commands, with referral rates 10 % / 5 %. Commands are built
once as dicts; the timed part is `Engine.apply` for every command (the rules engine alone), and
separately decoding the same commands from JSONL bytes plus applying them (what `replay` does).
"""

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# The repository's root: the command mixes and models in tests/support are shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.workload import MixGenerator

from tokenmall.core.engine import Engine
from tokenmall.core.errors import Rejected
from tokenmall.core.params import Params
from tokenmall.jsonl import numbered_commands
from tokenmall.runtime import tune_gc

SETTLE_EVERY = 1000
PARAMS = Params().with_overrides({"referral_rates": ["0.10", "0.05"]})


def apply_all(commands: list[dict[str, Any]]) -> tuple[float, Engine, int]:
    engine = Engine(PARAMS)
    rejected = 0
    start = time.perf_counter()
    for command in commands:
        try:
            engine.apply(command)
        except Rejected:
            rejected += 1
    return time.perf_counter() - start, engine, rejected


def replay_all(lines: list[bytes]) -> float:
    engine = Engine(PARAMS)
    start = time.perf_counter()
    for _, command in numbered_commands(lines):
        if isinstance(command, dict):
            engine.try_apply(command)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--consumers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    args = parser.parse_args()
    tune_gc()
    commands = MixGenerator(args.consumers, args.seed, SETTLE_EVERY).commands(args.commands)
    if args.profile:
        cProfile.runctx(
            "apply_all(commands)", globals(), {"commands": commands}, "/tmp/engine.prof"
        )
        pstats.Stats("/tmp/engine.prof").sort_stats("tottime").print_stats(15)
        return
    lines = [json.dumps(command).encode() for command in commands]
    apply_seconds, replay_seconds = [], []
    for run in range(args.runs):
        seconds, engine, rejected = apply_all(commands)
        apply_seconds.append(seconds)
        replay_seconds.append(replay_all(lines))
        print(
            f"run {run + 1}: engine {len(commands) / seconds:,.0f} commands/s, "
            f"replay from JSONL {len(commands) / replay_seconds[-1]:,.0f} commands/s",
            file=sys.stderr,
        )
    counts = f"{len(engine.consumers)} consumers, {engine.exits} exits, day {engine.day}"
    print(f"commands: {len(commands)} ({rejected} rejected); {counts}")
    print(
        f"engine.apply: {len(commands) / statistics.median(apply_seconds):,.0f} commands/s "
        f"(median of {args.runs} runs)"
    )
    print(
        f"JSONL decode + apply: {len(commands) / statistics.median(replay_seconds):,.0f} "
        f"commands/s (median of {args.runs} runs)"
    )


if __name__ == "__main__":
    main()
