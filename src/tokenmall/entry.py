"""The installed `tokenmall` command. The simulator's commands start from cli_sim.py alone;
every other command from cli.py, which loads the ledger, the server and their libraries (most
of a second): `tokenmall simulate` of an order-only scenario takes less than that in all."""

import sys

import click

from tokenmall.cli_common import run_app, tokenmall_group
from tokenmall.runtime import tune_gc

LIGHT_COMMANDS = ("simulate", "goal-seek", "simulate-compare")


def main() -> None:
    tune_gc()
    if len(sys.argv) > 1 and sys.argv[1] in LIGHT_COMMANDS:
        run_app(_light_app())
        return
    from tokenmall.cli import app  # noqa: PLC0415 (the heavy part, only when needed)

    run_app(app)


def _light_app() -> click.Group:
    """The simulator's commands under `tokenmall`, as cli.app names them."""
    from tokenmall.cli_sim import goal_seek, simulate, simulate_compare  # noqa: PLC0415

    @tokenmall_group
    def app() -> None:
        """tokenmall's simulator."""

    for command in (simulate, goal_seek, simulate_compare):
        app.add_command(command)
    return app
