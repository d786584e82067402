"""Simulator speed, end to end against radCAD measured in the same run (issues 5 and 15).

    .venv/bin/python bench/sim.py [--repeats 5] [--seed 2026] [--radcad-venv DIR]
                                  [--exact] [--agent-runs 0] [--agent-baseline REV]

The order-only model (cash orders and nothing else: the seeds' recurrence) on the issue's two
workloads, each timed as a user runs it, a fresh process from start to written output:

- radCAD: a script of radCAD's model of the same recurrence (a policy draws the order, state
  updates add it to the pool and move the price), run by the `python` of a virtualenv of its own
  (created under --radcad-venv, /tmp/tokenmall-bench-radcad by default, and reused; radCAD is
  not a dependency of this project), with radCAD's default engine, writing the experiment's
  DataFrame to CSV;
- `tokenmall simulate` on an equivalent scenario (fixed arrivals, one order each on arrival,
  every consumer holds, no dividends, exits or referrals), writing what it writes by default
  (report.html, metrics.csv, summary.json), then every output (--tables: the consumers and
  cohorts tables too), then metrics.csv and summary.json alone (--no-report).
  The CLI takes its order-only fast path for these.

Workloads: 1 run × 100,000 orders of 100.00; 100 runs × 1,000 orders of a random value
(uniform 10.00-1,000.00). radCAD's DataFrame has a row per order; metrics.csv has a row per day,
so each workload runs in two shapes: all orders on one day, and one row per order (100 runs ×
1,000 days of one order) or per 1,000 orders (100 days of 1,000 orders). Each repeat runs every
command once, in turn, so that the machine's drift touches them alike; the figures are medians.

`tokenmall` is the installed command (.venv/bin/tokenmall): its commands import their modules
only when they run (tokenmall/cli.py), so the simulator's start without the ledger's;
`tokenmall --version` shows the program's own start-up.

--exact adds `tokenmall simulate --exact` (the rules engine) on each workload, once.
--agent-runs N adds N full-rules agent runs in this process (--agent-scale 10: ten times the
arrivals, for the memory target; each run's time and peak memory) (10,220 consumers over 365 days,
about 1,000,000 orders, with sells, conversions, redemptions, SP payments, dividends and exits).
--agent-only runs nothing else (the peak memory printed is then the agent run's).
--agent-baseline REV times only the agent runs, REV's and this build's alternating, each in a
fresh process (REV checked out as a git worktree under /tmp): the full-rules figure against a
baseline measured in the same run, as the machine's speed drifts by a third between runs.
The agent runs use the compiled kernel when it was built (core/kernel.py); run them again with
TOKENMALL_NO_KERNEL=1 for the Python path.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKENMALL = ROOT / ".venv" / "bin" / "tokenmall"
RADCAD_VERSION = "0.14.0"
RADCAD_VENV = Path(tempfile.gettempdir()) / "tokenmall-bench-radcad"

AGENT_SCENARIO = {
    "scenario": {"name": "bench", "days": 365},
    "arrivals": {"kind": "fixed", "rate": 28},
    "orders": {"per_consumer_per_day": 0.55, "value": {"distribution": "lognormal"}},
    "referrals": {"probability": 0.5},
    "params": {"referral_rates": ["0.1", "0.05"]},
}

# radCAD's model of the order-only recurrence, one order per timestep, kept lean (two state
# variables; the supply is pool ÷ price) so as not to flatter the comparison: a policy draws
# the order, the updates add its contribution (floored to the fen, as the engine) to the pool
# and move the price by p · A_n / (A_{n-1} + k·a_n).
RADCAD_SCRIPT = """
import sys

import numpy as np
import pandas as pd
from radcad import Experiment, Model, Simulation

runs, orders, values, seed, out = sys.argv[1:]
BUYER_SHARE = 0.7
generators = {}


def place_order(params, substep, state_history, previous_state):
    if values == "fixed":
        return {"contribution_fen": 100_00 * 3 // 10}
    run = previous_state["run"]
    generator = generators.setdefault(run, np.random.default_rng([int(seed), run]))
    return {"contribution_fen": int(generator.integers(10_00, 1_000_00, endpoint=True)) * 3 // 10}


def update_pool(params, substep, state_history, previous_state, policy_input):
    return "pool_fen", previous_state["pool_fen"] + policy_input["contribution_fen"]


def update_price(params, substep, state_history, previous_state, policy_input):
    before, added = previous_state["pool_fen"], policy_input["contribution_fen"]
    return "price", previous_state["price"] * (before + added) / (before + BUYER_SHARE * added)


model = Model(
    initial_state={"pool_fen": 0, "price": 1.0},
    state_update_blocks=[
        {
            "policies": {"order": place_order},
            "variables": {"pool_fen": update_pool, "price": update_price},
        }
    ],
    params={},
)
experiment = Experiment(Simulation(model=model, timesteps=int(orders), runs=int(runs)))
experiment.run()
pd.DataFrame(experiment.results).to_csv(out, index=False)
"""

# (label, radCAD runs, orders per run, values, tokenmall shapes: (name, days, arrivals a day))
WORKLOADS = [
    (
        "1 run × 100,000 orders of 100.00",
        1,
        100_000,
        "fixed",
        [("one day of 100,000 orders", 1, 100_000), ("100 days of 1,000 orders", 100, 1_000)],
    ),
    (
        "100 runs × 1,000 random orders",
        100,
        1_000,
        "uniform",
        [("one day of 1,000 orders", 1, 1_000), ("1,000 days of 1 order", 1_000, 1)],
    ),
]


# What simulate writes: by default (report.html, metrics.csv, summary.json); everything (the
# consumers and cohorts tables too); metrics.csv and summary.json alone (radCAD's script
# writes one CSV).
OUTPUTS = ("", "--tables", "--no-report")


def scenario_toml(days: int, rate: int, values: str) -> str:
    value = (
        '{ distribution = "fixed", value = 100.0 }'
        if values == "fixed"
        else '{ distribution = "uniform", low = 10.0, high = 1000.0 }'
    )
    return textwrap.dedent(
        f"""\
        [scenario]
        name = "order-only bench"
        days = {days}

        [params]
        dividend_rate = "0"
        level_dividend_rate = "0"
        exit_enabled = false
        referral_rates = []

        [arrivals]
        kind = "fixed"
        rate = {rate}

        [orders]
        on_arrival = true
        per_consumer_per_day = 0
        value = {value}

        [referrals]
        probability = 0

        [behaviours]
        hold = 1

        [merchants]
        count = 0
        """
    )


def radcad_python(venv: Path) -> Path:
    """The virtualenv's python with radCAD, made (once) if it is not there."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import radcad; assert radcad.__version__ == {RADCAD_VERSION!r}"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    print(f"making {venv} with radCAD {RADCAD_VERSION} (once; reused by later runs)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # radCAD 0.14.0 imports typing_extensions without declaring it
    pip = [str(python), "-m", "pip", "install", "--quiet", f"radcad=={RADCAD_VERSION}"]
    pip.append("typing_extensions")
    subprocess.run(pip, check=True)
    subprocess.run(check, check=True)
    return python


# The commands run as a user's Python runs them, with its bytecode cache (__pycache__): some
# sandboxes set PYTHONDONTWRITEBYTECODE, which makes every start compile the project's modules
# again (about 0.05 s of a simulate). An untimed first run of each command writes the cache.
USER_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=USER_ENV)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, choices=range(1, 101), default=5, metavar="1..100")
    parser.add_argument("--seed", type=int, choices=range(2**31), default=2026, metavar="SEED")
    parser.add_argument("--radcad-venv", type=Path, default=RADCAD_VENV)
    parser.add_argument("--exact", action="store_true", help="also time --exact, once")
    parser.add_argument("--agent-runs", type=int, choices=range(11), default=0, metavar="0..10")
    parser.add_argument(
        "--agent-scale",
        type=int,
        choices=range(1, 11),
        default=1,
        metavar="1..10",
        help="the agent runs with this many times the arrivals (10: the issue's memory check)",
    )
    parser.add_argument(
        "--agent-baseline",
        metavar="REV",
        help="time the agent runs of this git revision too, alternating with this build's, "
        "each in a fresh process (the revision's checkout is a git worktree under /tmp); "
        "only the agent runs are timed",
    )
    parser.add_argument(
        "--in-process-only", action="store_true", help="no radCAD, no fresh processes"
    )
    parser.add_argument(
        "--agent-only",
        action="store_true",
        help="only the agent runs (their peak memory is then theirs alone)",
    )
    args = parser.parse_args()
    if args.agent_baseline:
        compare_agent_runs(args.agent_baseline, max(args.agent_runs, 1), args.seed)
        return
    if not args.in_process_only and not args.agent_only:
        end_to_end(args)
    if not args.agent_only:
        in_process(args.repeats, args.seed)
    for index in range(args.agent_runs):
        agent_run(args.seed + index, args.agent_scale)


def end_to_end(args: argparse.Namespace) -> None:
    """radCAD and tokenmall simulate, fresh processes, side by side."""
    python = radcad_python(args.radcad_venv)
    versions = subprocess.run(
        [
            str(python),
            "-c",
            "import radcad, pandas, sys; print(radcad.__version__, "
            "pandas.__version__, sys.version.split()[0])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    print(
        f"radCAD {versions[0]} (pandas {versions[1]}, Python {versions[2]}) in {args.radcad_venv}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as scratch:
        work = Path(scratch)
        script = work / "order_only_radcad.py"
        script.write_text(RADCAD_SCRIPT)
        commands: dict[str, list[str]] = {
            "start-up: tokenmall --version": [str(TOKENMALL), "--version"],
            "start-up: tokenmall simulate --help": [str(TOKENMALL), "simulate", "--help"],
            "start-up: python -c 'import radcad, pandas'": [
                str(python),
                "-c",
                "import radcad, pandas",
            ],
        }
        for label, runs, orders, values, shapes in WORKLOADS:
            out = work / f"radcad-{runs}.csv"
            commands[f"{label} | radCAD"] = [
                str(python),
                str(script),
                str(runs),
                str(orders),
                values,
                str(args.seed),
                str(out),
            ]
            for shape, days, rate in shapes:
                path = work / f"{runs}-{days}.toml"
                path.write_text(scenario_toml(days, rate, values))
                for outputs in OUTPUTS:
                    options = [str(path), "--runs", str(runs), "--seed", str(args.seed)]
                    options += ["--out", str(work / "out"), *outputs.split()]
                    written = outputs or "the default outputs"
                    commands[f"{label} | tokenmall, {shape}, {written}"] = [
                        str(TOKENMALL),
                        "simulate",
                        *options,
                    ]
        for command in commands.values():  # once untimed: bytecode and file caches warm
            seconds(command)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for repeat in range(args.repeats):
            for name, command in commands.items():
                times[name].append(seconds(command))
            print(f"  repeat {repeat + 1} of {args.repeats} done", file=sys.stderr, flush=True)
        medians = {name: statistics.median(values) for name, values in times.items()}
        print(f"end to end, a fresh process each, median of {args.repeats} (min-max):")
        for name, median in medians.items():
            label, _, what = name.partition(" | ")
            radcad = medians.get(f"{label} | radCAD")
            ratio = (
                f"; radCAD / this = {radcad / median:.1f}×" if radcad and what != "radCAD" else ""
            )
            spread = f"{min(times[name]):.2f}-{max(times[name]):.2f}"
            print(f"  {name}: {median:.2f} s ({spread}){ratio}")
        if args.exact:
            for label, runs, _orders, _values, shapes in WORKLOADS:
                _shape, days, rate = shapes[0]
                path = work / f"{runs}-{days}.toml"
                command = [str(TOKENMALL), "simulate", str(path), "--runs", str(runs), "--exact"]
                command += ["--seed", str(args.seed), "--out", str(work / "exact"), "--no-report"]
                print(
                    f"  {label} | tokenmall --exact, one day, --no-report, once: "
                    f"{seconds(command):.2f} s"
                )


def in_process(repeats: int, seed: int) -> None:
    """The fast path's runs alone, in this process: every run of each workload's scenarios
    through `fast.execute_fast`, rows and summaries made, nothing written."""
    from tokenmall.sim import fast, runner  # noqa: PLC0415
    from tokenmall.sim.scenario import load_scenario  # noqa: PLC0415

    print(f"in this process, the fast path's runs alone (rows and summaries), median of {repeats}:")
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as scratch:
        for label, runs, _orders, values, shapes in WORKLOADS:
            for shape, days, rate in shapes:
                path = Path(scratch) / f"{runs}-{days}.toml"
                path.write_text(scenario_toml(days, rate, values))
                jobs = runner.jobs(load_scenario(path), {}, runs, seed)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    list(fast.execute_fast(jobs, lambda _work: None, []))
                    times.append(time.perf_counter() - start)
                print(f"  {label}, {shape}: {statistics.median(times) * 1e3:.0f} ms")
                if days == 1_000:
                    writers(jobs, repeats, Path(scratch))


def writers(jobs: "list[Any]", repeats: int, scratch: Path) -> None:
    """metrics.csv and summary.json of these runs, written by the fast path (column by
    column) and by runner.write_outputs (csv.DictWriter, from a dict per row)."""
    from tokenmall.sim import fast, runner  # noqa: PLC0415

    made: list[tuple[dict[str, str], int, fast.Table | fast.Rows]] = []
    results, tables = [], []
    for point, run, table, summary in fast.execute_fast(jobs, lambda _work: None, []):
        assert isinstance(table, fast.Table)  # every run of these workloads is a fast one
        made.append((point, run, table))
        results.append((point, run, summary))
        tables.append(table)
    summary = runner.summarize(jobs[0].scenario, len(jobs), 0, {}, results)

    def fast_writer() -> None:
        fast.write_outputs(scratch / "fast", summary, made, None)

    def dict_writer() -> None:
        rows = [row for table in tables for row in table.rows()]
        runner.write_outputs(scratch / "runner", summary, rows, None)

    rows = sum(len(table) for table in tables)
    for name, write in (
        ("the fast path's writer", fast_writer),
        ("dicts, DictWriter", dict_writer),
    ):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            write()
            times.append(time.perf_counter() - start)
        print(
            f"    metrics.csv ({rows:,} rows) and summary.json, {name}: "
            f"{statistics.median(times) * 1e3:.0f} ms"
        )


def agent_run(seed: int, scale: int = 1) -> None:
    """One full-rules run of AGENT_SCENARIO with `scale` times its arrivals, its time and its
    peak memory (ru_maxrss: run alone, as with --agent-runs 1, it is the run's)."""
    import resource  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415 (only for this part)

    from tokenmall.runtime import tune_gc  # noqa: PLC0415 (as the CLI tunes it)
    from tokenmall.sim.model import run  # noqa: PLC0415
    from tokenmall.sim.scenario import scenario_of  # noqa: PLC0415

    tune_gc()
    document = {**AGENT_SCENARIO, "arrivals": {"kind": "fixed", "rate": 28 * scale}}
    scenario = scenario_of(document)
    start = time.perf_counter()
    result = run(scenario, np.random.default_rng(np.random.SeedSequence(seed)))
    elapsed = time.perf_counter() - start
    exits = sum(day.exits for day in result.days)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"full-rules agent run ×{scale}: {len(result.agents):,} consumers, 365 days, "
        f"{result.orders_total:,} orders, {result.commands_total:,} commands "
        f"({exits:,} forced exits): {elapsed:.1f} s, peak memory {peak_mib:,.0f} MiB"
    )


# One full-rules agent run in a fresh process, through the APIs every build since issue 5 has
# (scenario_of, run, tune_gc): argv is the seed; prints seconds and commands.
AGENT_CHILD = """
import sys, time
import numpy as np
from tokenmall.runtime import tune_gc
from tokenmall.sim.model import run
from tokenmall.sim.scenario import scenario_of
tune_gc()
scenario = scenario_of(%r)
start = time.perf_counter()
result = run(scenario, np.random.default_rng(np.random.SeedSequence(int(sys.argv[1]))))
print(time.perf_counter() - start, result.commands_total)
"""


def compare_agent_runs(revision: str, runs: int, seed: int) -> None:
    """The full-rules agent run of `revision` and of this build, alternating, `runs` times
    each with the same seed; the medians and their ratio (the machine's drift touches both)."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    checkout = Path(tempfile.gettempdir()) / f"tokenmall-bench-{commit[:12]}"
    if not checkout.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(checkout), commit],
            check=True,
            capture_output=True,
        )
    child = AGENT_CHILD % (AGENT_SCENARIO,)
    builds = {f"{revision} ({commit[:9]})": checkout / "src", "this build": ROOT / "src"}
    times: dict[str, list[float]] = {name: [] for name in builds}
    for _ in range(runs):
        for name, source in builds.items():
            done = subprocess.run(
                [sys.executable, "-c", child, str(seed)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(source)},
            )
            elapsed, commands = done.stdout.split()
            times[name].append(float(elapsed))
            print(f"  {name}: {float(elapsed):.2f} s, {int(commands):,} commands", flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"full-rules agent run, {name}: median {median:.2f} s of {runs}")
    base, this = medians.values()
    print(f"this build is {base / this:.2f}× as fast as {revision} (medians, same run)")


if __name__ == "__main__":
    main()
