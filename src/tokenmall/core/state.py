"""The state of SPEC §3: the platform totals and every account. The rules (core/rules/) read
and change it; the engine (core/engine.py) dispatches commands to them and runs SPEC §5 after
each. Nothing here knows a command.
"""

from tokenmall.core.accounts import (
    Agent,
    Collection,
    Consumer,
    ConsumerBook,
    Item,
    Merchant,
    VestingGrant,
    Withdrawal,
)
from tokenmall.core.exits import ExitQueue
from tokenmall.core.orders import OrderBook
from tokenmall.core.params import Params, Rates
from tokenmall.core.units import FEN_PER_CNY, UNITS_PER_EP, ZERO_FEN, ZERO_UNITS, Fen, Price, Units

# The platform's integer totals (SPEC §3) plus those kept to prove conservation (SPEC §6):
# every one is a non-negative int attribute of State; snapshots save them all.
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
    "cash_owed",
    "withdrawn",
    "agent_commissions",
    "refund_withdrawals",
    "dividend_funds",
    "leftover_to_pool",
    "leftover_to_platform",
)


class State:
    """All state of one points economy."""

    def __init__(self, params: Params | None = None) -> None:
        self.params = params if params is not None else Params()
        # Apply commands as SPEC v1 checked them: for the entries of a ledger journaled before
        # it moved to SPEC v2 (decision 81). Only v1's ops, v1's ids; v2's fields ignored.
        self.rules_v1 = False
        self.rates = Rates(self.params)
        # Platform totals (SPEC §3): money in fen, EP in units of 1e-8.
        self.pool: Fen = ZERO_FEN
        self.supply: Units = ZERO_UNITS
        self.issued: Units = ZERO_UNITS
        self.burned: Units = ZERO_UNITS
        self.treasury: Units = ZERO_UNITS
        self.sp_outstanding: Fen = ZERO_FEN
        self.day = 0
        self.day_sales: Fen = ZERO_FEN
        self.carry: Fen = ZERO_FEN
        self.sales: Fen = ZERO_FEN
        self.refunds: Fen = ZERO_FEN
        self.contributions: Fen = ZERO_FEN
        self.dividends_paid: Fen = ZERO_FEN
        self.mint_funding: Fen = ZERO_FEN
        self.exits = 0
        # SPEC v2 §3: money owed to accounts (Σ cash + withdrawing), paid out, agents' earnings.
        self.cash_owed: Fen = ZERO_FEN
        self.withdrawn: Fen = ZERO_FEN
        self.agent_commissions: Fen = ZERO_FEN
        # Not printed, but needed to prove conservation of money (SPEC §6).
        self.refund_withdrawals: Fen = ZERO_FEN
        self.dividend_funds: Fen = ZERO_FEN
        self.leftover_to_pool: Fen = ZERO_FEN
        self.leftover_to_platform: Fen = ZERO_FEN
        initial = self.params.initial_price
        # CNY per EP -> fen per unit: × 100 fen / 10**8 units.
        self.last_price: Price = (
            initial.numerator * FEN_PER_CNY,
            initial.denominator * UNITS_PER_EP,
        )
        self.consumers: dict[str, Consumer] = {}
        self.book = ConsumerBook()
        self.merchants: dict[str, Merchant] = {}
        self.agents: dict[str, Agent] = {}
        self.region_agents: dict[str, str] = {}  # region -> the agent holding it (not ended)
        self.withdrawals: dict[str, Withdrawal] = {}
        # Each account's sum of withdraw amounts applied today (SPEC §2 withdraw_daily_max).
        self.withdrawn_today: dict[str, Fen] = {}
        self.collections: dict[str, Collection] = {}
        self.items: dict[str, Item] = {}
        self.orders = OrderBook()
        self.vesting: list[VestingGrant] = []
        # Consumers with level >= 1, in the order they reached it (the level fund's candidates).
        self.leveled: dict[int, Consumer] = {}
        self.exit_queue = ExitQueue(self.params.total_issuance_units, self.book)

    def price(self) -> Price:
        """P = pool / supply, or the last defined price while nothing circulates (SPEC §1)."""
        if self.supply:
            return (self.pool, self.supply)
        return self.last_price

    def account_exists(self, account_id: str) -> bool:
        return (
            account_id in self.consumers
            or account_id in self.merchants
            or account_id in self.agents
        )

    def account(self, account_id: str) -> Consumer | Merchant | Agent | None:
        """Any account by id (ids are unique across the three kinds)."""
        return (
            self.consumers.get(account_id)
            or self.merchants.get(account_id)
            or self.agents.get(account_id)
        )

    def sp_backing_fen(self) -> Fen:
        """What backs the SP outstanding: the EP the platform took in for them (the treasury),
        at the price, floored to the fen."""
        pool_fen, supply_units = self.price()
        return self.treasury * pool_fen // supply_units

    def replace_params(self, params: Params) -> None:
        """Switch to a validated parameter set (set_params), keeping derived structures exact."""
        self.params = params
        self.rates = Rates(params)
        self.exit_queue.widen(params.total_issuance_units)
