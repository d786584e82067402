"""Monte Carlo runs and parameter sweeps, on local processes or a Dask cluster.

Every sweep point runs the same seeds: run r of every point draws from child r of
`SeedSequence(seed).spawn(runs)` (common random numbers), so differences between points come
from the parameters, not from luck. Jobs go to `concurrent.futures.ProcessPoolExecutor` by
default, or to a Dask `distributed.Client` when a scheduler address is given.
"""

import csv
import itertools
import json
import math
import os
import statistics
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tokenmall.sim import memory
from tokenmall.sim.metrics import daily_rows, run_summary
from tokenmall.sim.model import run
from tokenmall.sim.scenario import Scenario, ScenarioError

if TYPE_CHECKING:
    from distributed import Client

RUNS_MAX = 10_000
SWEEP_POINTS_MAX = 1_000
DASK_CONNECT_TIMEOUT = "5s"  # Dask retries a refused connection until then
ROWS_MAX = 2_000_000  # run-days in one metrics.csv: the rows are kept in memory until written

Progress = Callable[[int], None]  # called with the number of run-days just finished


@dataclass(frozen=True)
class Job:
    scenario: Scenario
    point: dict[str, str]  # the swept parameters' values at this point
    run: int
    seed: np.random.SeedSequence


def parse_sweeps(specs: Sequence[str]) -> dict[str, list[str]]:
    """`name=v1,v2,...` options into {name: [values]}; ScenarioError on a malformed one."""
    sweeps: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        choices = [value.strip() for value in values.split(",") if value.strip()]
        if not sep or not name.strip() or not choices:
            raise ScenarioError(f"--sweep {spec!r}: write it as name=v1,v2,...")
        if name.strip() in sweeps:
            raise ScenarioError(f"--sweep {name.strip()} is given twice")
        sweeps[name.strip()] = choices
    return sweeps


def points(
    scenario: Scenario, sweeps: dict[str, list[str]]
) -> list[tuple[dict[str, str], Scenario]]:
    """Every point of the grid with its scenario (checked now, before anything runs)."""
    size = math.prod(len(values) for values in sweeps.values())
    if size > SWEEP_POINTS_MAX:  # counted before the grid is built: 1000^3 points would not fit
        raise ScenarioError(f"the sweep has {size:,} points; at most {SWEEP_POINTS_MAX:,}")
    grid = list(itertools.product(*sweeps.values()))
    out = []
    for values in grid:
        point = dict(zip(sweeps, values, strict=True))
        swept = scenario
        for name, value in point.items():
            swept = swept.with_param(name, value)
        out.append((point, swept))
    return out


def jobs(scenario: Scenario, sweeps: dict[str, list[str]], runs: int, seed: int) -> list[Job]:
    if not 1 <= runs <= RUNS_MAX:
        raise ScenarioError(f"--runs must be 1..{RUNS_MAX}")
    grid = points(scenario, sweeps)
    if len(grid) * runs * scenario.days > ROWS_MAX:
        raise ScenarioError(
            f"{len(grid)} sweep points × {runs} runs × {scenario.days} days is more than "
            f"{ROWS_MAX:,} rows of metrics; run fewer, or split the sweep"
        )
    seeds = np.random.SeedSequence(seed).spawn(runs)
    return [
        Job(swept, point, index, seeds[index]) for point, swept in grid for index in range(runs)
    ]


def check_memory(all_jobs: list[Job], workers: int | None, scheduler: str | None) -> None:
    """ScenarioError, before anything runs, if the runs made here at once and the metrics rows
    kept here would not fit in this machine's memory. Runs on a Dask cluster are not counted:
    its workers' memory is not this machine's."""
    if scheduler is not None:
        runs_here = 0
    elif workers == 1 or len(all_jobs) == 1:
        runs_here = 1  # one after another, in this process (see `execute`)
    else:
        runs_here = min(workers or os.cpu_count() or 1, len(all_jobs))
    scenario = all_jobs[0].scenario  # sweep points differ in parameters, not population
    memory.check_memory(scenario, runs_here, len(all_jobs) * scenario.days)


def run_job(
    job: Job, on_day: Progress | None = None
) -> tuple[dict[str, str], int, list[dict[str, Any]], dict[str, Any]]:
    """One run (in a worker process): its daily rows and its summary."""
    result = run(job.scenario, np.random.default_rng(job.seed), on_day)
    return job.point, job.run, daily_rows(result, job.run, job.point), run_summary(result)


@contextmanager
def dask_client(scheduler: str | None) -> Iterator["Client | None"]:
    """A client of the Dask scheduler at that address, connected now (so that an address that
    does not answer is refused before anything is run or written); None without one."""
    if scheduler is None:
        yield None
        return
    from distributed import Client  # noqa: PLC0415 (imported only when a cluster is used)

    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT)  # type: ignore[no-untyped-call]
    except (OSError, ValueError, TypeError) as error:
        # OSError: nobody answers; ValueError: not an address ('bogus', 'tcp://h:x');
        # TypeError: a scheme that needs more set-up than an address (tls://, ucx://).
        raise ScenarioError(f"cannot reach the Dask scheduler {scheduler!r}: {error}") from None
    with client:
        yield client


def execute(
    all_jobs: list[Job], workers: int | None, client: "Client | None", progress: Progress
) -> Iterator[tuple[dict[str, str], int, list[dict[str, Any]], dict[str, Any]]]:
    """Each job's result as it finishes (any order), on the Dask cluster of `client` if there is
    one. Progress counts run-days: day by day when the runs are made here (one job, or
    --workers 1), a run's days at once from other processes."""
    if client is not None:
        yield from _on_dask(all_jobs, client, progress)
        return
    if workers == 1 or len(all_jobs) == 1:
        for job in all_jobs:
            yield run_job(job, progress)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures: list[Future[Any]] = [pool.submit(run_job, job) for job in all_jobs]
        for future in as_completed(futures):
            yield future.result()
            progress(all_jobs[0].scenario.days)


def _on_dask(
    all_jobs: list[Job], client: "Client", progress: Progress
) -> Iterator[tuple[dict[str, str], int, list[dict[str, Any]], dict[str, Any]]]:
    from distributed import as_completed as dask_completed  # noqa: PLC0415

    futures = client.map(run_job, all_jobs, pure=False)
    for future in dask_completed(futures):  # type: ignore[no-untyped-call]
        yield future.result()
        progress(all_jobs[0].scenario.days)


def summarize(
    scenario: Scenario,
    runs: int,
    seed: int,
    sweeps: dict[str, list[str]],
    results: list[tuple[dict[str, str], int, dict[str, Any]]],
) -> dict[str, Any]:
    by_point: dict[str, list[dict[str, Any]]] = {}
    params_of: dict[str, dict[str, str]] = {}
    for point, _run, summary in sorted(results, key=lambda item: (json.dumps(item[0]), item[1])):
        key = json.dumps(point, sort_keys=True)
        by_point.setdefault(key, []).append(summary)
        params_of[key] = point
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "days": scenario.days,
        "runs": runs,
        "seed": seed,
        "sweep_params": list(sweeps),
        "points": [_point(scenario, params_of[key], group) for key, group in by_point.items()],
    }


def _point(
    scenario: Scenario, params: dict[str, str], group: list[dict[str, Any]]
) -> dict[str, Any]:
    losses = [
        s["loss_from_day"] if s["loss_from_day"] is not None else scenario.days for s in group
    ]
    median_loss = statistics.median_low(losses)
    point = {
        "params": params,
        "runs": len(group),
        "final_price": _spread([s["final_price"] for s in group]),
        "platform_result": _spread([s["platform_result"] for s in group]),
        "loss_from_day": median_loss if median_loss < scenario.days else None,
        "runs_with_loss": sum(1 for s in group if s["loss_from_day"] is not None),
        "share_in_profit": statistics.fmean(s["share_in_profit"] for s in group),
        "gini": statistics.fmean(s["gini"] for s in group),
        "cohorts": _mean_cohorts([s["cohorts"] for s in group]),
        "orders": statistics.fmean(s["orders"] for s in group),
    }
    point["verdict"] = verdict(scenario, point)
    return point


def _spread(values: list[float]) -> dict[str, float]:
    data = np.asarray(values, dtype=np.float64)
    p5, median, p95 = np.percentile(data, [5, 50, 95])
    return {"median": float(median), "p5": float(p5), "p95": float(p95)}


def _mean_cohorts(per_run: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    weeks: dict[int, list[dict[str, Any]]] = {}
    for cohorts in per_run:
        for cohort in cohorts:
            weeks.setdefault(cohort["week"], []).append(cohort)
    out = []
    for week in sorted(weeks):
        group = weeks[week]
        merged: dict[str, Any] = {"week": week}
        for name in (
            "consumers",
            "money_in",
            "cash_out",
            "sp",
            "goods",
            "ep_value",
            "roi",
            "in_profit",
        ):
            merged[name] = statistics.fmean(cohort[name] for cohort in group)
        out.append(merged)
    return out


def verdict(scenario: Scenario, point: dict[str, Any]) -> str:
    """One plain paragraph: does the margin cover the promises, from when not, who pays."""
    result = point["platform_result"]["median"]
    day = point["loss_from_day"]
    losing = [c for c in point["cohorts"] if c["money_in"] > 0 and c["roi"] < 1]
    who = ""
    if losing:
        first = losing[0]["week"]
        share = sum(c["consumers"] for c in losing) / max(
            1, sum(c["consumers"] for c in point["cohorts"])
        )
        who = (
            f" Consumers in {len(losing)} of {len(point['cohorts'])} weekly cohorts "
            f"({share:.0%} of all consumers, the first from week {first}) get back less than "
            "they paid in cash, counting their EP at the last price."
        )
    if day is None:
        return (
            f"The margin covers the promises in the median run: after {scenario.days} days the "
            f"platform's cumulative result is {result:+,.2f} CNY "
            f"({point['runs_with_loss']} of {point['runs']} runs end in a lasting loss).{who}"
        )
    return (
        f"The margin does not cover the promises: from day {day} the platform's cumulative "
        f"result stays below zero (median {result:+,.2f} CNY after {scenario.days} days); the "
        f"operator carries that loss, paying dividends, pool contributions and minted EP out "
        f"of a margin too thin for them.{who}"
    )


def write_outputs(
    out: Path, summary: dict[str, Any], rows: list[dict[str, Any]], report: Callable[..., None]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows.sort(
        key=lambda row: (
            tuple(row.get(name, "") for name in summary["sweep_params"]),
            row["run"],
            row["day"],
        )
    )
    columns = list(rows[0]) if rows else ["run", "day"]
    with (out / "metrics.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    report(out / "report.html", summary, rows)
