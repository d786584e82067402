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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tokenmall import __version__
from tokenmall.sim import memory
from tokenmall.sim.metrics import CONSUMER_COLUMNS, daily_rows, run_summary
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
            swept = swept.with_setting(name, value)
        out.append((point, swept))
    return out


def one_at_a_time(
    scenario: Scenario, varies: dict[str, list[str]]
) -> list[tuple[dict[str, str], Scenario]]:
    """A sensitivity's points: the scenario as it is, then each setting alone at its low and
    its high value (the others as in the scenario)."""
    if len(varies) * 2 + 1 > SWEEP_POINTS_MAX:
        raise ScenarioError(f"--vary names at most {(SWEEP_POINTS_MAX - 1) // 2} settings")
    out: list[tuple[dict[str, str], Scenario]] = [({}, scenario)]
    for name, values in varies.items():
        if len(values) != 2:
            raise ScenarioError(f"--vary {name}: give a low and a high value, NAME=LOW,HIGH")
        out.extend(({name: value}, scenario.with_setting(name, value)) for value in values)
    return out


def jobs(
    scenario: Scenario,
    sweeps: dict[str, list[str]],
    runs: int,
    seed: int,
    *,
    sensitivity: bool = False,
) -> list[Job]:
    """Every run of every point: the grid of `sweeps`, or with `sensitivity` each setting
    one at a time (one_at_a_time)."""
    if not 1 <= runs <= RUNS_MAX:
        raise ScenarioError(f"--runs must be 1..{RUNS_MAX}")
    grid = one_at_a_time(scenario, sweeps) if sensitivity else points(scenario, sweeps)
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
    """One run (in a worker process): its daily rows and its summary. `on_day` is told each
    day's work (`fast.day_work`), not 1 a day."""
    from tokenmall.sim import fast  # noqa: PLC0415 (fast imports this module)

    on_work = fast.on_day_work(job.scenario, on_day)
    result = run(job.scenario, np.random.default_rng(job.seed), on_work)
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
    one, through the exact engine; here (`fast.runs_here`: --workers 1, one run, or too little
    work to pay for starting worker processes) or in worker processes. Progress counts work
    (`fast.day_work`): day by day here and in local worker processes, a run's at once from
    Dask."""
    from tokenmall.sim import fast  # noqa: PLC0415 (fast imports this module)

    if client is not None:
        yield from _on_dask(all_jobs, client, fast.whole_runs(all_jobs[0].scenario, progress))
    elif fast.runs_here(all_jobs, workers):
        for job in all_jobs:
            yield run_job(job, progress)
    else:
        yield from fast.on_pool(all_jobs, workers, progress)


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
    *,
    sensitivity: bool = False,
) -> dict[str, Any]:
    by_point: dict[str, list[dict[str, Any]]] = {}
    params_of: dict[str, dict[str, str]] = {}
    for point, _run, summary in sorted(results, key=lambda item: (json.dumps(item[0]), item[1])):
        key = json.dumps(point, sort_keys=True)
        by_point.setdefault(key, []).append(summary)
        params_of[key] = point
    summary = {
        "scenario": scenario.name,
        "description": scenario.description,
        "days": scenario.days,
        "runs": runs,
        "seed": seed,
        "sweep_params": list(sweeps),
        # What reproduces the result: the exact parameters (every sweep point overrides the
        # ones named in sweep_params), the scenario file's bytes and the tool.
        "params": scenario.params.as_json(),
        "scenario_sha256": scenario.source_sha256,
        "tool_version": __version__,
        "warnings": warnings(runs),
        "points": [_point(scenario, params_of[key], group) for key, group in by_point.items()],
    }
    if sensitivity:
        summary["sensitivity"] = tornado(summary["points"], sweeps)
    return summary


def tornado(points: list[dict[str, Any]], varies: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Which setting moves the platform's result most: for each, the median result at its
    low and its high value against the scenario as it is, largest swing first."""
    by_params = {json.dumps(p["params"], sort_keys=True): p for p in points}
    base = by_params[json.dumps({})]["platform_result"]["median"]
    bars = []
    for name, (low, high) in varies.items():
        at_low = by_params[json.dumps({name: low})]["platform_result"]["median"]
        at_high = by_params[json.dumps({name: high})]["platform_result"]["median"]
        bars.append(
            {
                "name": name,
                "low": low,
                "high": high,
                "result_low": at_low,
                "result_high": at_high,
                "base": base,
                "swing": abs(at_high - at_low),
            }
        )
    return sorted(bars, key=lambda bar: -bar["swing"])


RUNS_FOR_BANDS = 20  # fewer runs than this: percentiles and bands are not to be trusted


def warnings(runs: int) -> list[str]:
    """What the reader must know before trusting the figures."""
    if runs < RUNS_FOR_BANDS:
        return [
            f"Only {runs} run{'s' if runs != 1 else ''} per point: the 5-95 % figures are the "
            f"spread of so few runs, not a confidence band; use --runs {RUNS_FOR_BANDS} or more."
        ]
    return []


def _point(
    scenario: Scenario, params: dict[str, str], group: list[dict[str, Any]]
) -> dict[str, Any]:
    losses = [
        s["loss_from_day"] if s["loss_from_day"] is not None else scenario.days for s in group
    ]
    median_loss = statistics.median_low(losses)
    point: dict[str, Any] = {
        "params": params,
        "runs": len(group),
        "final_price": _spread([s["final_price"] for s in group]),
        "platform_result": _spread([s["platform_result"] for s in group]),
        **{name: _spread([s[name] for s in group]) for name in RESULT_PARTS},
        "loss_from_day": median_loss if median_loss < scenario.days else None,
        "runs_with_loss": sum(1 for s in group if s["loss_from_day"] is not None),
        "share_in_profit": statistics.fmean(s["share_in_profit"] for s in group),
        "share_losing": statistics.fmean(s["share_losing"] for s in group),
        "paying_consumers": statistics.fmean(s["paying_consumers"] for s in group),
        "gini": statistics.fmean(s["gini"] for s in group),
        "cohorts": _mean_cohorts([s["cohorts"] for s in group]),
        "orders": statistics.fmean(s["orders"] for s in group),
        "dividends": statistics.fmean(s["dividends"] for s in group),
        "cash_out": statistics.fmean(s["cash_out"] for s in group),
        "sales_drop": statistics.fmean(s["sales_drop"] for s in group),
        "event_price_changes": _mean_events([s["event_price_changes"] for s in group]),
    }
    # Value at risk: the loss the platform's result exceeds in only 5 % of the runs (0: even
    # the 5th percentile is no loss).
    point["value_at_risk_95"] = max(0.0, -_number(point["platform_result"]["p5"]))
    point["verdict_level"] = verdict_level(point)
    point["verdict"] = verdict(scenario, point)
    point["explanations"] = explanations(scenario, point)
    return point


# The platform's result in parts (what is cash, what is owed, what it holds), each a spread.
RESULT_PARTS = ("operator_cash", "sp_owed", "treasury_value", "cash_owed", "ep_held")


def _number(value: float | None) -> float:
    return 0.0 if value is None else value


def _mean_events(per_run: list[list[list[float]]]) -> list[list[float]]:
    """Each event day's price change, the mean over runs."""
    days: dict[int, list[float]] = {}
    for events in per_run:
        for day, change in events:
            days.setdefault(int(day), []).append(change)
    return [[day, statistics.fmean(changes)] for day, changes in sorted(days.items())]


Z_95 = 1.959963984540054  # the normal quantile of 97.5 %: a two-sided 95 % interval


def _spread(values: list[float]) -> dict[str, float | None]:
    """A figure over the runs: its median and 5th/95th percentiles (what the runs did), and the
    mean with a 95 % confidence interval of that mean (how well the runs pin it down: the
    normal approximation, fair from about 20 runs; one run gives none: None)."""
    data = np.asarray(values, dtype=np.float64)
    p5, median, p95 = np.percentile(data, [5, 50, 95])
    mean = float(data.mean())
    half = Z_95 * float(data.std(ddof=1)) / math.sqrt(data.size) if data.size > 1 else None
    return {
        "median": float(median),
        "p5": float(p5),
        "p95": float(p95),
        "mean": mean,
        "ci95_low": None if half is None else mean - half,
        "ci95_high": None if half is None else mean + half,
    }


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


MOST = 0.5  # "most consumers"


def verdict_level(point: dict[str, Any]) -> str:
    """ "loss": the platform's position stays below zero to the end (median run); "consumers
    lose": it does not, but most paying consumers get back less than they paid; "holds":
    neither. A result good for the operator is not called good when consumers pay for it."""
    if point["loss_from_day"] is not None:
        return "loss"
    if point["share_losing"] >= MOST:
        return "consumers lose"
    return "holds"


def verdict(scenario: Scenario, point: dict[str, Any]) -> str:
    """One plain paragraph: does the margin cover the promises, from when not, who pays."""
    result = point["platform_result"]["median"]
    day = point["loss_from_day"]
    who = (
        f" {point['share_losing']:.1%} of the {point['paying_consumers']:,.0f} consumers who "
        "paid cash get back less than they paid (their unsold EP counted at what selling "
        f"them now pays, after the sale fee); {point['share_in_profit']:.1%} get back more."
    )
    if day is None and point["verdict_level"] == "consumers lose":
        return (
            f"The operator's margin covers its promises, but consumers pay for it: after "
            f"{scenario.days} days the platform's position is {result:+,.2f} CNY in the median "
            f"run ({point['runs_with_loss']} of {point['runs']} runs end in a lasting loss).{who}"
        )
    if day is None:
        return (
            f"The margin covers the promises in the median run: after {scenario.days} days the "
            f"platform's position is {result:+,.2f} CNY "
            f"({point['runs_with_loss']} of {point['runs']} runs end in a lasting loss).{who}"
        )
    return (
        f"The margin does not cover the promises: from day {day} the platform's position "
        f"stays below zero (median {result:+,.2f} CNY after {scenario.days} days); the operator "
        "carries that loss, paying pool contributions and minted EP out of a margin too thin "
        f"for them, and owing the dividends it paid in SP.{who}"
    )


def explanations(scenario: Scenario, point: dict[str, Any]) -> list[str]:
    """Why the figures are what they are, in words, where a reader would misread them."""
    said: list[str] = []
    cash, sp_owed = point["operator_cash"]["median"], point["sp_owed"]["median"]
    treasury = point["treasury_value"]["median"]
    owed_cash, held = point["cash_owed"]["median"], point["ep_held"]["median"]
    said.append(
        f"The platform's position is its cash, {cash:+,.2f} CNY (below zero: money the "
        f"operator put in during the run), less the SP it still owes, {sp_owed:,.2f} CNY "
        f"(dividends are paid in SP and become cash only when a merchant redeems them), plus "
        f"its own EP at the last price, {treasury:,.2f} CNY. Besides, {owed_cash:,.2f} CNY of "
        f"sellers' cash and {held:,.2f} CNY of EP held by "
        "consumers and merchants are owed out of the pool, which the contributions funded."
    )
    if point["sales_drop"] >= MOST:
        said.append(
            f"Sales in the last 30 days are {point['sales_drop']:.0%} below their best month. "
            "Fewer sales also mean fewer promises (contributions, dividends, SP), so the "
            "operator's position can look better than under steady growth: the cost falls on "
            "the consumers who bought before the fall and now hold EP nobody buys with new money."
        )
    for day, change in point["event_price_changes"]:
        if change > 0:
            said.append(
                f"On day {day}, when holders sold at once, the price rose {change:.1%}: a sale "
                "pays less than the displayed value and the fee stays in the pool, so every sale "
                "raises the price for those who hold, while the pool pays the sellers out."
            )
    if point["verdict_level"] == "consumers lose" and point["platform_result"]["median"] >= 0:
        said.append(
            "The operator's position holds while most paying consumers lose: the verdict is not "
            "green for them."
        )
    if point["dividends"] == 0 and point["cash_out"] == 0:
        said.append(
            "Nobody was paid anything: with orders only, the price rises, but EP are worth only "
            "what selling them pays, and selling pays the price less the sale fee."
        )
    return said


def write_outputs(
    out: Path,
    summary: dict[str, Any],
    rows: list[dict[str, Any]],
    report: Callable[..., None] | None,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows.sort(
        key=lambda row: (
            tuple(row.get(name, "") for name in summary["sweep_params"]),
            row["run"],
            row["day"],
        )
    )
    columns = metrics_columns(rows, summary["sweep_params"])
    with (out / "metrics.csv").open("w", newline="", encoding="utf-8") as handle:
        # restval: a sensitivity's point names only the setting it changes
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    if report is not None:
        report(out / "report.html", summary, rows)


def metrics_columns(rows: list[dict[str, Any]], sweep_params: list[str]) -> list[str]:
    """metrics.csv's columns: the first row's, with every swept name after run and day (in a
    sensitivity, each point names only the setting it changes)."""
    if not rows:
        return ["run", "day", *sweep_params]
    first = [name for name in rows[0] if name not in sweep_params]
    return [*first[:2], *sweep_params, *first[2:]]


CONSUMER_ROWS_MAX = 5_000_000  # consumer-runs in one consumers table (kept in memory)


def consumer_table(
    results: list[tuple[dict[str, str], int, dict[str, Any]]], sweep_params: list[str]
) -> dict[str, list[Any]]:
    """Every consumer of every run, column by column: the run, the sweep values, then
    metrics.CONSUMER_COLUMNS (runs whose summary carries no consumer rows are left out)."""
    table: dict[str, list[Any]] = {"run": [], **{name: [] for name in sweep_params}}
    table |= {name: [] for name in CONSUMER_COLUMNS}
    ordered = sorted(results, key=lambda r: (tuple(r[0].get(n, "") for n in sweep_params), r[1]))
    for point, run_index, summary in ordered:
        columns = summary.get("consumer_rows")
        if not columns:
            continue
        count = len(columns["consumer"])
        if len(table["run"]) + count > CONSUMER_ROWS_MAX:
            raise ScenarioError(
                f"more than {CONSUMER_ROWS_MAX:,} consumer rows: run fewer runs or days"
            )
        table["run"] += [run_index] * count
        for name in sweep_params:
            table[name] += [point.get(name, "")] * count
        for name in CONSUMER_COLUMNS:
            table[name] += columns[name]
    return table


def cohort_table(summary: dict[str, Any]) -> dict[str, list[Any]]:
    """Each point's weekly cohorts (the mean over its runs), column by column."""
    names = summary["sweep_params"]
    table: dict[str, list[Any]] = {name: [] for name in names}
    for point in summary["points"]:
        for cohort in point["cohorts"]:
            for name in names:
                table[name].append(point["params"].get(name, ""))
            for key, value in cohort.items():
                table.setdefault(key, []).append(value)
    return table


def write_tables(
    out: Path, summary: dict[str, Any], results: list[tuple[dict[str, str], int, dict[str, Any]]]
) -> None:
    """consumers.csv/.parquet and cohorts.csv/.parquet beside metrics.csv (pyarrow: a
    million consumer rows write in about a second)."""
    import pyarrow as pa  # noqa: PLC0415 (only when tables are written)
    import pyarrow.csv as pa_csv  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    for name, columns in (
        ("consumers", consumer_table(results, summary["sweep_params"])),
        ("cohorts", cohort_table(summary)),
    ):
        table = pa.table(columns)
        pq.write_table(table, out / f"{name}.parquet")
        pa_csv.write_csv(table, out / f"{name}.csv")
