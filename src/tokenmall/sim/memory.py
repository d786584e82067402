"""Whether a simulation fits in this machine's memory, estimated before anything runs.

A run keeps every consumer in its engine until it ends, and a day's orders while it places
them (the simulator's engines keep no order records or ids: OrderBook.forget_orders); the
parent keeps every metrics row until it writes metrics.csv. A scenario that asks for more than
the machine has would otherwise run for hours and then be killed by the kernel.

The costs below are resident memory (ru_maxrss) measured on CPython 3.11, 64-bit Linux, with
the CLI's garbage-collector tuning, above the interpreter's own 34 MiB with the model loaded
(docs/benchmarks.md, "The simulator's memory"). `bench/sim.py --agent-only --agent-runs 1
--agent-scale K`, the agent scenario (referrals, every behaviour, SP spending, dividends and
exits): 10,220 consumers, 20 MiB (2,050 bytes a consumer, its share of a day's orders
included); 30,660, 52 MiB (1,780); 102,200 consumers and 12 million orders, 166 MiB (1,700). A
consumer is counted at 2,600 bytes: the Agent, the Consumer and its balances, its exit-queue
entries (at most four), the allocator's slack. `bench/sim_memory.py`: 200,000 consumers
ordering twice a day took 166 MiB more than the same ordering once on arrival, for the last
day's 400,000 orders kept until its settlement (435 bytes an order); a day's order is counted at
500. (That was when the engine kept each order's record until the settlement; since decision
137 a day's orders live only in the batch that places them, so 500 is an upper bound.) A
metrics row (`metrics.daily_rows`, one per run-day) measured 1,610 bytes with tracemalloc;
counted at 1,700. The agent scenario's estimates: 28, 85 and 284 MiB.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from tokenmall.sim.scenario import Scenario, ScenarioError

BYTES_PER_CONSUMER = 2_600
BYTES_PER_ORDER_OF_A_DAY = 500  # held while the day's batch of orders is placed
BYTES_PER_METRICS_ROW = 1_700
SP_SPENDERS = 0.7  # of the consumers drawn to spend SP, those holding enough to (measured)
CGROUP_MEMORY_MAX = Path("/sys/fs/cgroup/memory.max")  # a container's limit (cgroup v2)
GIB = 1024**3


@dataclass(frozen=True)
class Population:
    consumers: float  # expected by the last day
    orders: float  # expected over the whole run
    busiest_day_orders: float  # expected on the day with the most

    def run_bytes(self) -> float:
        return (
            self.consumers * BYTES_PER_CONSUMER + self.busiest_day_orders * BYTES_PER_ORDER_OF_A_DAY
        )


def expected_population(scenario: Scenario) -> Population:
    """Expected consumers and orders of one run, from the scenario's rates (as model.run draws
    them: arrivals first, then orders by everyone who has arrived)."""
    arrivals, orders = scenario.arrivals, scenario.orders
    # SP payments: each consumer's daily chance of spending its SP, if merchants take SP; one
    # holding less than 1 CNY of SP (new, or just spent) spends nothing, which made 0.69 of
    # that bound on steady-growth over 60 days (tests/test_sim.py): counted at 0.7.
    takes_sp = scenario.merchants.accept_sp and scenario.merchants.count > 0
    spend_sp = SP_SPENDERS * scenario.behaviours.spend_sp if takes_sp else 0.0
    consumers = order_count = busiest = 0.0
    for day in range(scenario.days):
        arrived = arrivals.expected(day)
        consumers += arrived
        today = arrived if orders.on_arrival else 0.0
        today += orders.per_consumer_per_day * arrivals.activity(day) * consumers
        today += spend_sp * consumers
        order_count += today
        busiest = max(busiest, today)
    return Population(consumers, order_count, busiest)


def check_memory(scenario: Scenario, runs_at_once: int, run_days: int) -> None:
    """ScenarioError if `runs_at_once` runs of `scenario` in this machine's processes, plus
    `run_days` metrics rows kept here, would need more memory than the machine has."""
    population = expected_population(scenario)
    needed_bytes = runs_at_once * population.run_bytes() + run_days * BYTES_PER_METRICS_ROW
    available_bytes = memory_bytes()
    if available_bytes is None or needed_bytes <= available_bytes:
        return
    parts = [f"{run_days:,} metrics rows × {BYTES_PER_METRICS_ROW} bytes"]
    if runs_at_once:
        at_once = f", {runs_at_once} runs at once" if runs_at_once > 1 else ""
        parts.insert(
            0,
            f"{population.consumers:,.0f} consumers × {BYTES_PER_CONSUMER:,} bytes + "
            f"{population.busiest_day_orders:,.0f} orders of its busiest day × "
            f"{BYTES_PER_ORDER_OF_A_DAY} bytes per run{at_once}",
        )
    raise ScenarioError(
        f"this scenario would need about {_gib(needed_bytes)} of memory ({'; '.join(parts)}); "
        f"this machine has {_gib(available_bytes)}; reduce days, arrivals or orders"
        + (", or run fewer --workers" if runs_at_once > 1 else "")
    )


def memory_bytes() -> int | None:
    """Physical memory, or the container's limit if lower; None if neither can be read."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        physical = None
    try:
        limit_text = CGROUP_MEMORY_MAX.read_text().strip()
    except OSError:
        limit_text = "max"
    limit = int(limit_text) if limit_text.isdigit() else None
    known = [value for value in (physical, limit) if value is not None and value > 0]
    return min(known) if known else None


def _gib(size_bytes: float) -> str:
    if size_bytes >= 10 * GIB:
        return f"{size_bytes / GIB:,.0f} GiB"
    if size_bytes >= GIB:
        return f"{size_bytes / GIB:.1f} GiB"
    return f"{size_bytes / 1024**2:,.0f} MiB"
