"""The simulator's model and runner: determinism, the seeds' recurrence through the agent
model, scenario errors, sweeps, and `tokenmall simulate` end to end."""

import itertools
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.support.orderonly import closed_form_price
from tests.support.scenarios import SCENARIOS, shipped
from tokenmall.core.engine import TOTALS, Engine
from tokenmall.core.invariants import check_invariants
from tokenmall.core.orders import OrderBook
from tokenmall.core.units import Price
from tokenmall.sim import memory, runner
from tokenmall.sim.metrics import gini
from tokenmall.sim.model import run
from tokenmall.sim.scenario import Arrivals, ScenarioError, load_scenario, scenario_of


def test_the_agent_model_reproduces_the_seeds_recurrence() -> None:
    result = run(load_scenario(SCENARIOS / "order-only.toml"), np.random.default_rng(0))
    prices = [day.price for day in result.days]
    assert [round(prices[n - 1], 4) for n in (1, 2, 3, 4, 100)] == [
        1.4286,
        1.6807,
        1.8674,
        2.0188,
        5.1731,
    ]
    assert prices[99] == pytest.approx(closed_form_price(100, 0.7), rel=1e-6)
    assert all(day.dividends_fen == 0 and day.exits == 0 for day in result.days)


@pytest.mark.parametrize("name", ["steady-growth", "collapse", "bank-run", "referral-heavy"])
def test_same_seed_same_metrics_and_another_seed_differs(name: str) -> None:
    scenario = shipped(name, 40)
    first = run(scenario, np.random.default_rng(np.random.SeedSequence(5)))
    again = run(scenario, np.random.default_rng(np.random.SeedSequence(5)))
    other = run(scenario, np.random.default_rng(np.random.SeedSequence(6)))
    assert first.days == again.days
    assert first.days != other.days


def test_a_run_is_the_same_whether_its_engine_keeps_closed_order_ids_or_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The simulator's engines forget earlier days' order ids (OrderBook.forget_orders): its
    ids are unique and it never refunds, so no outcome may change. Agents, withdrawals and
    collectibles on, so that every kind of command runs."""
    scenario = shipped("bank-run", days=30)
    document = json.loads(json.dumps(scenario.document))
    document["agents"] = {"districts": 3}
    document.setdefault("params", {})["agent_rates"] = ["0.01", "0.01", "0.02"]
    document["collectibles"] = {"edition": 50, "value": 20.0, "chance": 0.05}
    scenario = replace(scenario_of(document), days=30)
    forgetting = run(scenario, np.random.default_rng(np.random.SeedSequence(3)))
    monkeypatch.setattr(OrderBook, "forget_orders", lambda _book: None)
    keeping = run(scenario, np.random.default_rng(np.random.SeedSequence(3)))
    assert len(keeping.engine.orders.closed) > 1000 and len(forgetting.engine.orders.closed) == 0
    assert keeping.engine.agent_commissions > 0 and keeping.engine.items
    assert keeping.engine.withdrawn > 0 and keeping.engine.exits > 0
    assert forgetting.days == keeping.days
    assert forgetting.agents == keeping.agents
    assert forgetting.commands_total == keeping.commands_total
    for name in TOTALS:
        assert getattr(forgetting.engine, name) == getattr(keeping.engine, name), name


def test_the_price_never_falls_and_the_flow_adds_up() -> None:
    result = run(shipped("bank-run", days=200), np.random.default_rng(1))
    prices = [day.price for day in result.days]
    assert all(later >= earlier for earlier, later in itertools.pairwise(prices))
    total = 0
    for day in result.days:
        total += day.platform_flow_fen
        assert day.platform_result_fen == total
    assert sum(day.cash_out_fen for day in result.days[178:183]) > 0  # the run on day 180


def test_collapse_cuts_sales() -> None:
    result = run(shipped("collapse", days=200), np.random.default_rng(2))
    before = sum(day.sales_fen for day in result.days[100:120])
    after = sum(day.sales_fen for day in result.days[130:150])
    assert after < 0.5 * before


def test_gini_and_loss_day() -> None:
    assert gini([1, 1, 1, 1]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)
    assert gini([]) == 0.0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "missing table [scenario]"),
        ({"scenario": {"name": "x"}}, "[scenario] days is missing"),
        ({"scenario": {"name": "x", "days": 0}}, "[scenario] days must be between 1 and 3650"),
        ({"scenario": {"name": "x", "days": 5}, "params": {"contribution_rate": "2"}}, "[params]"),
        ({"scenario": {"name": "x", "days": 5}, "arrivals": {"rate": "ten"}}, "must be a number"),
        ({"scenario": {"name": "x", "days": 5}, "behaviours": {"hold": 0.5}}, "sum to 1"),
        ({"scenario": {"name": "x", "days": 5}, "orders": {"colour": 1}}, "unknown key 'colour'"),
        (
            {
                "scenario": {"name": "x", "days": 5},
                "events": [{"kind": "sell", "day": 9, "share": 1}],
            },
            "past the last day",
        ),
    ],
)
def test_scenario_errors_name_the_field(document: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        scenario_of(document)


def test_sweeps_make_a_grid_with_common_seeds() -> None:
    scenario = shipped("steady-growth", days=5)
    sweeps = runner.parse_sweeps(["contribution_rate=0.2,0.3", "sell_fee_rate=0.05,0.1"])
    jobs = runner.jobs(scenario, sweeps, runs=3, seed=9)
    assert len(jobs) == 12
    assert {job.run for job in jobs} == {0, 1, 2}
    seeds = {(job.run, tuple(job.seed.spawn_key)) for job in jobs}
    assert len(seeds) == 3  # run r draws the same numbers at every point
    for bad in (["x"], ["a="], ["contribution_rate=9"], ["nonsense_param=1"]):
        with pytest.raises(ScenarioError):
            runner.jobs(scenario, runner.parse_sweeps(bad), runs=1, seed=0)
    year = shipped("steady-growth", days=365)
    with pytest.raises(ScenarioError, match="rows of metrics"):
        runner.jobs(year, runner.parse_sweeps(["sell_fee_rate=0.1,0.2"]), runs=5_000, seed=0)


def test_simulate_end_to_end(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    text = (SCENARIOS / "thin-margin.toml").read_text().replace("days = 365", "days = 30")
    scenario.write_text(text)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tokenmall.cli", "simulate", str(scenario), "--runs", "2"]
    command += ["--seed", "4", "--sweep", "contribution_rate=0.2,0.3", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [point["params"] for point in summary["points"]] == [
        {"contribution_rate": "0.2"},
        {"contribution_rate": "0.3"},
    ]
    lines = (out / "metrics.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 2 * 30
    assert (out / "report.html").stat().st_size > 100_000
    again = tmp_path / "again"
    subprocess.run([*command[:-1], str(again)], capture_output=True, timeout=300, check=True)
    assert (again / "metrics.csv").read_text() == (out / "metrics.csv").read_text()


def test_simulate_bad_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "x"\ndays = "many"\n')
    for args in ([str(bad)], [str(tmp_path / "missing.toml")]):
        command = [sys.executable, "-m", "tokenmall.cli", "simulate", *args, "--out", str(tmp_path)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2
        assert done.stderr.startswith("tokenmall: error: ") and done.stderr.count("\n") == 1


def test_a_dask_cluster_gives_the_same_metrics_as_local_processes(tmp_path: Path) -> None:
    """--scheduler ADDRESS runs the jobs on a real Dask cluster (a local one here, with worker
    processes): the same seeds give byte-identical metrics."""
    from distributed import LocalCluster  # noqa: PLC0415

    scenario = tmp_path / "s.toml"
    scenario.write_text(
        (SCENARIOS / "steady-growth.toml").read_text().replace("days = 365", "days = 20")
    )
    command = [sys.executable, "-m", "tokenmall.cli", "simulate", str(scenario), "--runs", "3"]
    local = subprocess.run(
        [*command, "--out", str(tmp_path / "local")], capture_output=True, timeout=300, check=True
    )
    assert local.returncode == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:  # type: ignore[no-untyped-call]
        address = cluster.scheduler_address
        done = subprocess.run(
            [*command, "--out", str(tmp_path / "dask"), "--scheduler", address],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    local_csv = (tmp_path / "local" / "metrics.csv").read_text()
    assert (tmp_path / "dask" / "metrics.csv").read_text() == local_csv


def test_an_unreachable_scheduler_is_one_line(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text((SCENARIOS / "order-only.toml").read_text())
    command = [sys.executable, "-m", "tokenmall.cli", "simulate", str(scenario), "--out"]
    command += [str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("tokenmall: error: cannot reach the Dask scheduler")
    assert done.stderr.count("\n") == 1


def test_sp_payments_are_counted_on_their_day() -> None:
    result = run(shipped("steady-growth", days=60), np.random.default_rng(1))
    spent = sum(agent.sp_spent_fen for agent in result.agents)
    assert spent > 0
    assert sum(day.sp_sales_fen for day in result.days) == spent


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda path: path.stem)
def test_every_shipped_scenario_keeps_the_invariants(path: Path) -> None:
    """SPEC §6 after each day of 60 (price never falls, conservation of EP, SP and money)."""
    scenario = replace(load_scenario(path), days=60)
    engine = Engine(scenario.params)
    prices: list[Price] = []

    def check(_days: int) -> None:
        check_invariants(engine, prices[-1] if prices else None)
        prices.append(engine.price())

    result = run(scenario, np.random.default_rng(3), check, engine)
    assert len(prices) == 60 and result.days[-1].day == 59


def test_the_memory_estimate_counts_consumers_and_orders_as_a_run_makes_them() -> None:
    scenario = shipped("steady-growth", days=60)
    expected = memory.expected_population(scenario)
    result = run(scenario, np.random.default_rng(7))
    assert len(result.agents) == pytest.approx(expected.consumers, rel=0.1)
    assert result.orders_total == pytest.approx(expected.orders, rel=0.1)
    fixed = replace(
        scenario,
        days=5,
        arrivals=Arrivals(kind="fixed", rate=10),
        orders=replace(scenario.orders, on_arrival=True, per_consumer_per_day=0.0),
        behaviours=replace(scenario.behaviours, spend_sp=0.0),
    )
    assert memory.expected_population(fixed) == memory.Population(50, 50, 10)
    # spending SP: 0.7 of 0.1 of the consumers there are each day (10, 20, ... 50)
    spending = replace(fixed, behaviours=replace(scenario.behaviours, spend_sp=0.1))
    expected = memory.expected_population(spending)
    assert expected.orders == pytest.approx(50 + 0.07 * 150)
    assert expected.busiest_day_orders == pytest.approx(10 + 0.07 * 50)  # the last day


def test_a_scenario_too_big_for_the_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    year = shipped("steady-growth", days=365)  # about 11,000 consumers and 370,000 orders a run
    jobs = runner.jobs(year, {}, runs=4, seed=0)
    monkeypatch.setattr(memory, "memory_bytes", lambda: 60 * 1024**2)
    runner.check_memory(jobs, workers=1, scheduler=None)  # one run at a time fits in 60 MiB
    with pytest.raises(ScenarioError, match=r"about 11\d MiB .* 4 runs at once.* has 60 MiB"):
        runner.check_memory(jobs, workers=4, scheduler=None)
    runner.check_memory(jobs, workers=4, scheduler="tcp://elsewhere:8786")  # not run here


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda path: path.stem)
def test_every_shipped_scenario_fits_in_a_small_machine(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "memory_bytes", lambda: 2 * 1024**3)
    jobs = runner.jobs(load_scenario(path), {}, runs=2, seed=0)
    runner.check_memory(jobs, workers=2, scheduler=None)
