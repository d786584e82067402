"""The engine: the state of SPEC §3 and the rules that run after every command (SPEC §5).

`Engine.apply` takes one command (a JSON object as a dict), applies it completely or raises
`Rejected` having changed nothing. Handlers for each op live in `commands.py` and `settlement.py`.
"""

from bisect import bisect_right
from collections.abc import Mapping
from typing import Any

from tokenmall.core.accounts import Consumer, ConsumerBook, Merchant, Order, VestingGrant
from tokenmall.core.commands import HANDLERS
from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.exits import ExitQueue
from tokenmall.core.params import Params, Rates
from tokenmall.core.units import FEN_PER_CNY, UNITS_PER_EP, Price

# The platform's integer totals (SPEC §3) plus those kept to prove conservation (SPEC §6):
# every one is a non-negative int attribute of Engine; snapshots save them all.
TOTALS = (
    "pool",
    "supply",
    "issued",
    "burned",
    "treasury",
    "sp_outstanding",
    "day",
    "day_sales",
    "carry",
    "sales",
    "refunds",
    "contributions",
    "dividends_paid",
    "mint_funding",
    "exits",
    "refund_withdrawals",
    "dividend_funds",
    "leftover_to_pool",
    "leftover_to_platform",
)


class Engine:
    """All state of one points economy. Deterministic: same commands, same state."""

    def __init__(self, params: Params | None = None) -> None:
        self.params = params if params is not None else Params()
        self.rates = Rates(self.params)
        # Platform totals (SPEC §3): money in fen, EP in units of 1e-8.
        self.pool = 0
        self.supply = 0
        self.issued = 0
        self.burned = 0
        self.treasury = 0
        self.sp_outstanding = 0
        self.day = 0
        self.day_sales = 0
        self.carry = 0
        self.sales = 0
        self.refunds = 0
        self.contributions = 0
        self.dividends_paid = 0
        self.mint_funding = 0
        self.exits = 0
        # Not printed, but needed to prove conservation of money (SPEC §6).
        self.refund_withdrawals = 0
        self.dividend_funds = 0
        self.leftover_to_pool = 0
        self.leftover_to_platform = 0
        initial = self.params.initial_price
        # CNY per EP -> fen per unit: × 100 fen / 10**8 units.
        self.last_price: Price = (
            initial.numerator * FEN_PER_CNY,
            initial.denominator * UNITS_PER_EP,
        )
        self.consumers: dict[str, Consumer] = {}
        self.book = ConsumerBook()
        self.merchants: dict[str, Merchant] = {}
        self.orders: dict[str, Order] = {}
        self.vesting: list[VestingGrant] = []
        # Consumers with level >= 1, in the order they reached it (the level fund's candidates).
        self.leveled: dict[int, Consumer] = {}
        self.exit_queue = ExitQueue(self.params.total_issuance_units, self.book)
        # Book rows (consumers' slots) whose ep or quota changed during the current command.
        self.touched: list[int] = []
        # Ids of the consumers forced out (出局), appended while a reader has set it to a list
        # (the ledger's statements); None costs nothing.
        self.exit_log: list[str] | None = None

    # -- reads -------------------------------------------------------------------------------

    def price(self) -> Price:
        """P = pool / supply, or the last defined price while nothing circulates (SPEC §1)."""
        if self.supply:
            return (self.pool, self.supply)
        return self.last_price

    def account_exists(self, account_id: str) -> bool:
        return account_id in self.consumers or account_id in self.merchants

    # -- writes ------------------------------------------------------------------------------

    def apply(self, command: Mapping[str, Any]) -> None:
        """Apply one command completely, or raise Rejected having changed nothing."""
        if type(command) is not dict and not isinstance(command, Mapping):
            raise Rejected(ErrorCode.INVALID_COMMAND, "a command is a JSON object")
        if "op" not in command:
            raise Rejected(ErrorCode.INVALID_COMMAND, "missing field 'op'")
        op = command["op"]
        handler = HANDLERS.get(op) if type(op) is str else None
        if handler is None:
            raise Rejected(ErrorCode.UNKNOWN_OP, f"unknown op {op!r}")
        handler(self, command)
        self._after_command()

    def try_apply(self, command: Mapping[str, Any]) -> ErrorCode | None:
        """Apply one command; the error code if it was rejected, else None."""
        try:
            self.apply(command)
        except Rejected as rejected:
            return rejected.code
        return None

    def replace_params(self, params: Params) -> None:
        """Switch to a validated parameter set (set_params), keeping derived structures exact."""
        thresholds_changed = params.level_thresholds_units != self.params.level_thresholds_units
        self.params = params
        self.rates = Rates(params)
        self.exit_queue.widen(params.total_issuance_units)
        if thresholds_changed:
            self.touched.extend(range(len(self.book.owners)))

    def _after_command(self) -> None:
        """SPEC §5: (1) levels, (2) forced exits; then remember the price if it is defined."""
        if self.touched:
            self._update_touched()
        if self.params.exit_enabled:
            self._run_forced_exits()
        if self.supply:
            self.last_price = (self.pool, self.supply)

    def _update_touched(self) -> None:
        """Levels (only rise) and exit-queue keys of the rows the command changed."""
        book = self.book
        ep, levels = book.ep, book.level
        thresholds = self.params.level_thresholds_units
        for slot in self.touched:
            level = bisect_right(thresholds, ep[slot])
            if level > levels[slot]:
                levels[slot] = level
                self.leveled.setdefault(slot, book.owners[slot])
        queue = self.exit_queue
        queue.note_changes(self.touched)
        self.touched.clear()
        if queue.needs_compaction():
            queue.rebuild()

    def _run_forced_exits(self) -> None:
        """Sell out, by trigger price, every consumer whose EP value reaches their quota."""
        keep_numerator, keep_denominator = self.rates.sell_keep
        ep, quota = self.book.ep, self.book.quota
        while True:
            pool_fen, supply_units = self.price()
            slot = self.exit_queue.first_due(pool_fen, supply_units)
            if slot is None:
                return
            consumer = self.book.owners[slot]
            # The price this exit sells at is defined: it must survive a sale that empties supply.
            self.last_price = (pool_fen, supply_units)
            units = ep[slot]
            payout = units * pool_fen * keep_numerator // (supply_units * keep_denominator)
            self.pool -= payout
            self.supply -= units
            self.burned += units
            consumer.cash_out += payout
            ep[slot] = 0
            quota[slot] = 0  # the sale consumes quota; the exit takes the rest
            consumer.exited = True
            self.book.trigger_key[slot] = None
            self.exits += 1
            if self.exit_log is not None:
                self.exit_log.append(consumer.id)
