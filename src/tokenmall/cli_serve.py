"""`tokenmall serve`: the HTTP API on a ledger. Imported only when it runs (cli.py's
LAZY_COMMANDS); the web stack itself only once its options are checked."""

import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from tokenmall.api.limits import RATES_PER_S_DEFAULT, Limits
from tokenmall.cli_common import db_option
from tokenmall.cli_common import fail as _fail
from tokenmall.core.units import MONEY_DECIMALS, format_fen, parse_scaled
from tokenmall.ledger.store import Store, StoreError, display_url, resolve_url
from tokenmall.ledger.views import open_reader

if TYPE_CHECKING:
    from tokenmall.payouts.dispatcher import DispatchSettings


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


@click.command()
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
