"""The console's money pages: 提现审核 (the withdrawal queue, batch approval, rejection with a
reason, the bank file out and its result file in) and 报表 (the daily report, as a page and
as XLSX). Finance's flows run in Chromium against a real server; each is checked in the
ledger afterwards through the API."""

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from playwright.sync_api import Browser, Dialog

from tests.support.web import (
    DESKTOP,
    SHOTS,
    Visit,
    WebServer,
    csrf_of,
    seeded_web_server,
    staff_login,
    visit,
)
from tokenmall.core.units import (
    MONEY_DECIMALS,
    Fen,
    Units,
    format_fen,
    format_units,
    parse_scaled,
)
from tokenmall.services.daily_report import FIGURES

BANK = {"method": "bank", "name": "张三", "account": "6222020200001234567", "bank": "工商银行"}
# alice's withdrawals (w1-w4) and bob's (w5), all waiting for review.
WITHDRAWALS = {"w1": "10.01", "w2": "20.02", "w3": "30.03", "w4": "40.04", "w5": "5.05"}
SEED: list[dict[str, Any]] = [
    {
        "op": "set_params",
        "params": {
            "referral_rates": ["0.10", "0.05"],
            "agent_rates": ["0.05", "0.03", "0.02"],
        },
    },
    {"op": "register_agent", "agent": "gd", "region": "44"},
    {"op": "register_agent", "agent": "dg02", "region": "441902"},
    {"op": "register", "user": "alice"},
    {"op": "register", "user": "bob", "referrer": "alice"},
    {"op": "register", "user": "carol", "referrer": "bob"},
    {"op": "order", "id": "o1", "user": "alice", "amount": "5000.00", "region": "441902"},
    {"op": "order", "id": "o2", "user": "bob", "amount": "3000.00"},
    {"op": "order", "id": "o3", "user": "carol", "amount": "1000.00", "region": "441900"},
    {"op": "order", "id": "o4", "user": "carol", "amount": "200.00", "region": "441902"},
    {"op": "refund", "order": "o4"},
    {"op": "sell", "user": "alice", "points": "all"},
    {"op": "sell", "user": "bob", "points": "100"},
    {"op": "settle_day"},
    *(
        {
            "op": "withdraw",
            "id": wid,
            "user": "bob" if wid == "w5" else "alice",
            "amount": amount,
            "payee": BANK,
        }
        for wid, amount in WITHDRAWALS.items()
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    with seeded_web_server(tmp_path_factory.mktemp("money"), SEED) as started:
        yield started


def statuses(server: WebServer) -> dict[str, str]:
    page = server.get("/v1/withdrawal-list?limit=500")
    return {w["id"]: w["status"] for w in page["withdrawals"]}


def fen(text: str) -> int:
    value = parse_scaled(text, MONEY_DECIMALS)
    assert value is not None, text
    return value


def head(server: WebServer) -> int:
    found: int = server.http.get("/healthz").json()["head"]
    return found


def accept_dialogs(one: Visit) -> None:
    def accept(dialog: Dialog) -> None:
        dialog.accept()

    one.page.on("dialog", accept)


def screenshot(one: Visit, path: str, name: str) -> None:
    """The page in English for the docs (this machine's Chromium has no CJK font), then
    back to Chinese."""
    one.go("/lang/en?next=" + path).screenshot(path=str(SHOTS / name), full_page=True)
    one.go("/lang/zh-CN?next=/console/")


def result_csv(lines: list[tuple[str, str, str, str]]) -> bytes:
    """A bank's result file: (withdrawal, amount, status, reference) per line."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["序号", "备注", "金额", "处理结果", "银行流水号", "失败原因"])
    for number, (withdrawal, amount, status, reference) in enumerate(lines, start=1):
        writer.writerow([number, withdrawal, amount, status, reference, ""])
    return out.getvalue().encode("gb18030")


def test_finance_approves_exports_rejects_and_imports(
    server: WebServer, browser: Browser, visits: list[Visit], tmp_path: Path
) -> None:
    one = visit(browser, server, DESKTOP)
    visits.append(one)
    accept_dialogs(one)
    page = staff_login(one, "fin")
    page = one.go("/console/withdrawals?status=requested")
    assert page.get_by_test_id("count-requested").inner_text() == "5"
    # 批量审核: w1, w2 and w3 ticked, w4 and w5 not.
    for wid in ("w1", "w2", "w3"):
        page.check(f"input[name=ids][value={wid}]")
    page.get_by_test_id("approve").click()
    page.wait_for_selector(".flash")
    assert "3" in page.inner_text(".flash")
    assert statuses(server) == {
        "w1": "approved",
        "w2": "approved",
        "w3": "approved",
        "w4": "requested",
        "w5": "requested",
    }
    # 导出打款文件: w1 and w2 into a bank batch, downloaded as XLSX.
    page = one.go("/console/withdrawals?status=approved")
    for wid in ("w1", "w2"):
        page.check(f"input[name=export_ids][value={wid}]")
    page.get_by_test_id("export").click()
    page.wait_for_selector(".flash")
    batches = server.get("/v1/payouts/batches")["batches"]
    assert len(batches) == 1 and batches[0]["lines"] == 2
    batch = batches[0]["id"]
    assert batches[0]["total_fen"] == fen("10.01") + fen("20.02")
    with page.expect_download() as downloading:
        page.get_by_test_id(f"xlsx-{batch}").click()
    saved = tmp_path / "batch.xlsx"
    downloading.value.save_as(saved)
    sheet = load_workbook(saved).active
    listed = {row[5]: row[4] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert listed == {"w1": "10.01", "w2": "20.02"}
    # 驳回 with a reason: w4's money goes back to alice's cash.
    cash_before = fen(server.account("alice")["cash"])
    page = one.go("/console/withdrawals?status=requested")
    page.get_by_test_id("reason-w4").fill("收款账户信息不完整")
    page.get_by_test_id("reject-w4").click()
    page.wait_for_selector(".flash")
    assert statuses(server)["w4"] == "rejected"
    assert fen(server.account("alice")["cash"]) == cash_before + fen("40.04")
    # 导入打款结果: w1 paid, w2 failed (back to cash), w3 in no file: refused.
    cash_before = fen(server.account("alice")["cash"])
    result = tmp_path / "result.csv"
    result.write_bytes(
        result_csv(
            [
                ("w1", "10.01", "成功", "BANK001"),
                ("w2", "20.02", "失败", ""),
                ("w3", "30.03", "成功", "BANK003"),
            ]
        )
    )
    page = one.go("/console/withdrawals")
    page.set_input_files("input[type=file][name=file]", str(result))
    page.get_by_test_id("import").click()
    page.wait_for_selector("[data-testid=applied]")
    assert page.get_by_test_id("applied").inner_text() == "2"
    assert page.get_by_test_id("refused").inner_text() == "1"
    found = statuses(server)
    assert (found["w1"], found["w2"], found["w3"]) == ("paid", "failed", "approved")
    alice = server.account("alice")
    assert fen(alice["cash"]) == cash_before + fen("20.02")
    assert alice["withdrawn"] == "10.01"
    screenshot(one, "/console/withdrawals", "console-withdrawals.png")


def test_a_reason_is_required_to_reject(server: WebServer) -> None:
    client = server.staff_client("fin")
    csrf = csrf_of(client.get("/console/withdrawals").text)
    before = head(server)
    answer = client.post(
        "/console/withdrawals/w5/reject", data={"csrf": csrf, "key": "r1", "reason": "  "}
    )
    assert answer.status_code == 303
    assert head(server) == before and statuses(server)["w5"] == "requested"


def test_support_sees_the_queue_but_cannot_act(
    server: WebServer, browser: Browser, visits: list[Visit]
) -> None:
    one = visit(browser, server, DESKTOP)
    visits.append(one)
    page = staff_login(one, "help")
    page = one.go("/console/withdrawals")
    assert page.get_by_test_id("row-w5").is_visible()
    assert page.get_by_test_id("approve").count() == 0
    assert page.locator("input[type=checkbox]").count() == 0
    assert page.locator("button.danger").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    before, cash = head(server), server.account("bob")["cash"]
    for path, form in (
        ("/console/withdrawals/approve", {"ids": "w5"}),
        ("/console/withdrawals/w5/reject", {"reason": "forged"}),
        ("/console/withdrawals/export", {"export_ids": "w3"}),
    ):
        one.watch.expect("403")
        answer = page.request.post(
            server.url.rstrip("/") + path, form={"csrf": csrf or "", "key": "k", **form}
        )
        assert answer.status == 403, path
    assert head(server) == before
    assert statuses(server)["w5"] == "requested" and server.account("bob")["cash"] == cash
    assert server.get("/v1/payouts/batches")["batches"] == [] or all(
        "w3" not in str(b) for b in server.get("/v1/payouts/batches")["batches"]
    )
    # Nor may support download a bank file (payees' account numbers).
    assert (
        page.request.get(server.url.rstrip("/") + "/console/withdrawals/batches/x/csv").status
        == 403
    )


def test_the_queue_filters_and_refuses_bad_filters(server: WebServer) -> None:
    client = server.staff_client("help")
    page = client.get("/console/withdrawals?account=bob")
    assert page.status_code == 200 and "w5" in page.text and "w1" not in page.text
    for bad in ("status=nope", "day=2026-1-1", "account=a%20b"):
        refused = client.get(f"/console/withdrawals?{bad}")
        assert refused.status_code == 400, bad


def signed_units(text: str) -> int:
    units = parse_scaled(text.lstrip("+-"), 8)
    assert units is not None, text
    return -units if text.startswith("-") else units


def expected_report(server: WebServer) -> dict[str, str]:
    """What the day's report must say, from the API: the whole ledger is of today, so the
    day's figures are the state's totals."""
    state = server.get("/v1/state")
    listed = server.get("/v1/withdrawal-list?limit=500")["withdrawals"]
    paid = [w for w in listed if w["status"] == "paid"]
    returned = [w for w in listed if w["status"] in ("rejected", "failed")]
    # EP the referrers (alice of bob and carol, bob of carol) got by others' orders, less
    # what the refund took back: their order and refund lines with no quota change (their
    # own orders add quota; no settlement comes between).
    referral_units = 0
    for referrer in ("alice", "bob"):
        for line in server.get(f"/v1/accounts/{referrer}/statement?limit=500")["lines"]:
            changes = line["changes"]
            if line["op"] in ("order", "refund") and "quota" not in changes and "ep" in changes:
                referral_units += signed_units(changes["ep"])
    return {
        "sales_fen": state["sales"],
        "refunds_fen": state["refunds"],
        "net_sales_fen": format_fen(Fen(fen(state["sales"]) - fen(state["refunds"]))),
        "contributions_fen": state["contributions"],
        "dividends_fen": state["dividends_paid"],
        "agent_commissions_fen": state["agent_commissions"],
        "withdrawals_requested": str(len(listed)),
        "withdrawals_requested_fen": format_fen(Fen(sum(fen(w["amount"]) for w in listed))),
        "withdrawals_paid": str(len(paid)),
        "withdrawals_paid_fen": state["withdrawn"],
        "withdrawals_returned": str(len(returned)),
        "withdrawals_returned_fen": format_fen(Fen(sum(fen(w["amount"]) for w in returned))),
        "referral_units": format_units(Units(referral_units)),
        "exits": str(state["exits"]),
    }


def test_the_daily_report_page_and_xlsx_agree_with_the_ledger(
    server: WebServer, browser: Browser, visits: list[Visit], tmp_path: Path
) -> None:
    expected = expected_report(server)
    assert fen(expected["contributions_fen"]) > 0 and fen(expected["agent_commissions_fen"]) > 0
    one = visit(browser, server, DESKTOP)
    visits.append(one)
    page = staff_login(one, "fin")
    day = datetime.now(UTC).date().isoformat()
    page = one.go(f"/console/reports?day={day}")
    shown = {key: page.get_by_test_id(key).inner_text() for key in expected}
    assert shown == expected
    screenshot(one, f"/console/reports?day={day}", "console-reports.png")
    page = one.go(f"/console/reports?day={day}")
    with page.expect_download() as downloading:
        page.get_by_test_id("xlsx").click()
    saved = tmp_path / "report.xlsx"
    downloading.value.save_as(saved)
    rows = load_workbook(saved).active.iter_rows(min_row=3, values_only=True)
    in_workbook = [(str(label), str(value), str(unit)) for label, value, unit in rows]
    on_page = [
        tuple(text.split("\t"))
        for text in page.locator("table.money-report tbody tr").all_inner_texts()
    ]
    assert in_workbook == on_page and len(on_page) == len(FIGURES)


def test_reports_refuse_bad_days_and_support_reads_them(server: WebServer) -> None:
    client = server.staff_client("help")
    assert client.get("/console/reports").status_code == 200
    assert client.get("/console/reports?day=2026-02-30").status_code == 400
    assert client.get("/console/reports/2026-02-30.xlsx").status_code == 404
    empty = client.get("/console/reports?day=2001-01-01")
    assert empty.status_code == 200
    workbook = client.get("/console/reports/2001-01-01.xlsx")
    assert workbook.status_code == 200
    sheet = load_workbook(io.BytesIO(workbook.content)).active
    assert sheet.cell(row=2, column=2).value == "2001-01-01"


def test_an_unreadable_result_file_changes_nothing(server: WebServer) -> None:
    client = server.staff_client("fin")
    csrf = csrf_of(client.get("/console/withdrawals").text)
    before = head(server)
    answer = client.post(
        "/console/withdrawals/import",
        data={"csrf": csrf},
        files={"file": ("result.csv", b"not,a,bank,file\n1,2,3,4\n", "text/csv")},
    )
    assert answer.status_code == 422 and "无法读取" in answer.text
    named = client.post(
        "/console/withdrawals/import",
        data={"csrf": csrf},
        files={"file": ("result.exe", b"MZ", "application/octet-stream")},
    )
    assert named.status_code == 400
    forged = client.post(
        "/console/withdrawals/import",
        data={"csrf": "forged"},
        files={"file": ("result.csv", b"x", "text/csv")},
    )
    assert forged.status_code == 403
    assert head(server) == before
