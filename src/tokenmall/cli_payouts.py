"""`tokenmall payouts …`: bank batch files out, result files in, reconciliation (对账) and the
payout list, from the command line. Thin over the payouts package, as the API is.

Export, the list and reconciliation only read the ledger (and write the payout tables), so
they work while the server runs. An import applies outcomes to the ledger, so it needs the
ledger's writer: with the server running, import through the API instead.
"""

import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Literal

import click

from tokenmall.cli_common import db_option
from tokenmall.cli_common import fail as _fail
from tokenmall.core.units import Fen, format_fen
from tokenmall.ledger.ingest import cli_actor
from tokenmall.ledger.ledger import Ledger, Settings
from tokenmall.ledger.store import StoreError, resolve_url
from tokenmall.ledger.views import open_reader
from tokenmall.payouts import webhooks
from tokenmall.payouts.channels import (
    EXPORT_MAX,
    Routes,
    batch_file,
    export_batch,
    import_results,
    ledger_submitter,
)
from tokenmall.payouts.files import FileProblem
from tokenmall.payouts.reconcile import report_csv, report_xlsx
from tokenmall.payouts.service import differences_text, payout_list, reconcile_file
from tokenmall.payouts.store import PayoutStore

EXIT_DIFFERENCES = 1
DAY = click.DateTime(formats=["%Y-%m-%d"])  # a UTC day: 2026-12-01
FILE_BYTES_MAX = 20 * 1024 * 1024


@click.group()
def payouts() -> None:
    """Money out: bank batch files, result files, reconciliation (docs/payouts.md)."""


@payouts.command("secret")
def payouts_secret() -> None:
    """Print a new signing secret (whsec_…) for a payout service or the exchange hook."""
    click.echo(webhooks.new_secret())


def _payout_store(db: str | None) -> PayoutStore:
    try:
        return PayoutStore(open_reader(resolve_url(db)))
    except StoreError as error:
        _fail(str(error))


def _read_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > FILE_BYTES_MAX:
            _fail(f"{path}: over {FILE_BYTES_MAX // 1024 // 1024} MB")
        return path.read_bytes()
    except IsADirectoryError:
        _fail(f"{path}: is a directory")
    except OSError as error:
        _fail(f"{path}: {error.strerror}")


def _write_file(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as error:
        _fail(f"cannot write {path}: {error.strerror}")


@payouts.command("export")
@db_option
@click.option(
    "--format", "file_format", type=click.Choice(["xlsx", "csv"]), default="xlsx", show_default=True
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The file to write.")
@click.option(
    "--route",
    "routes",
    multiple=True,
    metavar="METHOD=CHANNEL",
    help="As serve's --payout-route: only methods routed to manual are exported "
    "[default: every method].",
)
@click.option(
    "--id",
    "ids",
    multiple=True,
    metavar="WITHDRAWAL",
    help="Export these approved withdrawals only, whatever their route (repeat).",
)
def payouts_export(
    db: str | None,
    file_format: Literal["xlsx", "csv"],
    out: Path,
    routes: tuple[str, ...],
    ids: tuple[str, ...],
) -> None:
    """Claim every approved withdrawal routed to the bank for a new batch, and write its
    批量代发 file. A withdrawal goes into one batch only."""
    try:
        parsed = Routes.parse(routes, webhook_configured=True) if routes else Routes()
    except ValueError as error:
        _fail(f"--route: {error}")
    store = _payout_store(db)
    if len(ids) > EXPORT_MAX:
        _fail(f"--id: at most {EXPORT_MAX} withdrawals in one batch")
    made = export_batch(store, parsed, cli_actor(), EXPORT_MAX, list(ids) if ids else None)
    for skipped in made.skipped:
        click.echo(f"skipped {skipped['withdrawal']}: {skipped['reason']}", err=True)
    if made.batch is None:
        click.echo("nothing to export: no approved withdrawal waits for the bank", err=True)
        return
    data = batch_file(store, made.batch, file_format)
    assert data is not None
    _write_file(out, data)
    click.echo(
        f"batch {made.batch}: {made.lines} withdrawals, {format_fen(Fen(made.total_fen))} CNY, "
        f"written to {out}"
    )


@payouts.command("file")
@click.argument("batch")
@db_option
@click.option(
    "--format", "file_format", type=click.Choice(["xlsx", "csv"]), default="xlsx", show_default=True
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The file to write.")
def payouts_file(
    db: str | None, batch: str, file_format: Literal["xlsx", "csv"], out: Path
) -> None:
    """Write an earlier batch's file again (the same lines; no withdrawal is claimed)."""
    data = batch_file(_payout_store(db), batch, file_format)
    if data is None:
        _fail(f"no batch {batch!r}")
    _write_file(out, data)
    click.echo(f"batch {batch} written to {out}")


@payouts.command("import")
@click.argument("result_file", type=click.Path(path_type=Path))
@db_option
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=4096,
    show_default=True,
    help="Outcomes per transaction.",
)
def payouts_import(result_file: Path, db: str | None, batch_size: int) -> None:
    """Apply the bank's result file (代发结果): each line completes or fails its withdrawal,
    once. The same file again applies nothing. Needs the ledger's writer (the server
    stopped); while it runs, POST the file to /v1/payouts/results."""
    data = _read_file(result_file)
    actor = cli_actor()
    try:
        with Ledger.open(db, Settings(batch_max=batch_size)) as ledger:
            store = PayoutStore(ledger.store)
            submit_all = ledger_submitter(ledger)
            report = asyncio.run(import_results(store, submit_all, data, result_file.name, actor))
    except FileProblem as problem:
        _fail(f"{result_file}: {problem}")
    except StoreError as error:
        _fail(f"{error} (with the server running, import through the API)")
    if report["imported_before"]:
        click.echo(f"{result_file}: imported before; nothing applied now", err=True)
    for line in report["results"]:
        click.echo(f"row {line['row']}\t{line['withdrawal']}\t{line['result']}\t{line['detail']}")
    click.echo(
        f"{result_file}: {report['lines']} lines, {report['applied']} applied, "
        f"{report['already_applied']} applied before, {report['refused']} refused",
        err=True,
    )


@payouts.command("reconcile")
@click.argument("statement", type=click.Path(path_type=Path))
@db_option
@click.option(
    "--channel", type=click.Choice(["manual", "webhook"]), default="manual", show_default=True
)
@click.option("--since", type=DAY, help="First day of the statement (UTC).")
@click.option("--until", type=DAY, help="Last day of the statement (UTC).")
@click.option(
    "--xlsx", "xlsx_out", type=click.Path(path_type=Path), help="Also write an XLSX report."
)
@click.option("--csv", "csv_out", type=click.Path(path_type=Path), help="Also write a CSV report.")
def payouts_reconcile(
    statement: Path,
    db: str | None,
    channel: str,
    since: datetime | None,
    until: datetime | None,
    xlsx_out: Path | None,
    csv_out: Path | None,
) -> None:
    """对账: compare a channel's statement with the ledger and list every difference (paid
    there but not here, here but not there, amount differs, paid twice). Exit status 0 only
    when they agree, 1 when they differ."""
    data = _read_file(statement)
    try:
        differences, summary = reconcile_file(
            _payout_store(db), data, statement.name, channel, _day(since), _day(until)
        )
    except FileProblem as problem:
        _fail(f"{statement}: {problem}")
    if xlsx_out is not None:
        _write_file(xlsx_out, report_xlsx(differences, summary))
    if csv_out is not None:
        _write_file(csv_out, report_csv(differences))
    for line in differences_text(differences):
        click.echo(line)
    verdict = "agree (一致)" if not differences else f"{len(differences)} differences (差异)"
    click.echo(
        f"{statement}: {summary['对账单成功笔数 statement lines paid']} paid lines; {verdict}",
        err=True,
    )
    sys.exit(EXIT_DIFFERENCES if differences else 0)


@payouts.command("list")
@db_option
@click.option("--channel", type=click.Choice(["manual", "webhook", "by_hand"]))
@click.option("--state", type=click.Choice(["exported", "sending", "held", "done"]))
def payouts_list(db: str | None, channel: str | None, state: str | None) -> None:
    """Withdrawals handed to a channel, one per line: id, channel, state, amount, batch,
    outcome, delivery attempts and the last error."""
    for row in payout_list(_payout_store(db), channel, state)["payouts"]:
        delivery = row["delivery"] or {}
        click.echo(
            "\t".join(
                str(value if value is not None else "-")
                for value in (
                    row["withdrawal"],
                    row["channel"],
                    row["state"],
                    row["amount"],
                    row["batch"],
                    row["outcome"],
                    delivery.get("attempts"),
                    delivery.get("last_error"),
                )
            )
        )


def _day(moment: datetime | None) -> str | None:
    return None if moment is None else moment.date().isoformat()
