"""Simulator speed (issue 5), so far the order-only model: the NumPy fast path on the issue's two
workloads, against the figures the issue gives for radCAD 0.14 on this machine, and the exact
rules engine on the first one for reference.

    .venv/bin/python bench/sim.py [--repeats 7] [--seed 2026]

1 run × 100,000 cash orders of 100.00; 100 runs × 1,000 orders of a random value (uniform
10.00–1,000.00, each run its own generator from SeedSequence(seed).spawn(100)).
"""

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from tokenmall.sim.orderonly import exact_prices, fast_prices, order_only_params

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


if __name__ == "__main__":
    main()
