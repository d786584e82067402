"""`tokenmall staff …`: the operator console's staff accounts (create, list, password, unlock,
disable). Passwords are read from a prompt (twice) or, for scripts, from standard input with
--password-stdin; never from the command line, where `ps` and shell history would keep them."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from tokenmall.cli_common import db_option, fail
from tokenmall.ledger.store import Store, StoreError, resolve_url
from tokenmall.services import staff as staff_service
from tokenmall.services import web_sessions
from tokenmall.services.staff import StaffError, StaffRole

PASSWORD_STDIN_HELP = "Read the password from the first line of standard input."


@contextmanager
def _store(db: str | None) -> Iterator[Store]:
    try:
        store = Store(resolve_url(db), create=True)
    except StoreError as error:
        fail(str(error))
    try:
        store.migrate()
        yield store
    finally:
        store.close()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group()
def staff() -> None:
    """Staff accounts of the operator console (/console/)."""


@staff.command("create")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice([role.value for role in StaffRole]),
    required=True,
    help="admin (everything), finance (withdrawal review, payouts, reports) or support "
    "(reads only).",
)
@click.option("--password-stdin", is_flag=True, help=PASSWORD_STDIN_HELP)
@db_option
def staff_create(username: str, role: str, password_stdin: bool, db: str | None) -> None:
    """Create a staff account that logs in at /console/login."""
    password = _password(password_stdin)
    with _store(db) as store:
        try:
            staff_service.create_staff(store, username, StaffRole(role), password)
        except (StaffError, StoreError) as error:
            fail(str(error))
    click.echo(f"tokenmall: created {role} staff {username}", err=True)


@staff.command("list")
@db_option
def staff_list(db: str | None) -> None:
    """Every staff account: username, role, status, created."""
    with _store(db) as store:
        members = staff_service.list_staff(store)
    rows = [("USERNAME", "ROLE", "STATUS", "CREATED")]
    for member in members:
        status = "disabled" if member.disabled_at else "active"
        rows.append((member.username, member.role, status, member.created_at[:19]))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@staff.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help=PASSWORD_STDIN_HELP)
@db_option
def staff_password(username: str, password_stdin: bool, db: str | None) -> None:
    """Set a new password (and unlock); the member's sessions end."""
    password = _password(password_stdin)
    with _store(db) as store:
        try:
            staff_service.set_password(store, username, password)
        except StaffError as error:
            fail(str(error))
        web_sessions.end_all_of(store, "staff", username)
    click.echo(f"tokenmall: new password for {username}", err=True)


@staff.command("unlock")
@click.argument("username")
@db_option
def staff_unlock(username: str, db: str | None) -> None:
    """Open an account locked by wrong passwords."""
    with _store(db) as store:
        try:
            staff_service.unlock(store, username)
        except StaffError as error:
            fail(str(error))
    click.echo(f"tokenmall: unlocked {username}", err=True)


@staff.command("disable")
@click.argument("username")
@db_option
def staff_disable(username: str, db: str | None) -> None:
    """Stop an account from logging in; its sessions end at once."""
    with _store(db) as store:
        try:
            staff_service.disable(store, username)
        except StaffError as error:
            fail(str(error))
        ended = web_sessions.end_all_of(store, "staff", username)
    click.echo(f"tokenmall: disabled {username} ({ended} sessions ended)", err=True)
