"""The simulator's figures say what they mean (issue 15's findings 1-4 and 6): the platform's
position apart as cash, what it owes and what it holds; a dividend redeemed through minted EP
charged once; unsold EP counted at what selling them pays; consumers counted person by
person; verdicts that say why; merchants who sell, consumers who spend SP and who leave; and
the record of what produced a result."""

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.scenarios import SCENARIOS, shipped
from tests.test_api import tokenmall
from tokenmall import __version__
from tokenmall.core.engine import Engine
from tokenmall.core.rules.points import sale_payout_fen
from tokenmall.sim import runner
from tokenmall.sim.metrics import run_summary
from tokenmall.sim.model import _Run, run
from tokenmall.sim.scenario import Event, Scenario, load_scenario, scenario_of


def summary_of(scenario: Scenario, runs: int = 2) -> dict[str, Any]:
    no_sweep: dict[str, str] = {}
    results = [
        (no_sweep, number, run_summary(run(scenario, np.random.default_rng(number))))
        for number in range(runs)
    ]
    return runner.summarize(scenario, runs, 0, {}, results)


def test_the_position_is_the_operators_cash_less_what_it_owes_plus_its_own_ep() -> None:
    scenario = shipped("thin-margin", 60)
    result = run(scenario, np.random.default_rng(3))
    engine, days = result.engine, result.days
    platform = scenario.platform
    # Worked out apart from the model: the engine's totals and the day's sales and goods.
    margin_fen = sum(int(day.sales_fen * platform.gross_margin) for day in days)
    goods_cost_fen = sum(int(day.goods_fen * platform.goods_cost) for day in days)
    cash_fen = margin_fen - engine.contributions - goods_cost_fen - engine.mint_funding
    cash_fen -= engine.agent_commissions
    pool_fen, supply_units = engine.price()
    treasury_fen = engine.treasury * pool_fen // supply_units
    last = days[-1]
    assert last.operator_cash_fen == cash_fen
    assert last.platform_result_fen == cash_fen - engine.sp_outstanding + treasury_fen
    # dividends are paid in SP: owed, not cash; the difference is that SP
    assert engine.dividends_paid > 0 and engine.sp_outstanding > 0
    assert last.operator_cash_fen - last.platform_result_fen == engine.sp_outstanding - treasury_fen
    assert sum(day.platform_flow_fen for day in days) == last.platform_result_fen
    assert last.cash_owed_fen == engine.cash_owed
    assert last.ep_held_fen == (engine.supply - engine.treasury) * pool_fen // supply_units
    summary = run_summary(result)
    assert summary["operator_cash"] == cash_fen / 100
    assert summary["sp_owed"] == engine.sp_outstanding / 100


def test_a_dividend_redeemed_through_minted_ep_is_charged_once() -> None:
    """A consumer is paid a dividend in SP, spends it at a merchant, and the merchant turns it
    into EP that must be minted (the treasury is empty): the operator pays the mint's funding
    in cash and no longer owes the SP, so its position moves by the rounding only. Charging
    the dividend and the funding both (the old result) would drop it by the funding."""
    scenario = replace(
        scenario_of({"scenario": {"name": "mint", "days": 2}}),
        params=shipped("steady-growth", 60).params,
    )
    sim = _Run(scenario, Engine(scenario.params), np.random.default_rng(0))
    commands: list[dict[str, object]] = [
        {"op": "register_merchant", "merchant": "m0"},
        {"op": "register", "user": "c0"},
        {"op": "order", "id": "o0", "user": "c0", "amount": "1000.00"},
        {"op": "settle_day"},
    ]
    for command in commands:
        assert sim.apply(command), command
    engine = sim.engine
    before = sim._metrics(0)
    dividend_fen = engine.consumers["c0"].sp
    assert dividend_fen >= 100 and engine.treasury == 0
    amount = f"{dividend_fen // 100}.{dividend_fen % 100:02d}"
    assert sim.apply(
        {
            "op": "order",
            "id": "o1",
            "user": "c0",
            "amount": amount,
            "pay": "stable",
            "merchant": "m0",
        }
    )
    assert sim.apply({"op": "merchant_redeem", "merchant": "m0", "amount": amount})
    after = sim._metrics(1)
    assert engine.mint_funding >= dividend_fen  # paid for in cash, at the price rounded up
    assert before.platform_result_fen - after.platform_result_fen <= 1
    assert after.operator_cash_fen == before.operator_cash_fen - engine.mint_funding
    assert after.sp_outstanding_fen == before.sp_outstanding_fen - dividend_fen


def test_unsold_ep_count_for_what_selling_them_pays() -> None:
    """Order-only: the first buyer's EP are displayed at more than it paid, but selling them
    pays 10 % less, which is less than it paid: nobody is in profit."""
    result = run(load_scenario(SCENARIOS / "order-only.toml"), np.random.default_rng(0))
    engine = result.engine
    pool_fen, supply_units = engine.price()
    displayed = [engine.consumers[a.id].ep * pool_fen // supply_units for a in result.agents]
    paid = [agent.money_in_fen for agent in result.agents]
    assert sum(1 for shown, cash in zip(displayed, paid, strict=True) if shown > cash) == 1
    summary = run_summary(result)
    assert summary["share_in_profit"] == 0.0 and summary["share_losing"] == 1.0
    keep = engine.rates.sell_keep
    first = engine.consumers[result.agents[0].id].ep
    assert summary["cohorts"][0]["ep_value"] * 100 == sum(
        sale_payout_fen(engine.consumers[a.id].ep, engine.price(), keep)
        for a in result.agents
        if a.joined_day < 7
    )
    assert sale_payout_fen(first, engine.price(), keep) < paid[0] < displayed[0]


def test_consumers_are_counted_person_by_person_and_the_verdict_says_why() -> None:
    summary = summary_of(load_scenario(SCENARIOS / "order-only.toml"))
    (point,) = summary["points"]
    assert point["verdict_level"] == "consumers lose"  # not green beside "all get back less"
    assert point["platform_result"]["median"] > 0
    assert "100.0% of the 100 consumers who paid cash get back less" in point["verdict"]
    said = " ".join(point["explanations"])
    assert "Nobody was paid anything" in said and "most paying consumers lose" in said
    assert summary["warnings"] and "Only 2 runs" in summary["warnings"][0]


def test_a_sell_run_and_a_collapse_are_explained() -> None:
    bank_run = shipped("bank-run", days=40)
    bank_run = replace(bank_run, events=(Event("sell", 30, 0.34),))
    (point,) = summary_of(bank_run)["points"]
    ((day, change),) = point["event_price_changes"]
    assert day == 30 and change > 0
    assert any(text.startswith("On day 30, when holders sold") for text in point["explanations"])

    collapse = shipped("collapse", days=160)
    assert collapse.arrivals.collapse_day is not None and collapse.arrivals.collapse_day <= 120
    (point,) = summary_of(collapse)["points"]
    assert point["sales_drop"] >= 0.5
    assert any("below their best month" in text for text in point["explanations"])


def test_merchants_sell_consumers_spend_sp_and_an_sp_run_calls_it_in() -> None:
    scenario = shipped("steady-growth", days=40)
    result = run(scenario, np.random.default_rng(5))
    engine = result.engine
    assert sum(merchant.cash_out for merchant in engine.merchants.values()) > 0
    holders = [a for a in result.agents if a.behaviour == 0]  # they only hold, yet spend SP
    assert sum(agent.sp_spent_fen for agent in holders) > 0
    assert sum(day.sp_sales_fen for day in result.days) > 0

    quiet = replace(scenario, behaviours=replace(scenario.behaviours, spend_sp=0.0))
    calm = run(quiet, np.random.default_rng(5))
    rushed = run(replace(quiet, events=(Event("sp_run", 30, 1.0),)), np.random.default_rng(5))
    assert calm.days[29] == rushed.days[29]  # the same until the run
    assert rushed.days[30].sp_sales_fen > 10 * max(1, calm.days[30].sp_sales_fen)
    assert rushed.days[30].sp_outstanding_fen < calm.days[30].sp_outstanding_fen


def test_consumers_leave_when_the_price_stalls() -> None:
    scenario = shipped("steady-growth", days=60)
    stalling = replace(scenario.behaviours, stall_rise=10.0, stall_days=3)  # always "stalled"
    staying = run(replace(scenario, behaviours=stalling), np.random.default_rng(2))
    leaving_rules = replace(stalling, leave_on_stall=0.2)
    leaving = run(replace(scenario, behaviours=leaving_rules), np.random.default_rng(2))
    assert sum(agent.left for agent in staying.agents) == 0
    assert sum(agent.left for agent in leaving.agents) > len(leaving.agents) / 2
    assert leaving.orders_total < staying.orders_total / 2


def test_summary_json_records_what_produced_it(tmp_path: Path) -> None:
    path = SCENARIOS / "order-only.toml"
    done = tokenmall("simulate", str(path), "--runs", "2", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["scenario_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary["tool_version"] == __version__
    assert summary["params"]["exit_enabled"] is False
    assert summary["params"]["dividend_rate"] == "0"


def test_agents_commissions_are_the_operators_cost_and_withdrawals_pay_cash_out_later() -> None:
    scenario = shipped("steady-growth", days=40)
    scenario = scenario.with_setting("agents.districts", "12")
    scenario = scenario.with_setting("agent_rates", '["0.02", "0.01", "0.005"]')
    scenario = scenario.with_setting("withdrawals.delay_days", "3")
    result = run(scenario, np.random.default_rng(8))
    engine, days = result.engine, result.days
    # a province, 2 cities, 12 districts; every consumer lives in one of the districts
    assert len(engine.agents) == 15 and all(a.region for a in result.agents)
    assert engine.agent_commissions > 0
    assert sum(day.agent_commissions_fen for day in days) == engine.agent_commissions
    platform = scenario.platform
    margin_fen = sum(int(day.sales_fen * platform.gross_margin) for day in days)
    goods_fen = sum(int(day.goods_fen * platform.goods_cost) for day in days)
    assert (
        days[-1].operator_cash_fen
        == (margin_fen - engine.contributions - goods_fen - engine.mint_funding)
        - engine.agent_commissions
    )
    # withdrawals: cash owed leaves three days after it is asked for, never sooner
    assert engine.withdrawn > 0 and sum(day.withdrawn_fen for day in days) == engine.withdrawn
    first_owed = next(day.day for day in days if day.cash_owed_fen > 0)
    first_paid = next(day.day for day in days if day.withdrawn_fen > 0)
    assert first_paid >= first_owed + 3
    paid = [w for w in engine.withdrawals.values() if w.status == "paid"]
    assert sum(w.amount_fen for w in paid) == engine.withdrawn
    assert any(w.account.startswith("a44") for w in paid)  # agents withdraw commissions too


def test_consumers_leave_when_they_lose_and_claim_collectibles() -> None:
    scenario = shipped("thin-margin", days=60)
    staying = run(scenario, np.random.default_rng(6))
    losing = run(
        scenario.with_setting("behaviours.leave_when_losing", "0.5"), np.random.default_rng(6)
    )
    gone = [agent for agent in losing.agents if agent.left]
    assert gone and all(agent.joined_day <= 60 - 30 for agent in gone)
    assert losing.orders_total < staying.orders_total

    claiming = scenario.with_setting("collectibles.chance", "0.05")
    claiming = claiming.with_setting("collectibles.value", "5")
    result = run(claiming, np.random.default_rng(6))
    collection = result.engine.collections["c1"]
    assert collection.claimed > 0
    claimed_fen = collection.claimed * collection.value_fen
    # a claim burns EP for goods, but delivering a digital item costs nothing (cost = 0)
    platform = claiming.platform
    goods_cost_fen = sum(int(day.goods_fen * platform.goods_cost) for day in result.days)
    days = result.days
    engine = result.engine
    margin_fen = sum(int(day.sales_fen * platform.gross_margin) for day in days)
    cash_fen = margin_fen - engine.contributions - engine.mint_funding - engine.agent_commissions
    assert days[-1].operator_cash_fen > cash_fen - goods_cost_fen  # items not charged as goods
    assert sum(day.goods_fen for day in days) >= claimed_fen
