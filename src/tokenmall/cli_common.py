"""What every `tokenmall` command module shares: the --db option, the one-line failure, the
progress bar, the group that loads a command's module only when that command runs (`App`) and
the way the program answers whatever goes wrong (`run_app`). Light on purpose: every command
starts from here and cli.py, and imports only what it uses.
"""

import errno
import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, TextIO

import click

from tokenmall import __version__
from tokenmall.core.errors import InvariantViolation

EXIT_BAD_INPUT = 2
EXIT_AUDIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
SEED_MAX = 2**53 - 1
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


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; silence in logs and pipes."""
    if not sys.stderr.isatty():
        yield lambda _done: None
        return
    with click.progressbar(
        length=total, label=label, file=sys.stderr, show_pos=True, show_percent=True
    ) as bar:
        yield bar.update


class Interrupted(Exception):
    """Ctrl-C, carried past Click, which would turn it into Abort ("aborted", exit status 2)."""


class App(click.Group):
    """The `tokenmall` group: Ctrl-C inside a command is Interrupted, not Click's Abort; and
    commands named in `lazy` ("name": "module:attribute") are imported when they run (or
    when --help lists them), not when the program starts. The ledger, the server and their
    libraries took a second to import, which `tokenmall replay`, `simulate` and `--version`
    paid before they did anything (Click's documented pattern, "Lazily Loading Subcommands")."""

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module_name, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):  # a wrong entry: a bug, said plainly
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted from None


def tokenmall_group(
    command: Callable[[], None], lazy: Mapping[str, str] | None = None
) -> click.Group:
    """`command` as the `tokenmall` group (its docstring the help): -h as --help, --version,
    Ctrl-C as Interrupted, `lazy` commands imported when used (App)."""
    versioned = click.version_option(__version__, prog_name="tokenmall")(command)
    settings = {"help_option_names": ["-h", "--help"]}
    return click.group(cls=App, lazy=lazy, context_settings=settings)(versioned)


def stdout() -> TextIO:
    """Standard output, or OSError if the program started with it closed (>&-): run_app
    reports that as it reports a full disk."""
    if sys.stdout is None:
        raise OSError(errno.EBADF, "standard output is closed")
    return sys.stdout


def interrupted() -> NoReturn:
    click.echo("tokenmall: interrupted", err=True)
    sys.exit(EXIT_INTERRUPTED)


def run_app(app: click.Group) -> None:
    """Run the command line: usage errors are one line too, not Click's multi-line usage
    block; a database failing mid-command is one line, not a traceback."""
    try:
        app.main(standalone_mode=False)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx else "tokenmall"
        fail(f"{error.format_message()} (see '{command} --help')")
    except click.ClickException as error:
        fail(error.format_message())
    except click.Abort as error:
        if isinstance(error.__cause__, KeyboardInterrupt):  # Ctrl-C while Click parsed
            interrupted()
        fail("aborted")
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): nothing more to say, and nothing to flush.
        sys.stdout = None
        sys.exit(1)
    except (Interrupted, KeyboardInterrupt):
        interrupted()
    except InvariantViolation as error:
        # A bug in the rules (an ingest stops before committing the batch that showed it):
        # not bad input, so status 1, and one line to report.
        click.echo(f"tokenmall: FATAL: SPEC §6 invariant violated: {error}", err=True)
        sys.exit(EXIT_AUDIT_FAILED)
    except OSError as error:
        click.echo(f"tokenmall: error: cannot write the output ({error.strerror})", err=True)
        sys.exit(1)
    except Exception as error:
        if _database_error(error):
            # A database that fails mid-command (server gone, disk full): one line.
            text = str(getattr(error, "orig", None) or error).strip()
            fail(f"database error: {text.splitlines()[0] if text else type(error).__name__}")
        raise


def _database_error(error: Exception) -> bool:
    """Whether SQLAlchemy raised it (looked up only if a command loaded SQLAlchemy)."""
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(error, errors.SQLAlchemyError)
