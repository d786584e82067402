"""Memory of the engine (issue 11): bytes per consumer, and per order past its refund window.

    .venv/bin/python bench/memory.py [--consumers 10000] [--orders 300000] [--days 30]

Registers --consumers consumers and measures what the engine holds (tracemalloc), then places
--orders cash orders of 10.00 (ids of 12 characters, "o-" and ten digits) spread over --days
settled days, measuring after half of the days and at the end. An order of an earlier day is
kept as its id only (core/orders.py): the growth over the second half, divided by the orders
its days closed, is what each costs at the margin (the first half also fills structures bounded
by the number of consumers, such as the exit queue); the set of ids' own count (its packed ids
and its table) is printed beside it.
"""

import argparse
import gc
import tracemalloc

from tokenmall.core.engine import Engine
from tokenmall.core.params import Params


def held_bytes() -> int:
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    return current


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consumers", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    tracemalloc.start()
    start = held_bytes()
    engine = Engine(Params().with_overrides({"referral_rates": ["0.10", "0.05"]}))
    for n in range(args.consumers):
        referrer = {"referrer": f"u{n - 1:09d}"} if n else {}
        engine.apply({"op": "register", "user": f"u{n:09d}", **referrer})
    consumers_done = held_bytes()
    per_day = args.orders // args.days
    half_bytes = half_orders = 0
    for day in range(args.days):
        if day == args.days // 2:
            half_bytes, half_orders = held_bytes(), len(engine.orders.closed)
        for k in range(per_day):
            number = day * per_day + k
            command = {"op": "order", "id": f"o-{number:010d}", "amount": "10.00"}
            engine.apply({**command, "user": f"u{number % args.consumers:09d}"})
        engine.apply({"op": "settle_day"})
    end_bytes, old = held_bytes(), len(engine.orders.closed)
    consumers = args.consumers
    print(f"{consumers:,} consumers: {(consumers_done - start) / consumers:,.0f} bytes each")
    print(
        f"{old:,} orders of closed days: {(end_bytes - half_bytes) / (old - half_orders):,.1f} "
        f"bytes each at the margin (the engine's growth over the last {old - half_orders:,}); "
        f"their ids alone: {engine.orders.closed.nbytes() / old:,.1f}"
    )


if __name__ == "__main__":
    main()
