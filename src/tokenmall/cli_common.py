"""What every `tokenmall` command module shares: the --db option and the one-line failure."""

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

EXIT_BAD_INPUT = 2
DB_HELP = (
    "The ledger: a SQLite file path or sqlite:/// URL, or a postgresql:// URL "
    "[default: $TOKENMALL_DB, else tokenmall.db]"
)


def db_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", "db", metavar="URL", help=DB_HELP)(function)


def fail(message: str) -> NoReturn:
    """Bad input: one line on standard error, exit status 2."""
    click.echo(f"tokenmall: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)
