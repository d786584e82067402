"""Sweeps over scenario fields, one-at-a-time sensitivity, goal seek and the Monte Carlo
figures' confidence (issue 15's new capabilities)."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.scenarios import shipped, short_file
from tests.test_api import tokenmall
from tokenmall.sim import analysis, runner
from tokenmall.sim.metrics import run_summary
from tokenmall.sim.model import run
from tokenmall.sim.scenario import Scenario, ScenarioError


def summarize(scenario: Scenario, sweeps: dict[str, list[str]], runs: int, **how: Any) -> Any:
    jobs = runner.jobs(scenario, sweeps, runs, 0, **how)
    results = [
        (job.point, job.run, run_summary(run(job.scenario, np.random.default_rng(job.seed))))
        for job in jobs
    ]
    return runner.summarize(scenario, runs, 0, sweeps, results, **how)


def test_a_sweep_sets_scenario_fields_checked_by_the_scenario_parser() -> None:
    scenario = shipped("thin-margin", 30)
    wide = scenario.with_setting("platform.gross_margin", "0.5")
    assert wide.platform.gross_margin == 0.5 and scenario.platform.gross_margin != 0.5
    assert wide.params == scenario.params and wide.days == scenario.days
    assert scenario.with_setting("orders.value.median", "250").orders.value.median == 250
    both = scenario.with_setting("contribution_rate", "0.25").with_setting("arrivals.rate", "7")
    assert both.arrivals.rate == 7 and str(both.params.contribution_rate) == "1/4"
    for name, value, says in (
        ("platform.gross_margin", "1.5", "gross_margin"),
        ("behaviours.hold", "0.9", "sum to 1"),
        ("ledger.rate", "1", "a scenario field is one of"),
        ("arrivals.kind", "weekly", "kind must be"),
    ):
        with pytest.raises(ScenarioError, match=says):
            scenario.with_setting(name, value)
    summary = summarize(scenario, {"platform.gross_margin": ["0.2", "0.6"]}, runs=1)
    low, high = (p["platform_result"]["median"] for p in summary["points"])
    assert high > low  # the same seeds: only the margin differs


def test_one_at_a_time_sensitivity_ranks_the_settings_by_their_swing() -> None:
    scenario = shipped("thin-margin", 30)
    varies = {"platform.gross_margin": ["0.2", "0.6"], "behaviours.spend_sp": ["0", "0.2"]}
    summary = summarize(scenario, varies, runs=1, sensitivity=True)
    assert len(summary["points"]) == 5
    bars = summary["sensitivity"]
    assert [bar["name"] for bar in bars] == ["platform.gross_margin", "behaviours.spend_sp"]
    assert bars[0]["swing"] >= bars[1]["swing"] > 0
    by_params = {tuple(p["params"].items()): p for p in summary["points"]}
    margin = bars[0]
    assert (
        margin["result_high"]
        == by_params[(("platform.gross_margin", "0.6"),)]["platform_result"]["median"]
    )
    assert margin["base"] == by_params[()]["platform_result"]["median"]
    with pytest.raises(ScenarioError, match="a low and a high"):
        runner.jobs(scenario, {"arrivals.rate": ["1", "2", "3"]}, 1, 0, sensitivity=True)


def test_goal_seek_finds_where_the_platform_breaks_even() -> None:
    scenario = shipped("thin-margin", days=20)

    def evaluate(at: Scenario) -> float:
        return analysis.median_of(at, "platform_result", runs=1, seed=4)

    found = analysis.goal_seek(
        scenario, "platform.gross_margin", "0.05", "0.95", evaluate, tolerance="0.01"
    )
    low, high = (float(v) for v in found["between"])
    assert high - low <= 0.01
    results = {step["value"]: step["result"] for step in found["evaluations"]}
    assert results[found["between"][0]] < 0 < results[found["between"][1]]
    assert found["value"] in found["between"] and len(found["evaluations"]) <= 2 + 7
    with pytest.raises(ScenarioError, match="does not reach 0 between"):
        analysis.goal_seek(scenario, "platform.gross_margin", "0.9", "0.95", evaluate)


def test_headline_figures_carry_a_confidence_interval_and_the_value_at_risk() -> None:
    summary = summarize(shipped("thin-margin", days=20), {}, runs=5)
    (point,) = summary["points"]
    result = point["platform_result"]
    assert result["ci95_low"] < result["mean"] < result["ci95_high"]
    assert point["value_at_risk_95"] == max(0.0, -result["p5"])
    assert "Only 5 runs" in summary["warnings"][0]
    one = summarize(shipped("thin-margin", days=5), {}, runs=1)["points"][0]["platform_result"]
    assert one["ci95_low"] is None and one["ci95_high"] is None


def test_goal_seek_on_the_command_line(tmp_path: Path) -> None:
    short = short_file(tmp_path, "thin-margin", 20)
    assert "days = 20" in short.read_text()
    done = tokenmall(
        "goal-seek",
        str(short),
        "--setting",
        "platform.gross_margin",
        "--between",
        "0.05,0.95",
        "--runs",
        "1",
        "--seed",
        "4",
        "--tolerance",
        "0.01",
        "--out",
        "found.json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads((tmp_path / "found.json").read_text())
    assert done.stdout.startswith(f"platform.gross_margin = {found['value']} (between ")
    assert done.stderr.count("  platform.gross_margin = ") == len(found["evaluations"])
    for args, says in (
        (["--between", "0.5"], "--between: write it as LOW,HIGH"),
        (["--between", "0.9,0.95"], "does not reach 0 between 0.9 and 0.95"),
        (["--between", "0.1,0.9", "--figure", "gini"], "--figure must be one of"),
        (["--between", "0.1,0.9", "--setting", "nope.x"], "a scenario field is one of"),
        # simulate's bound: a seed JSON readers (summary.json, --out) hold exactly
        (["--between", "0.1,0.9", "--seed", str(2**53)], "--seed"),
    ):
        base = ["goal-seek", str(short), "--runs", "1"]
        if "--setting" not in args:
            base += ["--setting", "platform.gross_margin"]
        refused = tokenmall(*base, *args, cwd=tmp_path)
        assert refused.returncode == 2, (args, refused.stderr)
        assert refused.stderr.strip().count("\n") == 0 or "  platform" in refused.stderr
        assert says in refused.stderr, (args, refused.stderr)


def test_vary_on_the_command_line(tmp_path: Path) -> None:
    short_file(tmp_path, "thin-margin", 15)
    done = tokenmall(
        "simulate",
        "short.toml",
        "--vary",
        "platform.gross_margin=0.2,0.6",
        "--vary",
        "arrivals.rate=5,40",
        "--no-report",
        "--out",
        "out",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    said = [line for line in done.stdout.splitlines() if line.startswith("sensitivity ")]
    assert [line.split(":")[0] for line in said] == [
        f"sensitivity {bar['name']}" for bar in summary["sensitivity"]
    ]
    both = tokenmall(
        "simulate",
        "short.toml",
        "--vary",
        "arrivals.rate=5,40",
        "--sweep",
        "contribution_rate=0.2,0.3",
        "--out",
        "out2",
        cwd=tmp_path,
    )
    assert both.returncode == 2 and "do not go together" in both.stderr


def test_two_results_compared_on_the_command_line(tmp_path: Path) -> None:
    short_file(tmp_path, "thin-margin", 10)
    for name, margin in (("a", "0.3"), ("b", "0.5")):
        made = tokenmall(
            "simulate",
            "short.toml",
            "--sweep",
            f"platform.gross_margin={margin}",
            "--no-report",
            "--out",
            name,
            cwd=tmp_path,
        )
        assert made.returncode == 0, made.stderr
    done = tokenmall("simulate-compare", "a", "b", "--out", "ab.html", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "wrote ab.html", done.stderr
    page = (tmp_path / "ab.html").read_text()
    assert "<html" in page and "0.3" in page and "0.5" in page
    missing = tokenmall("simulate-compare", "a", "nowhere", "--out", "x.html", cwd=tmp_path)
    assert missing.returncode == 2 and "nowhere: no summary.json" in missing.stderr
    assert missing.stderr.count("\n") == 1
