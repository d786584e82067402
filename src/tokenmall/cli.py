"""The `tokenmall` command line. Thin: parse, call the core, format.

Every failure on bad input is one line on stderr and exit status 2, never a traceback.
"""

import sys
from pathlib import Path
from typing import NoReturn

import click

from tokenmall import __version__
from tokenmall.core.canonical import canonical_json
from tokenmall.demo import render_seed_example
from tokenmall.replay import InputError, open_input, read_params, replay_lines, scenario_lines

EXIT_BAD_INPUT = 2
DEMO_ORDERS_MAX = 100_000


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tokenmall")
def app() -> None:
    """tokenmall: an exact, auditable engine for consumption-appreciation points
    economies (消费增值 / 股权电商): equity points (EP) priced at pool ÷ supply,
    stable points (SP), daily dividends within a quota, forced exits (出局).
    """


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
    sys.stdout.write(canonical_json(state))


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


def _fail(message: str) -> NoReturn:
    click.echo(f"tokenmall: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def main() -> None:
    """Entry point: usage errors are one line too, not Click's multi-line usage block."""
    try:
        app.main(standalone_mode=False)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx else "tokenmall"
        _fail(f"{error.format_message()} (see '{command} --help')")
    except click.ClickException as error:
        _fail(error.format_message())
    except click.Abort:
        _fail("aborted")
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): nothing more to say, and nothing to flush.
        sys.stdout = None
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("tokenmall: interrupted", err=True)
        sys.exit(130)
    except OSError as error:
        click.echo(f"tokenmall: error: cannot write the output ({error.strerror})", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
