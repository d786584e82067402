"""The `tokenmall` command line. Thin: parse, call the core, format.

Every failure on bad input is one line on stderr and exit status 2, never a traceback.
"""

import errno
import json
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from tokenmall.api.limits import RATES_PER_S_DEFAULT, Limits
from tokenmall.cli_common import (
    EXIT_AUDIT_FAILED,
    db_option,
    run_app,
    tokenmall_group,
)
from tokenmall.cli_common import fail as _fail
from tokenmall.cli_common import progress_bar as _progress_bar
from tokenmall.cli_payouts import payouts
from tokenmall.cli_sim import goal_seek, simulate, simulate_compare
from tokenmall.cli_staff import staff
from tokenmall.core.canonical import canonical_json
from tokenmall.core.params import Params
from tokenmall.core.units import MONEY_DECIMALS, format_fen, parse_scaled
from tokenmall.demo import render_seed_example
from tokenmall.jsonl import InputError, open_input, read_params, replay_lines, scenario_lines
from tokenmall.ledger.audit import verify
from tokenmall.ledger.ingest import check_file, plan_ingest, run_ingest
from tokenmall.ledger.ledger import Ledger, Settings, utc_now
from tokenmall.ledger.store import Store, StoreError, display_url, resolve_url
from tokenmall.ledger.views import export_lines, open_reader, read_meta, read_state
from tokenmall.runtime import tune_gc

if TYPE_CHECKING:
    from tokenmall.payouts.dispatcher import DispatchSettings

BATCH_MAX = 100_000
DEMO_ORDERS_MAX = 100_000
# Limits on the integer options: beyond them a value is a typo, and some would overflow (a key
# honoured for 10**14 days reaches before year 1: OverflowError in datetime).
SNAPSHOT_EVERY_MAX = 1_000_000_000  # journal entries; more is "never"
KEY_DAYS_MAX = 36_500  # a century
# summary.json records the seed; JSON readers that hold numbers as doubles (JavaScript, jq)
# would round a larger one and so lose the run it names.


@tokenmall_group
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
    _stdout().write(canonical_json(state))


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


@app.command()
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


@app.command()
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
    _stdout().write(canonical_json(result))


@app.group()
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
                _stdout().write(line)
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


@app.group()
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


LOG_LEVELS = ("debug", "info", "warning", "error")


def _rate_limits(specs: tuple[str, ...]) -> dict[str, float]:
    """--rate-limit ROLE=PER_S options over the defaults; click.BadParameter if malformed."""
    rates = dict(RATES_PER_S_DEFAULT)
    for spec in specs:
        role, _, value = spec.partition("=")
        if role not in rates or not value.isdigit() or int(value) > 1_000_000:
            raise click.BadParameter(
                f"{spec!r}: use ROLE=REQUESTS_PER_SECOND, ROLE one of {', '.join(rates)}, "
                "0 for no limit",
                param_hint="--rate-limit",
            )
        rates[role] = int(value)
    return rates


@app.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="TCP port."
)
@click.option(
    "--order-max",
    default=format_fen(Limits.order_max_fen),
    show_default=True,
    metavar="CNY",
    help="The largest single order; larger ones are refused (422).",
)
@click.option(
    "--rate-limit",
    "rate_limits",
    multiple=True,
    metavar="ROLE=N",
    help="Requests per second per token of that role (repeat; 0: no limit) [default: "
    + ", ".join(f"{role}={rate:g}" for role, rate in RATES_PER_S_DEFAULT.items())
    + "].",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 100_000),
    default=Limits.connections_max,
    show_default=True,
    help="Open connections at once; more are answered 503.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(0.1, 600),
    default=Limits.request_timeout_s,
    show_default=True,
    metavar="SECONDS",
    help="Time a request may take to arrive (headers and body); 408 after.",
)
@click.option(
    "--queue-max",
    type=click.IntRange(1, 1_000_000),
    default=Limits.queue_max,
    show_default=True,
    help="Requests waiting for the ledger's writer; more are answered 503.",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default="info",
    show_default=True,
    help="info logs every request (the access log, on standard output).",
)
@click.option(
    "--payout-webhook",
    metavar="URL",
    envvar="TOKENMALL_PAYOUT_WEBHOOK",
    help="The payout service approved withdrawals are sent to (signed with "
    "$TOKENMALL_PAYOUT_SECRET); its callbacks come to /v1/payouts/webhook. "
    "[default: $TOKENMALL_PAYOUT_WEBHOOK, else none: every payout goes by bank file]",
)
@click.option(
    "--payout-route",
    "payout_routes",
    multiple=True,
    metavar="METHOD=CHANNEL",
    help="Which channel pays a payee method (bank, wechat, alipay): manual or webhook "
    "(repeat) [default: all to the payout service if there is one, else manual].",
)
@click.option(
    "--payout-timeout",
    type=click.FloatRange(0.1, 120),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a payout service (or the exchange hook) may take to answer; after it, the "
    "same request is sent again later (with backoff), never failed for the silence.",
)
@click.option(
    "--exchange-hook",
    metavar="URL",
    envvar="TOKENMALL_EXCHANGE_HOOK",
    help="Send signed collectible events (issued, claimed, gifted, used) here, signed with "
    "$TOKENMALL_EXCHANGE_SECRET; off by default. See docs/payouts.md before you set it.",
)
def serve(
    db: str | None,
    host: str,
    port: int,
    order_max: str,
    rate_limits: tuple[str, ...],
    max_connections: int,
    request_timeout: float,
    queue_max: int,
    log_level: str,
    payout_webhook: str | None,
    payout_routes: tuple[str, ...],
    payout_timeout: float,
    exchange_hook: str | None,
) -> None:
    """Run the HTTP API on the ledger (created and migrated first). SIGTERM or Ctrl-C stops it
    cleanly: requests in flight finish, queued commands are committed, then it exits."""
    # Imported here: the web stack takes most of a second to import, which every other
    # command would otherwise pay.
    import uvicorn  # noqa: PLC0415

    from tokenmall.api.app import create_app  # noqa: PLC0415
    from tokenmall.api.protocol import guarded_protocol  # noqa: PLC0415
    from tokenmall.ledger.writer import WriterClient  # noqa: PLC0415
    from tokenmall.services.queries import ENGINE_QUERIES  # noqa: PLC0415
    from tokenmall.services.tokens import has_tokens  # noqa: PLC0415

    try:
        url = resolve_url(db)  # a malformed --db is refused before a writer process starts
    except StoreError as error:
        _fail(str(error))
    order_max_fen = parse_scaled(order_max, MONEY_DECIMALS)
    if not order_max_fen:
        _fail(f"--order-max {order_max!r}: a positive amount of CNY with at most 2 decimals")
    limits = Limits(
        order_max_fen=order_max_fen,
        rates_per_s=_rate_limits(rate_limits),
        request_timeout_s=request_timeout,
        connections_max=max_connections,
        queue_max=queue_max,
    )
    dispatch = dispatch_settings(payout_webhook, payout_routes, exchange_hook, payout_timeout)
    refusal = _listen_refusal(host, port)
    if refusal is not None:
        _fail(refusal)
    try:
        # The writer's own process opens, migrates and loads the ledger.
        client = WriterClient(db, queue_max=limits.queue_max, queries=ENGINE_QUERIES)
    except StoreError as error:
        _fail(str(error))
    try:
        store = _open_reader_or_fail(url)
        application = create_app(
            client,
            store,
            limits,
            lambda: click.echo(
                f"tokenmall: stopped cleanly; journal head: entry {client.head_seq}", err=True
            ),
            dispatch,
        )
        config = uvicorn.Config(
            application,
            host=host,
            port=port,
            http=guarded_protocol(limits),
            log_config=_log_config(log_level),
            lifespan="on",
            server_header=False,
        )
        click.echo(f"tokenmall: serving {display_url(url)} on http://{host}:{port}", err=True)
        if not has_tokens(store):
            click.echo(
                "tokenmall: no API tokens yet (there are no default secrets): create one with "
                "'tokenmall token create --role admin'",
                err=True,
            )
        uvicorn.Server(config).run()
    finally:
        client.kill()  # a no-op after a clean stop; else (a port in use, ...) the writer ends


def dispatch_settings(
    payout_webhook: str | None,
    payout_routes: Sequence[str],
    exchange_hook: str | None,
    timeout_s: float,
) -> "DispatchSettings":
    """The payout channels and hooks from serve's options and the secrets' variables."""
    from tokenmall.payouts.channels import Routes  # noqa: PLC0415
    from tokenmall.payouts.dispatcher import DispatchSettings, Hook  # noqa: PLC0415

    def hook(url: str | None, secret_variable: str, option: str) -> Hook | None:
        if not url:
            return None
        secret = os.environ.get(secret_variable)
        if not secret:
            _fail(f"{option} needs its secret in ${secret_variable} ('tokenmall payouts secret')")
        try:
            return Hook(url, secret)
        except ValueError as error:
            _fail(f"{option}: {error}")

    payout = hook(payout_webhook, "TOKENMALL_PAYOUT_SECRET", "--payout-webhook")
    exchange = hook(exchange_hook, "TOKENMALL_EXCHANGE_SECRET", "--exchange-hook")
    try:
        routes = Routes.parse(payout_routes, webhook_configured=payout is not None)
    except ValueError as error:
        _fail(f"--payout-route: {error}")
    return DispatchSettings(payout=payout, exchange=exchange, routes=routes, timeout_s=timeout_s)


def _open_reader_or_fail(url: str) -> Store:
    try:
        return open_reader(url)
    except StoreError as error:
        _fail(str(error))


def _level_rank(level: str) -> int:
    return LOG_LEVELS.index(level.lower())


def _log_config(level: str) -> dict[str, Any]:
    """Access lines plain on standard output; everything else on standard error."""
    upper = level.upper()
    stream = "logging.StreamHandler"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(message)s"},
            "tagged": {"format": "tokenmall: %(levelname)s: %(message)s"},
        },
        "handlers": {
            "access": {"class": stream, "formatter": "plain", "stream": "ext://sys.stdout"},
            "default": {"class": stream, "formatter": "tagged", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "tokenmall.access": {"handlers": ["access"], "level": upper, "propagate": False},
            "tokenmall": {"handlers": ["default"], "level": upper, "propagate": False},
            # uvicorn's start-up chatter only when debugging; its warnings and errors always.
            "uvicorn": {
                "handlers": ["default"],
                "level": upper if upper == "DEBUG" else max(upper, "WARNING", key=_level_rank),
                "propagate": False,
            },
            "uvicorn.access": {"handlers": [], "propagate": False},  # ours replaces it
        },
    }


def _listen_refusal(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port (checked before the ledger is opened, so
    that a port in use is one line, not a started and stopped writer)."""
    if not host.strip():
        # An unset shell variable would otherwise listen on every interface.
        return "--host is empty: give an address (0.0.0.0 listens on every interface)"
    try:
        host.encode("idna")  # the socket module's encoding; it fails with a TypeError
    except UnicodeError:
        return f"cannot listen on {host!r}: not a valid host name"
    try:
        with socket.create_server((host, port)):
            return None
    except OSError as error:
        return f"cannot listen on {host}:{port}: {error.strerror or error}"


@app.command("login-link")
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


@app.group()
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


def _stdout() -> TextIO:
    if sys.stdout is None:  # started with it closed (>&-): main reports it like a full disk
        raise OSError(errno.EBADF, "standard output is closed")
    return sys.stdout


def main() -> None:
    """Entry point (`python -m tokenmall.cli`; the installed `tokenmall` starts from
    tokenmall/entry.py, which comes here for every command but the simulator's)."""
    tune_gc()
    run_app(app)


app.add_command(payouts)
app.add_command(staff)
app.add_command(simulate)
app.add_command(goal_seek)
app.add_command(simulate_compare)

if __name__ == "__main__":
    main()
