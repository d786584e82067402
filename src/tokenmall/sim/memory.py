"""Whether a simulation fits in this machine's memory, estimated before anything runs.

A run keeps every consumer and every order in its engine until it ends, and the parent keeps
every metrics row until it writes metrics.csv; a scenario that asks for more than the machine
has would otherwise run for hours and then be killed by the kernel.

The costs below are resident memory (ru_maxrss) measured on CPython 3.11, 64-bit Linux, with
the CLI's garbage-collector tuning, by running `sim.model.run` on scenarios of 200,000 fixed
arrivals over 10 days: with no orders 460 bytes per consumer; with one order each on arrival
1,142 bytes per consumer; with two orders a day each (2.4 million orders) 4,968 bytes per
consumer, hence about 347 bytes per further order. A consumer is counted at 800 bytes (one
order turns them into a holder with EP and a quota) plus 350 per order. A metrics row
(`metrics.daily_rows`, one per run-day) measured 1,610 bytes with tracemalloc; counted at 1,700.
Checked on examples/scenarios/steady-growth.toml (365 days, 11,137 consumers, 206,295 orders):
estimated 75 MiB, measured 80 MiB.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from tokenmall.sim.scenario import Scenario, ScenarioError

BYTES_PER_CONSUMER = 800
BYTES_PER_ORDER = 350
BYTES_PER_METRICS_ROW = 1_700
SP_SPENDERS = 0.7  # of the consumers drawn to spend SP, those holding enough to (measured)
CGROUP_MEMORY_MAX = Path("/sys/fs/cgroup/memory.max")  # a container's limit (cgroup v2)
GIB = 1024**3


@dataclass(frozen=True)
class Population:
    consumers: float  # expected by the last day
    orders: float  # expected over the whole run

    def run_bytes(self) -> float:
        return self.consumers * BYTES_PER_CONSUMER + self.orders * BYTES_PER_ORDER


def expected_population(scenario: Scenario) -> Population:
    """Expected consumers and orders of one run, from the scenario's rates (as model.run draws
    them: arrivals first, then orders by everyone who has arrived)."""
    arrivals, orders = scenario.arrivals, scenario.orders
    # SP payments: each consumer's daily chance of spending its SP, if merchants take SP; one
    # holding less than 1 CNY of SP (new, or just spent) spends nothing, which made 0.69 of
    # that bound on steady-growth over 60 days (tests/test_sim.py): counted at 0.7.
    takes_sp = scenario.merchants.accept_sp and scenario.merchants.count > 0
    spend_sp = SP_SPENDERS * scenario.behaviours.spend_sp if takes_sp else 0.0
    consumers = order_count = 0.0
    for day in range(scenario.days):
        arrived = arrivals.expected(day)
        consumers += arrived
        order_count += arrived if orders.on_arrival else 0.0
        order_count += orders.per_consumer_per_day * arrivals.activity(day) * consumers
        order_count += spend_sp * consumers
    return Population(consumers, order_count)


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
            f"{population.consumers:,.0f} consumers × {BYTES_PER_CONSUMER} bytes + "
            f"{population.orders:,.0f} orders × {BYTES_PER_ORDER} bytes per run{at_once}",
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
    return f"{size_bytes / GIB:.1f} GiB"
