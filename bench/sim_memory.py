"""The simulator's memory, for sim/memory.py's estimate: each run in a fresh process.

    .venv/bin/python bench/sim_memory.py

Three populations of 20,000 arrivals a day over 10 days (200,000 consumers, no referrals, no SP
spending): without orders; with one order each on arrival; ordering twice a day (2.2 million
orders, the last day's 400,000 kept until its settlement). Each prints its peak resident memory
(ru_maxrss) and the interpreter's own with the model loaded, whose difference is the run's. The
agent scenario's runs (referrals, every behaviour) are `bench/sim.py --agent-only --agent-runs 1
--agent-scale K`.
"""

import subprocess
import sys

CHILD = """
import resource, sys
import numpy as np
from tokenmall.runtime import tune_gc
from tokenmall.sim.model import run
from tokenmall.sim.scenario import scenario_of
tune_gc()
orders = {
    "none": {"per_consumer_per_day": 0, "on_arrival": False},
    "on arrival": {"per_consumer_per_day": 0, "on_arrival": True},
    "twice a day": {"per_consumer_per_day": 2, "on_arrival": False},
}[sys.argv[1]]
document = {
    "scenario": {"name": "memory", "days": 10},
    "arrivals": {"kind": "fixed", "rate": 20000},
    "referrals": {"probability": 0},
    "behaviours": {"spend_sp": 0},
    "orders": orders,
}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = run(scenario_of(document), np.random.default_rng(1))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(result.agents), result.orders_total, before // 1024, peak // 1024)
"""


def main() -> None:
    for kind in ("none", "on arrival", "twice a day"):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, kind], capture_output=True, text=True, check=True
        )
        consumers, orders, before, peak = map(int, done.stdout.split())
        print(
            f"orders {kind}: {consumers:,} consumers, {orders:,} orders: peak {peak} MiB, "
            f"the interpreter with the model {before} MiB, the run {peak - before} MiB"
        )


if __name__ == "__main__":
    main()
