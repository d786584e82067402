"""The `tokenmall` command line. Thin: parse, call the core, format.

Every failure on bad input is one line on stderr and exit status 2, never a traceback.
"""

import errno
import json
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TextIO

import click
from sqlalchemy.exc import SQLAlchemyError

from tokenmall import __version__
from tokenmall.core.canonical import canonical_json
from tokenmall.core.params import Params
from tokenmall.demo import render_seed_example
from tokenmall.ledger.audit import verify
from tokenmall.ledger.ingest import check_file, plan_ingest, run_ingest
from tokenmall.ledger.ledger import Ledger, Settings
from tokenmall.ledger.store import Store, StoreError, display_url, first_line, resolve_url
from tokenmall.ledger.views import export_lines, open_reader, read_meta, read_state
from tokenmall.replay import InputError, open_input, read_params, replay_lines, scenario_lines
from tokenmall.runtime import tune_gc

EXIT_BAD_INPUT = 2
EXIT_AUDIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
BATCH_MAX = 100_000
DEMO_ORDERS_MAX = 100_000
# Limits on the integer options: beyond them a value is a typo, and some would overflow (a key
# honoured for 10**14 days reaches before year 1: OverflowError in datetime).
SNAPSHOT_EVERY_MAX = 1_000_000_000  # journal entries; more is "never"
KEY_DAYS_MAX = 36_500  # a century
# summary.json records the seed; JSON readers that hold numbers as doubles (JavaScript, jq)
# would round a larger one and so lose the run it names.
SEED_MAX = 2**53 - 1


class Interrupted(Exception):
    """Ctrl-C, carried past Click, which would turn it into Abort ("aborted", exit status 2)."""


class App(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted from None


@click.group(cls=App, context_settings={"help_option_names": ["-h", "--help"]})
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


DB_HELP = (
    "The ledger: a SQLite file path or sqlite:/// URL, or a postgresql:// URL "
    "[default: $TOKENMALL_DB, else tokenmall.db]"
)


def db_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", "db", metavar="URL", help=DB_HELP)(function)


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
        f"journal head: entry {head[0]}, hash {head[1]}"
    )


@contextmanager
def _progress_bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; silence in logs and pipes."""
    if not sys.stderr.isatty():
        yield lambda _done: None
        return
    with click.progressbar(
        length=total, label=label, file=sys.stderr, show_pos=True, show_percent=True
    ) as bar:
        yield bar.update


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
        f"users: {report.users}"
    )


@app.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="TCP port."
)
def serve(db: str | None, host: str, port: int) -> None:
    """Run the HTTP API on the ledger (created and migrated first). SIGTERM or Ctrl-C stops it
    cleanly: requests in flight finish, queued commands are committed, then it exits."""
    # Imported here: the web stack takes most of a second to import, which every other
    # command would otherwise pay.
    import uvicorn  # noqa: PLC0415

    from tokenmall.api.app import create_app  # noqa: PLC0415
    from tokenmall.api.tokens import has_tokens  # noqa: PLC0415
    from tokenmall.api.writer import WriterClient  # noqa: PLC0415

    try:
        url = resolve_url(db)  # a malformed --db is refused before a writer process starts
    except StoreError as error:
        _fail(str(error))
    refusal = _listen_refusal(host, port)
    if refusal is not None:
        _fail(refusal)
    try:
        client = WriterClient(db)  # its own process: opens, migrates and loads the ledger
    except StoreError as error:
        _fail(str(error))
    try:
        store = _open_reader_or_fail(url)
        application = create_app(
            client,
            store,
            lambda: click.echo(
                f"tokenmall: stopped cleanly; journal head: entry {client.head_seq}", err=True
            ),
        )
        config = uvicorn.Config(
            application, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
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


def _open_reader_or_fail(url: str) -> Store:
    try:
        return open_reader(url)
    except StoreError as error:
        _fail(str(error))


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


@app.group()
def token() -> None:
    """Bearer tokens of the HTTP API."""


@token.command("create")
@click.option(
    "--role",
    type=click.Choice(["admin", "merchant", "consumer"]),
    required=True,
    help="What it may do: admin (everything), merchant or consumer (its own account).",
)
@click.option("--account", metavar="ID", help="The merchant or consumer it acts for.")
@db_option
def token_create(role: str, account: str | None, db: str | None) -> None:
    """Print a new token (shown once; only its hash is stored)."""
    from tokenmall.api.tokens import Role, create_token  # noqa: PLC0415 (see serve)

    try:
        store = Store(resolve_url(db), create=True)
        try:
            store.migrate()
            click.echo(create_token(store, Role(role), account))
        finally:
            store.close()
    except (StoreError, ValueError) as error:
        _fail(str(error))


@app.command()
@click.argument("scenario_path", metavar="SCENARIO.toml", type=click.Path(path_type=Path))
@click.option("--runs", type=click.IntRange(1, 10_000), default=1, show_default=True)
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True)
@click.option(
    "--sweep",
    "sweep_specs",
    multiple=True,
    metavar="NAME=V1,V2,...",
    help="Sweep a SPEC parameter over these values (repeat for a grid).",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Local worker processes (default: one per core).",
)
@click.option("--scheduler", default=None, metavar="ADDRESS", help="A Dask scheduler to run on.")
def simulate(
    scenario_path: Path,
    runs: int,
    seed: int,
    sweep_specs: tuple[str, ...],
    out_dir: Path,
    workers: int | None,
    scheduler: str | None,
) -> None:
    """Simulate SCENARIO.toml day by day through the rules engine: RUNS Monte Carlo runs per
    sweep point. Writes OUT/report.html, OUT/metrics.csv and OUT/summary.json."""
    from tokenmall.sim import runner  # noqa: PLC0415 (NumPy and the report load only here)
    from tokenmall.sim.report import write_report  # noqa: PLC0415
    from tokenmall.sim.scenario import ScenarioError, load_scenario  # noqa: PLC0415

    if scheduler is not None and not scheduler.strip():
        _fail("--scheduler is empty: give the scheduler's address, e.g. tcp://host:8786")
    try:
        scenario = load_scenario(scenario_path)
        sweeps = runner.parse_sweeps(sweep_specs)
        jobs = runner.jobs(scenario, sweeps, runs, seed)
        runner.check_memory(jobs, workers, scheduler)
        rows, results = [], []
        with (
            runner.dask_client(scheduler) as client,
            _progress_bar(len(jobs) * scenario.days, "simulating (run-days)") as advance,
        ):
            _make_out_dir(out_dir)  # now: after hours of runs is too late to find it unwritable
            for point, run_index, daily, summary in runner.execute(jobs, workers, client, advance):
                rows.extend(daily)
                results.append((point, run_index, summary))
    except ScenarioError as error:
        _fail(str(error))
    summary = runner.summarize(scenario, runs, seed, sweeps, results)
    try:
        runner.write_outputs(out_dir, summary, rows, write_report)
    except OSError as error:
        _fail(f"cannot write to {out_dir}: {error.strerror or error}")
    for point in summary["points"]:
        label = ", ".join(f"{k}={v}" for k, v in point["params"].items())
        click.echo(f"{label + ': ' if label else ''}{point['verdict']}")
    click.echo(f"wrote {out_dir / 'report.html'}, metrics.csv and summary.json")


def _make_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        _fail(f"{out_dir}: exists and is not a directory")
    except OSError as error:
        _fail(f"cannot write to {out_dir}: {error.strerror or error}")


def _stdout() -> TextIO:
    if sys.stdout is None:  # started with it closed (>&-): main reports it like a full disk
        raise OSError(errno.EBADF, "standard output is closed")
    return sys.stdout


def _fail(message: str) -> NoReturn:
    click.echo(f"tokenmall: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _interrupted() -> NoReturn:
    click.echo("tokenmall: interrupted", err=True)
    sys.exit(EXIT_INTERRUPTED)


def main() -> None:
    """Entry point: usage errors are one line too, not Click's multi-line usage block."""
    tune_gc()
    try:
        app.main(standalone_mode=False)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx else "tokenmall"
        _fail(f"{error.format_message()} (see '{command} --help')")
    except click.ClickException as error:
        _fail(error.format_message())
    except click.Abort as error:
        if isinstance(error.__cause__, KeyboardInterrupt):  # Ctrl-C while Click parsed
            _interrupted()
        _fail("aborted")
    except SQLAlchemyError as error:
        # A database that fails mid-command (server gone, disk full): one line, not a traceback.
        _fail(f"database error: {first_line(error)}")
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): nothing more to say, and nothing to flush.
        sys.stdout = None
        sys.exit(1)
    except (Interrupted, KeyboardInterrupt):
        _interrupted()
    except OSError as error:
        click.echo(f"tokenmall: error: cannot write the output ({error.strerror})", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
