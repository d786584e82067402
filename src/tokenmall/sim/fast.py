"""The order-only fast path of `tokenmall simulate`, and the simulator's measure of work.

**Which scenarios.** `why_not_fast(scenario)` is None exactly when every run of the scenario is
a stream of cash orders and nothing else changes the economy:

- no dividends (`dividend_rate` and `level_dividend_rate` are 0): a settlement pays nothing,
  and nothing ever holds SP, so no SP order, no merchant redemption, no mint funding;
- no forced exits (`exit_enabled = false`): EP leave nobody's hands;
- no referrals (`[referrals] probability = 0`): no referrer, so no referrer's EP;
- every consumer holds (`[behaviours] hold = 1`): no sell, convert or redemption; nobody
  leaves on a stalled price (`leave_on_stall = 0`) and nobody spends SP at a merchant
  (`spend_sp = 0`, or no merchant takes SP): the model draws those even when nobody could;
- no `[[events]]`;
- `buyer_share > 0` (with 0 no EP are ever granted and the price never moves from the
  initial one, which the product below would not give);
- every daily metric the exact model reports is one this module computes, and every setting
  of the scenario one it knows (a metric added to `model.DayMetrics`, or a setting added to
  the scenario, and not here sends the scenario to the exact engine, not to wrong output).

Arrivals, order rates and value distributions may be any. Such a run is the seeds' recurrence:
with contributions a_1..a_n (fen) and A_n their running sum, order n adds a_n to the pool and
k·a_n / p_{n-1} EP to the supply (k = buyer_share), so

    p_n = p_{n-1} · A_n / (A_{n-1} + k·a_n)

a cumulative product, computed in float64 by NumPy. Everything else a row or a summary holds is
either exact integers here too (pool, sales, contributions, the operator's cash: sums of
integer fen) or zero.

**Same draws, same runs.** The orders are drawn from the run's generator with exactly the calls
`model.run` makes, in the same order (checked in tests/test_sim_fast.py), so a run here is the
same run as in the exact engine, consumer by consumer and order by order.

**How close.** The engine floors each grant to 1e-8 EP, which puts its supply at most one unit
per order below the float supply. A floor of f < 1 unit at order n moves every later price by
a factor 1 + f/S_n (S_n the supply in units), so the float prices are within Σ 1/S_n of the
exact ones. Each run computes that bound and runs through the exact engine instead when it
exceeds `ERROR_BOUND_MAX`, a tenth of `FAST_PATH_RELATIVE_TOLERANCE`, the tolerance the tests
hold the two paths to (the rest is float64 rounding, about 1e-16 per order). A run also goes to
the exact engine when its amounts would not stay exact in int64 and float64 (2**53 fen), or its
EP could reach `total_issuance` (the engine then caps grants).

**Work.** A day of the exact model costs about one unit per order, per consumer (behaviours,
settlement) and a fixed part: `day_work` weighs each day so, from the scenario's expected
population, so that a progress bar fills at the pace of the work, not of the days (the last
day of a growing population costs hundreds of times the first).
"""

import csv
import functools
import json
import os
import queue
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tokenmall.core.units import FEN_PER_CNY, UNITS_PER_EP
from tokenmall.sim import csvtext, forked
from tokenmall.sim.scenario import Arrivals, Scenario

if TYPE_CHECKING:
    from concurrent.futures import Future
    from multiprocessing.queues import Queue

    from tokenmall.sim.report import Daily
    from tokenmall.sim.runner import Job

Rows = list[dict[str, Any]]
Result = tuple[dict[str, str], int, Rows, dict[str, Any]]  # what runner.run_job gives
Progress = Callable[[int], None]
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

FAST_PATH_RELATIVE_TOLERANCE = 1e-6  # prices, supply, EP values: fast against exact (tested)
ERROR_BOUND_MAX = FAST_PATH_RELATIVE_TOLERANCE / 10
EXACT_FLOAT_FEN = 2**53  # sums of fen up to this are exact in float64
INT64_SAFE = 2**62
WEEK_DAYS = 7  # as model.WEEK_DAYS: cohorts by entry week

# The daily metrics this module computes (model.DayMetrics' fields). Any other field of
# DayMetrics is a metric of the exact model only: its scenarios are not fast-path scenarios.
COMPUTED = frozenset(
    {
        "day",
        "price",
        "pool_fen",
        "supply_units",
        "consumers",
        "orders",
        "sales_fen",
        "sp_sales_fen",
        "contributions_fen",
        "dividends_fen",
        "exits",
        "cash_out_fen",
        "goods_fen",
        "sp_outstanding_fen",
        "sp_backing_fen",
        "mint_funding_fen",
        "agent_commissions_fen",
        "withdrawn_fen",
        "cash_flow_fen",
        "operator_cash_fen",
        "cash_owed_fen",
        "ep_held_fen",
        "platform_flow_fen",
        "platform_result_fen",
    }
)


# The scenario's settings this module knows, by table. A setting added to the scenario and not
# here may draw from the generator or act on the economy: its scenarios go to the exact engine.
KNOWN_SETTINGS = {
    "Scenario": {
        "name",
        "days",
        "params",
        "description",
        "arrivals",
        "orders",
        "referral_probability",
        "behaviours",
        "merchants",
        "platform",
        "events",
        "params_overrides",
        "source_sha256",  # for the record
        "document",  # what it was read from, for sweeps of its fields: they make a new Scenario
        "agents",
        "withdrawals",
        "collectibles",
    },
    "Agents": {"districts"},
    "Collectibles": {"edition", "value", "chance", "cost"},
    # Withdrawals draw nothing while nobody is owed cash, as in an order-only run.
    "Withdrawals": {"chance", "delay_days"},
    "Arrivals": {
        "kind",
        "rate",
        "start",
        "peak",
        "midpoint_day",
        "steepness",
        "collapse_day",
        "collapse_factor",
    },
    "Orders": {"on_arrival", "per_consumer_per_day", "value"},
    "OrderValues": {"distribution", "value", "low", "high", "median", "sigma"},
    "Behaviours": {
        "hold",
        "sell_at_multiple",
        "sell_on_stall",
        "convert_and_spend",
        "redeem_goods",
        "target_multiple",
        "stall_days",
        "stall_rise",
        "spend_sp",
        "leave_on_stall",
        "leave_when_losing",
    },
    "Merchants": {"count", "accept_sp", "sell_share"},
    "Platform": {"gross_margin", "goods_cost"},
}


def why_not_fast(scenario: Scenario) -> str | None:
    """None when the fast path computes `scenario`; otherwise the first reason it does not, in
    words (the CLI prints it)."""
    from tokenmall.sim.model import DayMetrics  # noqa: PLC0415 (the engine loads with it)

    params, behaviours, merchants = scenario.params, scenario.behaviours, scenario.merchants
    tables = (
        scenario,
        scenario.arrivals,
        scenario.orders,
        scenario.orders.value,
        behaviours,
        merchants,
        scenario.platform,
        scenario.agents,
        scenario.withdrawals,
        scenario.collectibles,
    )
    unknown = sorted(
        f"{type(table).__name__}.{f.name}"
        for table in tables
        for f in fields(table)
        if f.name not in KNOWN_SETTINGS.get(type(table).__name__, set())
    )
    missing = sorted({f.name for f in fields(DayMetrics)} - COMPUTED)
    takes_sp = merchants.accept_sp and merchants.count > 0
    reasons = (
        (params.dividend_rate != 0 or params.level_dividend_rate != 0, "it pays dividends"),
        (params.exit_enabled, "forced exits are enabled"),
        (scenario.referral_probability != 0, "consumers are referred"),
        (behaviours.hold != 1, "some consumers do more than hold"),
        # the model draws who leaves on a stalled price, and who spends SP, even when
        # nobody holds any: other draws than the fast path's
        (getattr(behaviours, "leave_on_stall", 0) != 0, "consumers leave when the price stalls"),
        (getattr(behaviours, "spend_sp", 0) != 0 and takes_sp, "consumers spend SP at merchants"),
        (bool(scenario.events), "it has one-off events"),
        (scenario.agents.districts > 0, "regional agents earn commissions"),
        (behaviours.leave_when_losing != 0, "consumers leave when they lose"),
        (scenario.collectibles.chance != 0, "consumers claim collectibles"),
        (params.buyer_share == 0, "buyers get no EP (buyer_share = 0)"),
        (bool(unknown), f"the fast path does not know the setting {', '.join(unknown)}"),
        (bool(missing), f"the fast path does not compute {', '.join(missing)}"),
    )
    for applies, reason in reasons:
        if applies:
            return reason
    return None


# -- the orders of a run, drawn as model.run draws them ----------------------------------------


@dataclass
class Orders:
    values_fen: Ints  # every order's value, in the order placed
    buyers: Ints  # the index of each order's buyer among the run's consumers
    per_day: Ints  # orders placed each day
    arrivals: Ints  # consumers arriving each day


def draw_orders(scenario: Scenario, generator: np.random.Generator) -> Orders:
    """The run's orders, from the same calls on `generator` as `model.run` makes for an
    order-only scenario: per day the arrivals (a Poisson draw unless fixed), two uniform draws
    per arrival (referred? behaviour?), the on-arrival orders' values, then the day's orders
    (a Poisson count, buyers, values). Drawing n values at once consumes the generator as n
    draws of one (NumPy's Generator keeps no cached normal), so a day's values are one call."""
    arrivals, orders = scenario.arrivals, scenario.orders
    if arrivals.kind == "fixed" and orders.per_consumer_per_day == 0:
        return _draw_arrival_orders(scenario, generator)
    value_parts: list[Ints] = []
    buyer_parts: list[Ints] = []
    per_day = np.zeros(scenario.days, dtype=np.int64)
    arrived = np.zeros(scenario.days, dtype=np.int64)
    consumers = 0
    for day in range(scenario.days):
        expected = arrivals.expected(day)
        count = round(expected) if arrivals.kind == "fixed" else int(generator.poisson(expected))
        generator.random(count)  # referred? (probability 0: nobody)
        generator.random(count)  # behaviour (hold = 1: everybody holds)
        arrived[day] = count
        if orders.on_arrival and count:
            value_parts.append(_values(scenario, generator, count))
            buyer_parts.append(np.arange(consumers, consumers + count, dtype=np.int64))
            per_day[day] += count
        consumers += count
        if not consumers:
            continue  # model._orders draws nothing before the first consumer
        rate = orders.per_consumer_per_day * arrivals.activity(day)
        placed = int(generator.poisson(rate * consumers))
        buyer_parts.append(generator.integers(consumers, size=placed).astype(np.int64))
        value_parts.append(_values(scenario, generator, placed))
        per_day[day] += placed
    empty = np.zeros(0, dtype=np.int64)
    return Orders(
        np.concatenate(value_parts) if value_parts else empty,
        np.concatenate(buyer_parts) if buyer_parts else empty,
        per_day,
        arrived,
    )


def _draw_arrival_orders(scenario: Scenario, generator: np.random.Generator) -> Orders:
    """Fixed arrivals and orders on arrival only: the draws are known in advance, so a whole
    run's are one call. A day of c arrivals draws 2c uniforms, then c values; the day's
    Poisson draw of rate 0, its integers(size=0) and its zero values draw nothing."""
    spec = scenario.orders.value
    counts = _fixed_arrivals(scenario.arrivals, scenario.days)
    total = int(counts.sum())
    on_arrival = scenario.orders.on_arrival
    if spec.distribution == "lognormal" and on_arrival:
        # a normal draw may take more than one uniform: draw day by day, in the model's order
        parts = []
        for count in counts.tolist():
            generator.random(2 * count)
            parts.append(_values(scenario, generator, count))
        values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    elif spec.distribution == "uniform" and on_arrival:
        uniforms = generator.random(3 * total)
        # arrival i of day d sits after the 2·(arrivals to the end of day d) flags before it
        through_day = np.repeat(np.cumsum(counts), counts)
        cny = spec.low + (spec.high - spec.low) * uniforms[np.arange(total) + 2 * through_day]
        values = _fen(cny)
    else:
        generator.random(2 * total)
        values = _fen(np.full(total if on_arrival else 0, spec.value))
    per_day = counts if on_arrival else np.zeros(scenario.days, dtype=np.int64)
    buyers = np.arange(values.size, dtype=np.int64)
    return Orders(values, buyers, per_day, counts)


@functools.lru_cache(maxsize=16)
def _fixed_arrivals(arrivals: Arrivals, days: int) -> Ints:
    """Each day's arrivals when they are fixed: the same for every run (computed once)."""
    counts = np.array([round(arrivals.expected(day)) for day in range(days)], dtype=np.int64)
    counts.flags.writeable = False  # shared by every run
    return counts


def _values(scenario: Scenario, generator: np.random.Generator, count: int) -> Ints:
    """model._Run._order_values, call for call."""
    spec = scenario.orders.value
    if spec.distribution == "fixed":
        cny = np.full(count, spec.value)
    elif spec.distribution == "uniform":
        cny = generator.uniform(spec.low, spec.high, count)
    else:
        cny = generator.lognormal(np.log(spec.median), spec.sigma, count)
    return _fen(cny)


def _fen(cny: Floats) -> Ints:
    fen: Ints = np.maximum(np.rint(cny * FEN_PER_CNY), 1).astype(np.int64)
    return fen


# -- prices ------------------------------------------------------------------------------------


def contributions_fen(values_fen: Ints, contribution_rate: Any) -> Ints:
    """What each order puts into the pool: floor(value × contribution_rate), as the engine."""
    contributions: Ints = (
        values_fen * contribution_rate.numerator
    ) // contribution_rate.denominator
    return contributions


def fast_prices(
    contributions: Ints, buyer_share: float, initial_price: float
) -> tuple[Floats, Floats]:
    """The price (CNY per EP) after each order and the supply (units) after it, for one run
    (1-D) or many (2-D: runs × orders), in float64. An order that adds nothing to the pool
    changes nothing (a zero factor 0/0 before the first contribution is taken as 1)."""
    added = contributions.astype(np.float64)
    after = np.cumsum(added, axis=-1)
    before = after - added
    denominator = before + buyer_share * added
    with np.errstate(invalid="ignore", divide="ignore"):
        factors = np.where(denominator > 0, after / denominator, 1.0)
    prices = np.cumprod(factors, axis=-1, dtype=np.float64)
    prices *= initial_price
    supply_units = after * (UNITS_PER_EP / FEN_PER_CNY) / prices
    return prices, supply_units


# -- one run -----------------------------------------------------------------------------------


class NotFast(Exception):  # not an error: the run goes to the exact engine
    """This run's figures would not be within the tolerance: run it exactly."""


def fast_run(job: "Job") -> "tuple[dict[str, str], int, Table, dict[str, Any]]":
    """One run of an order-only scenario: what `runner.run_job` gives, its rows as a `Table`;
    NotFast when the run must go to the exact engine instead."""
    scenario = job.scenario
    params = scenario.params
    drawn = draw_orders(scenario, np.random.default_rng(job.seed))
    values = drawn.values_fen
    rate = params.contribution_rate
    if values.size and (
        int(values.max()) * max(rate.numerator, 1) >= INT64_SAFE
        or int(values.sum(dtype=np.float64)) >= EXACT_FLOAT_FEN
    ):
        raise NotFast("amounts beyond int64 or float64 exactness")
    contributions = contributions_fen(values, rate)
    prices, supply = fast_prices(
        contributions, float(params.buyer_share), float(params.initial_price)
    )
    granted = contributions > 0
    if granted.any():
        with np.errstate(divide="ignore"):
            bound = float(np.sum(1.0 / supply[granted]))
        if not bound <= ERROR_BOUND_MAX:
            raise NotFast(f"the floor of grants could move prices by {bound:.1e}")
        if float(supply[-1]) + values.size >= params.total_issuance_units:
            raise NotFast("EP could reach total_issuance")
    columns = _columns(scenario, drawn, contributions, prices)
    return (
        job.point,
        job.run,
        _table(job, columns),
        _summary(scenario, drawn, contributions, prices, columns),
    )


def _day_ends(drawn: Orders) -> Ints:
    """The index of each day's last order so far (-1 before the first)."""
    ends: Ints = np.cumsum(drawn.per_day) - 1
    return ends


def _columns(
    scenario: Scenario, drawn: Orders, contributions: Ints, prices: Floats
) -> dict[str, Any]:
    """Every DayMetrics field, one value per day, as model._Run._metrics computes it."""
    from tokenmall.sim.model import PRICE_SCALE  # noqa: PLC0415

    days = scenario.days
    ends = _day_ends(drawn)
    pool_after = np.cumsum(contributions)
    started = ends >= 0
    last = np.maximum(ends, 0)
    pool_fen = np.where(started, pool_after[last] if pool_after.size else 0, 0)
    # supply stays 0 until a contribution grants EP; the price is the initial one until then
    has_supply = pool_fen > 0
    price = np.where(has_supply, prices[last] if prices.size else 0.0, 0.0)
    price[~has_supply] = float(scenario.params.initial_price)
    with np.errstate(invalid="ignore", divide="ignore"):
        supply_units = np.where(has_supply, pool_fen * (UNITS_PER_EP / FEN_PER_CNY) / price, 0.0)
    day_of_order = np.repeat(np.arange(days), drawn.per_day)
    sales_fen = np.bincount(day_of_order, weights=drawn.values_fen, minlength=days)
    sales_fen = sales_fen.astype(np.int64)  # exact: sums below 2**53 (checked)
    contributed = np.bincount(day_of_order, weights=contributions, minlength=days)
    contributed = contributed.astype(np.int64)
    margin_fen = (sales_fen.astype(np.float64) * scenario.platform.gross_margin).astype(np.int64)
    cash_flow = margin_fen - contributed
    operator_cash = np.cumsum(cash_flow)
    zeros = np.zeros(days, dtype=np.int64)
    return {
        "day": np.arange(days),
        # as the rules engine's runs show them: the price to PRICE_DECIMALS places (half-up),
        # the supply in whole units (the engine floors each grant)
        "price": np.floor(price * PRICE_SCALE + 0.5).astype(np.int64),
        "pool_fen": pool_fen,
        "supply_units": np.floor(supply_units).astype(np.int64),
        "consumers": np.cumsum(drawn.arrivals),
        "orders": np.cumsum(drawn.per_day),
        "sales_fen": sales_fen,
        "sp_sales_fen": zeros,
        "contributions_fen": contributed,
        "dividends_fen": zeros,
        "exits": zeros,
        "cash_out_fen": zeros,
        "goods_fen": zeros,
        "sp_outstanding_fen": zeros,
        "sp_backing_fen": zeros,  # no treasury EP: nobody converts or redeems
        "mint_funding_fen": zeros,
        "agent_commissions_fen": zeros,  # no regional agents
        "withdrawn_fen": zeros,  # nobody is owed cash, so nobody withdraws
        "cash_flow_fen": cash_flow,
        "operator_cash_fen": operator_cash,
        "cash_owed_fen": zeros,
        "ep_held_fen": pool_fen,  # all EP are consumers': (supply − 0) × pool ÷ supply
        # the position is the cash alone (no SP owed, no treasury): its change is the cash flow
        "platform_flow_fen": cash_flow,
        "platform_result_fen": operator_cash,
    }


class Table:
    """A run's daily rows as columns (`names`, and the values of each as a csvtext column, in
    metrics.csv's units): what metrics.daily_rows gives, without a Python value per cell unless
    asked (`rows`)."""

    def __init__(self, names: list[str], columns: list[csvtext.Column]) -> None:
        self.names = names
        self.columns = columns

    def __len__(self) -> int:
        return csvtext.rows_of(self.columns[0]) if self.columns else 0

    def rows(self) -> Rows:
        made: dict[int, list[Any]] = {}  # by the column's id: some columns are one object
        values = [
            made.setdefault(id(column), csvtext.python_values(column)) for column in self.columns
        ]
        return [dict(zip(self.names, row, strict=True)) for row in zip(*values, strict=True)]


def _table(job: "Job", columns: dict[str, Any]) -> Table:
    """metrics.daily_rows' columns, in its order, in its units."""
    days = job.scenario.days
    names: list[str] = ["run", "day", *job.point]
    once = np.zeros(days, dtype=np.int64)  # each row has the run's one label
    values: list[csvtext.Column] = [
        csvtext.Integers(np.full(days, job.run, dtype=np.int64)),
        csvtext.Integers(columns["day"]),
    ]
    values += [csvtext.Labels(once, [value]) for value in job.point.values()]
    # Metrics that are the same array converted the same way share one column (written once)
    converted: dict[tuple[int, int], csvtext.Column] = {}
    for name, row_name, scale in _metric_columns():
        column = columns[name]
        key = (id(column), scale)
        if key not in converted:
            # DictWriter gets round(fen / 100, 2) for an amount, which is fen / 100
            converted[key] = (
                csvtext.Quotients(column, scale) if scale != 1 else csvtext.Integers(column)
            )
        names.append(row_name)
        values.append(converted[key])
    return Table(names, values)


@functools.cache
def _metric_columns() -> tuple[tuple[str, str, int], ...]:
    """Each DayMetrics field after the day: its name, its metrics.csv column, and what its
    value is divided by there (1: written as it is)."""
    from tokenmall.sim.metrics import FEN_FIELDS, row_name  # noqa: PLC0415
    from tokenmall.sim.model import PRICE_SCALE, DayMetrics  # noqa: PLC0415

    scales: dict[str, int] = dict.fromkeys(FEN_FIELDS, FEN_PER_CNY)
    scales |= {"supply_units": UNITS_PER_EP, "price": PRICE_SCALE}
    return tuple(
        (field.name, row_name(field.name), scales.get(field.name, 1))
        for field in fields(DayMetrics)
        if field.name != "day"
    )


def _summary(
    scenario: Scenario,
    drawn: Orders,
    contributions: Ints,
    prices: Floats,
    columns: dict[str, Any],
) -> dict[str, Any]:
    """metrics.run_summary's figures for this run."""
    from tokenmall.sim.metrics import gini, sales_drop_of  # noqa: PLC0415
    from tokenmall.sim.model import PRICE_SCALE  # noqa: PLC0415

    params = scenario.params
    consumers = int(drawn.arrivals.sum())
    buyers = drawn.buyers
    money_in = np.bincount(buyers, weights=drawn.values_fen, minlength=consumers).astype(np.float64)
    # EP granted to each buyer: k·a_n / p_{n-1}, in units
    price_before = np.concatenate(([float(params.initial_price)], prices[:-1]))
    grants = float(params.buyer_share) * contributions * (UNITS_PER_EP / FEN_PER_CNY)
    ep_units = np.bincount(buyers, weights=grants / price_before, minlength=consumers)
    keep = float(1 - params.sell_fee_rate)
    final_price = float(prices[-1]) if prices.size else float(params.initial_price)
    # what selling them now would pay: floor(units × P × keep), P in fen per unit
    ep_value = np.floor(ep_units * (final_price * FEN_PER_CNY / UNITS_PER_EP) * keep)
    joined = np.repeat(np.arange(scenario.days), drawn.arrivals) // WEEK_DAYS
    paying = money_in > 0
    paying_count = int(paying.sum())
    result_fen = columns["platform_result_fen"]
    below = result_fen < 0
    # the first day from which the result stays below zero to the end
    above = np.flatnonzero(~below)
    loss_from = None if not below[-1] else (int(above[-1]) + 1 if above.size else 0)
    sales = columns["sales_fen"]
    return {
        "final_price": int(columns["price"][-1]) / PRICE_SCALE,  # as the day's row shows it
        "platform_result": int(result_fen[-1]) / FEN_PER_CNY,
        "operator_cash": int(columns["operator_cash_fen"][-1]) / FEN_PER_CNY,
        "sp_owed": 0.0,
        "treasury_value": 0.0,
        "cash_owed": 0.0,
        "ep_held": int(columns["ep_held_fen"][-1]) / FEN_PER_CNY,
        "loss_from_day": loss_from,
        "paying_consumers": paying_count,
        "share_in_profit": (
            int((ep_value[paying] > money_in[paying]).sum()) / paying_count if paying_count else 0.0
        ),
        "share_losing": (
            int((ep_value[paying] < money_in[paying]).sum()) / paying_count if paying_count else 0.0
        ),
        "gini": gini((ep_value[paying] / FEN_PER_CNY).tolist()),
        "dividends": 0.0,
        "cash_out": 0.0,
        "sales_drop": sales_drop_of(sales),
        "event_price_changes": [],
        "cohorts": _cohorts(joined, money_in, ep_value),
        # made when read (by --tables and the Python API only): 100,000 consumers' rows took
        # a tenth of a one-run simulate
        "consumer_rows": ConsumerColumns(
            functools.partial(_consumer_rows, drawn.arrivals, money_in, ep_value)
        ),
        "orders": int(drawn.values_fen.size),
        # the model's commands: merchants registered, consumers registered, orders, settlements
        "commands": scenario.merchants.count
        + consumers
        + int(drawn.values_fen.size)
        + scenario.days,
    }


class ConsumerColumns(Mapping[str, list[Any]]):
    """metrics.consumer_columns of a run, made by `make` when first read."""

    def __init__(self, make: Callable[[], dict[str, list[Any]]]) -> None:
        self._make: Callable[[], dict[str, list[Any]]] | None = make
        self._columns: dict[str, list[Any]] = {}

    def _made(self) -> dict[str, list[Any]]:
        if self._make is not None:
            self._columns, self._make = self._make(), None  # what it held can go
        return self._columns

    def __getitem__(self, name: str) -> list[Any]:
        return self._made()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._made())

    def __len__(self) -> int:
        return len(self._made())


def _consumer_rows(arrivals: Ints, money_in: Floats, ep_value: Floats) -> dict[str, list[Any]]:
    """metrics.consumer_columns of consumers who only hold, live nowhere and never leave."""
    from tokenmall.sim.metrics import CONSUMER_COLUMNS  # noqa: PLC0415

    consumers = money_in.size
    nothing = [0] * consumers
    values = (
        list(_consumer_ids(consumers)),  # consumer
        np.repeat(np.arange(arrivals.size), arrivals).tolist(),  # joined_day
        ["hold"] * consumers,  # behaviour
        [""] * consumers,  # region
        [False] * consumers,  # left
        money_in.astype(np.int64).tolist(),  # money_in_fen
        nothing,  # cash_out_fen
        nothing,  # sp_fen
        nothing,  # goods_fen
        ep_value.astype(np.int64).tolist(),  # ep_value_fen
    )
    return dict(zip(CONSUMER_COLUMNS, values, strict=True))


@functools.lru_cache(maxsize=4)
def _consumer_ids(count: int) -> tuple[str, ...]:
    """The model's ids of the first `count` consumers (the runs of a scenario share them)."""
    return tuple(f"c{index}" for index in range(count))


def _cohorts(weeks: Ints, money_in: Floats, ep_value: Floats) -> list[dict[str, Any]]:
    """metrics.cohorts of consumers who only hold: no cash out, SP or goods."""
    out: list[dict[str, Any]] = []
    if not weeks.size:
        return out
    count = int(weeks.max()) + 1
    members = np.bincount(weeks, minlength=count)
    paid = np.bincount(weeks, weights=money_in, minlength=count)
    held = np.bincount(weeks, weights=ep_value, minlength=count)
    paying = money_in > 0
    payers = np.bincount(weeks[paying], minlength=count)
    profit = np.bincount(weeks[paying & (ep_value > money_in)], minlength=count)
    weeks_held = np.flatnonzero(members)
    paid_fen = paid[weeks_held].astype(np.int64).tolist()  # sums of integer fen: exact
    held_fen = held[weeks_held].astype(np.int64).tolist()
    for week, count, money_fen, ep_fen, payer_count, in_profit in zip(
        weeks_held.tolist(),
        members[weeks_held].tolist(),
        paid_fen,
        held_fen,
        payers[weeks_held].tolist(),
        profit[weeks_held].tolist(),
        strict=True,
    ):
        out.append(
            {
                "week": week,
                "consumers": count,
                "money_in": money_fen / FEN_PER_CNY,
                "cash_out": 0.0,
                "sp": 0.0,
                "goods": 0.0,
                "ep_value": ep_fen / FEN_PER_CNY,
                "roi": ep_fen / money_fen if money_fen else 0.0,
                "in_profit": in_profit / payer_count if payer_count else 0.0,
            }
        )
    return out


def execute_fast(
    all_jobs: list["Job"], progress: Progress, exact_runs: list[int]
) -> "Iterator[tuple[dict[str, str], int, Table | Rows, dict[str, Any]]]":
    """Every job through the fast path, here, one after the other (a run takes milliseconds:
    worker processes would cost more to start than they save); a run the fast path cannot
    hold to the tolerance goes through the exact engine, and its index into `all_jobs` is
    appended to `exact_runs`."""
    from tokenmall.sim.runner import run_job  # noqa: PLC0415

    work = sum(day_work(all_jobs[0].scenario)) if all_jobs else 0
    for index, job in enumerate(all_jobs):
        result: tuple[dict[str, str], int, Table | Rows, dict[str, Any]]
        try:
            result = fast_run(job)
        except NotFast:
            exact_runs.append(index)
            result = run_job(job)
        progress(work)
        yield result


def write_outputs(
    out: Path,
    summary: dict[str, Any],
    runs: list[tuple[dict[str, str], int, Table | Rows]],
    report: Callable[[Path, dict[str, Any], "Daily"], None] | None,
) -> None:
    """runner.write_outputs for the fast path's runs, byte for byte (tested): metrics.csv in
    the same order (sweep values, run, day), summary.json the same; report.html only if a
    `report` is given, from the rows column by column."""
    names = summary["sweep_params"]
    tables = [rows for _point, _run, rows in runs if isinstance(rows, Table)]
    if len(tables) < len(runs) or any(set(point) != set(names) for point, _r, _t in runs):
        # A run the fast path handed to the rules engine has dict rows, and a sensitivity's
        # points name only the setting each changes (rows of unequal columns): as dicts.
        from tokenmall.sim.runner import write_outputs as write_rows  # noqa: PLC0415

        every = [rows.rows() if isinstance(rows, Table) else rows for _p, _r, rows in runs]
        write_rows(out, summary, [row for rows in every for row in rows], report)
        return
    out.mkdir(parents=True, exist_ok=True)
    ordered = sorted(runs, key=lambda run: (tuple(run[0].get(n, "") for n in names), run[1]))
    header, columns = _joined([rows for _p, _r, rows in ordered if isinstance(rows, Table)])

    def write_metrics() -> None:
        with (out / "metrics.csv").open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(header or ["run", "day"])
            csvtext.write_csv(handle, columns)
        (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")

    if report is None:
        write_metrics()
        return

    def write_html() -> None:
        made: dict[int, Any] = {}  # by the column's id: some columns are one object
        daily = {
            name: made.setdefault(id(column), csvtext.numbers(column))
            for name, column in zip(header, columns, strict=True)
        }
        report(out / "report.html", summary, daily)

    # the two files at once (each takes about as long as the runs): the report in a child
    forked.both(write_metrics, write_html)


def _joined(tables: list[Table]) -> tuple[list[str], list[csvtext.Column]]:
    """Every run's table, one after the other, as one: its names and columns (columns that are
    one object in every run stay one)."""
    if not tables:
        return [], []
    joined: dict[tuple[int, ...], csvtext.Column] = {}
    columns = []
    for index in range(len(tables[0].columns)):
        parts = [table.columns[index] for table in tables]
        key = tuple(map(id, parts))
        if key not in joined:
            joined[key] = csvtext.concatenated(parts)
        columns.append(joined[key])
    return tables[0].names, columns


# -- work, for progress bars -------------------------------------------------------------------

DAY_FIXED_WORK = 20  # a day's settlement and metrics, in orders' worth of work (about)


def day_work(scenario: Scenario) -> list[int]:
    """Each day's expected work in the exact model, in orders' worth: its expected orders,
    its consumers (every settlement and every day's behaviours walk them) and a fixed part."""
    arrivals, orders = scenario.arrivals, scenario.orders
    out = []
    consumers = 0.0
    for day in range(scenario.days):
        arrived = arrivals.expected(day)
        consumers += arrived
        placed = orders.per_consumer_per_day * arrivals.activity(day) * consumers
        placed += arrived if orders.on_arrival else 0.0
        out.append(DAY_FIXED_WORK + round(placed + consumers))
    return out


def work_total(all_jobs: list["Job"]) -> int:
    """The work of every job (sweep points change parameters, not the population)."""
    return sum(day_work(all_jobs[0].scenario)) * len(all_jobs) if all_jobs else 0


# Below this much work (about 0.5-1 s of the rules engine at 5-8 µs a unit, measured) the
# runs are made here: two spawned workers take about 0.5 s each to start and import the model.
POOL_WORK_MIN = 100_000


def runs_here(all_jobs: list["Job"], workers: int | None) -> bool:
    """Whether runner.execute makes the exact runs in this process: when asked (--workers 1),
    for a single run, or, when --workers is not given, for less work than POOL_WORK_MIN."""
    if workers == 1 or len(all_jobs) == 1:
        return True
    return workers is None and work_total(all_jobs) < POOL_WORK_MIN


def on_day_work(scenario: Scenario, progress: Progress | None) -> Callable[[int], None] | None:
    """A model.run day callback that reports each day's work rather than 1."""
    if progress is None:
        return None
    weights = iter(day_work(scenario))

    def on_day(days: int) -> None:
        progress(sum(next(weights, 0) for _ in range(days)))

    return on_day


def whole_runs(scenario: Scenario, progress: Progress) -> Progress:
    """Turns "these many days done" (a whole run's, from Dask) into their work."""
    run_work, days = sum(day_work(scenario)), scenario.days

    def done(run_days: int) -> None:
        progress(run_work * run_days // days)

    return done


# -- a process pool reporting its runs' progress day by day ----------------------------------

REPORT_EVERY_S = 0.25  # a worker tells the parent its progress this often at most
_reports: "Queue[tuple[int, int]] | None" = None  # in a worker: where to report


def _start_worker(reports: "Queue[tuple[int, int]]") -> None:
    global _reports  # noqa: PLW0603 (one per worker process, set as it starts)
    _reports = reports


def _run_reporting(index: int, job: "Job") -> Result:
    """runner.run_job in a worker, its work reported to the parent as it goes."""
    from tokenmall.sim.runner import run_job  # noqa: PLC0415

    pending = [0, time.monotonic()]

    def on_day(work: int) -> None:
        pending[0] += work
        now = time.monotonic()
        if _reports is not None and now - pending[1] >= REPORT_EVERY_S:
            _reports.put((index, int(pending[0])))
            pending[0], pending[1] = 0, now

    return run_job(job, on_day)


def on_pool(all_jobs: list["Job"], workers: int | None, progress: Progress) -> Iterator[Result]:
    """Each job's result as it finishes, from a pool of `workers` processes (spawned: the
    parent may hold threads), with progress as the workers make it, not when runs end (a pool
    of two on two long runs showed 0 % until both ended)."""
    # imported here: most simulations run here, and these take a tenth of their start
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait  # noqa: PLC0415
    from multiprocessing import get_context  # noqa: PLC0415

    context = get_context("spawn")
    reports: Queue[tuple[int, int]] = context.Queue()
    run_work = sum(day_work(all_jobs[0].scenario))
    reported = [0] * len(all_jobs)
    with ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1,
        mp_context=context,
        initializer=_start_worker,
        initargs=(reports,),
    ) as pool:
        futures: dict[Future[Result], int] = {
            pool.submit(_run_reporting, index, job): index for index, job in enumerate(all_jobs)
        }
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=REPORT_EVERY_S, return_when=FIRST_COMPLETED)
            _drain(reports, reported, run_work, progress)
            for future in done:
                index = futures[future]
                yield future.result()
                progress(run_work - reported[index])
                reported[index] = run_work  # its later reports are ignored
    reports.close()


def _drain(
    reports: "Queue[tuple[int, int]]", reported: list[int], run_work: int, progress: Progress
) -> None:
    """Add the workers' reports so far, each run's up to its own work: a run's last reports
    and its result travel on different pipes, and the parent adds what is left when it ends."""
    while True:
        try:
            index, work = reports.get_nowait()
        except queue.Empty:
            return
        added = min(work, run_work - reported[index])
        if added > 0:
            reported[index] += added
            progress(added)
