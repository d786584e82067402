"""What a run tells the operator: daily rows for metrics.csv, cohorts by entry week, the Gini
coefficient of returns, and when the platform's cumulative result turns negative for good.

Money out of a consumer is what the points gave back: cash from sales and forced exits, SP
(balance and what was spent at merchants), goods from redeemed EP, and the EP still held as
what selling them now would pay (the last price less the sale fee, the rules' own formula:
held EP are not worth their displayed value to their holder). ROI = money out ÷ money in (the
cash paid for orders, which also bought goods at full price); a consumer is "in profit" when
ROI > 1. Shares of consumers are of the consumers who paid cash, person by person.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenmall.core.rules.points import sale_payout_fen
from tokenmall.core.units import FEN_PER_CNY, UNITS_PER_EP
from tokenmall.sim.model import WEEK_DAYS, DayMetrics, RunResult
from tokenmall.sim.scenario import Behaviours

FEN_FIELDS = (
    "sales_fen",
    "sp_sales_fen",
    "contributions_fen",
    "dividends_fen",
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
    "pool_fen",
)


def row_name(name: str) -> str:
    """metrics.csv's column of a DayMetrics field: amounts in CNY without their _fen suffix,
    supply_units as supply (EP)."""
    if name in FEN_FIELDS:
        return name.removesuffix("_fen")
    return "supply" if name == "supply_units" else name


def daily_rows(result: RunResult, run: int, point: dict[str, str]) -> list[dict[str, Any]]:
    """One CSV row per day: amounts in CNY (floats, rounded to the fen), EP as floats."""
    rows = []
    for day in result.days:
        row: dict[str, Any] = {"run": run, "day": day.day, **point}
        for name, value in asdict(day).items():
            if name == "day":
                continue
            if name in FEN_FIELDS:
                row[row_name(name)] = round(value / FEN_PER_CNY, 2)
            elif name == "supply_units":
                row[row_name(name)] = value / UNITS_PER_EP
            else:
                row[name] = value
        rows.append(row)
    return rows


def consumer_returns(result: RunResult) -> list[tuple[int, int, int, int, int, int]]:
    """Per consumer: (entry week, money in, cash out, SP, goods, EP value), all in fen."""
    engine = result.engine
    price, keep = engine.price(), engine.rates.sell_keep
    rows: list[tuple[int, int, int, int, int, int]] = []
    for agent in result.agents:
        consumer = engine.consumers[agent.id]
        ep_value = sale_payout_fen(consumer.ep, price, keep)
        sp = consumer.sp + consumer.locked_sp + agent.sp_spent_fen
        rows.append(
            (
                agent.joined_day // WEEK_DAYS,
                agent.money_in_fen,
                consumer.cash_out,
                sp,
                consumer.goods,
                ep_value,
            )
        )
    return rows


# Each consumer at the end of a run (consumers.csv / consumers.parquet): money in integers of
# fen, EP at what selling them would pay (as consumer_returns).
CONSUMER_COLUMNS = (
    "consumer",
    "joined_day",
    "behaviour",
    "region",
    "left",
    "money_in_fen",
    "cash_out_fen",
    "sp_fen",
    "goods_fen",
    "ep_value_fen",
)
BEHAVIOUR_NAMES = Behaviours.KINDS  # model's behaviour numbers are indexes into this


def consumer_columns(result: RunResult) -> dict[str, list[Any]]:
    """CONSUMER_COLUMNS of every consumer of the run, column by column."""
    returns = consumer_returns(result)
    agents = result.agents
    columns: dict[str, list[Any]] = {
        "consumer": [agent.id for agent in agents],
        "joined_day": [agent.joined_day for agent in agents],
        "behaviour": [BEHAVIOUR_NAMES[agent.behaviour] for agent in agents],
        "region": [agent.region or "" for agent in agents],
        "left": [agent.left for agent in agents],
    }
    for index, name in enumerate(CONSUMER_COLUMNS[5:], start=1):
        columns[name] = [row[index] for row in returns]
    return columns


def cohorts(returns: list[tuple[int, int, int, int, int, int]]) -> list[dict[str, Any]]:
    by_week: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    for row in returns:
        by_week[row[0]].append(row)
    out = []
    for week in sorted(by_week):
        members = by_week[week]
        money_in = sum(row[1] for row in members)
        parts = [sum(row[index] for row in members) for index in range(2, 6)]
        paying = [row for row in members if row[1] > 0]
        in_profit = sum(1 for row in paying if sum(row[2:]) > row[1])
        out.append(
            {
                "week": week,
                "consumers": len(members),
                "money_in": money_in / FEN_PER_CNY,
                "cash_out": parts[0] / FEN_PER_CNY,
                "sp": parts[1] / FEN_PER_CNY,
                "goods": parts[2] / FEN_PER_CNY,
                "ep_value": parts[3] / FEN_PER_CNY,
                "roi": sum(parts) / money_in if money_in else 0.0,
                "in_profit": in_profit / len(paying) if paying else 0.0,
            }
        )
    return out


def gini(values: list[float]) -> float:
    """The Gini coefficient of non-negative values (0: all equal; near 1: one takes all)."""
    data = np.sort(np.asarray(values, dtype=np.float64))
    if data.size == 0 or data.sum() <= 0:
        return 0.0
    ranks = np.arange(1, data.size + 1)
    return float(
        (2 * (ranks * data).sum()) / (data.size * data.sum()) - (data.size + 1) / data.size
    )


def loss_from_day(days: list[DayMetrics]) -> int | None:
    """The first day from which the cumulative platform result stays below zero to the end."""
    first: int | None = None
    for day in days:
        below = day.platform_result_fen < 0
        first = (first if first is not None else day.day) if below else None
    return first


WINDOW_DAYS = 30  # sales compared month against month


def sales_drop(days: list[DayMetrics]) -> float:
    """sales_drop_of the run's daily cash sales."""
    return sales_drop_of([day.sales_fen for day in days])


def sales_drop_of(sales_fen: Sequence[int] | npt.NDArray[np.int64]) -> float:
    """How far the last WINDOW_DAYS days' cash sales fell below the best such window (0: the
    last is the best; 0.8: sales fell by 80 %). 0 when the run is shorter than two windows."""
    if len(sales_fen) < 2 * WINDOW_DAYS:
        return 0.0
    sales = np.cumsum(np.concatenate(([0], np.asarray(sales_fen, dtype=np.int64))))
    windows = sales[WINDOW_DAYS:] - sales[:-WINDOW_DAYS]
    best = int(windows.max())
    return 1 - int(windows[-1]) / best if best > 0 else 0.0


def price_change(days: list[DayMetrics], day: int) -> float:
    """The price's relative change from the close of the day before `day` to its close."""
    before, after = days[day - 1].price, days[day].price
    return after / before - 1 if before > 0 else 0.0


def run_summary(result: RunResult) -> dict[str, Any]:
    """What one run contributes to the summary of its sweep point."""
    returns = consumer_returns(result)
    paying = [row for row in returns if row[1] > 0]
    out_of = [sum(row[2:]) / FEN_PER_CNY for row in paying]
    last = result.days[-1]
    return {
        "final_price": last.price,
        "platform_result": last.platform_result_fen / FEN_PER_CNY,
        # its parts (finding 1 of issue 15): cash, what is owed, the operator's own EP
        "operator_cash": last.operator_cash_fen / FEN_PER_CNY,
        "sp_owed": last.sp_outstanding_fen / FEN_PER_CNY,
        "treasury_value": last.sp_backing_fen / FEN_PER_CNY,
        "cash_owed": last.cash_owed_fen / FEN_PER_CNY,
        "ep_held": last.ep_held_fen / FEN_PER_CNY,
        "loss_from_day": loss_from_day(result.days),
        "paying_consumers": len(paying),
        "share_in_profit": (
            sum(1 for row in paying if sum(row[2:]) > row[1]) / len(paying) if paying else 0.0
        ),
        "share_losing": (
            sum(1 for row in paying if sum(row[2:]) < row[1]) / len(paying) if paying else 0.0
        ),
        "gini": gini(out_of),
        "dividends": sum(day.dividends_fen for day in result.days) / FEN_PER_CNY,
        "cash_out": sum(day.cash_out_fen for day in result.days) / FEN_PER_CNY,
        "sales_drop": sales_drop(result.days),
        "event_price_changes": [
            [day, price_change(result.days, day)]
            for day in result.event_days
            if 0 < day < len(result.days)
        ],
        "cohorts": cohorts(returns),
        # carried to the parent for consumers.csv/.parquet; summary.json does not hold it
        "consumer_rows": consumer_columns(result),
        "orders": result.orders_total,
        "commands": result.commands_total,
    }
