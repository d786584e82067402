"""One simulation run: a population acting day by day through the exact rules engine (the same
code as the ledger), with `settle_day` at the end of every day.

Each day: new consumers arrive (some referred by earlier ones) and get a behaviour; orders are
placed (cash, or SP at a merchant by those who spend SP); consumers act on their behaviour;
one-off events happen; merchants turn the SP they took into EP; the day is settled; the day's
metrics are taken. Randomness comes only from the run's own generator, so a run is a pure
function of (scenario, seed).
"""

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenmall.core.accounts import REQUESTED
from tokenmall.core.engine import Engine
from tokenmall.core.errors import Rejected
from tokenmall.core.rules.points import sale_payout_fen
from tokenmall.core.units import (
    EP_DECIMALS,
    FEN_PER_CNY,
    UNITS_PER_EP,
    Fen,
    Units,
    format_units,
    price_cny_scaled,
)
from tokenmall.sim.scenario import Behaviours, Scenario

HOLD, SELL_AT_MULTIPLE, SELL_ON_STALL, CONVERT_AND_SPEND, REDEEM_GOODS = range(5)
REDEEM_EVERY_DAYS = 30  # redeemers exchange their EP for goods once a month
WEEK_DAYS = 7
LOSING_AFTER_DAYS = 30  # how long a consumer gives the scheme before judging it
BASIS_POINTS = 10_000  # shares of holdings taken in whole basis points: EP stay integers
GOODS, CASH_OUT = attrgetter("goods"), attrgetter("cash_out")


@dataclass
class Agent:
    id: str
    behaviour: int
    joined_day: int
    money_in_fen: int = 0  # cash paid for orders
    sp_spent_fen: int = 0  # SP paid to merchants (goods received for SP)
    left: bool = False  # gone: orders nothing more (what it holds stays)
    region: str | None = None  # its district, where regional agents earn on its orders
    slot: int = -1  # its row in the engine's ConsumerBook (its balances), once registered


# The daily price as SPEC §1 displays it in the state output (8 places, rounded half-up): what
# metrics.csv and the report show. The behaviours read the unrounded price (`_price`).
PRICE_DECIMALS = EP_DECIMALS
PRICE_SCALE = 10**PRICE_DECIMALS


@dataclass
class DayMetrics:
    day: int
    price: float  # CNY per EP as the state output shows it: PRICE_DECIMALS places, half-up
    pool_fen: int
    supply_units: int
    consumers: int
    orders: int
    sales_fen: int  # cash sales
    sp_sales_fen: int  # orders paid in SP
    contributions_fen: int
    dividends_fen: int
    exits: int
    cash_out_fen: int  # paid to sellers and forced-out holders that day
    goods_fen: int  # value of EP redeemed for goods that day
    sp_outstanding_fen: int  # owed by the operator: SP it must take at par (dividends are SP)
    sp_backing_fen: int  # the operator's own EP (treasury) at the price: its asset
    mint_funding_fen: int
    agent_commissions_fen: int  # earned by regional agents, out of the margin
    withdrawn_fen: int  # cash paid out by withdrawals: money that left the platform
    # The operator's own cash that day: gross margin on cash sales − contributions to the pool −
    # the cost of goods given for EP − cash put into the pool to mint EP for merchants' SP −
    # agents' commissions.
    # Dividends are not in it: they are paid in SP, owed until a merchant redeems it.
    cash_flow_fen: int
    operator_cash_fen: int  # cumulative cash_flow: below zero, money the operator put in
    cash_owed_fen: int  # owed to sellers out of the pool (withdrawable cash), not the operator's
    ep_held_fen: int  # consumers' and merchants' EP at the price: the pool backs it
    platform_flow_fen: int  # the day's change of platform_result
    # The operator's position: its cash − the SP it owes + its own EP at the price. Counting
    # SP once (when owed, not again when a merchant's SP is paid with minted EP) keeps a
    # redeemed dividend from being charged twice.
    platform_result_fen: int


@dataclass
class RunResult:
    days: list[DayMetrics]
    agents: list[Agent]
    engine: Engine
    orders_total: int = 0
    commands_total: int = 0
    event_days: tuple[int, ...] = ()  # the scenario's one-off days, for the report's words


TRACKED = (
    "sales",
    "contributions",
    "dividends_paid",
    "exits",
    "mint_funding",
    "agent_commissions",
    "withdrawn",
)
PAYEE = {"method": "bank", "name": "模拟", "account": "6222020200001234567", "bank": "工商银行"}
CITY_DISTRICTS = 10  # districts a city, for the agents' regions


def run(
    scenario: Scenario,
    generator: np.random.Generator,
    on_day: Callable[[int], None] | None = None,
    engine: Engine | None = None,
) -> RunResult:
    """Simulate `scenario.days` days; deterministic for a given generator state. `on_day` is
    called with 1 after each day (a progress bar). `engine`: a fresh one of the scenario's
    parameters unless given (tests watch it)."""
    sim = _Run(scenario, engine or Engine(scenario.params), generator)
    return sim.run(on_day)


class _Run:
    def __init__(self, scenario: Scenario, engine: Engine, generator: np.random.Generator) -> None:
        self.scenario = scenario
        self.engine = engine
        # Order ids are "o<count>" and nothing is refunded: no order needs keeping.
        engine.orders.forget_orders()
        self.random = generator
        self.agents: list[Agent] = []
        self.acting: list[Agent] = []  # every agent but those who only hold
        self.sp_sales_today_fen = 0
        self.merchants = [f"m{index}" for index in range(scenario.merchants.count)]
        self.districts: list[str] = []  # where consumers live, if there are agents
        self.pending: deque[tuple[int, str]] = deque()  # (day due, withdrawal id), in order
        self.withdrawals = 0
        self.collectibles_today_fen = 0  # value of the items claimed today
        self.prices: list[float] = []
        self.orders = 0
        self.commands = 0
        self.cash_out_before = 0
        # goods taken for EP so far by all consumers: each day's goods are its change
        self.goods_total_fen = self._goods_value()
        self.operator_cash_fen = 0
        self.result_fen = 0
        self.cumulative = dict.fromkeys(TRACKED, 0)
        shares = np.array(scenario.behaviours.shares())
        self.behaviour_cdf = np.cumsum(shares / shares.sum())

    def apply(self, command: Mapping[str, object]) -> bool:
        self.commands += 1
        return self.engine.try_apply(command) is None

    def run(self, on_day: Callable[[int], None] | None) -> RunResult:
        self._register_agents()
        for merchant in self.merchants:
            self.apply({"op": "register_merchant", "merchant": merchant})
        days = []
        for day in range(self.scenario.days):
            days.append(self.day(day))
            if on_day is not None:
                on_day(1)
        event_days = tuple(event.day for event in self.scenario.events)
        return RunResult(days, self.agents, self.engine, self.orders, self.commands, event_days)

    def day(self, day: int) -> DayMetrics:
        scenario = self.scenario
        self._arrivals(day)
        self._orders(day)
        self._behaviours(day)
        self._spend_sp()
        self._leave_when_losing(day)
        self._claim_collectibles()
        for event in scenario.events:
            if event.day == day and event.kind == "sell":
                self._sell_event(event.share)
            elif event.day == day:
                self._sp_run(event.share)
        self._merchants_redeem()
        self._withdrawals(day)
        self.apply({"op": "settle_day"})
        return self._metrics(day)

    # -- the day's steps --------------------------------------------------------------------

    def _arrivals(self, day: int) -> None:
        arrivals = self.scenario.arrivals
        expected = arrivals.expected(day)
        count = round(expected) if arrivals.kind == "fixed" else int(self.random.poisson(expected))
        referred = self.random.random(count) < self.scenario.referral_probability
        kinds = np.searchsorted(self.behaviour_cdf, self.random.random(count), side="right")
        for index in range(count):
            agent = Agent(f"c{len(self.agents)}", int(min(kinds[index], 4)), day)
            if self.districts:
                agent.region = self.districts[int(self.random.integers(len(self.districts)))]
            command: dict[str, object] = {"op": "register", "user": agent.id}
            if referred[index] and self.agents:
                command["referrer"] = self.agents[int(self.random.integers(len(self.agents)))].id
            if self.apply(command):
                agent.slot = self.engine.consumers[agent.id].slot
                self.agents.append(agent)
                if agent.behaviour != HOLD:
                    self.acting.append(agent)
                if self.scenario.orders.on_arrival:
                    self._order(agent, Fen(int(self._order_values(1)[0])))

    def _orders(self, day: int) -> None:
        agents = self.agents
        if not agents:
            return
        rate = self.scenario.orders.per_consumer_per_day * self.scenario.arrivals.activity(day)
        count = int(self.random.poisson(rate * len(agents)))
        buyers = self.random.integers(len(agents), size=count)
        values = self._order_values(count)
        # The day's orders go to the engine as one batch (Engine.place_orders: its compiled
        # kernel), applied in the order placed. Which are paid in SP is decided as they are
        # placed, from the buyer's SP less what its earlier orders in the batch take: only a
        # buyer's own SP orders change its SP (cash orders, and the exits they cause, pay
        # cash). An order with a region (agents' commissions) sends the batch before it.
        # Written out rather than through _add: this loop places every order of the run.
        batch = _Batch()
        placed, buyers_placed, sp_taken = batch.orders, batch.buyers, batch.sp_taken
        spender = CONVERT_AND_SPEND if self._takes_sp() else None
        sp, merchants = self.engine.book.sp, self.merchants
        number = self.orders  # the next order's number ("o<number>")
        for buyer_index, value_fen in zip(buyers.tolist(), values.tolist(), strict=True):
            buyer = agents[buyer_index]
            if buyer.left:
                continue
            if buyer.region is not None:
                self.commands += number - self.orders
                self.orders = number
                self._send(batch)
                self._order(buyer, value_fen)
                number = self.orders
                continue
            merchant_id = None
            if buyer.behaviour == spender:
                slot = buyer.slot
                taken = sp_taken.get(slot, 0)
                if sp[slot] - taken >= value_fen:
                    # An SP order's merchant, in turn, by the count of orders with this one.
                    merchant_id = merchants[(number + 1) % len(merchants)]
                    sp_taken[slot] = taken + value_fen
            placed.append((f"o{number}", buyer.id, value_fen, merchant_id))
            buyers_placed.append(buyer)
            number += 1
        self.commands += number - self.orders
        self.orders = number
        self._send(batch)

    def _add(self, batch: "_Batch", agent: Agent, value_fen: int, merchant_id: str | None) -> None:
        """Place an order (its id "o<count>"): in cash, or in SP at the merchant."""
        batch.orders.append((f"o{self.orders}", agent.id, value_fen, merchant_id))
        batch.buyers.append(agent)
        if merchant_id is not None:
            batch.sp_taken[agent.slot] = batch.sp_taken.get(agent.slot, 0) + value_fen
        self.orders += 1
        self.commands += 1

    def _send(self, batch: "_Batch") -> None:
        """Apply the batch's orders in turn, count what the accepted ones paid, and empty it."""
        if not batch.orders:
            return
        accepted = self.engine.place_orders(batch.orders)
        sp_sales_fen = 0
        for agent, order, ok in zip(batch.buyers, batch.orders, accepted, strict=True):
            if order[3] is None:
                if ok:
                    agent.money_in_fen += order[2]
            elif ok:
                agent.sp_spent_fen += order[2]
                sp_sales_fen += order[2]
            else:  # the batch decided later orders on this one's SP: it must not be refused
                raise RuntimeError(f"the SP order {agent.id} placed was refused")
        self.sp_sales_today_fen += sp_sales_fen
        batch.orders.clear()
        batch.buyers.clear()
        batch.sp_taken.clear()

    def _pays_sp(self, agent: Agent, value_fen: int) -> bool:
        """Whether the agent pays this order in SP: one who spends SP, has enough, and a
        merchant takes it."""
        return (
            agent.behaviour == CONVERT_AND_SPEND
            and self.engine.book.sp[agent.slot] >= value_fen
            and self._takes_sp()
        )

    def _order(self, agent: Agent, value_fen: Fen) -> None:
        """One order on its own (an arrival's, or one with a region): an SP one at a merchant
        for those who spend SP and have enough, else a cash one."""
        pays_sp = self._pays_sp(agent, value_fen)
        if pays_sp or agent.region is None:
            # An SP order's merchant, in turn, by the count of orders with this one.
            merchant_id = (
                self.merchants[(self.orders + 1) % len(self.merchants)] if pays_sp else None
            )
            batch = _Batch()
            self._add(batch, agent, value_fen, merchant_id)
            self._send(batch)
            return
        # With a region: Engine.order, which pays the agents' commissions (the batch does not).
        order_id = f"o{self.orders}"
        self.orders += 1
        self.commands += 1
        try:
            self.engine.order(order_id, agent.id, value_fen, "cash", None, agent.region)
        except Rejected:
            return
        agent.money_in_fen += value_fen

    def _order_values(self, count: int) -> npt.NDArray[np.int64]:
        spec = self.scenario.orders.value
        if spec.distribution == "fixed":
            cny = np.full(count, spec.value)
        elif spec.distribution == "uniform":
            cny = self.random.uniform(spec.low, spec.high, count)
        else:
            cny = self.random.lognormal(np.log(spec.median), spec.sigma, count)
        fen: npt.NDArray[np.int64] = np.maximum(np.rint(cny * FEN_PER_CNY), 1).astype(np.int64)
        return fen

    def _behaviours(self, day: int) -> None:
        engine, behaviours = self.engine, self.scenario.behaviours
        self.prices.append(_price(engine))
        stalled = self._stalled(behaviours)
        ep = engine.book.ep  # by slot: the engine's column, read without a Consumer lookup
        for agent in self.acting:
            units = ep[agent.slot]
            if units <= 0:
                continue
            kind = agent.behaviour
            if kind == SELL_AT_MULTIPLE:
                value_fen = units * self.prices[-1] * FEN_PER_CNY / UNITS_PER_EP
                if (
                    agent.money_in_fen
                    and value_fen >= behaviours.target_multiple * agent.money_in_fen
                ):
                    self.apply({"op": "sell", "user": agent.id, "points": "all"})
            elif kind == SELL_ON_STALL and stalled:
                self.apply({"op": "sell", "user": agent.id, "points": "all"})
            elif kind == CONVERT_AND_SPEND:
                self.apply({"op": "convert", "user": agent.id, "points": "all"})
            elif (
                kind == REDEEM_GOODS
                and (day - agent.joined_day) % REDEEM_EVERY_DAYS == REDEEM_EVERY_DAYS - 1
            ):
                self.apply({"op": "redeem", "user": agent.id, "points": "all"})

        if stalled and behaviours.leave_on_stall > 0:
            staying = [agent for agent in self.agents if not agent.left]
            leaving = self.random.random(len(staying)) < behaviours.leave_on_stall
            for agent, leaves in zip(staying, leaving.tolist(), strict=True):
                agent.left = leaves

    def _spend_sp(self) -> None:
        """Consumers spend the SP they hold (dividends, conversions) at merchants: a chosen
        few each day, drawn without walking every consumer."""
        chance = self.scenario.behaviours.spend_sp
        if chance <= 0 or not self.agents or not self._takes_sp():
            return
        batch = _Batch()
        for agent in self._drawn(chance):
            self._pay_sp(batch, agent)
        self._send(batch)

    def _drawn(self, chance: float) -> list[Agent]:
        """The consumers who act today at a daily `chance` each, in arrival order: how many
        drawn at once (binomial), then which, without walking every consumer."""
        count = int(self.random.binomial(len(self.agents), chance))
        chosen = self.random.choice(len(self.agents), size=count, replace=False)
        return [self.agents[index] for index in np.sort(chosen).tolist()]

    def _sp_run(self, share: float) -> None:
        """An SP run (挤兑): that share of the consumers holding SP spend all of it at once."""
        if not self._takes_sp():
            return
        consumers = self.engine.consumers
        holders = [agent for agent in self.agents if consumers[agent.id].sp >= FEN_PER_CNY]
        chosen = self.random.random(len(holders)) < share
        batch = _Batch()
        for agent, spends in zip(holders, chosen.tolist(), strict=True):
            if spends:
                self._pay_sp(batch, agent)
        self._send(batch)

    def _takes_sp(self) -> bool:
        return bool(self.scenario.merchants.accept_sp and self.merchants)

    def _pay_sp(self, batch: "_Batch", agent: Agent) -> None:
        """An SP order for all the agent's SP (from 1 CNY: less is not worth a trip)."""
        sp_fen = self.engine.book.sp[agent.slot] - batch.sp_taken.get(agent.slot, 0)
        if sp_fen < FEN_PER_CNY:
            return
        self._add(batch, agent, sp_fen, self.merchants[self.orders % len(self.merchants)])

    def _stalled(self, behaviours: Behaviours) -> bool:
        if len(self.prices) <= behaviours.stall_days:
            return False
        then = self.prices[-1 - behaviours.stall_days]
        return then > 0 and self.prices[-1] / then - 1 < behaviours.stall_rise

    def _sell_event(self, share: float) -> None:
        consumers = self.engine.consumers
        holders = [agent for agent in self.agents if consumers[agent.id].ep > 0]
        chosen = self.random.random(len(holders)) < share
        for agent, sells in zip(holders, chosen.tolist(), strict=True):
            if sells:
                self.apply({"op": "sell", "user": agent.id, "points": "all"})

    def _leave_when_losing(self, day: int) -> None:
        """Consumers drawn at the scenario's chance leave if, after LOSING_AFTER_DAYS, all
        they got back (cash, SP, goods, their EP at what selling them pays) is less than
        what they paid."""
        chance = self.scenario.behaviours.leave_when_losing
        if chance <= 0 or not self.agents:
            return
        engine = self.engine
        price, keep = engine.price(), engine.rates.sell_keep
        for agent in self._drawn(chance):
            if agent.left or day - agent.joined_day < LOSING_AFTER_DAYS:
                continue
            held = engine.consumers[agent.id]
            back_fen = held.cash_out + held.sp + held.locked_sp + held.goods
            back_fen += agent.sp_spent_fen + sale_payout_fen(held.ep, price, keep)
            agent.left = back_fen < agent.money_in_fen

    def _claim_collectibles(self) -> None:
        """Consumers drawn at the scenario's chance claim the collection's next item for EP,
        if theirs cover it (the rules refuse otherwise, and when the edition is gone)."""
        settings = self.scenario.collectibles
        if settings.chance <= 0 or not self.agents:
            return
        if not self.engine.collections:
            value = _yuan(round(settings.value * FEN_PER_CNY))
            issue = {"op": "issue_collection", "collection": "c1", "edition": settings.edition}
            self.apply({**issue, "value": value})
        collection = self.engine.collections["c1"]
        for agent in self._drawn(settings.chance):
            claim = {"op": "claim_collectible", "user": agent.id, "collection": "c1"}
            if self.apply(claim):
                self.collectibles_today_fen += collection.value_fen

    def _register_agents(self) -> None:
        """A province, its cities and `districts` districts, an agent each (a44, a4401,
        a440101, ...)."""
        count = self.scenario.agents.districts
        if not count:
            return
        regions = ["44"]
        for index in range(count):
            city = f"44{index // CITY_DISTRICTS + 1:02d}"
            if city not in regions:
                regions.append(city)
            district = f"{city}{index % CITY_DISTRICTS + 1:02d}"
            regions.append(district)
            self.districts.append(district)
        for region in regions:
            self.apply({"op": "register_agent", "agent": f"a{region}", "region": region})

    def _withdrawals(self, day: int) -> None:
        """Pay the requests that are due, then take today's: consumers drawn at the scenario's
        chance (not a walk over all), every merchant and agent at the same chance."""
        while self.pending and self.pending[0][0] <= day:
            _due, withdrawal_id = self.pending.popleft()
            if self.engine.withdrawals[withdrawal_id].status == REQUESTED:  # under review
                self.apply({"op": "approve_withdrawal", "id": withdrawal_id})
            reference = f"bank-{withdrawal_id}"
            self.apply({"op": "complete_withdrawal", "id": withdrawal_id, "reference": reference})
        settings, engine = self.scenario.withdrawals, self.engine
        if settings.chance <= 0 or engine.cash_owed == 0:  # nobody is owed: draw nothing
            return
        due = day + settings.delay_days
        if self.agents:
            for agent in self._drawn(settings.chance):
                self._withdraw("user", agent.id, engine.consumers, due)
        for kind, accounts in (("merchant", engine.merchants), ("agent", engine.agents)):
            names = sorted(accounts)
            asks = self.random.random(len(names)) < settings.chance
            for name, asked in zip(names, asks.tolist(), strict=True):
                if asked:
                    self._withdraw(kind, name, accounts, due)

    def _withdraw(self, kind: str, account_id: str, accounts: Mapping[str, Any], due: int) -> None:
        params = self.engine.params
        amount_fen = min(accounts[account_id].cash, params.withdraw_daily_max_fen)
        if amount_fen < params.withdraw_min_fen:
            return
        withdrawal_id = f"w{self.withdrawals}"
        self.withdrawals += 1
        command = {"op": "withdraw", "id": withdrawal_id, kind: account_id}
        if self.apply({**command, "amount": _yuan(amount_fen), "payee": PAYEE}):
            self.pending.append((due, withdrawal_id))

    def _merchants_redeem(self) -> None:
        """Merchants turn the SP they took into EP at par, then sell their share of their EP
        for cash (a merchant wants money, not points)."""
        share_bp = round(self.scenario.merchants.sell_share * BASIS_POINTS)
        for merchant_id in self.merchants:
            merchant = self.engine.merchants[merchant_id]
            if merchant.sp > 0:
                amount = _yuan(merchant.sp)
                self.apply({"op": "merchant_redeem", "merchant": merchant_id, "amount": amount})
            units = Units(merchant.ep * share_bp // BASIS_POINTS)  # integer EP units
            if units > 0:
                points = format_units(units)
                self.apply({"op": "sell", "merchant": merchant_id, "points": points})

    # -- metrics ----------------------------------------------------------------------------

    def _goods_value(self) -> int:
        total: int = sum(map(GOODS, self.engine.consumers.values()))
        return total

    def _metrics(self, day: int) -> DayMetrics:
        engine, platform = self.engine, self.scenario.platform
        today = {name: getattr(engine, name) - self.cumulative[name] for name in TRACKED}
        self.cumulative = {name: getattr(engine, name) for name in TRACKED}
        goods_now_fen = self._goods_value()
        goods_fen, self.goods_total_fen = goods_now_fen - self.goods_total_fen, goods_now_fen
        cash_out = _cash_out(engine)
        cash_out_today, self.cash_out_before = cash_out - self.cash_out_before, cash_out
        margin_fen = int(today["sales"] * platform.gross_margin)
        # a collectible counts as goods for its holder; delivering it costs its own share
        items_fen, self.collectibles_today_fen = self.collectibles_today_fen, 0
        goods_cost_fen = int((goods_fen - items_fen) * platform.goods_cost)
        goods_cost_fen += int(items_fen * self.scenario.collectibles.cost)
        cash_flow = (
            margin_fen
            - today["contributions"]
            - goods_cost_fen
            - today["mint_funding"]
            - today["agent_commissions"]
        )
        self.operator_cash_fen += cash_flow
        pool_fen, supply_units = engine.price()
        treasury_fen = engine.treasury * pool_fen // supply_units
        result = self.operator_cash_fen - engine.sp_outstanding + treasury_fen
        flow, self.result_fen = result - self.result_fen, result
        sp_sales_fen, self.sp_sales_today_fen = self.sp_sales_today_fen, 0
        return DayMetrics(
            day=day,
            price=price_cny_scaled(engine.price(), PRICE_DECIMALS) / PRICE_SCALE,
            pool_fen=engine.pool,
            supply_units=engine.supply,
            consumers=len(self.agents),
            orders=self.orders,
            sales_fen=today["sales"],
            sp_sales_fen=sp_sales_fen,
            contributions_fen=today["contributions"],
            dividends_fen=today["dividends_paid"],
            exits=today["exits"],
            cash_out_fen=cash_out_today,
            goods_fen=goods_fen,
            sp_outstanding_fen=engine.sp_outstanding,
            sp_backing_fen=treasury_fen,
            mint_funding_fen=today["mint_funding"],
            agent_commissions_fen=today["agent_commissions"],
            withdrawn_fen=today["withdrawn"],
            cash_flow_fen=cash_flow,
            operator_cash_fen=self.operator_cash_fen,
            cash_owed_fen=engine.cash_owed,
            ep_held_fen=(engine.supply - engine.treasury) * pool_fen // supply_units,
            platform_flow_fen=flow,
            platform_result_fen=result,
        )


class _Batch:
    """Orders placed and not yet sent to the engine: (order id, buyer id, amount, merchant
    or None) and their buyers, and the SP each buyer's SP orders in it take, by slot."""

    __slots__ = ("buyers", "orders", "sp_taken")

    def __init__(self) -> None:
        self.orders: list[tuple[str, str, int, str | None]] = []
        self.buyers: list[Agent] = []
        self.sp_taken: dict[int, int] = {}


def _yuan(fen: int) -> str:
    """An amount as the rules take it: "12.34"."""
    return f"{fen // 100}.{fen % 100:02d}"


def _price(engine: Engine) -> float:
    pool_fen, supply_units = engine.price()
    return pool_fen * UNITS_PER_EP / (supply_units * FEN_PER_CNY)


def _cash_out(engine: Engine) -> int:
    consumers: int = sum(map(CASH_OUT, engine.consumers.values()))
    merchants: int = sum(map(CASH_OUT, engine.merchants.values()))
    return consumers + merchants
