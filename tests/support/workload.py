"""Synthetic command streams for benchmarks and tests (not part of the rules).

`MixGenerator` yields a deterministic, mostly valid mix of SPEC §4 commands: consumers register
with referral chains, buy in cash and with SP, sell, convert, redeem, merchants redeem SP, orders
are refunded, legacy SP is granted, and the day is settled every `settle_every` commands.
"""

import random
from typing import Any

MERCHANTS = 50
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

    def __init__(self, consumers: int, seed: int, settle_every: int = 1000) -> None:
        self.random = random.Random(seed)
        self.settle_every = settle_every
        self.merchants = min(MERCHANTS, max(1, consumers // 20))
        self.consumer_target = consumers
        self.users: list[str] = []
        self.today_orders: list[str] = []
        self.order_count = 0
        ops, weights = zip(*MIX, strict=True)
        self.ops: tuple[str, ...] = ops
        self.cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]

    def commands(self, count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"op": "register_merchant", "merchant": f"m{i:02d}"} for i in range(self.merchants)
        ]
        while len(out) < count:
            if (len(out) + 1) % self.settle_every == 0:
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
        merchant = f"m{self.random.randrange(self.merchants):02d}"
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
