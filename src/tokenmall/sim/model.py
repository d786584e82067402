"""One simulation run: a population acting day by day through the exact rules engine (the same
code as the ledger), with `settle_day` at the end of every day.

Each day: new consumers arrive (some referred by earlier ones) and get a behaviour; orders are
placed (cash, or SP at a merchant by those who spend SP); consumers act on their behaviour;
one-off events happen; merchants turn the SP they took into EP; the day is settled; the day's
metrics are taken. Randomness comes only from the run's own generator, so a run is a pure
function of (scenario, seed).
"""

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from tokenmall.core.engine import Engine
from tokenmall.core.units import FEN_PER_CNY, UNITS_PER_EP
from tokenmall.sim.scenario import Behaviours, Scenario

HOLD, SELL_AT_MULTIPLE, SELL_ON_STALL, CONVERT_AND_SPEND, REDEEM_GOODS = range(5)
REDEEM_EVERY_DAYS = 30  # redeemers exchange their EP for goods once a month
WEEK_DAYS = 7
GOODS, CASH_OUT = attrgetter("goods"), attrgetter("cash_out")


@dataclass
class Agent:
    id: str
    behaviour: int
    joined_day: int
    money_in_fen: int = 0  # cash paid for orders
    sp_spent_fen: int = 0  # SP paid to merchants (goods received for SP)


@dataclass
class DayMetrics:
    day: int
    price: float
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
    sp_outstanding_fen: int
    sp_backing_fen: int  # treasury EP at the price
    mint_funding_fen: int
    platform_flow_fen: int  # margin − contributions − dividends − goods cost − mint funding
    platform_result_fen: int  # cumulative


@dataclass
class RunResult:
    days: list[DayMetrics]
    agents: list[Agent]
    engine: Engine
    orders_total: int = 0
    commands_total: int = 0


TRACKED = ("sales", "contributions", "dividends_paid", "exits", "mint_funding")


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
        self.random = generator
        self.agents: list[Agent] = []
        self.acting: list[Agent] = []  # every agent but those who only hold
        self.sp_sales_today_fen = 0
        self.merchants = [f"m{index}" for index in range(scenario.merchants.count)]
        self.prices: list[float] = []
        self.orders = 0
        self.commands = 0
        self.cash_out_before = 0
        self.result_fen = 0
        self.cumulative = dict.fromkeys(TRACKED, 0)
        shares = np.array(scenario.behaviours.shares())
        self.behaviour_cdf = np.cumsum(shares / shares.sum())

    def apply(self, command: dict[str, object]) -> bool:
        self.commands += 1
        return self.engine.try_apply(command) is None

    def run(self, on_day: Callable[[int], None] | None) -> RunResult:
        for merchant in self.merchants:
            self.apply({"op": "register_merchant", "merchant": merchant})
        days = []
        for day in range(self.scenario.days):
            days.append(self.day(day))
            if on_day is not None:
                on_day(1)
        return RunResult(days, self.agents, self.engine, self.orders, self.commands)

    def day(self, day: int) -> DayMetrics:
        scenario = self.scenario
        goods_before = self._goods_value()
        self._arrivals(day)
        self._orders(day)
        self._behaviours(day)
        for event in scenario.events:
            if event.day == day:
                self._sell_event(event.share)
        self._merchants_redeem()
        self.apply({"op": "settle_day"})
        return self._metrics(day, goods_before)

    # -- the day's steps --------------------------------------------------------------------

    def _arrivals(self, day: int) -> None:
        arrivals = self.scenario.arrivals
        expected = arrivals.expected(day)
        count = round(expected) if arrivals.kind == "fixed" else int(self.random.poisson(expected))
        referred = self.random.random(count) < self.scenario.referral_probability
        kinds = np.searchsorted(self.behaviour_cdf, self.random.random(count), side="right")
        for index in range(count):
            agent = Agent(f"c{len(self.agents)}", int(min(kinds[index], 4)), day)
            command: dict[str, object] = {"op": "register", "user": agent.id}
            if referred[index] and self.agents:
                command["referrer"] = self.agents[int(self.random.integers(len(self.agents)))].id
            if self.apply(command):
                self.agents.append(agent)
                if agent.behaviour != HOLD:
                    self.acting.append(agent)
                if self.scenario.orders.on_arrival:
                    self._order(agent, int(self._order_values(1)[0]))

    def _orders(self, day: int) -> None:
        agents = self.agents
        if not agents:
            return
        rate = self.scenario.orders.per_consumer_per_day * self.scenario.arrivals.activity(day)
        count = int(self.random.poisson(rate * len(agents)))
        buyers = self.random.integers(len(agents), size=count)
        values = self._order_values(count)
        for buyer_index, value_fen in zip(buyers.tolist(), values.tolist(), strict=True):
            self._order(agents[buyer_index], value_fen)

    def _order(self, agent: Agent, value_fen: int) -> None:
        """A cash order, or an SP one at a merchant for those who spend SP and have enough."""
        amount = f"{value_fen // 100}.{value_fen % 100:02d}"
        order: dict[str, object] = {
            "op": "order",
            "id": f"o{self.orders}",
            "user": agent.id,
            "amount": amount,
        }
        self.orders += 1
        pays_sp = (
            agent.behaviour == CONVERT_AND_SPEND
            and self.scenario.merchants.accept_sp
            and self.merchants
            and self.engine.consumers[agent.id].sp >= value_fen
        )
        if pays_sp:
            order["pay"] = "stable"
            order["merchant"] = self.merchants[self.orders % len(self.merchants)]
            if self.apply(order):
                agent.sp_spent_fen += value_fen
                self.sp_sales_today_fen += value_fen
        elif self.apply(order):
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
        consumers = engine.consumers
        for agent in self.acting:
            consumer = consumers[agent.id]
            if consumer.ep <= 0:
                continue
            kind = agent.behaviour
            if kind == SELL_AT_MULTIPLE:
                value_fen = consumer.ep * self.prices[-1] * FEN_PER_CNY / UNITS_PER_EP
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

    def _merchants_redeem(self) -> None:
        for merchant_id in self.merchants:
            sp_fen = self.engine.merchants[merchant_id].sp
            if sp_fen > 0:
                amount = f"{sp_fen // 100}.{sp_fen % 100:02d}"
                self.apply({"op": "merchant_redeem", "merchant": merchant_id, "amount": amount})

    # -- metrics ----------------------------------------------------------------------------

    def _goods_value(self) -> int:
        total: int = sum(map(GOODS, self.engine.consumers.values()))
        return total

    def _metrics(self, day: int, goods_before: int) -> DayMetrics:
        engine, platform = self.engine, self.scenario.platform
        today = {name: getattr(engine, name) - self.cumulative[name] for name in TRACKED}
        self.cumulative = {name: getattr(engine, name) for name in TRACKED}
        goods_fen = self._goods_value() - goods_before
        cash_out = _cash_out(engine)
        cash_out_today, self.cash_out_before = cash_out - self.cash_out_before, cash_out
        margin_fen = int(today["sales"] * platform.gross_margin)
        goods_cost_fen = int(goods_fen * platform.goods_cost)
        flow = (
            margin_fen
            - today["contributions"]
            - today["dividends_paid"]
            - goods_cost_fen
            - today["mint_funding"]
        )
        self.result_fen += flow
        sp_sales_fen, self.sp_sales_today_fen = self.sp_sales_today_fen, 0
        pool_fen, supply_units = engine.price()
        return DayMetrics(
            day=day,
            price=_price(engine),
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
            sp_backing_fen=engine.treasury * pool_fen // supply_units,
            mint_funding_fen=today["mint_funding"],
            platform_flow_fen=flow,
            platform_result_fen=self.result_fen,
        )


def _price(engine: Engine) -> float:
    pool_fen, supply_units = engine.price()
    return pool_fen * UNITS_PER_EP / (supply_units * FEN_PER_CNY)


def _cash_out(engine: Engine) -> int:
    consumers: int = sum(map(CASH_OUT, engine.consumers.values()))
    merchants: int = sum(map(CASH_OUT, engine.merchants.values()))
    return consumers + merchants
