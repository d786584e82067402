"""The simulator's commands: `tokenmall simulate`, `goal-seek` and `simulate-compare`, thin
over the sim package. Nothing here loads the ledger's modules (SQLAlchemy, the server): the
`tokenmall` imports each command's module only when it runs (cli.py), so a simulation that
takes a tenth of a second does not wait most of a second for start-up."""

import json
from pathlib import Path
from typing import Any

import click

from tokenmall.cli_common import SEED_MAX
from tokenmall.cli_common import fail as _fail
from tokenmall.cli_common import progress_bar as _progress_bar


@click.command()
@click.argument("scenario_path", metavar="SCENARIO.toml", type=click.Path(path_type=Path))
@click.option("--runs", type=click.IntRange(1, 10_000), default=1, show_default=True)
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True)
@click.option(
    "--sweep",
    "sweep_specs",
    multiple=True,
    metavar="NAME=V1,V2,...",
    help="Sweep a SPEC parameter (contribution_rate) or a scenario field "
    "(platform.gross_margin) over these values (repeat for a grid).",
)
@click.option(
    "--vary",
    "vary_specs",
    multiple=True,
    metavar="NAME=LOW,HIGH",
    help="One-at-a-time sensitivity: each NAME at LOW and at HIGH, the rest as in the "
    "scenario (repeat; not with --sweep). summary.json's sensitivity ranks them.",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Local worker processes (default: one per core).",
)
@click.option("--scheduler", default=None, metavar="ADDRESS", help="A Dask scheduler to run on.")
@click.option(
    "--exact",
    is_flag=True,
    help="Run every order through the rules engine, even where the order-only fast path "
    "would compute the scenario.",
)
@click.option(
    "--report/--no-report",
    default=True,
    show_default=True,
    help="Write OUT/report.html (on many run-days it takes longer than the runs).",
)
@click.option(
    "--tables/--no-tables",
    default=False,
    show_default=True,
    help="Also write OUT/consumers and OUT/cohorts (.parquet, .csv): a row per consumer per "
    "run (a million rows for 100 runs of 10,000 consumers; pyarrow and pandas load in 0.3 s).",
)
def simulate(
    scenario_path: Path,
    runs: int,
    seed: int,
    sweep_specs: tuple[str, ...],
    vary_specs: tuple[str, ...],
    out_dir: Path,
    workers: int | None,
    scheduler: str | None,
    exact: bool,
    report: bool,
    tables: bool,
) -> None:
    """Simulate SCENARIO.toml day by day: RUNS Monte Carlo runs per sweep point. Writes
    OUT/report.html, OUT/metrics.csv and OUT/summary.json; with --tables also each consumer's
    and each weekly cohort's returns as OUT/consumers.parquet and .csv, OUT/cohorts.parquet
    and .csv.

    A scenario of cash orders only (no dividends, exits, referrals, events, nothing but
    holding: see docs/simulator.md) goes through the order-only fast path (NumPy, float64,
    prices within a relative 1e-6 of the rules engine); any other, or any with --exact,
    through the exact rules engine. The output and summary.json's "engine" say which."""
    from tokenmall.sim import fast, runner  # noqa: PLC0415 (NumPy and the model load only here)
    from tokenmall.sim.scenario import ScenarioError, load_scenario  # noqa: PLC0415

    if scheduler is not None and not scheduler.strip():
        _fail("--scheduler is empty: give the scheduler's address, e.g. tcp://host:8786")
    try:
        scenario = load_scenario(scenario_path)
        if sweep_specs and vary_specs:
            raise ScenarioError("--sweep and --vary do not go together: a grid or one at a time")
        sensitivity = bool(vary_specs)
        sweeps = runner.parse_sweeps(vary_specs or sweep_specs)
        jobs = runner.jobs(scenario, sweeps, runs, seed, sensitivity=sensitivity)
        # Every sweep point must be one the fast path computes (a swept rate may not be).
        reasons = ["--exact"] if exact else [fast.why_not_fast(job.scenario) for job in jobs]
        why_exact = next((reason for reason in reasons if reason is not None), None)
        if why_exact is None:  # the fast path runs here, one run after another
            runner.check_memory(jobs, 1, None)
        else:
            runner.check_memory(jobs, workers, scheduler)
        made, results = [], []
        exact_runs: list[int] = []  # runs the fast path handed to the rules engine
        with (
            runner.dask_client(scheduler) as client,
            _progress_bar(fast.work_total(jobs), "simulating (orders + consumer-days)") as advance,
        ):
            _make_out_dir(out_dir)  # now: after hours of runs is too late to find it unwritable
            outcomes = (
                runner.execute(jobs, workers, client, advance)
                if why_exact is not None
                else fast.execute_fast(jobs, advance, exact_runs)
            )
            for point, run_index, daily, summary in outcomes:
                made.append((point, run_index, daily))
                results.append((point, run_index, summary))
    except ScenarioError as error:
        _fail(str(error))
    summary = runner.summarize(scenario, runs, seed, sweeps, results, sensitivity=sensitivity)
    engine = _engine_said(summary, why_exact, exact, len(exact_runs), len(jobs), scheduler)

    if report:
        from tokenmall.sim.report import write_report  # noqa: PLC0415 (only when asked)
    try:
        if why_exact is None:  # the fast path's rows are columns: written without a dict a row
            fast.write_outputs(out_dir, summary, made, write_report if report else None)
        else:
            # the rules engine's rows are dicts already
            rows = [row for _p, _r, daily in made if isinstance(daily, list) for row in daily]
            runner.write_outputs(out_dir, summary, rows, write_report if report else None)
        if tables:  # pyarrow and the pandas it loads take longer than many fast-path runs
            runner.write_tables(out_dir, summary, results)
    except OSError as error:
        _fail(f"cannot write to {out_dir}: {error.strerror or error}")
    for point in summary["points"]:
        label = ", ".join(f"{k}={v}" for k, v in point["params"].items())
        click.echo(f"{label + ': ' if label else ''}{point['verdict']}")
    for bar in summary.get("sensitivity", []):
        click.echo(
            f"sensitivity {bar['name']}: {bar['low']} -> {bar['result_low']:+,.2f} CNY, "
            f"{bar['high']} -> {bar['result_high']:+,.2f} CNY (swing {bar['swing']:,.2f})"
        )
    click.echo(f"engine: {engine}")
    click.echo(f"wrote {_written(out_dir, report, tables)}")


def _written(out_dir: Path, report: bool, tables: bool) -> str:
    """What `simulate` wrote, in words."""
    written = [str(out_dir / "report.html")] if report else []
    written.append("metrics.csv" if written else str(out_dir / "metrics.csv"))
    written += ["consumers and cohorts (.parquet, .csv)"] if tables else []
    return f"{', '.join(written)} and summary.json"


def _engine_said(
    summary: dict[str, Any],
    why_exact: str | None,
    exact: bool,
    exact_runs: int,
    jobs: int,
    scheduler: str | None,
) -> str:
    """Which path `simulate` took, in summary.json ("engine": "fast" or "exact", the detail,
    the runs made by the rules engine) and as the words it prints."""
    from tokenmall.sim.fast import FAST_PATH_RELATIVE_TOLERANCE  # noqa: PLC0415

    if why_exact is None:
        engine = (
            "order-only fast path (NumPy, float64; prices within a relative "
            f"{FAST_PATH_RELATIVE_TOLERANCE:g} of the rules engine)"
        )
        if exact_runs:
            engine += f"; {exact_runs} of {jobs} runs through the rules engine"
        if scheduler is not None:  # it was reached, and so is a good address, but not needed
            engine += ", here: the Dask cluster was not used"
    else:
        engine = f"exact rules engine ({why_exact if exact else 'not order-only: ' + why_exact})"
    summary["engine"] = "fast" if why_exact is None else "exact"
    summary["engine_detail"] = engine
    summary["engine_exact_runs"] = exact_runs if why_exact is None else jobs
    return engine


def _make_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        _fail(f"{out_dir}: exists and is not a directory")
    except OSError as error:
        _fail(f"cannot write to {out_dir}: {error.strerror or error}")


@click.command("goal-seek")
@click.argument("scenario_path", metavar="SCENARIO.toml", type=click.Path(path_type=Path))
@click.option(
    "--setting",
    required=True,
    metavar="NAME",
    help="A SPEC parameter (contribution_rate) or a scenario field (platform.gross_margin).",
)
@click.option("--between", required=True, metavar="LOW,HIGH", help="Where to look.")
@click.option(
    "--figure",
    default="platform_result",
    show_default=True,
    help="The summary figure to bring to the target (its median over the runs).",
)
@click.option("--target", type=float, default=0.0, show_default=True)
@click.option("--tolerance", default="0.0001", show_default=True, help="Of the setting.")
@click.option("--runs", type=click.IntRange(1, 1_000), default=5, show_default=True)
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the answer and every evaluation as JSON here.",
)
def goal_seek(
    scenario_path: Path,
    setting: str,
    between: str,
    figure: str,
    target: float,
    tolerance: str,
    runs: int,
    seed: int,
    out_path: Path | None,
) -> None:
    """The value of one setting at which a figure of SCENARIO.toml reaches the target (by
    default: where the platform's position breaks even), by bisection; every evaluation runs
    the same seeds, so the answer moves with the setting, not with luck."""
    from tokenmall.sim import analysis  # noqa: PLC0415 (NumPy and the model load only here)
    from tokenmall.sim.scenario import Scenario, ScenarioError, load_scenario  # noqa: PLC0415

    if figure not in analysis.GOAL_FIGURES:
        _fail(f"--figure must be one of {', '.join(analysis.GOAL_FIGURES)}")
    low, comma, high = between.partition(",")
    if not comma or not low.strip() or not high.strip():
        _fail("--between: write it as LOW,HIGH, e.g. 0.05,0.5")

    def evaluate(scenario: Scenario) -> float:
        return analysis.median_of(scenario, figure, runs, seed)

    try:
        found = analysis.goal_seek(
            load_scenario(scenario_path),
            setting,
            low.strip(),
            high.strip(),
            evaluate,
            target=target,
            tolerance=tolerance,
            on_step=lambda step: click.echo(
                f"  {setting} = {step['value']}: {figure} {step['result']:+,.2f}", err=True
            ),
        )
    except ScenarioError as error:
        _fail(str(error))
    bracket = found["between"]
    within = "" if bracket is None else f" (between {bracket[0]} and {bracket[1]})"
    click.echo(
        f"{setting} = {found['value']}{within}: {figure} {found['result']:+,.2f} "
        f"(target {target:g}; {len(found['evaluations'])} evaluations of "
        f"{runs} run{'s' if runs != 1 else ''} each)"
    )
    if out_path is not None:
        try:
            out_path.write_text(json.dumps(found, indent=1) + "\n", encoding="utf-8")
        except OSError as error:
            _fail(f"cannot write {out_path}: {error.strerror or error}")


@click.command("simulate-compare")
@click.argument("left_dir", metavar="A_DIR", type=click.Path(path_type=Path))
@click.argument("right_dir", metavar="B_DIR", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path),
    required=True,
    help="The comparison page to write (HTML).",
)
def simulate_compare(left_dir: Path, right_dir: Path, out_path: Path) -> None:
    """Two results of `tokenmall simulate --out` side by side on one page: what differs
    between them (scenario file, parameters, engine), the headline figures and their
    differences (B − A), and the price and the platform's position over the days."""
    from tokenmall.sim.report import load_result, write_comparison  # noqa: PLC0415

    sides = []
    for directory in (left_dir, right_dir):
        if not (directory / "summary.json").is_file():
            _fail(f"{directory}: no summary.json here (give a folder tokenmall simulate wrote)")
        try:
            sides.append(load_result(directory))
        except (OSError, ValueError, KeyError) as error:  # unreadable, not JSON, not a summary
            _fail(f"{directory}: cannot read the result: {error}")
    try:
        write_comparison(out_path, sides[0], sides[1])
    except OSError as error:
        _fail(f"cannot write {out_path}: {error.strerror or error}")
    click.echo(f"wrote {out_path}")
