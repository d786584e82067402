"""The `tokenmall` command line. Thin: parse, call the core, format.

Every failure on bad input is one line on stderr and exit status 2, never a traceback. Each
command's module is imported only when that command runs (cli_common.App): `replay`, `demo`
and `--version` start without the ledger, the server and their libraries, which take a
second to import; the commands on a ledger live in cli_ledger.py, the server in cli_serve.py.
"""

from pathlib import Path

import click

from tokenmall.cli_common import fail as _fail
from tokenmall.cli_common import run_app, stdout, tokenmall_group
from tokenmall.core.canonical import canonical_json
from tokenmall.demo import render_seed_example
from tokenmall.jsonl import InputError, open_input, read_params, replay_lines, scenario_lines
from tokenmall.runtime import tune_gc

DEMO_ORDERS_MAX = 100_000
# Every other command, by name: "module:attribute", imported when it runs.
LAZY_COMMANDS = {
    "ingest": "tokenmall.cli_ledger:ingest",
    "state": "tokenmall.cli_ledger:state",
    "journal": "tokenmall.cli_ledger:journal",
    "audit": "tokenmall.cli_ledger:audit",
    "login-link": "tokenmall.cli_ledger:login_link",
    "token": "tokenmall.cli_ledger:token",
    "serve": "tokenmall.cli_serve:serve",
    "payouts": "tokenmall.cli_payouts:payouts",
    "staff": "tokenmall.cli_staff:staff",
    "simulate": "tokenmall.cli_sim:simulate",
    "goal-seek": "tokenmall.cli_sim:goal_seek",
    "simulate-compare": "tokenmall.cli_sim:simulate_compare",
}


def _app() -> None:
    """tokenmall: an exact, auditable engine for consumption-appreciation points
    economies (消费增值 / 股权电商): equity points (EP) priced at pool ÷ supply,
    stable points (SP), daily dividends within a quota, forced exits (出局).
    """


app = tokenmall_group(_app, LAZY_COMMANDS)


@app.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--params",
    "params_path",
    type=click.Path(path_type=Path),
    help='JSON object of parameter overrides (SPEC §2), e.g. {"referral_rates": ["0.10"]}.',
)
def replay(scenario: Path, params_path: Path | None) -> None:
    """Apply every command of SCENARIO.jsonl (one JSON command per line; - reads standard
    input) and print the canonical state as JSON (SPEC §7). Rejected lines are listed in
    "errors" with their line number and code; the output is byte-identical for identical input.
    """
    try:
        params = read_params(params_path)
        with open_input(scenario) as stream:
            state = replay_lines(scenario_lines(stream, str(scenario)), params)
    except InputError as error:
        _fail(str(error))
    stdout().write(canonical_json(state))


@app.command()
@click.option(
    "--orders",
    type=click.IntRange(1, DEMO_ORDERS_MAX),
    default=100,
    show_default=True,
    help="How many consumers buy 100.00 each.",
)
def demo(orders: int) -> None:
    """Show the seeds' worked example: price, pool and supply as 100 consumers each buy
    100.00 CNY (orders 1-4 and the last), and what the first buyer's EP are worth.
    """
    click.echo(render_seed_example(orders))


def main() -> None:
    """Entry point: the installed `tokenmall`, and `python -m tokenmall.cli`."""
    tune_gc()
    run_app(app)


if __name__ == "__main__":
    main()
