"""The engine: dispatches a command to its rule (core/rules/) and runs what SPEC §5 says
happens after every command: levels, then forced exits.

`Engine.apply` takes one command (a JSON object as a dict), applies it completely and returns
what it changed (`Applied`, core/effects.py), or raises `Rejected` having changed nothing.
`Engine.order` is the order command with its fields already typed, for the simulator; it runs
the same rule and the same steps after it, and `Engine.place_orders` a batch of them, in the
compiled kernel (core/_kernel.c) when it was built. The engine is the state (core/state.py)
plus this; rules import the state, never the engine.
"""

import heapq
from bisect import bisect_right
from collections.abc import Mapping
from typing import Any

from tokenmall.core.effects import Applied, Effects, Exited, Field, LevelReached
from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.exits import ENTRIES_PER_CONSUMER_MAX, HEAP_SLACK
from tokenmall.core.fields import (
    FEN_MAX,
    check_fields,
    check_ids,
    check_v1_ids,
    is_v1_id,
    is_valid_id,
    positive_fen,
)
from tokenmall.core.kernel import KERNEL_FEN_MAX, compiled
from tokenmall.core.params import Params
from tokenmall.core.rules import OPS, V1_OPS
from tokenmall.core.rules.cash import credit_cash
from tokenmall.core.rules.orders import place_order
from tokenmall.core.rules.points import sale_payout_fen
from tokenmall.core.state import TOTALS, State
from tokenmall.core.units import ZERO_FEN, ZERO_UNITS, Fen

__all__ = ["TOTALS", "Engine"]

EP, QUOTA, CASH_OUT = Field.EP, Field.QUOTA, Field.CASH_OUT


class Engine(State):
    """All state of one points economy, and the one way to change it. Deterministic: same
    commands, same state."""

    def apply(self, command: Mapping[str, Any]) -> Applied:
        """Apply one command completely and say what it changed, or raise Rejected having
        changed nothing."""
        if type(command) is not dict and not isinstance(command, Mapping):
            raise Rejected(ErrorCode.INVALID_COMMAND, "a command is a JSON object")
        op = command.get("op")
        if op is None:
            raise Rejected(ErrorCode.INVALID_COMMAND, "missing field 'op'")
        # SPEC v2 §4: ids wherever they appear, then the op, then the op's own fields.
        if self.rules_v1:
            check_v1_ids(command)
            spec = V1_OPS.get(op) if type(op) is str else None
        else:
            check_ids(command)
            spec = OPS.get(op) if type(op) is str else None
        if spec is None:
            raise Rejected(ErrorCode.UNKNOWN_OP, f"unknown op {op!r}")
        rule, required, known = spec
        check_fields(command, required, known)
        params = self.params
        fx = Effects()
        rule(self, command, fx)
        return self._after(op, params, fx)

    def order(
        self,
        order_id: str,
        user_id: str,
        amount_fen: Fen,
        pay: str = "cash",
        merchant_id: str | None = None,
        region: str | None = None,
    ) -> Applied:
        """The order command with typed fields, for callers in this process that make orders
        rather than decode them (the simulator: formatting amounts as strings for `apply` to
        parse, and checking ids it made, took a sixth of a full-rules run). Exactly
        `apply({"op": "order", "id": order_id, "user": user_id, "amount": <amount_fen as
        yuan>, ...})`: the same checks of what the fields mean, in SPEC's order, the same rule
        and the same steps after it (tests/test_typed_order.py compares the two)."""
        ids_ok = is_v1_id if self.rules_v1 else is_valid_id
        if not (
            ids_ok(order_id) and ids_ok(user_id) and (merchant_id is None or ids_ok(merchant_id))
        ):
            raise Rejected(
                ErrorCode.INVALID_COMMAND, "an order's ids: 1-64 letters, digits or _ - . : @"
            )
        params = self.params
        fx = Effects()
        place_order(self, order_id, user_id, amount_fen, positive_fen, pay, merchant_id, region, fx)
        return self._after("order", params, fx)

    def place_orders(self, orders: list[tuple[str, str, int, str | None]]) -> list[bool]:
        """Orders without a region, `(order_id, user_id, amount_fen, merchant_id)`, one after
        another: each exactly `self.order(order_id, user_id, amount_fen)` in cash, or paid in
        SP at the merchant if one is named (its checks, its rule, the levels and forced exits
        after it), for a caller that keeps nothing of what an order changed (the simulator's
        day of orders); whether each was accepted.

        The compiled kernel (core/kernel.py) runs them when it was built: a full-rules
        simulation spends most of its time in orders (docs/benchmarks.md). Any order it does
        not take whole (a rejection, an id or a number it does not hold in 64 bits) it hands to
        `self.order` before changing anything of it; tests/test_kernel.py checks that both
        paths leave the same state."""
        kernel = compiled()
        if kernel is None or self.rules_v1:
            return [self._try_order(*order) for order in orders]
        config = (
            self._try_order,
            self._exits_now,
            heapq.heappush,
            min(FEN_MAX, KERNEL_FEN_MAX),  # larger amounts go to the Python path
            ENTRIES_PER_CONSUMER_MAX,
            HEAP_SLACK,
        )
        return kernel.place_orders(self, orders, config)

    def _try_order(
        self, order_id: str, user_id: str, amount_fen: int, merchant_id: str | None
    ) -> bool:
        pay = "cash" if merchant_id is None else "stable"
        try:
            self.order(order_id, user_id, Fen(amount_fen), pay, merchant_id)
        except Rejected:
            return False
        return True

    def _exits_now(self) -> None:
        """The kernel found a forced exit due: run them (their effects are not kept)."""
        self._run_forced_exits(Effects())

    def _after(self, op: str, params: Params, fx: Effects) -> Applied:
        """What follows every command's rule (SPEC §5), and what the command changed."""
        # SPEC §5, inline (this runs for every command): (1) levels of the consumers whose EP
        # or quota changed, or of everyone when set_params changed the thresholds; (2) forced
        # exits, if any is due; then the price, if defined, is the last defined price.
        if params is not self.params and (
            params.level_thresholds_units != self.params.level_thresholds_units
        ):
            self._update_levels(range(len(self.book.owners)), fx)
        elif fx.touched:
            self._update_levels(fx.touched, fx)
        if self.params.exit_enabled:
            pool_fen, supply_units = (self.pool, self.supply) if self.supply else self.last_price
            # first_due's first test written out: on most commands the lowest trigger bound in
            # the heap is above P, and nobody can be due (a call saved on every command).
            queue = self.exit_queue
            heap = queue.heap
            bound = (pool_fen << queue.shift) + queue.offset * supply_units
            if (
                heap
                and heap[0][0] * supply_units <= bound
                and queue.first_due(pool_fen, supply_units) is not None
            ):
                self._run_forced_exits(fx)
        if self.supply:
            self.last_price = (self.pool, self.supply)
        # After this the last defined price is the price, whether EP circulate or not.
        # tuple.__new__ skips the NamedTuple's Python-level __new__: this runs for every command.
        postings, events = tuple(fx.postings), tuple(fx.events)
        fields = (op, postings, events, fx.payouts, self.pool, self.supply, self.last_price)
        return tuple.__new__(Applied, fields)

    def try_apply(self, command: Mapping[str, Any]) -> ErrorCode | None:
        """Apply one command; the error code if it was rejected, else None."""
        try:
            self.apply(command)
        except Rejected as rejected:
            return rejected.code
        return None

    def _update_levels(self, slots: Any, fx: Effects) -> None:
        """Levels (only rise) and exit-queue keys of these rows: the consumers whose EP or
        quota the command changed (`Effects.touched`; a settlement's payouts lower quotas too,
        but it updates the exit queue for them itself and leaves EP, hence levels, alone)."""
        book = self.book
        ep, levels = book.ep, book.level
        thresholds = self.params.level_thresholds_units
        top = len(thresholds)
        for slot in slots:
            # Most rows stay below their next threshold: one comparison instead of a search.
            current = levels[slot]
            if current >= top or ep[slot] < thresholds[current]:
                continue
            level = bisect_right(thresholds, ep[slot])
            if level > current:
                levels[slot] = level
                self.leveled.setdefault(slot, book.owners[slot])
                fx.events.append(LevelReached(book.owners[slot].id, level))
        self.exit_queue.note_changes(slots)

    def _run_forced_exits(self, fx: Effects) -> None:
        """Sell out, by trigger price, every consumer whose EP value reaches their quota."""
        keep = self.rates.sell_keep
        book = self.book
        ep, quota = book.ep, book.quota
        while True:
            price = (self.pool, self.supply) if self.supply else self.last_price  # self.price()
            slot = self.exit_queue.first_due(*price)
            if slot is None:
                return
            consumer = book.owners[slot]
            # The price this exit sells at is defined: it must survive a sale that empties supply.
            self.last_price = price
            units = ep[slot]
            payout_fen = sale_payout_fen(units, price, keep)
            self.pool -= payout_fen
            self.supply -= units
            self.burned += units
            consumer.cash_out += payout_fen
            post = fx.postings.append
            post((consumer.id, EP, -units))
            if payout_fen:
                post((consumer.id, CASH_OUT, payout_fen))
                credit_cash(self, consumer, payout_fen, fx)  # a frozen consumer's too
            if quota[slot]:  # the sale consumes quota; the exit takes the rest
                post((consumer.id, QUOTA, -quota[slot]))
            ep[slot] = ZERO_UNITS
            quota[slot] = ZERO_FEN
            consumer.exited = True
            book.trigger_key[slot] = None
            self.exits += 1
            fx.events.append(Exited(consumer.id))
