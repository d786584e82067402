"""The console's 数据概览 (overview) and 审计 (audit): the overview's figures are the API's, its
charts draw in Chromium under the strict CSP; audit verify runs in the background with its
progress polled by HTMX, finds an intact ledger intact and a tampered one broken at the entry
that was edited; the journal pages by cursor and filters; support cannot start a verify."""

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from tests.support.web import (
    SHOTS,
    Visit,
    WebServer,
    csrf_of,
    staff_login,
    start_web_server,
    stop_web_server,
    visit,
)
from tests.test_api import tokenmall
from tokenmall.ledger.store import resolve_url
from tokenmall.ledger.views import open_reader
from tokenmall.services import audit_jobs

DAYS = 5  # settled days of history, so that the charts have lines
PAYEE = {"method": "wechat", "name": "张三", "account": "o6_bmjrPTlm6"}
VERIFY_TIMEOUT_S = 30
EXTRA_ACCOUNTS = 80


def history() -> list[dict[str, Any]]:
    """A few days of trade: referrals, cash orders, sells (cash owed), one settlement a day;
    and more accounts, so that the journal has two pages."""
    commands: list[dict[str, Any]] = [
        {"op": "register", "user": "alice"},
        {"op": "register", "user": "bob", "referrer": "alice"},
        {"op": "register", "user": "carol", "referrer": "bob"},
        {"op": "register_merchant", "merchant": "m1"},
        {"op": "register_agent", "agent": "ag1", "region": "11"},
    ]
    commands += [{"op": "register", "user": f"extra{n}"} for n in range(EXTRA_ACCOUNTS)]
    for day in range(DAYS):
        for number, user in enumerate(("alice", "bob", "carol")):
            amount = f"{100 + 40 * day + 10 * number}.00"
            commands.append({"op": "order", "id": f"o{day}-{user}", "user": user, "amount": amount})
        commands.append({"op": "sell", "user": "bob", "points": "1"})
        commands.append({"op": "convert", "user": "alice", "points": "2"})  # SP, backed
        commands.append({"op": "settle_day"})
    return commands


def seeded_server(directory: Path) -> WebServer:
    """A server on a ledger that `tokenmall ingest` made of history() (quicker than the API,
    one command at a time), with snapshots for verify to check; then the day in progress
    through the API as admin: a sale, a sell, a withdrawal waiting for review."""
    scenario = directory / "history.jsonl"
    scenario.write_text("".join(json.dumps(c) + "\n" for c in history()))
    made = tokenmall("ingest", str(scenario), "--snapshot-every", "20", cwd=directory)
    assert made.returncode == 0, made.stderr
    server = start_web_server(directory)
    server.command({"op": "order", "id": "today-1", "user": "carol", "amount": "66.00"})
    server.command({"op": "sell", "user": "alice", "points": "2"})
    server.command({"op": "withdraw", "id": "w1", "user": "bob", "amount": "1.00", "payee": PAYEE})
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    started = seeded_server(tmp_path_factory.mktemp("overview"))
    try:
        yield started
    finally:
        stop_web_server(started)


def shown(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}"[^>]*>([^<]*)<', html)
    assert found is not None, f"no {testid} on the page"
    return found[1].strip()


def test_the_overview_shows_what_the_api_says(server: WebServer) -> None:
    page = server.staff_client("help").get("/console/")  # support reads it too
    assert page.status_code == 200, page.text
    html = page.text
    market = server.get("/v1/market")
    assert market["sp_backing"] != "0.00"
    for name in ("price", "pool", "supply", "sp_outstanding", "sp_backing"):
        assert shown(html, name) == market[name], name
    accounts = [server.account(a) for a in ("alice", "bob", "carol", "m1", "ag1")]
    owed_fen = sum(
        int(a[field].replace(".", "")) for a in accounts for field in ("cash", "withdrawing")
    )
    assert owed_fen > 0
    assert shown(html, "cash_owed") == f"{owed_fen // 100}.{owed_fen % 100:02d}"
    history = server.get(f"/v1/market/history?after_day={-1}")
    assert len(history["days"]) == DAYS
    assert shown(html, "day_sales") == history["today"]["sales"] == "66.00"
    assert shown(html, "last_dividends") == history["days"][-1]["dividends"]
    paid_fen = sum(int(a["dividends"].replace(".", "")) for a in accounts[:3])
    assert shown(html, "dividends_paid") == f"{paid_fen // 100}.{paid_fen % 100:02d}"
    in_flight = server.get("/v1/withdrawal-list?status=requested")["withdrawals"]
    in_flight += server.get("/v1/withdrawal-list?status=approved")["withdrawals"]
    assert [w["amount"] for w in in_flight] == ["1.00"] == [shown(html, "in_flight")]
    exited = sum(a["exited"] for a in accounts[:3])
    assert shown(html, "all_exits") == str(exited)
    assert shown(html, "exits") == "0"  # today's: nobody was forced out today
    assert shown(html, "consumers") == str(3 + EXTRA_ACCOUNTS)
    # The charts' data: one point per settled day and one for now, the API's prices.
    prices = [day["price"] for day in history["days"]] + [market["price"]]
    assert all(f'"{price}"' in html for price in prices)
    # The pool against what was owed right after each settlement, then now.
    pool = chart(html, "chart-pool")
    assert [s["name"] for s in pool["series"]] == ["分红池", "应付现金", "绿色积分余额"]
    pools, owed, sp = (s["data"] for s in pool["series"])
    assert pools == [day["pool"] for day in history["days"]] + [market["pool"]]
    assert (owed[-1], sp[-1]) == (shown(html, "cash_owed"), market["sp_outstanding"])
    assert len(owed) == len(sp) == DAYS + 1 and owed[0] != owed[-1] and sp[0] != sp[-1]


def chart(html: str, chart_id: str) -> dict[str, Any]:
    """A chart's ECharts option from the page's JSON data island."""
    found = re.search(rf'<script type="application/json" id="{chart_id}">(.*?)</script>', html)
    assert found is not None, chart_id
    option: dict[str, Any] = json.loads(found[1])
    return option


def test_the_overview_range_switch_takes_only_its_ranges(server: WebServer) -> None:
    client = server.staff_client("fin")
    assert client.get("/console/?days=30").status_code == 200
    assert 'href="/console/?days=30" aria-current="page"' in client.get("/console/?days=30").text
    for bad in ("7", "abc", "-1", "99999999999999999999999"):
        answer = client.get(f"/console/?days={bad}")
        assert answer.status_code == 400, (bad, answer.status_code)
        assert "<html" in answer.text and "Traceback" not in answer.text


def test_the_overview_draws_its_charts_in_chromium(
    server: WebServer, browser: Browser, visits: list[Visit]
) -> None:
    one = visit(browser, server)
    visits.append(one)
    page = staff_login(one, "help")
    page.wait_for_selector("[data-chart='chart-pool'] canvas")
    for chart in ("chart-price", "chart-sales", "chart-pool"):
        assert page.locator(f"[data-chart='{chart}'] canvas").count() == 1, chart
    assert page.get_by_test_id("price").inner_text() == server.get("/v1/market")["price"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "console-overview.png"), full_page=True)
    page.click("a[href='/console/?days=30']")
    page.wait_for_selector("[data-chart='chart-price'] canvas")


def wait_for_verify(client: httpx.Client) -> str:
    """Poll the verify fragment, as the page does, until the verify is done; its HTML."""
    deadline = time.monotonic() + VERIFY_TIMEOUT_S
    while True:
        fragment = client.get("/console/audit/verify")
        assert fragment.status_code == 200, fragment.text
        state = re.search(r'data-state="(\w+)"', fragment.text)
        assert state is not None
        if state[1] != "running":
            return fragment.text
        assert 'hx-trigger="every 1s"' in fragment.text  # the page keeps polling
        assert time.monotonic() < deadline, "the verify did not finish"
        time.sleep(0.2)


def start_verify(client: httpx.Client) -> httpx.Response:
    csrf = csrf_of(client.get("/console/audit").text)
    return client.post(
        "/console/audit/verify",
        data={"csrf": csrf, "key": "k"},
        headers={"HX-Request": "true"},
    )


def test_verify_runs_in_the_background_and_finds_the_ledger_intact(
    server: WebServer, browser: Browser, visits: list[Visit]
) -> None:
    one = visit(browser, server)
    visits.append(one)
    page = staff_login(one, "boss")
    page = one.go("/console/audit")
    head = server.http.get("/healthz").json()["head"]
    assert page.get_by_test_id("head_seq").inner_text() == str(head)
    page.get_by_test_id("run-verify").click()
    # HTMX swaps the panel in, then polls it every second until the state is not running.
    page.wait_for_selector("[data-testid=verify-state][data-state=ok]", timeout=30_000)
    assert f"{head} " in page.get_by_test_id("verify-state").inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "console-audit.png"), full_page=True)
    # The same result for anyone reading the page afterwards.
    assert 'data-state="ok"' in wait_for_verify(server.staff_client("help"))


def test_support_cannot_start_a_verify(server: WebServer) -> None:
    support = server.staff_client("help")
    page = support.get("/console/audit")
    assert page.status_code == 200 and "run-verify" not in page.text
    before = support.get("/console/audit/verify").text
    answer = start_verify(support)  # a forged post, with a valid token: the role stops it
    assert answer.status_code == 403
    assert support.get("/console/audit/verify").text == before
    finance = server.staff_client("fin")
    no_token = finance.post("/console/audit/verify", data={"key": "k"})
    assert no_token.status_code == 403  # and finance needs the form's CSRF token
    csrf = csrf_of(finance.get("/console/audit").text)
    plain = finance.post("/console/audit/verify", data={"csrf": csrf, "key": "k"})  # no HTMX
    assert plain.status_code == 303 and plain.headers["location"] == "/console/audit#verify"
    assert 'data-state="ok"' in wait_for_verify(finance)


def rows_of(html: str) -> list[int]:
    return [
        int(seq)
        for seq in re.findall(r'<td class="num"><a href="/console/audit/journal/(\d+)"', html)
    ]


def test_the_journal_pages_by_cursor_and_filters(server: WebServer) -> None:
    client = server.staff_client("help")
    head = server.http.get("/healthz").json()["head"]
    assert head > 100
    newest = client.get("/console/audit/journal").text
    assert rows_of(newest) == list(range(head - 99, head + 1))
    assert f"before={head - 99}" in newest
    older = client.get(f"/console/audit/journal?before={head - 99}").text
    assert rows_of(older) == list(range(1, head - 99))
    first = client.get("/console/audit/journal?after=0").text
    assert rows_of(first) == list(range(1, 101)) and "after=100" in first
    settles = client.get("/console/audit/journal?op=settle_day").text
    assert len(rows_of(settles)) == DAYS and "&#34;settle_day&#34;" in settles
    assert settles.count("<td>settle_day</td>") == DAYS
    by_admin = rows_of(client.get("/console/audit/journal?actor=admin").text)
    assert len(by_admin) >= 3 and min(by_admin) > len(history())  # the API's, not ingest's
    by_cli = rows_of(client.get("/console/audit/journal?actor=cli:&op=register").text)
    assert len(by_cli) == 3 + EXTRA_ACCOUNTS
    for bad in ("after=-1", "before=0", "after=x", "op=" + "x" * 81):
        assert client.get(f"/console/audit/journal?{bad}").status_code == 400, bad


def test_a_filtered_journal_page_looks_through_a_bounded_window(
    server: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_jobs, "SCAN_ROWS_MAX", 10)
    store = open_reader(resolve_url(str(server.directory / "tokenmall.db")))
    try:
        head = audit_jobs.chain(store)["head_seq"]
        page = audit_jobs.journal_page(store, after=0, op="settle_day")
        assert page.entries == [] and page.looked_through == (1, 10) and page.newer == 10
        page = audit_jobs.journal_page(store, op="register_agent")  # looks at the newest ten
        assert page.entries == [] and page.looked_through == (head - 9, head)
        assert page.older == head - 9 and page.newer is None
        page = audit_jobs.journal_page(store, before=page.older, op="settle_day")
        day_length = 6  # commands a day in history(): 3 orders, a sell, a convert, settle_day
        settled = 5 + EXTRA_ACCOUNTS + day_length * (DAYS - 2)  # the one in the ten before
        assert [e["seq"] for e in page.entries] == [settled] and page.looked_through
        page = audit_jobs.journal_page(store, after=0)  # unfiltered: a full page, no bound
        assert [e["seq"] for e in page.entries] == list(range(1, 101))
        assert page.looked_through is None and page.newer == 100 and page.older is None
    finally:
        store.close()


def test_a_journal_entry_shows_its_command_hashes_and_changes(server: WebServer) -> None:
    client = server.staff_client("fin")
    journal = client.get("/console/audit/journal?op=order&after=0").text
    seq = rows_of(journal)[0]
    entry = client.get(f"/console/audit/journal/{seq}").text
    assert "&#34;user&#34;: &#34;alice&#34;" in entry  # the command, escaped
    previous = client.get(f"/console/audit/journal/{seq - 1}").text
    assert shown(entry, "previous_hash") == shown(previous, "hash")
    assert "<td>alice</td>" in entry and "ep +" in entry
    assert client.get("/console/audit/journal/999999").status_code == 404
    # A rejected command's text is shown as text, never as markup.
    server.command({"op": "register", "user": "bad", "note": "<script>x</script>"}, False)
    head = server.http.get("/healthz").json()["head"]
    rejected = client.get(f"/console/audit/journal/{head}").text
    assert "<script>x</script>" not in rejected and "&lt;script&gt;" in rejected


def test_a_tampered_ledger_is_reported_broken_at_the_edited_entry(server: WebServer) -> None:
    finance = server.staff_client("fin")
    with sqlite3.connect(server.directory / "tokenmall.db") as db:  # as an intruder would
        seq, command = db.execute(
            "SELECT seq, command FROM journal WHERE command LIKE '%\"o2-bob\"%'"
        ).fetchone()
        db.execute(
            "UPDATE journal SET command = ? WHERE seq = ?",
            (command.replace("190.00", "990.00"), seq),
        )
    try:
        assert start_verify(finance).status_code == 200
        done = wait_for_verify(finance)
        assert 'data-state="broken"' in done
        assert shown(done, "broken_seq") == str(seq)
        assert f"entry {seq} does not match the hash chain" in shown(done, "problem")
    finally:  # put it back, for the other tests
        with sqlite3.connect(server.directory / "tokenmall.db") as db:
            db.execute("UPDATE journal SET command = ? WHERE seq = ?", (command, seq))
    assert start_verify(finance).status_code == 200
    assert 'data-state="ok"' in wait_for_verify(finance)
