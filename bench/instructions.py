"""Engine cost in instructions (valgrind's callgrind), for comparing two builds on a noisy VM.

    .venv/bin/python bench/instructions.py [--commands 40000] [--seeds 1,2,3] [SRC ...]

Applies the first --commands commands of bench/engine.py's mix (10,000 consumers, referral rates
10 % / 5 %, a settle_day every 1,000 commands) with the garbage collector tuned as `tokenmall`
does, under callgrind, once with all of them and once with one; a command costs the difference
divided by --commands. Each SRC is a `src/` directory to put first on the path (say, a `git
worktree` of an older commit); none: this checkout. PYTHONHASHSEED is fixed per run (dict and
set layouts move the count by several per cent) and the median over --seeds is printed.
Needs valgrind (`apt-get install valgrind`).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(count: int) -> None:
    # Imported here: which tokenmall is the build's PYTHONPATH, set by the parent for this run.
    sys.path.insert(0, str(ROOT))  # tests/support holds the command mix
    from tests.support.workload import MixGenerator  # noqa: PLC0415

    from tokenmall.core.engine import Engine  # noqa: PLC0415
    from tokenmall.core.params import Params  # noqa: PLC0415
    from tokenmall.runtime import tune_gc  # noqa: PLC0415

    commands = MixGenerator(10_000, 2026).commands(max(count, 1))[:count]
    tune_gc()
    engine = Engine(Params().with_overrides({"referral_rates": ["0.10", "0.05"]}))
    for command in commands:
        engine.try_apply(command)


def instructions(src: str, count: int, seed: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": src}
    run = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            str(count),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        sys.exit(f"no instruction count from valgrind:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=40_000)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("src", nargs="*", default=[str(ROOT / "src")])
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    for src in args.src:
        costs = []
        for seed in (int(part) for part in args.seeds.split(",")):
            many = instructions(src, args.commands, seed)
            costs.append((many - instructions(src, 1, seed)) // args.commands)
        runs = ", ".join(f"{cost:,}" for cost in costs)
        print(f"{src}: {statistics.median(costs):,.0f} instructions a command ({runs})", flush=True)


if __name__ == "__main__":
    main()
