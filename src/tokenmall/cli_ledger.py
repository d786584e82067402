"""`tokenmall` commands on a ledger: ingest, state, journal export, audit verify, login-link
and the API's tokens. Imported only when one of them runs (cli.py's LAZY_COMMANDS)."""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from tokenmall.cli_common import EXIT_AUDIT_FAILED, db_option, stdout
from tokenmall.cli_common import fail as _fail
from tokenmall.cli_common import progress_bar as _progress_bar
from tokenmall.core.canonical import canonical_json
from tokenmall.core.params import Params
from tokenmall.jsonl import InputError, read_params
from tokenmall.ledger.audit import verify
from tokenmall.ledger.ingest import check_file, plan_ingest, run_ingest
from tokenmall.ledger.ledger import Ledger, Settings, utc_now
from tokenmall.ledger.store import Store, StoreError, resolve_url
from tokenmall.ledger.views import export_lines, open_reader, read_meta, read_state

BATCH_MAX = 100_000
# Limits on the integer options: beyond them a value is a typo, and some would overflow (a key
# honoured for 10**14 days reaches before year 1: OverflowError in datetime).
SNAPSHOT_EVERY_MAX = 1_000_000_000  # journal entries; more is "never"
KEY_DAYS_MAX = 36_500  # a century


@click.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@db_option
@click.option(
    "--params",
    "params_path",
    type=click.Path(path_type=Path),
    help="Starting parameter overrides (SPEC §2) of a new ledger (an existing one keeps its own).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, BATCH_MAX),
    default=Settings.batch_max,
    show_default=True,
    help="Commands per transaction (group commit).",
)
@click.option(
    "--snapshot-every",
    type=click.IntRange(1, SNAPSHOT_EVERY_MAX),
    default=Settings.snapshot_every,
    show_default=True,
    help="Journal entries between snapshots of the state.",
)
@click.option(
    "--key-days",
    type=click.IntRange(1, KEY_DAYS_MAX),
    default=Settings.key_retention_days,
    show_default=True,
    help="Days an idempotency key is honoured.",
)
@click.option(
    "--defer-read-models",
    is_flag=True,
    help="Skip the statements and price history during this load (faster); the next "
    "`serve` or ingest without this flag fills them in from the journal when it starts.",
)
def ingest(
    scenario: Path,
    db: str | None,
    params_path: Path | None,
    batch_size: int,
    snapshot_every: int,
    key_days: int,
    defer_read_models: bool,
) -> None:
    """Apply every command of SCENARIO.jsonl durably to the ledger, creating it if needed.
    Resumable: killed and run again, it continues where the last commit ended, and applies no
    command twice. A command may carry "key", its idempotency key. Every line is checked before
    anything is applied: a bad line stops the ingest with nothing changed.
    """
    settings = Settings(
        batch_max=batch_size,
        snapshot_every=snapshot_every,
        key_retention_days=key_days,
        read_models=not defer_read_models,
    )
    try:
        params = read_params(params_path) if params_path is not None else None
        checked = check_file(scenario)  # before the ledger exists: a bad file creates nothing
        with Ledger.open(db, settings, params) as ledger:
            _check_same_params(ledger, params)
            plan = plan_ingest(ledger, checked)
            with _progress_bar(checked.commands, "ingest") as advance:
                summary = run_ingest(ledger, plan, advance)
            if not ledger.try_snapshot():
                click.echo(
                    f"tokenmall: warning: no snapshot saved ({ledger.snapshot_error}); "
                    "start-up will replay more of the journal",
                    err=True,
                )
            head = (ledger.head_seq, ledger.head_hash)
    except (InputError, StoreError) as error:
        _fail(str(error))
    click.echo(
        f"{scenario}: {summary.applied} applied, {summary.rejected} rejected by the rules, "
        f"{summary.replayed} already applied (same key), {summary.skipped} done by an earlier run; "
        + (
            f"{summary.duplicate_payments} refused (their payment_id was already credited); "
            if summary.duplicate_payments
            else ""
        )
        + f"journal head: entry {head[0]}, hash {head[1]}"
    )


def _check_same_params(ledger: Ledger, params: Params | None) -> None:
    if params is None:
        return
    given = json.dumps(params.as_json(), sort_keys=True)
    if given != ledger.meta.params_json:
        raise InputError(
            "this ledger already exists with other starting parameters "
            "(change them with a set_params command)"
        )


@click.command()
@db_option
def state(db: str | None) -> None:
    """Print the ledger's canonical state (SPEC §7), as `replay` prints it. A rejected entry is
    listed in "errors" under its journal sequence number."""
    try:
        store = open_reader(resolve_url(db))
        try:
            result = read_state(store)
        finally:
            store.close()
    except StoreError as error:
        _fail(str(error))
    stdout().write(canonical_json(result))


@click.group()
def journal() -> None:
    """The ledger's journal of commands."""


@journal.command("export")
@db_option
@click.option(
    "--params-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the ledger's starting parameters here, for `replay --params`.",
)
def journal_export(db: str | None, params_out: Path | None) -> None:
    """Print every journal entry as JSONL, in order: `replay` of it gives the state that
    `tokenmall state` prints."""
    try:
        store = open_reader(resolve_url(db))
        try:
            meta = read_meta(store)
            if params_out is not None:
                _write_params(params_out, meta.params_json)
            elif json.loads(meta.params_json) != Params().as_json():
                click.echo(
                    "tokenmall: note: this ledger started with non-default parameters; "
                    "save them with --params-out FILE for replay --params FILE",
                    err=True,
                )
            for line in export_lines(store):
                stdout().write(line)
        finally:
            store.close()
    except StoreError as error:
        _fail(str(error))


def _write_params(path: Path, params_json: str) -> None:
    """Before the journal is streamed: a failure here leaves standard output empty."""
    try:
        path.write_text(params_json + "\n", encoding="utf-8")
    except OSError as error:
        _fail(f"{path}: cannot write: {error.strerror or error}")


@click.group()
def audit() -> None:
    """Checks that anyone can run on a ledger."""


@audit.command("verify")
@db_option
def audit_verify(db: str | None) -> None:
    """Recompute the hash chain and the state from the journal alone. Exit status 0 with a
    summary, or 1 naming the first entry that was edited, deleted or reordered."""
    try:
        store = open_reader(resolve_url(db))
        try:
            report = verify(store)
        finally:
            store.close()
    except StoreError as error:
        _fail(str(error))
    if not report.ok:
        click.echo(f"audit: FAILED: {report.problem}")
        sys.exit(EXIT_AUDIT_FAILED)
    click.echo(
        f"audit: ok: {report.entries} entries ({report.rejected} rejected by the rules), "
        f"hash chain intact, head {report.head_hash}; "
        f"snapshots checked: {report.snapshots_checked}; price {report.price}, "
        f"users: {report.users}; submitted by: "
        + (", ".join(f"{who} {count}" for who, count in report.submitted_by.items()) or "-")
    )


@click.command("login-link")
@click.argument("account")
@db_option
def login_link(account: str, db: str | None) -> None:
    """Print a one-time login link path for a consumer, merchant or agent (valid 5 minutes),
    as the mall's back end gets from POST /v1/login-links: for development."""
    from tokenmall.services.login_links import PATH, LinkRefused, issue_link  # noqa: PLC0415

    try:
        store = open_reader(resolve_url(db))
    except StoreError as error:
        _fail(str(error))
    try:
        token, _ = issue_link(store, account)
    except LinkRefused as refused:
        _fail(str(refused))
    finally:
        store.close()
    click.echo(PATH + token)


@click.group()
def token() -> None:
    """Bearer tokens of the HTTP API."""


@token.command("create")
@click.option(
    "--role",
    type=click.Choice(["admin", "integration", "finance", "merchant", "consumer", "agent"]),
    required=True,
    help="What it may do: admin (everything); integration (the mall's back end: cash orders "
    "with their payment_id, refunds, payout outcomes); finance (reviews withdrawals, reports "
    "payouts, reads accounts); merchant, consumer or agent (its own account).",
)
@click.option("--account", metavar="ID", help="The merchant, consumer or agent it acts for.")
@click.option(
    "--expires-in", metavar="DURATION", help="Expire after this long: 90s, 15m, 12h, 30d."
)
@click.option("--note", metavar="TEXT", help="Who or what it is for (shown by token list).")
@db_option
def token_create(
    role: str, account: str | None, expires_in: str | None, note: str | None, db: str | None
) -> None:
    """Print a new token (shown once; only its hash is stored). Its id (tk_…) goes to
    standard error: it names the token in `token list`, `token revoke` and the journal."""
    from tokenmall.services.tokens import (  # noqa: PLC0415 (see serve)
        Role,
        TokenError,
        create_token,
        parse_duration,
    )

    try:
        lifetime = None if expires_in is None else parse_duration(expires_in)
        with _token_store(db) as store:
            token, token_id = create_token(store, Role(role), account, utc_now(), lifetime, note)
    except (StoreError, TokenError) as error:
        _fail(str(error))
    click.echo(token)
    click.echo(f"tokenmall: created {role} token {token_id}", err=True)


@token.command("list")
@db_option
def token_list(db: str | None) -> None:
    """Every token: id, role, account, status, created, expires, note (never the token)."""
    from tokenmall.services.tokens import list_tokens  # noqa: PLC0415 (see serve)

    try:
        with _token_store(db) as store:
            tokens = list_tokens(store)
    except StoreError as error:
        _fail(str(error))
    now = utc_now()
    rows = [("ID", "ROLE", "ACCOUNT", "STATUS", "CREATED", "EXPIRES", "NOTE")]
    rows += [
        (
            info.token_id,
            info.role,
            info.account or "-",
            info.status(now),
            info.created_at[:19],
            (info.expires_at or "-")[:19],
            info.note or "",
        )
        for info in tokens
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@db_option
def token_revoke(token_id: str, db: str | None) -> None:
    """Revoke a token by its id (tk_…); a running server refuses it within a second."""
    from tokenmall.services.tokens import TokenError, revoke_token  # noqa: PLC0415

    try:
        with _token_store(db) as store:
            info = revoke_token(store, token_id, utc_now())
    except (StoreError, TokenError) as error:
        _fail(str(error))
    click.echo(f"tokenmall: revoked {info.role} token {info.token_id}")


@contextmanager
def _token_store(db: str | None) -> Iterator[Store]:
    """The ledger's database, created and migrated if need be (tokens may come first)."""
    store = Store(resolve_url(db), create=True)
    try:
        store.migrate()
        yield store
    finally:
        store.close()
