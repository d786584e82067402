"""Reconciliation (对账): a channel's statement against the ledger, and the report finance opens.

Pure: the statement's lines and the ledger's payouts in, the differences out. A failed
statement line moved no money, so it is never a difference by itself.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from tokenmall.core.units import Fen, format_fen
from tokenmall.payouts.files import (
    BankLine,
    csv_bytes,
    header_row,
    new_workbook,
    put_text,
    xlsx_bytes,
)

# The kinds, most dangerous first (the order of a report).
PAID_THERE_NOT_HERE: Final = "paid_there_not_here"
PAID_HERE_NOT_THERE: Final = "paid_here_not_there"
AMOUNT_DIFFERS: Final = "amount_differs"
PAID_TWICE: Final = "paid_twice"
REFERENCE_DIFFERS: Final = "reference_differs"
KINDS: Final = (
    PAID_THERE_NOT_HERE,
    PAID_HERE_NOT_THERE,
    AMOUNT_DIFFERS,
    PAID_TWICE,
    REFERENCE_DIFFERS,
)
KIND_TERMS: Final = {
    PAID_THERE_NOT_HERE: "渠道已付账本未付",
    PAID_HERE_NOT_THERE: "账本已付渠道未付",
    AMOUNT_DIFFERS: "金额不符",
    PAID_TWICE: "重复付款",
    REFERENCE_DIFFERS: "流水号不符",
}
REPORT_HEADER: Final = (
    "类型 kind",
    "提现单号 withdrawal",
    "账本金额 ledger amount",
    "渠道金额 channel amount",
    "账本状态 ledger status",
    "流水号 references",
    "行号 rows",
    "说明 detail",
)
_REPORT_WIDTHS: Final = (24, 28, 18, 18, 16, 36, 12, 90)
SUMMARY_SHEET: Final = "汇总 Summary"
DIFFERENCES_SHEET: Final = "差异 Differences"
PAID: Final = "paid"


@dataclass(frozen=True, slots=True)
class LedgerPayout:
    """A withdrawal as the ledger has it."""

    withdrawal: str
    amount_fen: int
    status: str  # requested, approved, rejected, paid or failed
    reference: str | None  # the channel's reference, once paid


@dataclass(frozen=True, slots=True)
class Difference:
    """One thing the statement and the ledger disagree on."""

    kind: str
    withdrawal: str
    ledger_amount_fen: int | None
    channel_amount_fen: int | None
    ledger_status: str | None
    references: tuple[str, ...]
    rows: tuple[int, ...]  # statement lines
    detail: str  # one line in plain English with the Chinese term


def _yuan(amount_fen: int | None) -> str:
    return "" if amount_fen is None else format_fen(Fen(amount_fen))


def _rows_text(rows: Sequence[int]) -> str:
    return ", ".join(str(row) for row in rows)


def _difference(
    kind: str,
    withdrawal: str,
    payout: LedgerPayout | None,
    lines: Sequence[BankLine],
    detail: str,
) -> Difference:
    paid = [line for line in lines if line.succeeded]
    return Difference(
        kind=kind,
        withdrawal=withdrawal,
        ledger_amount_fen=None if payout is None else payout.amount_fen,
        channel_amount_fen=sum(line.amount_fen for line in paid) if paid else None,
        ledger_status=None if payout is None else payout.status,
        references=tuple(line.reference for line in lines if line.reference),
        rows=tuple(line.row for line in lines),
        detail=f"{detail} ({KIND_TERMS[kind]})",
    )


def _paid_there(
    withdrawal: str, payout: LedgerPayout | None, paid: list[BankLine]
) -> list[Difference]:
    """The differences of a withdrawal the statement shows paid."""
    total = _yuan(sum(line.amount_fen for line in paid))
    found: list[Difference] = []
    if len(paid) > 1:
        rows = _rows_text([line.row for line in paid])
        detail = f"the channel paid it {len(paid)} times, {total} in all (rows {rows})"
        found.append(_difference(PAID_TWICE, withdrawal, payout, paid, detail))
    if payout is None or payout.status != PAID:
        # Money left without the ledger's record of it: paid twice, or by hand outside tokenmall.
        shows = "no such withdrawal" if payout is None else f"it {payout.status}, not paid"
        detail = f"the channel paid {total} but the ledger shows {shows}"
        found.append(_difference(PAID_THERE_NOT_HERE, withdrawal, payout, paid, detail))
        return found
    if len(paid) > 1:
        return found  # the paid_twice line shows every amount and reference
    line = paid[0]
    if line.amount_fen != payout.amount_fen:
        detail = f"the ledger paid {_yuan(payout.amount_fen)}, the channel {total}"
        found.append(_difference(AMOUNT_DIFFERS, withdrawal, payout, paid, detail))
    # A statement without references cannot disagree on them; a ledger without one can.
    elif line.reference and payout.reference != line.reference:
        ledger_reference = payout.reference or "none"
        detail = f"the ledger's reference is {ledger_reference}, the statement's {line.reference}"
        found.append(_difference(REFERENCE_DIFFERS, withdrawal, payout, paid, detail))
    return found


def reconcile(
    statement: Sequence[BankLine],
    ledger: Mapping[str, LedgerPayout],
    in_scope: Callable[[LedgerPayout], bool] | None = None,
) -> list[Difference]:
    """Every difference between a channel's statement and the ledger, most dangerous first."""
    paid_there: dict[str, list[BankLine]] = {}
    failed_there: dict[str, list[BankLine]] = {}
    for line in statement:
        lines = paid_there if line.succeeded else failed_there
        lines.setdefault(line.withdrawal, []).append(line)
    found: list[Difference] = []
    for withdrawal, paid in paid_there.items():
        found.extend(_paid_there(withdrawal, ledger.get(withdrawal), paid))
    for withdrawal, payout in ledger.items():
        if payout.status != PAID or withdrawal in paid_there:
            continue
        if in_scope is not None and not in_scope(payout):
            continue
        failed = failed_there.get(withdrawal, [])
        detail = f"the ledger paid {_yuan(payout.amount_fen)}, the statement has no successful line"
        if failed:
            detail += f"; it shows it failed (rows {_rows_text([line.row for line in failed])})"
        found.append(_difference(PAID_HERE_NOT_THERE, withdrawal, payout, failed, detail))
    found.sort(key=lambda difference: (KINDS.index(difference.kind), difference.withdrawal))
    return found


def _table(differences: Sequence[Difference]) -> list[tuple[str, ...]]:
    return [
        (
            d.kind,
            d.withdrawal,
            _yuan(d.ledger_amount_fen),
            _yuan(d.channel_amount_fen),
            d.ledger_status or "",
            ", ".join(d.references),
            _rows_text(d.rows),
            d.detail,
        )
        for d in differences
    ]


def _summary_rows(
    differences: Sequence[Difference], summary: Mapping[str, str]
) -> list[tuple[str, str | int]]:
    rows: list[tuple[str, str | int]] = list(summary.items())
    for kind in KINDS:
        count = sum(1 for difference in differences if difference.kind == kind)
        rows.append((f"{KIND_TERMS[kind]} {kind}", count))
    rows.append(("一致 agree", "no" if differences else "yes"))
    return rows


def report_xlsx(differences: Sequence[Difference], summary: Mapping[str, str]) -> bytes:
    """The reconciliation report as a workbook: a summary sheet and the differences."""
    workbook = new_workbook("对账 reconciliation")
    sheet = workbook.active
    sheet.title = SUMMARY_SHEET
    header_row(sheet, ("项目 item", "值 value"), (36, 48))
    for row_number, (key, value) in enumerate(_summary_rows(differences, summary), start=2):
        put_text(sheet.cell(row=row_number, column=1), key)
        if isinstance(value, int):
            sheet.cell(row=row_number, column=2, value=value)
        else:
            put_text(sheet.cell(row=row_number, column=2), value)
    table = workbook.create_sheet(DIFFERENCES_SHEET)
    header_row(table, REPORT_HEADER, _REPORT_WIDTHS)
    table.freeze_panes = "A2"  # the header stays in view while finance scrolls
    for row_number, row in enumerate(_table(differences), start=2):
        for column, text in enumerate(row, start=1):
            put_text(table.cell(row=row_number, column=column), text)
    return xlsx_bytes(workbook)


def report_csv(differences: Sequence[Difference]) -> bytes:
    """The differences as CSV (UTF-8 with a BOM), the same table as the workbook's."""
    return csv_bytes([REPORT_HEADER, *_table(differences)])
