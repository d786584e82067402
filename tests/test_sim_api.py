"""The simulator from Python (sim/api.py) and its per-consumer and per-cohort tables: the
same runs as the CLI, as pandas DataFrames, and Parquet/CSV files that read back the same."""

from pathlib import Path

import pandas as pd

from tests.support.scenarios import SCENARIOS, shipped, short_file
from tests.test_api import tokenmall
from tokenmall.sim import runner
from tokenmall.sim.api import load, simulate
from tokenmall.sim.metrics import CONSUMER_COLUMNS


def test_simulate_returns_the_runs_as_dataframes() -> None:
    sim = simulate(
        shipped("thin-margin", 30),
        runs=2,
        seed=3,
        sweeps={"platform.gross_margin": ["0.3", "0.5"]},
    )
    assert sim.summary["engine"] == "exact" and len(sim.summary["points"]) == 2
    days = sim.summary["days"]
    assert len(sim.daily) == 2 * 2 * days
    assert set(sim.daily["platform.gross_margin"]) == {"0.3", "0.5"}
    last = sim.daily[sim.daily["day"] == days - 1]
    medians = last.groupby("platform.gross_margin")["platform_result"].median()
    by_point = {p["params"]["platform.gross_margin"]: p for p in sim.summary["points"]}
    for margin, point in by_point.items():
        assert medians[margin] == point["platform_result"]["median"]
    assert list(sim.consumers.columns) == ["run", "platform.gross_margin", *CONSUMER_COLUMNS]
    # the point's share of paying consumers who lose is the mean over its runs of the table's
    consumers = sim.consumers[sim.consumers["platform.gross_margin"] == "0.3"]
    paying = consumers[consumers["money_in_fen"] > 0]
    back = paying[["cash_out_fen", "sp_fen", "goods_fen", "ep_value_fen"]].sum(axis=1)
    losing = (back < paying["money_in_fen"]).groupby(paying["run"]).mean()
    assert abs(losing.mean() - by_point["0.3"]["share_losing"]) < 1e-12
    assert set(sim.cohorts.columns) >= {"platform.gross_margin", "week", "roi", "in_profit"}


def test_the_fast_path_fills_the_same_tables() -> None:
    sim = simulate(SCENARIOS / "order-only.toml", runs=1)
    exact = simulate(SCENARIOS / "order-only.toml", runs=1, exact=True)
    assert (sim.summary["engine"], exact.summary["engine"]) == ("fast", "exact")
    pd.testing.assert_frame_equal(sim.consumers, exact.consumers)
    pd.testing.assert_frame_equal(sim.cohorts, exact.cohorts, check_exact=False, rtol=1e-9)


def test_one_at_a_time_from_python() -> None:
    sim = simulate(
        shipped("thin-margin", 20),
        vary={"platform.gross_margin": ["0.2", "0.6"], "arrivals.rate": ["10", "40"]},
    )
    names = [bar["name"] for bar in sim.summary["sensitivity"]]
    assert sorted(names) == ["arrivals.rate", "platform.gross_margin"]
    assert len(sim.summary["points"]) == 5


def test_the_cli_writes_the_tables_and_load_reads_them_back(tmp_path: Path) -> None:
    short_file(tmp_path, "thin-margin", 20)
    done = tokenmall(
        "simulate",
        "short.toml",
        "--runs",
        "2",
        "--no-report",
        "--tables",
        "--out",
        "out",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    for name in ("consumers", "cohorts"):
        assert (out / f"{name}.parquet").exists() and (out / f"{name}.csv").exists()
    again = load(out)
    assert len(again.consumers) == len(pd.read_csv(out / "consumers.csv")) > 0
    assert list(again.consumers.columns) == ["run", *CONSUMER_COLUMNS]
    assert again.summary["runs"] == 2 and len(again.daily) == 2 * again.summary["days"]
    assert runner.CONSUMER_ROWS_MAX >= 1_000_000
