"""The order-only fast path of `tokenmall simulate` against the exact rules engine: same
scenario, same seeds, the same rows and summaries (amounts in fen exactly, prices, supply and EP
values within FAST_PATH_RELATIVE_TOLERANCE); which scenarios take it; and progress counted in
work."""

import csv
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.scenarios import SCENARIOS
from tokenmall.sim import fast, forked, runner
from tokenmall.sim.metrics import FEN_FIELDS
from tokenmall.sim.report import write_report
from tokenmall.sim.scenario import Scenario, load_scenario, scenario_of

TOLERANCE = fast.FAST_PATH_RELATIVE_TOLERANCE
# Floats of the fast path that come from its float64 price: everything else is exact.
APPROXIMATE_COLUMNS = {"price", "supply"}
MONEY_COLUMNS = {name.removesuffix("_fen") for name in FEN_FIELDS}

ORDER_ONLY: dict[str, Any] = {
    "scenario": {"name": "t", "days": 60},
    "params": {
        "dividend_rate": "0",
        "level_dividend_rate": "0",
        "exit_enabled": False,
        "referral_rates": [],
    },
    "referrals": {"probability": 0},
    "behaviours": {"hold": 1, "spend_sp": 0},
}


def order_only(**tables: dict[str, Any]) -> Scenario:
    document = {name: dict(table) for name, table in ORDER_ONLY.items()}
    for name, table in tables.items():
        document[name] = {**document.get(name, {}), **table}
    return scenario_of(document)


SHAPES = {
    "the seeds (fixed arrivals, fixed values)": load_scenario(SCENARIOS / "order-only.toml"),
    "fixed arrivals, uniform values": order_only(
        arrivals={"kind": "fixed", "rate": 3},
        orders={
            "on_arrival": True,
            "per_consumer_per_day": 0,
            "value": {"distribution": "uniform", "low": 0.01, "high": 2_000.0},
        },
    ),
    "fixed arrivals, lognormal values": order_only(
        arrivals={"kind": "fixed", "rate": 2, "collapse_day": 30, "collapse_factor": 0.5},
        orders={"on_arrival": True, "per_consumer_per_day": 0},
    ),
    "Poisson arrivals, daily orders, collapse, merchants": order_only(
        scenario={"name": "t", "days": 90},
        arrivals={"kind": "poisson", "rate": 4, "collapse_day": 50, "collapse_factor": 0.2},
        orders={"on_arrival": False, "per_consumer_per_day": 0.3},
        merchants={"count": 3},
        platform={"gross_margin": 0.1},  # a loss from day 0: loss_from_day is not None
    ),
    "logistic arrivals, both kinds of orders": order_only(
        arrivals={"kind": "logistic", "start": 0, "peak": 10, "midpoint_day": 20},
        orders={
            "on_arrival": True,
            "per_consumer_per_day": 0.05,
            "value": {"distribution": "uniform", "low": 1.0, "high": 50.0},
        },
        params={"contribution_rate": "0.37", "buyer_share": "0.9", "initial_price": "2.5"},
    ),
}


def exact_and_fast(scenario: Scenario, seed: int, runs: int = 2) -> list[tuple[Any, Any]]:
    """Each run through the rules engine and the fast path, the latter's rows as dicts."""
    jobs = runner.jobs(scenario, {}, runs, seed)
    pairs = []
    for job in jobs:
        point, run, table, summary = fast.fast_run(job)
        consumers = summary["consumer_rows"]  # made when read
        assert isinstance(consumers, fast.ConsumerColumns)
        summary = {**summary, "consumer_rows": dict(consumers)}
        pairs.append((runner.run_job(job), (point, run, table.rows(), summary)))
    return pairs


def assert_same_rows(exact: list[dict[str, Any]], quick: list[dict[str, Any]]) -> None:
    assert len(quick) == len(exact)
    for theirs, ours in zip(exact, quick, strict=True):
        assert list(ours) == list(theirs)  # the same columns, in the same order
        for name, value in theirs.items():
            assert type(ours[name]) is type(value), name
            if name in APPROXIMATE_COLUMNS:
                assert math.isclose(ours[name], value, rel_tol=TOLERANCE), (name, ours, theirs)
            else:
                assert ours[name] == value, (name, ours, theirs)


def assert_close(ours: Any, theirs: Any, where: str, people: int) -> None:
    """Equal, or within the tolerance: EP values move with the price, and a consumer whose EP
    are worth within the tolerance of what they paid may fall either side of it (`people`:
    the paying consumers, so that one of them is 1/people of a share)."""
    assert type(ours) is type(theirs) or {type(ours), type(theirs)} <= {int, float}, where
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), where
        for key in theirs:
            assert_close(ours[key], theirs[key], f"{where}.{key}", people)
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), where
        for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
            assert_close(mine, other, f"{where}[{index}]", people)
    elif isinstance(theirs, float) and where.rsplit(".", 1)[-1] in (
        "in_profit",
        "share_in_profit",
        "share_losing",
    ):
        assert abs(ours - theirs) <= 2 / max(people, 1), where
    elif isinstance(theirs, float):
        # sums of floored EP values: within the tolerance, and a fen per consumer
        assert math.isclose(ours, theirs, rel_tol=TOLERANCE, abs_tol=people / 100), where
    elif ".ep_value_fen[" in where:  # a consumer's EP at the price, floored to the fen
        assert math.isclose(ours, theirs, rel_tol=TOLERANCE, abs_tol=1), where
    else:
        assert ours == theirs, where


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_fast_path_gives_the_exact_engines_rows_and_summary(shape: str) -> None:
    scenario = SHAPES[shape]
    assert fast.why_not_fast(scenario) is None
    for seed in (0, 11):
        for exact, quick in exact_and_fast(scenario, seed):
            assert quick[:2] == exact[:2]
            assert_same_rows(exact[2], quick[2])
            assert list(quick[3]) == list(exact[3])  # the same figures, in the same order
            assert_close(quick[3], exact[3], "summary", exact[3]["paying_consumers"])


def test_the_fast_path_draws_what_the_model_draws() -> None:
    """Order by order: the same values and buyers as model.run placed, hence the same orders
    count and the same sales each day, for every shape."""
    for scenario in SHAPES.values():
        for exact, quick in exact_and_fast(scenario, 3, runs=1):
            assert [row["orders"] for row in quick[2]] == [row["orders"] for row in exact[2]]
            assert [row["sales"] for row in quick[2]] == [row["sales"] for row in exact[2]]
            assert quick[3]["commands"] == exact[3]["commands"]


NOT_FAST: dict[str, dict[str, Any]] = {
    "it pays dividends": {"params": {"dividend_rate": "0.1"}},
    "forced exits are enabled": {"params": {"exit_enabled": True}},
    "consumers are referred": {"referrals": {"probability": 0.2}},
    "some consumers do more than hold": {"behaviours": {"hold": 0.5, "redeem_goods": 0.5}},
    "consumers leave when the price stalls": {"behaviours": {"leave_on_stall": 0.01}},
    "consumers spend SP at merchants": {"behaviours": {"spend_sp": 0.1}},
    "it has one-off events": {"events": [{"kind": "sell", "day": 5, "share": 0.5}]},
    "buyers get no EP (buyer_share = 0)": {"params": {"buyer_share": "0"}},
}


@pytest.mark.parametrize("reason", list(NOT_FAST))
def test_a_scenario_with_more_than_orders_is_not_fast(reason: str) -> None:
    document: dict[str, Any] = {name: dict(table) for name, table in ORDER_ONLY.items()}
    for name, table in NOT_FAST[reason].items():
        document[name] = table if isinstance(table, list) else {**document.get(name, {}), **table}
    assert fast.why_not_fast(scenario_of(document)) == reason


def test_the_shipped_scenarios_other_than_order_only_are_not_fast() -> None:
    for path in SCENARIOS.glob("*.toml"):
        chosen = fast.why_not_fast(load_scenario(path)) is None
        assert chosen == (path.stem == "order-only"), path


def test_a_run_the_float_path_cannot_hold_goes_to_the_rules_engine() -> None:
    # Grants of a few units (1-fen contributions at a price of 10,000): flooring them moves
    # the price by far more than the tolerance, so the run is made exactly.
    scenario = order_only(
        params={"initial_price": "10000"},
        arrivals={"kind": "fixed", "rate": 2},
        orders={"on_arrival": True, "value": {"distribution": "fixed", "value": 0.04}},
    )
    job = runner.jobs(scenario, {}, 1, 0)[0]
    with pytest.raises(fast.NotFast):
        fast.fast_run(job)
    exact_runs: list[int] = []
    done: list[int] = []
    [result] = fast.execute_fast([job], done.append, exact_runs)
    assert exact_runs == [0]
    assert result[2] == runner.run_job(job)[2]  # the rules engine's rows, dicts
    assert sum(done) == fast.work_total([job])


def test_the_many_runs_of_the_fast_path_count_their_work() -> None:
    jobs = runner.jobs(SHAPES["fixed arrivals, uniform values"], {}, 5, 2)
    done: list[int] = []
    results = list(fast.execute_fast(jobs, done.append, []))
    assert [result[1] for result in results] == list(range(5))
    assert sum(done) == fast.work_total(jobs)


def test_progress_counts_work_day_by_day_and_from_worker_processes() -> None:
    scenario = replace(load_scenario(SCENARIOS / "steady-growth.toml"), days=20)
    work = fast.day_work(scenario)
    assert work == sorted(work)  # a growing population: later days weigh more
    assert work[-1] > 2 * work[0]
    jobs = runner.jobs(scenario, {}, 2, 0)
    steps: list[int] = []
    list(runner.execute(jobs[:1], 1, None, steps.append))
    assert steps == work  # here: one step a day, each the day's work
    pooled: list[int] = []
    list(runner.execute(jobs, 2, None, pooled.append))
    assert sum(pooled) == fast.work_total(jobs)
    dask_like: list[int] = []
    fast.whole_runs(scenario, dask_like.append)(scenario.days)
    assert dask_like == [sum(work)]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_simulate_takes_the_fast_path_and_says_so(tmp_path: Path) -> None:
    """End to end: the same metrics.csv columns and summary.json as --exact, prices within the
    tolerance; the output and summary.json name the path taken."""
    scenario = tmp_path / "s.toml"
    text = (SCENARIOS / "order-only.toml").read_text().replace("days = 100", "days = 40")
    text = text.replace('"fixed", value = 100.0', '"uniform", low = 1.0, high = 900.0')
    scenario.write_text(text)
    outputs = {}
    for flags in ([], ["--exact"]):
        out = tmp_path / ("exact" if flags else "fast")
        command = [sys.executable, "-m", "tokenmall.cli", "simulate", str(scenario), "--runs"]
        command += ["3", "--seed", "9", "--out", str(out), "--no-report", "--tables", *flags]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        assert not (out / "report.html").exists()
        outputs[out.name] = (done.stdout, out)
    fast_out, fast_dir = outputs["fast"]
    exact_out, exact_dir = outputs["exact"]
    assert "engine: order-only fast path" in fast_out
    assert "engine: exact rules engine (--exact)" in exact_out
    fast_summary = json.loads((fast_dir / "summary.json").read_text())
    exact_summary = json.loads((exact_dir / "summary.json").read_text())
    assert (fast_summary.pop("engine"), exact_summary.pop("engine")) == ("fast", "exact")
    for key in ("engine_detail", "engine_exact_runs"):
        fast_summary.pop(key), exact_summary.pop(key)
    people = int(exact_summary["points"][0]["paying_consumers"])
    assert_close(fast_summary, exact_summary, "summary", people)
    fast_rows, exact_rows = read_csv(fast_dir / "metrics.csv"), read_csv(exact_dir / "metrics.csv")
    assert len(fast_rows) == len(exact_rows) == 3 * 40
    for ours, theirs in zip(fast_rows, exact_rows, strict=True):
        assert list(ours) == list(theirs)
        for name, value in theirs.items():
            if name in APPROXIMATE_COLUMNS:
                assert math.isclose(float(ours[name]), float(value), rel_tol=TOLERANCE)
            else:
                assert ours[name] == value, name
    # each consumer: the same, but for what its EP are worth (the price's tolerance, a fen)
    fast_people = read_csv(fast_dir / "consumers.csv")
    exact_people = read_csv(exact_dir / "consumers.csv")
    assert len(fast_people) == len(exact_people) == 3 * 40
    for ours, theirs in zip(fast_people, exact_people, strict=True):
        assert list(ours) == list(theirs)
        for name, value in theirs.items():
            if name == "ep_value_fen":
                assert math.isclose(int(ours[name]), int(value), rel_tol=TOLERANCE, abs_tol=1)
            else:
                assert ours[name] == value, name
    assert (
        read_csv(fast_dir / "cohorts.csv")[0].keys()
        == read_csv(exact_dir / "cohorts.csv")[0].keys()
    )


def test_simulate_writes_only_what_it_is_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "tokenmall.cli",
        "simulate",
        str(SCENARIOS / "order-only.toml"),
    ]
    command += ["--out", str(out), "--no-report"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in out.iterdir()) == ["metrics.csv", "summary.json"]
    assert done.stdout.endswith(f"wrote {out / 'metrics.csv'} and summary.json\n")


def test_simulate_says_why_it_took_the_rules_engine(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    text = (SCENARIOS / "order-only.toml").read_text().replace("days = 100", "days = 5")
    scenario.write_text(text.replace('dividend_rate = "0"\n', 'dividend_rate = "0.1"\n', 1))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tokenmall.cli", "simulate", str(scenario)]
    done = subprocess.run(
        [*command, "--out", str(out), "--no-report"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "engine: exact rules engine (not order-only: it pays dividends)" in done.stdout
    assert json.loads((out / "summary.json").read_text())["engine"] == "exact"


def test_the_fast_path_prices_follow_the_closed_form() -> None:
    contributions = np.full(10_000, 30_00, dtype=np.int64)
    prices, supply = fast.fast_prices(contributions, 0.7, 1.0)
    assert round(float(prices[-1]), 3) == 20.573
    assert math.isclose(float(supply[-1]) * float(prices[-1]), 10_000 * 30.0 * 1e8, rel_tol=1e-12)


@pytest.mark.parametrize("handed_over", [None, 4], ids=["every run fast", "one run exact"])
def test_the_fast_writer_writes_what_the_runners_writer_writes(
    tmp_path: Path, handed_over: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """metrics.csv and summary.json byte for byte, a sweep's points and runs in their order
    (and with a run handed to the rules engine among them); the report gets the same rows
    (the fast path's column by column) and writes the same report.html, in a forked child
    (where forked.fork_helps) and here."""
    scenario = SHAPES["fixed arrivals, uniform values"]
    sweeps = runner.parse_sweeps(["contribution_rate=0.3,0.25", "sell_fee_rate=0.1,0.05"])
    jobs = runner.jobs(scenario, sweeps, 3, 4)
    made, results = [], []
    for index, (point, run, table, summary) in enumerate(fast.execute_fast(jobs, print, [])):
        made.append((point, run, runner.run_job(jobs[index])[2] if index == handed_over else table))
        results.append((point, run, summary))
    summary = runner.summarize(scenario, 3, 4, sweeps, results)
    reported: list[Any] = []

    def report(path: Path, summary: dict[str, Any], daily: Any) -> None:
        reported.append(daily)
        write_report(path, summary, daily)

    fast.write_outputs(tmp_path / "forked", summary, list(reversed(made)), write_report)
    monkeypatch.setattr(forked, "fork_helps", lambda: False)  # the report's input seen here
    fast.write_outputs(tmp_path / "fast", summary, list(reversed(made)), report)
    rows = [row for _p, _r, daily in made for row in fast_rows(daily)]
    runner.write_outputs(tmp_path / "runner", summary, rows, report)
    for name in ("metrics.csv", "summary.json", "report.html"):
        expected = (tmp_path / "runner" / name).read_bytes()
        assert (tmp_path / "fast" / name).read_bytes() == expected
        assert (tmp_path / "forked" / name).read_bytes() == expected
    given, dicts = reported
    if handed_over is None:  # columns, in metrics.csv's order (sweep values, run, day)
        assert isinstance(given, dict)
        ordered = sorted(
            dicts, key=lambda row: (row["contribution_rate"], row["sell_fee_rate"], row["run"])
        )
        assert {name: list(values) for name, values in given.items()} == {
            name: [row[name] for row in ordered] for name in dicts[0]
        }
    else:  # the rows as dicts, as the runner gives them
        assert sorted(map(repr, given)) == sorted(map(repr, dicts))


def fast_rows(daily: Any) -> list[dict[str, Any]]:
    return daily.rows() if isinstance(daily, fast.Table) else list(daily)


def test_little_work_runs_here_unless_worker_processes_are_asked_for() -> None:
    little = runner.jobs(load_scenario(SCENARIOS / "order-only.toml"), {}, 4, 0)
    assert fast.work_total(little) < fast.POOL_WORK_MIN
    assert fast.runs_here(little, None)
    assert not fast.runs_here(little, 2)  # --workers 2: as asked
    assert fast.runs_here(little, 1)
    year = runner.jobs(load_scenario(SCENARIOS / "steady-growth.toml"), {}, 2, 0)
    assert fast.work_total(year) > fast.POOL_WORK_MIN
    assert not fast.runs_here(year, None)
    assert fast.runs_here(year[:1], None)
