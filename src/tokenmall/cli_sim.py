"""`tokenmall goal-seek` and `tokenmall simulate-compare`: questions beyond one simulation,
thin over sim/analysis.py and sim/report.py. (`tokenmall simulate` itself is in cli.py.)"""

import json
from pathlib import Path

import click

from tokenmall.cli_common import fail as _fail


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
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True)
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
    within = "" if found["between"] is None else f" (between {found['between'][0]} and "
    within += "" if found["between"] is None else f"{found['between'][1]})"
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
