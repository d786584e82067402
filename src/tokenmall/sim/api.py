"""The simulator from Python (a notebook, a script): the same runs as `tokenmall simulate`,
returned as pandas DataFrames.

    from tokenmall.sim.api import simulate, load

    sim = simulate("examples/scenarios/thin-margin.toml", runs=20, seed=1,
                   sweeps={"platform.gross_margin": ["0.3", "0.4"]})
    sim.summary["points"][0]["verdict"]        # the words of the report
    sim.daily.groupby("day")["platform_result"].median()
    sim.consumers.query("money_in_fen > 0")    # one row per consumer and run
    sim.cohorts                                # by entry week, the mean over runs

    again = load("out/")                       # what `tokenmall simulate --out out/` wrote

Scenarios where the order-only fast path is exact enough take it (as the CLI does) unless
`exact=True`; `summary["engine"]` says which ran. Runs are made here, one after another, or
on `workers` local processes.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tokenmall.sim import runner
from tokenmall.sim.scenario import Scenario, load_scenario


@dataclass(frozen=True)
class Simulation:
    """What a simulation gives: summary.json's dict and three tables."""

    summary: dict[str, Any]
    daily: pd.DataFrame  # metrics.csv: one row per run and day (amounts in CNY)
    consumers: pd.DataFrame  # one row per consumer and run (amounts in fen)
    cohorts: pd.DataFrame  # one row per sweep point and entry week


def simulate(
    scenario: Scenario | str | Path,
    *,
    runs: int = 1,
    seed: int = 0,
    sweeps: Mapping[str, Sequence[str]] | None = None,
    vary: Mapping[str, Sequence[str]] | None = None,
    exact: bool = False,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Simulation:
    """Run `scenario` (a Scenario or a TOML file): `runs` Monte Carlo runs of each point of
    the grid of `sweeps` ({"contribution_rate": ["0.2", "0.3"], "platform.gross_margin":
    [...]}), or, with `vary` ({name: [low, high]}), of each setting one at a time (the
    summary's "sensitivity" ranks them). ScenarioError for anything that cannot run."""
    from tokenmall.sim import fast  # noqa: PLC0415 (it imports the runner)

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(Path(scenario))
    sensitivity = vary is not None
    settings = {name: list(values) for name, values in (vary or sweeps or {}).items()}
    jobs = runner.jobs(scenario, settings, runs, seed, sensitivity=sensitivity)
    reasons = ["exact=True"] if exact else [fast.why_not_fast(job.scenario) for job in jobs]
    why_exact = next((reason for reason in reasons if reason is not None), None)
    advance = progress or (lambda _work: None)
    daily: list[dict[str, Any]] = []
    results: list[tuple[dict[str, str], int, dict[str, Any]]] = []
    exact_runs: list[int] = []
    outcomes = (
        runner.execute(jobs, workers, None, advance)
        if why_exact is not None
        else fast.execute_fast(jobs, advance, exact_runs)
    )
    for point, run_index, rows, summary in outcomes:
        daily.extend(rows.rows() if isinstance(rows, fast.Table) else rows)
        results.append((point, run_index, summary))
    summary = runner.summarize(scenario, runs, seed, settings, results, sensitivity=sensitivity)
    summary["engine"] = "exact" if why_exact is not None else "fast"
    daily.sort(key=lambda row: (*(row.get(n, "") for n in settings), row["run"], row["day"]))
    return Simulation(
        summary,
        pd.DataFrame(daily),
        pd.DataFrame(runner.consumer_table(results, list(settings))),
        pd.DataFrame(runner.cohort_table(summary)),
    )


def load(out_dir: str | Path) -> Simulation:
    """A simulation as `tokenmall simulate --out OUT_DIR` wrote it (tables it did not write,
    as from an older version, are empty)."""
    out = Path(out_dir)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))

    def table(name: str) -> pd.DataFrame:
        path = out / f"{name}.parquet"
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

    return Simulation(
        summary, pd.read_csv(out / "metrics.csv"), table("consumers"), table("cohorts")
    )
