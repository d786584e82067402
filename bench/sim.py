"""Simulator speed (issue 5).

    .venv/bin/python bench/sim.py [--repeats 7] [--seed 2026] [--agent-runs 1]

Order-only model, NumPy fast path, on the issue's two workloads, against the figures the issue
gives for radCAD 0.14 on this machine: 1 run × 100,000 cash orders of 100.00; 100 runs × 1,000
orders of a random value (uniform 10.00–1,000.00, each run its own generator from
SeedSequence(seed).spawn(100)); and the exact rules engine on the first for reference.

Full-rules agent run: 10,220 consumers arriving over 365 days (28 a day), about 1,000,000 orders,
with sells, conversions, redemptions, SP payments, daily dividends and forced exits, through the
exact rules engine (`tokenmall.sim.model.run`).
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# The repository's root: the command mixes and models in tests/support are shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.orderonly import exact_prices, fast_prices, order_only_params

from tokenmall.sim.model import run
from tokenmall.sim.scenario import scenario_of

AGENT_SCENARIO = {
    "scenario": {"name": "bench", "days": 365},
    "arrivals": {"kind": "fixed", "rate": 28},
    "orders": {"per_consumer_per_day": 0.55, "value": {"distribution": "lognormal"}},
    "referrals": {"probability": 0.5},
    "params": {"referral_rates": ["0.1", "0.05"]},
}

RADCAD_S = {"1 run × 100,000 orders": 1.78, "100 runs × 1,000 orders": 2.09}  # the issue's


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--agent-runs", type=int, default=1)
    args = parser.parse_args()
    params = order_only_params()
    constant = np.full(100_000, 100_00, dtype=np.int64)
    generators = [np.random.default_rng(s) for s in np.random.SeedSequence(args.seed).spawn(100)]

    def random_runs() -> np.ndarray:
        values = np.stack([g.integers(10_00, 1_000_00, 1_000, endpoint=True) for g in generators])
        return fast_prices(values, params)

    workloads: dict[str, Callable[[], object]] = {
        "1 run × 100,000 orders": lambda: fast_prices(constant, params),
        "100 runs × 1,000 orders": random_runs,
    }
    print(f"order-only model, NumPy fast path, median of {args.repeats}")
    for label, work in workloads.items():
        seconds = median_seconds(work, args.repeats)
        speedup = RADCAD_S[label] / seconds
        print(
            f"  {label}: {seconds * 1e3:.2f} ms; radCAD {RADCAD_S[label]} s: {speedup:,.0f}× faster"
        )
    start = time.perf_counter()
    exact_prices([100_00] * 100_000, params)
    print(f"  exact rules engine, 1 run × 100,000 orders: {time.perf_counter() - start:.2f} s")
    scenario = scenario_of(AGENT_SCENARIO)
    for index in range(args.agent_runs):
        start = time.perf_counter()
        result = run(scenario, np.random.default_rng(np.random.SeedSequence(args.seed + index)))
        seconds = time.perf_counter() - start
        exits = sum(day.exits for day in result.days)
        print(
            f"full-rules agent run: {len(result.agents):,} consumers, 365 days, "
            f"{result.orders_total:,} orders, {result.commands_total:,} commands "
            f"({exits:,} forced exits): {seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
