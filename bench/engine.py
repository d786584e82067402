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
import random
import statistics
import sys
import time
from typing import Any

from tokenmall.core.engine import Engine
from tokenmall.core.errors import Rejected
from tokenmall.core.params import Params
from tokenmall.replay import numbered_commands
from tokenmall.runtime import tune_gc

SETTLE_EVERY = 1000
MERCHANTS = 50
PARAMS = Params().with_overrides({"referral_rates": ["0.10", "0.05"]})
# (op, weight) once registration is under way; registrations are added while consumers remain.
MIX = (
    ("cash_order", 70),
    ("stable_order", 6),
    ("sell", 7),
    ("convert", 6),
    ("redeem", 4),
    ("merchant_redeem", 3),
    ("refund", 1),
    ("grant_stable", 1),
)


class MixGenerator:
    """A deterministic stream of mostly valid commands (some are rejected, as in real traffic)."""

    def __init__(self, consumers: int, seed: int) -> None:
        self.random = random.Random(seed)
        self.consumer_target = consumers
        self.users: list[str] = []
        self.today_orders: list[str] = []
        self.order_count = 0
        ops, weights = zip(*MIX, strict=True)
        self.ops: tuple[str, ...] = ops
        self.cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]

    def commands(self, count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"op": "register_merchant", "merchant": f"m{i:02d}"} for i in range(MERCHANTS)
        ]
        while len(out) < count:
            if (len(out) + 1) % SETTLE_EVERY == 0:
                out.append({"op": "settle_day"})
                self.today_orders.clear()
            elif len(self.users) < self.consumer_target and (
                len(self.users) < 100 or self.random.random() < 0.12
            ):
                out.append(self._register())
            else:
                out.append(self._pick())
        return out

    def _register(self) -> dict[str, Any]:
        user = f"u{len(self.users):05d}"
        command: dict[str, Any] = {"op": "register", "user": user}
        if self.users and self.random.random() < 0.8:
            command["referrer"] = self.random.choice(self.users)
        self.users.append(user)
        return command

    def _pick(self) -> dict[str, Any]:
        roll = self.random.random() * self.cumulative[-1]
        op = next(op for op, edge in zip(self.ops, self.cumulative, strict=True) if roll < edge)
        user = self.random.choice(self.users)
        merchant = f"m{self.random.randrange(MERCHANTS):02d}"
        points = self._points()
        if op == "cash_order":
            self.order_count += 1
            order_id = f"o{self.order_count}"
            self.today_orders.append(order_id)
            amount = f"{self.random.randint(10, 999)}.{self.random.randint(0, 99):02d}"
            return {"op": "order", "id": order_id, "user": user, "amount": amount}
        if op == "stable_order":
            self.order_count += 1
            amount = f"{self.random.randint(1, 30)}.00"
            return {
                "op": "order",
                "id": f"o{self.order_count}",
                "user": user,
                "amount": amount,
                "pay": "stable",
                "merchant": merchant,
            }
        if op in ("sell", "convert", "redeem"):
            return {"op": op, "user": user, "points": points}
        if op == "merchant_redeem":
            return {"op": op, "merchant": merchant, "amount": f"{self.random.randint(1, 20)}.00"}
        if op == "refund" and self.today_orders:
            return {"op": "refund", "order": self.random.choice(self.today_orders)}
        return {"op": "grant_stable", "user": user, "amount": "100.00", "days": 30}

    def _points(self) -> str:
        if self.random.random() < 0.1:
            return "all"
        return f"{self.random.randint(0, 4)}.{self.random.randint(1, 99999999):08d}"


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
    commands = MixGenerator(args.consumers, args.seed).commands(args.commands)
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
