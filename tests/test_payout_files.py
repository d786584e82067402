"""The file side of payouts: payees, bank batch files, the bank's result files, reconciliation."""

import csv
import io
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import openpyxl  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenmall.core.units import Fen, format_fen
from tokenmall.payouts.files import (
    FILE_BYTES_MAX,
    LINES_MAX,
    XLSX_UNPACKED_BYTES_MAX,
    BankLine,
    BatchLine,
    FileProblem,
    csv_cell,
    parse_amount_fen,
    read_bank_file,
    write_batch,
)
from tokenmall.payouts.payee import Payee, masked_account, parse_payee, payee_json
from tokenmall.payouts.reconcile import (
    AMOUNT_DIFFERS,
    DIFFERENCES_SHEET,
    PAID_HERE_NOT_THERE,
    PAID_THERE_NOT_HERE,
    PAID_TWICE,
    REFERENCE_DIFFERS,
    REPORT_HEADER,
    SUMMARY_SHEET,
    Difference,
    LedgerPayout,
    reconcile,
    report_csv,
    report_xlsx,
)

Format = Literal["csv", "xlsx"]
FORMATS: tuple[Format, ...] = ("csv", "xlsx")
INJECTED = '=HYPERLINK("http://x")'

LINES = [
    BatchLine("wd-1", 123405, Payee("bank", "张三", "6222020200001234567", "中国工商银行")),
    BatchLine("wd-2", 5, Payee("bank", INJECTED, "6222020200007654321", "招商银行")),
    BatchLine("-wd.3", 100000000, Payee("alipay", "李四", "+8613800000000")),
]
OUTCOMES = {
    "wd-1": ("成功", "B0001"),
    "wd-2": ("失败", ""),
    "-wd.3": ("success", "B0003"),
}


# -- helpers -------------------------------------------------------------------------------------


def csv_file(rows: Sequence[Sequence[str]], encoding: str = "utf-8-sig") -> bytes:
    """Rows as a CSV file the way a bank writes it: no escaping of ours."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_file(rows: Sequence[Sequence[object]]) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def result_file(batch: bytes, fmt: Format, outcomes: Mapping[str, tuple[str, str]]) -> bytes:
    """The bank's result file for a batch file: the batch with 状态 and 银行流水号 added."""
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(batch.decode("utf-8-sig"), newline="")))
        header, *lines = rows
        return csv_file(
            [
                [*header, "状态", "银行流水号"],
                *([*line, *outcomes[line[5].removeprefix("'")]] for line in lines),
            ]
        )
    workbook = openpyxl.load_workbook(io.BytesIO(batch))
    sheet = workbook.active
    sheet.cell(row=1, column=7, value="状态")
    sheet.cell(row=1, column=8, value="银行流水号")
    for row_number in range(2, sheet.max_row + 1):
        status, reference = outcomes[sheet.cell(row=row_number, column=6).value]
        sheet.cell(row=row_number, column=7, value=status)
        sheet.cell(row=row_number, column=8, value=reference)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def problem(data: bytes, filename: str = "result.csv") -> str:
    with pytest.raises(FileProblem) as raised:
        read_bank_file(data, filename)
    message = str(raised.value)
    assert "\n" not in message
    return message


def bank_line(
    withdrawal: str, amount_fen: int, row: int, succeeded: bool = True, reference: str = ""
) -> BankLine:
    return BankLine(row, withdrawal, amount_fen, succeeded, reference, "", "", "")


# -- payees --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"method": "bank", "name": "张三", "account": "6222020200001234567", "bank": "工商银行"},
        {"method": "wechat", "name": "Zhang San", "account": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        {"method": "alipay", "name": "李四", "account": "li.si+pay@example.com"},
        {"method": "alipay", "name": "李" * 40, "account": "1" * 64},
    ],
)
def test_a_valid_payee_round_trips(value: dict[str, str]) -> None:
    payee = parse_payee(value)
    assert payee_json(payee) == value
    assert parse_payee(payee_json(payee)) == payee


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (["bank"], "JSON object"),
        ({"method": "bank", "name": "a", "account": "1", "bank": "b", "iban": "x"}, "iban"),
        ({"method": "paypal", "name": "a", "account": "1"}, "method"),
        ({"name": "a", "account": "1"}, "method"),
        ({"method": "wechat", "name": "", "account": "1"}, "name"),
        ({"method": "wechat", "name": "a" * 41, "account": "1"}, "name"),
        ({"method": "wechat", "name": 5, "account": "1"}, "name"),
        ({"method": "wechat", "name": "a\u202eb", "account": "1"}, "name"),
        ({"method": "wechat", "name": "a\nb", "account": "1"}, "name"),
        ({"method": "wechat", "name": " a", "account": "1"}, "name"),
        ({"method": "wechat", "name": "a ", "account": "1"}, "name"),
        ({"method": "wechat", "name": "a"}, "account"),
        ({"method": "wechat", "name": "a", "account": ""}, "account"),
        ({"method": "wechat", "name": "a", "account": "1" * 65}, "account"),
        ({"method": "wechat", "name": "a", "account": "6222 0202"}, "account"),
        ({"method": "wechat", "name": "a", "account": "62220202\n"}, "account"),
        ({"method": "wechat", "name": "a", "account": "账号"}, "account"),
        ({"method": "bank", "name": "a", "account": "1"}, "bank"),
        ({"method": "bank", "name": "a", "account": "1", "bank": ""}, "bank"),
        ({"method": "bank", "name": "a", "account": "1", "bank": "b" * 61}, "bank"),
        ({"method": "bank", "name": "a", "account": "1", "bank": "b\tc"}, "bank"),
        ({"method": "alipay", "name": "a", "account": "1", "bank": "招商银行"}, "bank"),
    ],
)
def test_a_malformed_payee_is_refused_naming_the_field(value: object, named: str) -> None:
    with pytest.raises(ValueError, match=named) as raised:
        parse_payee(value)
    assert "\n" not in str(raised.value)


def test_an_empty_bank_is_left_out_of_the_json() -> None:
    payee = parse_payee({"method": "wechat", "name": "a", "account": "1", "bank": ""})
    assert payee_json(payee) == {"method": "wechat", "name": "a", "account": "1"}


@pytest.mark.parametrize(
    ("account", "masked"),
    [
        ("6222020200001234567", "****4567"),
        ("123456", "**3456"),
        ("12345", "*2345"),
        ("1234", "****"),
        ("1", "****"),
        ("", "****"),
    ],
)
def test_masked_account(account: str, masked: str) -> None:
    assert masked_account(account) == masked


# -- batch files ---------------------------------------------------------------------------------


def test_the_csv_batch_file_is_what_a_chinese_bank_imports() -> None:
    data = write_batch(LINES[:1], "csv", "B20250101-1")
    assert (
        data
        == (
            "\ufeff序号,收款人姓名,收款账号,开户行,金额,备注\r\n"
            "1,张三,6222020200001234567,中国工商银行,1234.05,wd-1\r\n"
        ).encode()
    )


def test_the_xlsx_batch_file_holds_the_amounts_as_text() -> None:
    workbook = openpyxl.load_workbook(io.BytesIO(write_batch(LINES, "xlsx", "B20250101-1")))
    assert workbook.sheetnames == ["代发"]
    assert workbook.properties.title == "B20250101-1"
    sheet = workbook["代发"]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values == [
        ["序号", "收款人姓名", "收款账号", "开户行", "金额", "备注"],
        [1, "张三", "6222020200001234567", "中国工商银行", "1234.05", "wd-1"],
        [2, INJECTED, "6222020200007654321", "招商银行", "0.05", "wd-2"],
        [3, "李四", "+8613800000000", None, "1000000.00", "-wd.3"],
    ]
    assert all(cell.font.bold for cell in sheet[1])
    amount = sheet.cell(row=2, column=5)
    assert (amount.data_type, amount.number_format) == ("s", "@")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_batch_file_is_the_same_bytes_every_time(fmt: Format) -> None:
    first = write_batch(LINES, fmt, "B1")
    assert write_batch(LINES, fmt, "B1") == first
    assert write_batch(LINES, fmt, "B2") != first or fmt == "csv"
    if fmt == "xlsx":
        # Nothing in the file depends on the clock: no zip entry time, no document time.
        with zipfile.ZipFile(io.BytesIO(first)) as archive:
            assert {entry.date_time for entry in archive.infolist()} == {(2000, 1, 1, 0, 0, 0)}
        properties = openpyxl.load_workbook(io.BytesIO(first)).properties
        assert properties.created.year == properties.modified.year == 2000


def test_a_payment_of_nothing_is_a_bug() -> None:
    with pytest.raises(ValueError, match="wd-0"):
        write_batch([BatchLine("wd-0", 0, LINES[0].payee)], "csv", "B1")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_batch_file_turned_result_file_reads_back(fmt: Format) -> None:
    data = result_file(write_batch(LINES, fmt, "B1"), fmt, OUTCOMES)
    assert read_bank_file(data, f"result.{fmt}") == [
        BankLine(2, "wd-1", 123405, True, "B0001", "", "张三", "6222020200001234567"),
        BankLine(3, "wd-2", 5, False, "", "", INJECTED, "6222020200007654321"),
        BankLine(4, "-wd.3", 100000000, True, "B0003", "", "李四", "+8613800000000"),
    ]
    # Without a name the content decides.
    assert len(read_bank_file(data, "download")) == len(LINES)


def test_formula_like_text_is_escaped_in_csv() -> None:
    data = write_batch(LINES, "csv", "B1")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[2][1] == "'" + INJECTED
    assert rows[3][2] == "'+8613800000000"
    assert rows[3][5] == "'-wd.3"
    for start in ("=", "+", "-", "@", "\t", "\r", "'"):
        assert csv_cell(start + "1") == "'" + start + "1"
    assert csv_cell("张三") == "张三"
    assert csv_cell(12) == "12"


def test_formula_like_text_is_a_string_cell_in_xlsx() -> None:
    # Decision: the XLSX cell keeps the exact name as a string cell (never a formula), marked
    # with Excel's quote prefix; no apostrophe is added to the text the bank's importer reads.
    workbook = openpyxl.load_workbook(io.BytesIO(write_batch(LINES, "xlsx", "B1")))
    cell = workbook.active.cell(row=3, column=2)
    assert (cell.value, cell.data_type, cell.quotePrefix) == (INJECTED, "s", True)
    plain = workbook.active.cell(row=2, column=2)
    assert (plain.data_type, plain.quotePrefix) == ("s", False)


# -- reading the bank's files --------------------------------------------------------------------


def test_a_gb18030_csv_with_the_banks_own_headers() -> None:
    data = csv_file(
        [
            ["交易流水号", "户名", "账号", "交易金额(元)", "交易状态", "失败原因", "附言", "用途"],
            ["T1", "张三", "'6222020200001234567", "1,234.05", "交易成功", "", "wd-1", "代发"],
            ["", "王五", "6222", "88.10", "退回", "账户已销户", "wd-2", "代发"],
        ],
        encoding="gb18030",
    )
    assert read_bank_file(data, "对账单.CSV") == [
        BankLine(2, "wd-1", 123405, True, "T1", "", "张三", "6222020200001234567"),
        BankLine(3, "wd-2", 8810, False, "", "账户已销户", "王五", "6222"),
    ]


@pytest.mark.parametrize(
    "header",
    [
        ["Status", "extra", "AMOUNT", "Remark", "reference", "reason", "name", "account"],
        ["note", "withdrawal", "status", "amount"],
        ["处理结果", "金额（元）", "用途", "流水号", "银行名称"],
        ["状态", "交易金额", "备注", "备注说明"],
    ],
)
def test_columns_are_found_by_any_alias_in_any_order(header: list[str]) -> None:
    by_column = {
        "status": "Succeeded",
        "处理结果": "成功",
        "状态": " 已成功 ",
        "amount": "12",
        "金额（元）": "12.00",
        "交易金额": "12.0",
    }
    row = [by_column.get(name.casefold(), "") for name in header]
    row[[name.casefold() for name in header].index(_withdrawal_column(header))] = "wd-9"
    for fmt, data in (("csv", csv_file([header, row])), ("xlsx", xlsx_file([header, row]))):
        (line,) = read_bank_file(data, f"r.{fmt}")
        assert (line.row, line.withdrawal, line.amount_fen, line.succeeded) == (
            2,
            "wd-9",
            1200,
            True,
        )


def _withdrawal_column(header: list[str]) -> str:
    names = [name.casefold() for name in header]
    return next(alias for alias in ("备注", "用途", "remark", "withdrawal") if alias in names)


def test_title_rows_above_the_header_and_empty_lines_are_skipped() -> None:
    data = csv_file(
        [
            ["批量代发结果明细"],
            ["批次号", "B1"],
            [],
            ["备注", "金额", "状态"],
            ["", ""],
            ["wd-1", "1.00", "成功"],
            ["", "", ""],
            ["wd-2", "2.00", "失败"],
        ]
    )
    rows = [(line.row, line.withdrawal) for line in read_bank_file(data, "r.csv")]
    assert rows == [(6, "wd-1"), (8, "wd-2")]


def test_numbers_in_xlsx_cells() -> None:
    data = xlsx_file(
        [
            ["备注", "金额", "状态", "银行流水号"],
            ["wd-1", 12, "成功", 2024010100012],
            ["wd-2", 12.5, "成功", ""],
            ["wd-3", 1234.05, "失败", None],
            [1001, 0.07, "paid", None],
        ]
    )
    lines = read_bank_file(data, "r.xlsx")
    assert [(line.withdrawal, line.amount_fen, line.reference) for line in lines] == [
        ("wd-1", 1200, "2024010100012"),
        ("wd-2", 1250, ""),
        ("wd-3", 123405, ""),
        ("1001", 7, ""),
    ]


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (["wd-1", "12.345", "成功"], 'row 3: 金额 "12.345" has more than 2 decimals'),
        (["wd-1", "-1.00", "成功"], 'row 3: 金额 "-1.00" is negative'),
        (["wd-1", "1,23.00", "成功"], 'row 3: 金额 "1,23.00" is not an amount'),
        (["wd-1", "¥12", "成功"], 'row 3: 金额 "¥12" is not an amount'),
        (["wd-1", "", "成功"], "row 3: 金额 is empty"),
        (["wd-1", "1000000000000.00", "成功"], "row 3: 金额 "),
        (["wd-1", "1.00", "处理中"], 'row 3: 状态 "处理中" is neither success'),
        (["wd-1", "1.00", ""], 'row 3: 状态 "" is neither success'),
        (["", "1.00", "成功"], "row 3: 备注 is empty"),
        (["wd 1", "1.00", "成功"], 'row 3: 备注 "wd 1" is not a withdrawal id'),
        (["w" * 65, "1.00", "成功"], "row 3: 备注 "),
        (["wd-1", "1.00", "成功", "T" * 201], "row 3: 银行流水号 is over 200 characters"),
    ],
)
def test_a_malformed_line_is_named_by_row_and_column(cells: list[str], message: str) -> None:
    rows = [["备注", "金额", "状态", "银行流水号"], ["wd-0", "1.00", "成功"], cells]
    assert problem(csv_file(rows)).startswith(message)
    assert problem(xlsx_file(rows), "r.xlsx").startswith(message)


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (["备注", "金额"], "状态"),
        (["备注", "状态", "开户行"], "金额"),
        (["金额", "状态", "备注说明"], "备注"),
    ],
)
def test_a_missing_column_is_named(header: list[str], missing: str) -> None:
    message = problem(csv_file([header, ["wd-1", "1.00", "成功"]]))
    assert message.startswith(f"row 1: no {missing} (")


def test_two_columns_of_one_name_are_refused() -> None:
    message = problem(csv_file([["备注", "金额", "金额", "状态"], ["wd-1", "1", "2", "成功"]]))
    assert message == "row 1: two columns are named 金额"


def test_a_header_without_lines_is_no_lines() -> None:
    assert read_bank_file(csv_file([["备注", "金额", "状态"]]), "r.csv") == []


@pytest.mark.parametrize(
    ("data", "filename"),
    [(b"", "r.csv"), (b"  \r\n", "r.csv"), (b"\xef\xbb\xbf", "r.csv"), (b"\r\n,,\r\n", "r.txt")],
)
def test_an_empty_file(data: bytes, filename: str) -> None:
    assert problem(data, filename) == "the file is empty"


def test_an_empty_workbook() -> None:
    assert problem(xlsx_file([]), "r.xlsx") == "the file is empty"


def test_garbage_is_refused_in_one_line() -> None:
    assert "NUL" in problem(bytes(range(256)) * 4, "r.bin")
    assert "neither UTF-8 nor GBK" in problem(b"\xff\xfe\xfa abc", "r.csv")
    assert ".xls" in problem(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "r.xls")
    assert problem(b"%PDF-1.4 not a sheet", "r.xlsx") == "not an XLSX workbook (not a zip file)"
    assert problem(b"PK\x03\x04 truncated", "r") == "not an XLSX workbook (not a zip file)"


def test_a_zip_that_is_not_a_workbook() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hello")
    assert problem(buffer.getvalue(), "r.xlsx").startswith("not a readable XLSX workbook")
    assert problem(buffer.getvalue(), "r").startswith("not a readable XLSX workbook")


def test_a_damaged_workbook() -> None:
    workbook = io.BytesIO(xlsx_file([["备注", "金额", "状态"], ["wd-1", "1.00", "成功"]]))
    damaged = io.BytesIO()
    with zipfile.ZipFile(workbook) as source, zipfile.ZipFile(damaged, "w") as target:
        for entry in source.infolist():
            content = source.read(entry)
            if entry.filename.startswith("xl/worksheets/"):
                content = content[: len(content) // 2]  # cut mid-XML
            target.writestr(entry, content)
    assert problem(damaged.getvalue(), "r.xlsx") == "the sheet cannot be read (ParseError)"


def test_limits() -> None:
    assert "20 MB" in problem(b"x" * (FILE_BYTES_MAX + 1))
    header = "备注,金额,状态\r\n"
    too_many = (header + "wd-1,1.00,成功\r\n" * (LINES_MAX + 1)).encode()
    assert problem(too_many) == f"the file has more than {LINES_MAX} lines: split it"
    assert len(read_bank_file((header + "wd-1,1.00,成功\r\n" * LINES_MAX).encode(), "r")) == (
        LINES_MAX
    )


def test_a_zip_bomb_is_refused_before_it_is_unpacked() -> None:
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("xl/sharedStrings.xml", "w") as entry,
    ):
        chunk = bytes(2**20)
        for _ in range(XLSX_UNPACKED_BYTES_MAX // len(chunk) + 1):
            entry.write(chunk)
    assert "unpacks to more than" in problem(buffer.getvalue(), "r.xlsx")


# -- amounts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "amount_fen"),
    [
        ("1234.05", 123405),
        ("1,234.05", 123405),
        ("1,234,567.5", 123456750),
        ("1234.5", 123450),
        ("1234", 123400),
        (" 0.07 ", 7),
        ("0", 0),
        ("999999999999.99", 99999999999999),
        (1234, 123400),
        (1234.05, 123405),
        (0.1, 10),
        (0.07, 7),
        (1e11, 10**13),
    ],
)
def test_an_amount_is_read_exactly(value: object, amount_fen: int) -> None:
    assert parse_amount_fen(value) == amount_fen


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("12.345", "more than 2 decimals"),
        ("12.340", "more than 2 decimals"),
        (0.001, "more than 2 decimals"),
        (1234.055, "more than 2 decimals"),
        ("-0.01", "negative"),
        (-1, "negative"),
        (-0.5, "negative"),
        ("1000000000000", "more than 12 digits"),
        (10**12, "more than 12 digits"),
        (1e300, "more than 12 digits"),
        ("1.2.3", "not an amount"),
        ("1,2345.00", "not an amount"),
        ("12.", "not an amount"),
        (".5", "not an amount"),
        ("1e5", "not an amount"),
        ("１２", "not an amount"),
        ("1" * 40, "not an amount"),
        (float("nan"), "not an amount"),
        (float("inf"), "not an amount"),
        (True, "not an amount"),
        (None, "empty"),
        ("", "empty"),
    ],
)
def test_a_bad_amount_is_refused(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_amount_fen(value)


@given(st.integers(min_value=0, max_value=10**12))
def test_formatting_then_parsing_an_amount_gives_it_back(amount_fen: int) -> None:
    assert parse_amount_fen(format_fen(Fen(amount_fen))) == amount_fen
    with_commas = f"{amount_fen // 100:,}.{amount_fen % 100:02d}"
    assert parse_amount_fen(with_commas) == amount_fen


# -- reconciliation ------------------------------------------------------------------------------


def paid(withdrawal: str, amount_fen: int, reference: str | None = "R1") -> LedgerPayout:
    return LedgerPayout(withdrawal, amount_fen, "paid", reference)


def kinds(differences: Sequence[Difference]) -> list[tuple[str, str]]:
    return [(difference.kind, difference.withdrawal) for difference in differences]


def test_a_statement_that_agrees_gives_no_differences() -> None:
    statement = [
        bank_line("wd-1", 100, 2, reference="R1"),
        bank_line(
            "wd-2", 200, 3, reference=""
        ),  # no reference on the statement: nothing to compare
        bank_line("wd-3", 300, 4, succeeded=False),  # failed there, failed here
    ]
    ledger = {
        "wd-1": paid("wd-1", 100),
        "wd-2": paid("wd-2", 200, "R2"),
        "wd-3": LedgerPayout("wd-3", 300, "failed", None),
    }
    assert reconcile(statement, ledger) == []


@pytest.mark.parametrize("status", [None, "approved", "failed", "rejected", "requested"])
def test_paid_there_not_here(status: str | None) -> None:
    ledger = {} if status is None else {"wd-1": LedgerPayout("wd-1", 100, status, None)}
    (difference,) = reconcile([bank_line("wd-1", 100, 5, reference="R9")], ledger)
    assert difference == Difference(
        PAID_THERE_NOT_HERE,
        "wd-1",
        None if status is None else 100,
        100,
        status,
        ("R9",),
        (5,),
        difference.detail,
    )
    assert "渠道已付账本未付" in difference.detail
    assert ("no such withdrawal" if status is None else status) in difference.detail


def test_paid_here_not_there_within_scope_only() -> None:
    ledger = {"wd-1": paid("wd-1", 100), "wd-2": paid("wd-2", 200)}
    assert kinds(reconcile([], ledger)) == [
        (PAID_HERE_NOT_THERE, "wd-1"),
        (PAID_HERE_NOT_THERE, "wd-2"),
    ]
    only_wd2 = reconcile([], ledger, lambda payout: payout.withdrawal == "wd-2")
    assert kinds(only_wd2) == [(PAID_HERE_NOT_THERE, "wd-2")]
    assert only_wd2[0].channel_amount_fen is None
    assert only_wd2[0].ledger_amount_fen == 200


def test_a_failed_line_for_a_paid_withdrawal() -> None:
    ledger = {"wd-1": paid("wd-1", 100)}
    failed = [bank_line("wd-1", 100, 7, succeeded=False, reference="F1")]
    (difference,) = reconcile(failed, ledger)
    assert (difference.kind, difference.rows, difference.references) == (
        PAID_HERE_NOT_THERE,
        (7,),
        ("F1",),
    )
    assert "failed (rows 7)" in difference.detail
    # Not a difference by itself: out of scope, or with a successful line beside it, none.
    assert reconcile(failed, ledger, lambda payout: False) == []
    retried = [*failed, bank_line("wd-1", 100, 8, reference="R1")]
    assert reconcile(retried, ledger) == []
    # A failed line for a withdrawal the ledger does not know moved no money.
    assert reconcile([bank_line("wd-x", 100, 2, succeeded=False)], {}) == []


def test_amount_differs() -> None:
    (difference,) = reconcile(
        [bank_line("wd-1", 1000, 2, reference="R1")], {"wd-1": paid("wd-1", 100)}
    )
    assert (difference.kind, difference.ledger_amount_fen, difference.channel_amount_fen) == (
        AMOUNT_DIFFERS,
        100,
        1000,
    )
    assert "1.00" in difference.detail and "10.00" in difference.detail


def test_paid_twice() -> None:
    statement = [
        bank_line("wd-1", 100, 2, reference="R1"),
        bank_line("wd-1", 100, 9, reference="R2"),
    ]
    (difference,) = reconcile(statement, {"wd-1": paid("wd-1", 100)})
    assert (difference.kind, difference.channel_amount_fen) == (PAID_TWICE, 200)
    assert (difference.references, difference.rows) == (("R1", "R2"), (2, 9))
    # Twice, and not at all as the ledger has it: both are shown.
    assert kinds(reconcile(statement, {})) == [(PAID_THERE_NOT_HERE, "wd-1"), (PAID_TWICE, "wd-1")]


@pytest.mark.parametrize("ledger_reference", ["R1", None, ""])
def test_reference_differs(ledger_reference: str | None) -> None:
    ledger = {"wd-1": paid("wd-1", 100, ledger_reference)}
    (difference,) = reconcile([bank_line("wd-1", 100, 2, reference="R2")], ledger)
    assert (difference.kind, difference.references) == (REFERENCE_DIFFERS, ("R2",))


def test_differences_come_most_dangerous_first() -> None:
    statement = [
        bank_line("wd-b", 100, 2, reference="X"),
        bank_line("wd-a", 999, 3, reference="R1"),
        bank_line("wd-z", 100, 4, reference="R1"),
        bank_line("wd-z", 100, 5, reference="R1"),
        bank_line("wd-y", 100, 6),
    ]
    ledger = {
        "wd-b": paid("wd-b", 100),
        "wd-a": paid("wd-a", 100),
        "wd-z": paid("wd-z", 100),
        "wd-c": paid("wd-c", 100),
    }
    assert kinds(reconcile(statement, ledger)) == [
        (PAID_THERE_NOT_HERE, "wd-y"),
        (PAID_HERE_NOT_THERE, "wd-c"),
        (AMOUNT_DIFFERS, "wd-a"),
        (PAID_TWICE, "wd-z"),
        (REFERENCE_DIFFERS, "wd-b"),
    ]


def test_a_result_file_reconciles_against_the_ledger() -> None:
    data = result_file(write_batch(LINES, "xlsx", "B1"), "xlsx", OUTCOMES)
    ledger = {
        "wd-1": paid("wd-1", 123405, "B0001"),
        "wd-2": LedgerPayout("wd-2", 5, "failed", None),
        "-wd.3": LedgerPayout("-wd.3", 100000000, "approved", None),
    }
    assert kinds(reconcile(read_bank_file(data, "r.xlsx"), ledger)) == [
        (PAID_THERE_NOT_HERE, "-wd.3")
    ]


# -- the report ----------------------------------------------------------------------------------


def report_differences() -> list[Difference]:
    statement = [
        bank_line("=cmd|' /C calc'!A0", 100, 2, reference="@SUM(1)"),
        bank_line("wd-1", 123405, 3, reference="R1"),
    ]
    return reconcile(statement, {"wd-1": paid("wd-1", 100), "wd-2": paid("wd-2", 5)})


def test_the_report_workbook() -> None:
    differences = report_differences()
    summary = {"文件 file": "statement.csv", "渠道 channel": "manual"}
    data = report_xlsx(differences, summary)
    assert report_xlsx(differences, summary) == data
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    assert workbook.sheetnames == [SUMMARY_SHEET, DIFFERENCES_SHEET]
    totals = {
        row[0]: row[1] for row in workbook[SUMMARY_SHEET].iter_rows(min_row=2, values_only=True)
    }
    assert totals["文件 file"] == "statement.csv"
    assert totals["渠道已付账本未付 paid_there_not_here"] == 1
    assert totals["金额不符 amount_differs"] == 1
    assert totals["重复付款 paid_twice"] == 0
    assert totals["一致 agree"] == "no"
    sheet = workbook[DIFFERENCES_SHEET]
    rows: list[tuple[Any, ...]] = list(sheet.iter_rows(values_only=True))
    assert rows[0] == REPORT_HEADER
    assert all(cell.font.bold for cell in sheet[1])
    assert [row[:7] for row in rows[1:]] == [
        ("paid_there_not_here", "=cmd|' /C calc'!A0", None, "1.00", None, "@SUM(1)", "2"),
        ("paid_here_not_there", "wd-2", "0.05", None, "paid", None, None),
        ("amount_differs", "wd-1", "1.00", "1234.05", "paid", "R1", "3"),
    ]
    texts = [cell for row in sheet.iter_rows(min_row=2) for cell in row if cell.value is not None]
    assert all(cell.data_type == "s" for cell in texts)
    assert sheet.column_dimensions["H"].width >= 60


def test_an_agreeing_report_says_so() -> None:
    workbook = openpyxl.load_workbook(io.BytesIO(report_xlsx([], {})))
    totals = dict(workbook[SUMMARY_SHEET].iter_rows(min_row=2, values_only=True))
    assert totals["一致 agree"] == "yes"
    assert workbook[DIFFERENCES_SHEET].max_row == 1


def test_the_report_csv() -> None:
    data = report_csv(report_differences())
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == REPORT_HEADER
    assert rows[1][1] == "'=cmd|' /C calc'!A0"
    assert rows[1][5] == "'@SUM(1)"
    assert [row[0] for row in rows[1:]] == [
        "paid_there_not_here",
        "paid_here_not_there",
        "amount_differs",
    ]


def test_control_characters_from_a_bank_file_do_not_break_the_report() -> None:
    statement = read_bank_file(
        csv_file([["备注", "金额", "状态", "流水号"], ["wd-1", "1", "成功", "R\x01"]]), "r"
    )
    workbook = openpyxl.load_workbook(io.BytesIO(report_xlsx(reconcile(statement, {}), {})))
    assert workbook[DIFFERENCES_SHEET].cell(row=2, column=6).value == "R\ufffd"
