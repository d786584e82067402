"""Bank files: the batch payment file finance uploads (批量代发文件), and the result file
(代发结果) and statement (对账单) the bank gives back, as CSV or XLSX.

Amounts are written as text ("1234.05") in every format, so no importer reformats them, and
every text cell that a spreadsheet would take for a formula is written as plain text (CSV: with
a leading apostrophe), because payee names come from consumers. The same input gives the same
bytes: finance can download a batch twice and compare.
"""

import csv
import io
import re
import zipfile
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

from openpyxl import Workbook, load_workbook  # type: ignore[import-untyped]
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.writer.excel import ExcelWriter  # type: ignore[import-untyped]

from tokenmall.core.units import Fen, format_fen
from tokenmall.payouts.payee import Payee

BATCH_HEADER: Final = ("序号", "收款人姓名", "收款账号", "开户行", "金额", "备注")
BATCH_SHEET: Final = "代发"
_BATCH_WIDTHS: Final = (6, 16, 24, 24, 14, 32)

FILE_BYTES_MAX: Final = 20 * 1024 * 1024
LINES_MAX: Final = 100_000
# A 20 MB XLSX may unpack to gigabytes (a zip bomb); 100,000 real lines unpack to ~30 MB.
XLSX_UNPACKED_BYTES_MAX: Final = 200 * 1024 * 1024
COLUMNS_MAX: Final = 64  # cells read per row; bank files have about 15
TEXT_CHARS_MAX: Final = 200  # a reference, reason, name or account read from a bank file
# Banks put a title and the batch's details above the header; the header is looked for in the
# first rows that are not empty.
HEADER_SEARCH_ROWS: Final = 10
AMOUNT_WHOLE_DIGITS_MAX: Final = 12
AMOUNT_CHARS_MAX: Final = 32
# Fixed file times, so the same workbook gives the same bytes (zip entries cannot be older
# than 1980).
FIXED_TIME: Final = datetime(2000, 1, 1)
_ZIP_TIME: Final = (2000, 1, 1, 0, 0, 0)

# What a spreadsheet may take for the start of a formula (OWASP's CSV injection list). A
# leading apostrophe is also escaped, so reading a written file gives back the exact text.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_WITHDRAWAL = re.compile(r"[\w.:@-]{1,64}")
_AMOUNT = re.compile(r"([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?")
_UNIT_SUFFIX = re.compile(r"\s*[(（][^()（）]*[)）]$")  # "金额(元)", "交易金额（元）"
_XLSX_MAGIC: Final = b"PK\x03\x04"
_XLS_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 (OLE2)

# Header names a bank file may use for each field, in order of preference.
COLUMNS: Final = {
    "withdrawal": ("备注", "附言", "用途", "remark", "withdrawal"),
    "amount": ("金额", "交易金额", "amount"),
    "status": ("状态", "处理结果", "交易状态", "status"),
    "reference": ("银行流水号", "流水号", "交易流水号", "reference"),
    "reason": ("失败原因", "备注说明", "reason"),
    "name": ("收款人姓名", "户名", "name"),
    "account": ("收款账号", "账号", "account"),
}
REQUIRED_COLUMNS: Final = ("withdrawal", "amount", "status")
SUCCEEDED: Final = frozenset({"成功", "已成功", "交易成功", "success", "succeeded", "paid"})
FAILED: Final = frozenset({"失败", "交易失败", "退回", "已退回", "failed", "returned"})


class FileProblem(ValueError):
    """A bank file that cannot be read; the message is one line for the person who sent it."""


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One payment of a batch file."""

    withdrawal: str
    amount_fen: int
    payee: Payee


@dataclass(frozen=True, slots=True)
class BankLine:
    """One line of a bank's result file or statement."""

    row: int  # the 1-based line number in the file, header = 1
    withdrawal: str
    amount_fen: int
    succeeded: bool
    reference: str  # the bank's transaction number, "" if none
    reason: str  # failure reason, "" if none
    name: str
    account: str


# -- writing -------------------------------------------------------------------------------------


def _formula_like(text: str) -> bool:
    return text.startswith(_FORMULA_STARTS)


def csv_cell(value: str | int) -> str:
    """A value as CSV cell text that no spreadsheet evaluates (a leading apostrophe if needed)."""
    if isinstance(value, int):
        return str(value)
    if _formula_like(value) or value.startswith("'"):
        return "'" + value
    return value


def csv_bytes(rows: Iterable[Sequence[str | int]]) -> bytes:
    """Rows as CSV for Excel in China: UTF-8 with a BOM, CRLF, formula-like text escaped."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return buffer.getvalue().encode("utf-8-sig")


def put_text(cell: Any, text: str) -> None:
    """Put text in an XLSX cell as a string, even if it looks like a formula or a number."""
    if not text:
        cell.value = None  # openpyxl reads an empty string cell back as None anyway
        return
    # XML cannot hold most control characters (openpyxl would raise): a bank's reference or
    # reason may, so they are shown as U+FFFD instead.
    cell.value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)
    # openpyxl makes "=..." a formula and "#N/A" an error; a string type is never evaluated.
    cell.data_type = "s"
    if _formula_like(text):
        # Excel's own mark for text typed with a leading apostrophe: editing the cell keeps it
        # text, and the value stays exactly the payee's name.
        cell.quotePrefix = True


def new_workbook(title: str) -> Any:
    """An empty workbook with fixed properties, so its bytes depend on its content only."""
    workbook = Workbook()
    workbook.properties.title = title
    workbook.properties.creator = "tokenmall"
    workbook.properties.created = FIXED_TIME
    workbook.properties.modified = FIXED_TIME
    return workbook


def header_row(sheet: Any, names: Sequence[str], widths: Sequence[int]) -> None:
    """A bold header in the sheet's first row, and the columns' widths (in characters)."""
    bold = Font(bold=True)
    for column, (name, width) in enumerate(zip(names, widths, strict=True), start=1):
        cell = sheet.cell(row=1, column=column)
        put_text(cell, name)
        cell.font = bold
        sheet.column_dimensions[cell.column_letter].width = width


def xlsx_bytes(workbook: Any) -> bytes:
    """The workbook as XLSX bytes, the same for the same workbook."""
    written = io.BytesIO()
    # ExcelWriter rather than workbook.save(), which stamps the time into the properties.
    with zipfile.ZipFile(written, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(workbook, archive).write_data()
    # openpyxl stamps each zip entry with the current time: copy the entries with a fixed one.
    fixed = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(written.getvalue())) as source,
        zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for entry in source.infolist():
            info = zipfile.ZipInfo(entry.filename, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            target.writestr(info, source.read(entry))
    return fixed.getvalue()


def _batch_rows(lines: Sequence[BatchLine]) -> list[tuple[int, str, str, str, str, str]]:
    rows = []
    for number, line in enumerate(lines, start=1):
        if line.amount_fen <= 0:
            raise ValueError(f"{line.withdrawal}: a payment of {line.amount_fen} fen is a bug")
        payee = line.payee
        amount = format_fen(Fen(line.amount_fen))
        rows.append((number, payee.name, payee.account, payee.bank, amount, line.withdrawal))
    return rows


def write_batch(lines: Sequence[BatchLine], fmt: Literal["csv", "xlsx"], batch_id: str) -> bytes:
    """The batch payment file (批量代发文件) for the bank, the same bytes for the same lines."""
    rows = _batch_rows(lines)
    if fmt == "csv":
        return csv_bytes([BATCH_HEADER, *rows])
    if fmt != "xlsx":
        raise ValueError(f"unknown batch file format {fmt!r}")
    workbook = new_workbook(batch_id)
    sheet = workbook.active
    sheet.title = BATCH_SHEET
    header_row(sheet, BATCH_HEADER, _BATCH_WIDTHS)
    for row_number, row in enumerate(rows, start=2):
        sheet.cell(row=row_number, column=1, value=row[0])
        for column, text in enumerate(row[1:], start=2):
            put_text(sheet.cell(row=row_number, column=column), text)
        sheet.cell(row=row_number, column=5).number_format = "@"  # Excel's "text" format
    return xlsx_bytes(workbook)


# -- reading -------------------------------------------------------------------------------------


def _shown(text: str) -> str:
    """Text quoted in an error message: one line, not too long."""
    visible = "".join(char if char.isprintable() else "?" for char in text[:40])
    return f'"{visible}…"' if len(text) > 40 else f'"{visible}"'


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a reference typed as a number: 20240101 not 20240101.0
    return str(value).strip()


def _fen_of_decimal(number: Decimal, shown: str) -> int:
    if not number.is_finite():
        raise ValueError(f"{shown} is not an amount")
    if number < 0:
        raise ValueError(f"{shown} is negative")
    if number >= 10**AMOUNT_WHOLE_DIGITS_MAX:
        raise ValueError(f"{shown} has more than {AMOUNT_WHOLE_DIGITS_MAX} digits")
    scaled = number.scaleb(2)  # exact: only the exponent changes
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{shown} has more than 2 decimals")
    return int(scaled)


def _fen_of_text(text: str) -> int:
    shown = _shown(text)
    if len(text) > AMOUNT_CHARS_MAX:
        raise ValueError(f"{shown} is not an amount")
    if text.startswith("-"):
        raise ValueError(f"{shown} is negative")
    found = _AMOUNT.fullmatch(text)
    if found is None:
        raise ValueError(f"{shown} is not an amount")
    whole, fraction = found[1].replace(",", ""), found[2] or ""
    if len(fraction) > 2:
        raise ValueError(f"{shown} has more than 2 decimals")
    if len(whole.lstrip("0")) > AMOUNT_WHOLE_DIGITS_MAX:
        raise ValueError(f"{shown} has more than {AMOUNT_WHOLE_DIGITS_MAX} digits")
    return int(whole) * 100 + int(fraction.ljust(2, "0"))


def parse_amount_fen(value: object) -> int:
    """A bank file's amount in yuan ("1,234.05", or an XLSX number) as fen; ValueError if not."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("is empty")
    if isinstance(value, str):
        return _fen_of_text(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{_shown(str(value))} is not an amount")
    if isinstance(value, int):
        return _fen_of_decimal(Decimal(value), _shown(str(value)))
    # repr gives the shortest decimal that reads back as this float: what the cell shows
    # (1234.05, not 1234.0499999999999545). Decimal from there on: no float arithmetic on money.
    return _fen_of_decimal(Decimal(repr(value)), _shown(repr(value)))


def _is_xlsx(data: bytes, filename: str) -> bool:
    if data.startswith(_XLS_MAGIC):
        raise FileProblem("an Excel 97-2003 .xls file: save it as .xlsx or CSV (UTF-8 or GBK)")
    suffix = filename.rpartition(".")[2].lower() if "." in filename else ""
    if suffix in {"csv", "xlsx"}:
        return suffix == "xlsx"
    return data.startswith(_XLSX_MAGIC)


def _decoded(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Chinese banks' exports are often GBK, which GB18030 contains.
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise FileProblem("the CSV file is neither UTF-8 nor GBK (GB18030) text") from None


def _csv_unescaped(cell: str) -> str:
    text = cell.strip()
    # Undo csv_cell's apostrophe; banks' own exports use one too, to keep numbers as text.
    return text[1:] if text.startswith("'") else text


def _csv_rows(data: bytes) -> Generator[tuple[object, ...], None, None]:
    if b"\x00" in data:
        raise FileProblem("not a CSV text file (it holds NUL bytes): send CSV or XLSX")
    reader = csv.reader(io.StringIO(_decoded(data), newline=""))
    row_number = 0
    try:
        for record in reader:
            row_number += 1
            yield tuple(_csv_unescaped(cell) for cell in record[:COLUMNS_MAX])
    except csv.Error as error:
        raise FileProblem(f"row {row_number + 1}: not valid CSV ({error})") from None


def _check_unpacked_size(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked_bytes = sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise FileProblem("not an XLSX workbook (not a zip file)") from None
    if unpacked_bytes > XLSX_UNPACKED_BYTES_MAX:
        limit_mb = XLSX_UNPACKED_BYTES_MAX // 2**20
        raise FileProblem(f"the workbook unpacks to more than {limit_mb} MB")


def _xlsx_rows(data: bytes) -> Generator[tuple[object, ...], None, None]:
    _check_unpacked_size(data)
    # openpyxl raises many kinds of exception on a damaged or foreign zip (BadZipFile,
    # KeyError for a missing part, InvalidFileException, XML parse errors, ...): any of them
    # while it reads the file means the file is not a workbook we can read. Only openpyxl's
    # calls are inside these handlers, so our own bugs still surface.
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:
        raise FileProblem(f"not a readable XLSX workbook ({type(error).__name__})") from None
    try:
        if not workbook.worksheets:
            raise FileProblem("the workbook has no sheet")
        sheet = workbook.worksheets[0]
        # Read the rows that are there, not what the sheet's stated dimension claims (other
        # tools than Excel write it wrong, or as the whole sheet).
        sheet.reset_dimensions()
        rows = sheet.iter_rows(values_only=True)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except Exception as error:
                raise FileProblem(f"the sheet cannot be read ({type(error).__name__})") from None
            yield tuple(row[:COLUMNS_MAX])
    finally:
        workbook.close()


def _header_key(value: object) -> str:
    return _UNIT_SUFFIX.sub("", _cell_text(value)).casefold()


def _columns(row: tuple[object, ...], row_number: int) -> dict[str, int]:
    """The index of each field's column found in a header row."""
    keys = [_header_key(value) for value in row]
    found: dict[str, int] = {}
    for field, aliases in COLUMNS.items():
        for alias in aliases:
            indexes = [index for index, key in enumerate(keys) if key == alias.casefold()]
            if len(indexes) > 1:
                raise FileProblem(f"row {row_number}: two columns are named {alias}")
            if indexes:
                found[field] = indexes[0]
                break
    return found


def _missing(found: dict[str, int]) -> str:
    missing = [field for field in REQUIRED_COLUMNS if field not in found]
    return "; ".join(
        f"no {COLUMNS[field][0]} ({field}) column, named one of {', '.join(COLUMNS[field])}"
        for field in missing
    )


def _text_field(
    row: tuple[object, ...], row_number: int, index: int | None, names: tuple[str, ...]
) -> str:
    if index is None or index >= len(row):
        return ""
    text = _cell_text(row[index])
    if len(text) > TEXT_CHARS_MAX:
        raise FileProblem(f"row {row_number}: {names[index]} is over {TEXT_CHARS_MAX} characters")
    return text


def _bank_line(
    row: tuple[object, ...], row_number: int, columns: dict[str, int], names: tuple[str, ...]
) -> BankLine:
    def where(field: str) -> str:
        return f"row {row_number}: {names[columns[field]]}"

    def cell(field: str) -> object:
        index = columns[field]
        return row[index] if index < len(row) else None

    withdrawal = _cell_text(cell("withdrawal"))
    if not withdrawal:
        raise FileProblem(f"{where('withdrawal')} is empty: it must hold the withdrawal id")
    if _WITHDRAWAL.fullmatch(withdrawal) is None:
        raise FileProblem(f"{where('withdrawal')} {_shown(withdrawal)} is not a withdrawal id")
    try:
        amount_fen = parse_amount_fen(cell("amount"))
    except ValueError as error:
        raise FileProblem(f"{where('amount')} {error}") from None
    status = _cell_text(cell("status")).casefold()
    if status not in SUCCEEDED and status not in FAILED:
        shown = _shown(_cell_text(cell("status")))
        raise FileProblem(f"{where('status')} {shown} is neither success (成功) nor failure (失败)")
    texts = {
        field: _text_field(row, row_number, columns.get(field), names)
        for field in ("reference", "reason", "name", "account")
    }
    return BankLine(
        row_number,
        withdrawal,
        amount_fen,
        status in SUCCEEDED,
        texts["reference"],
        texts["reason"],
        texts["name"],
        texts["account"],
    )


def _bank_lines(rows: Iterator[tuple[object, ...]]) -> list[BankLine]:
    columns: dict[str, int] | None = None
    names: tuple[str, ...] = ()
    first_missing: str | None = None
    rows_before_header = 0
    lines: list[BankLine] = []
    for row_number, row in enumerate(rows, start=1):
        if all(_cell_text(value) == "" for value in row):
            continue
        if columns is None:
            found = _columns(row, row_number)
            missing = _missing(found)
            if not missing:
                columns, names = found, tuple(_cell_text(value) for value in row)
                continue
            first_missing = first_missing or f"row {row_number}: {missing}"
            rows_before_header += 1
            if rows_before_header >= HEADER_SEARCH_ROWS:
                break
            continue
        if len(lines) >= LINES_MAX:
            raise FileProblem(f"the file has more than {LINES_MAX} lines: split it")
        lines.append(_bank_line(row, row_number, columns, names))
    if columns is None:
        raise FileProblem(first_missing or "the file is empty")
    return lines


def read_bank_file(data: bytes, filename: str) -> list[BankLine]:
    """The lines of a bank's result file (代发结果) or statement (对账单), CSV or XLSX."""
    if len(data) > FILE_BYTES_MAX:
        raise FileProblem(f"the file is over {FILE_BYTES_MAX // 2**20} MB: split it")
    if not data.strip():
        raise FileProblem("the file is empty")
    # FileProblem, naming the row and column, for anything that cannot be read.
    rows = _xlsx_rows(data) if _is_xlsx(data, filename) else _csv_rows(data)
    try:
        return _bank_lines(rows)
    finally:
        rows.close()  # now, not when collected: an XLSX holds its zip open until then
