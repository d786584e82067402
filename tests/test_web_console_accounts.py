"""The console's 会员 / 商家 / 代理 and 数字藏品 pages against a real server: an admin freezes and
unfreezes a consumer in Chromium and the ledger agrees; support and finance have no button and
their forged posts change nothing; search and cursor pages over 150+ consumers; an admin issues
a collection from the page; an item's provenance names every owner."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from tests.support.web import (
    SHOTS,
    Visit,
    WebServer,
    csrf_of,
    seeded_web_server,
    staff_login,
    visit,
)
from tokenmall.core.engine import Engine
from tokenmall.services import account_reads

SEEDED_CONSUMERS = 150
PAYEE = {"method": "alipay", "name": "张三", "account": "13800000000"}
ROW_ID = re.compile(r'<tr>\s*<td><a href="/console/accounts/([^"]+)">')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """alice referred bob and dave, bob referred carol; alice bought, sold, asked to withdraw,
    claimed vip#1 and gave it to bob; frank bought; a merchant, an agent, and u000..u149."""
    seed: list[dict[str, Any]] = [
        {"op": "set_params", "params": {"collectible_lock_days": 0}},
        {"op": "register", "user": "alice"},
        {"op": "register", "user": "bob", "referrer": "alice"},
        {"op": "register", "user": "carol", "referrer": "bob"},
        {"op": "register", "user": "dave", "referrer": "alice"},
        {"op": "register", "user": "frank"},
        {"op": "order", "id": "o1", "user": "alice", "amount": "100.00"},
        {"op": "order", "id": "o2", "user": "frank", "amount": "100.00"},
        {"op": "order", "id": "o3", "user": "bob", "amount": "50.00"},
        {"op": "sell", "user": "alice", "points": "5"},
        {"op": "withdraw", "id": "w1", "user": "alice", "amount": "2.00", "payee": PAYEE},
        {"op": "register_merchant", "merchant": "m1"},
        {"op": "register_agent", "agent": "ag1", "region": "44"},
        {"op": "issue_collection", "collection": "vip", "edition": 3, "value": "5.00"},
        {"op": "claim_collectible", "user": "alice", "collection": "vip"},
        {"op": "gift_collectible", "item": "vip#1", "from": "alice", "to": "bob"},
        {"op": "claim_collectible", "user": "alice", "collection": "vip"},
    ]
    seed += [{"op": "register", "user": f"u{number:03d}"} for number in range(SEEDED_CONSUMERS)]
    with seeded_web_server(tmp_path_factory.mktemp("console-accounts"), seed) as started:
        yield started


def journal_head(server: WebServer) -> int:
    head: int = server.http.get("/healthz").json()["head"]
    return head


def listed(html: str) -> list[str]:
    """The account ids a list page shows, in order."""
    table = html.split('data-testid="accounts"', 1)[1].split("</table>", 1)[0]
    return ROW_ID.findall(table)


def next_link(html: str) -> str | None:
    found = re.search(r'href="([^"]+)" rel="next"', html)
    return None if found is None else found[1].replace("&amp;", "&")


def sell(server: WebServer, user: str) -> httpx.Response:
    return server.command({"op": "sell", "user": user, "points": "1"}, expect_ok=False)


def accept_dialogs(one: Visit) -> None:
    one.page.on("dialog", lambda dialog: dialog.accept())  # the data-confirm question


def test_an_admin_freezes_and_unfreezes_a_consumer_in_a_browser(
    server: WebServer, browser: Browser, visits: list[Visit]
) -> None:
    one = visit(browser, server)
    visits.append(one)
    accept_dialogs(one)
    page = staff_login(one, "boss")
    one.go("/console/accounts?kind=consumer&q=frank")
    page.click("[data-testid=accounts] tbody a:text-is('frank')")
    page.wait_for_url("**/console/accounts/frank")
    assert page.locator("[data-testid=active]").is_visible()
    page.click("[data-testid=freeze]")
    page.wait_for_selector("[data-testid=unfreeze]")
    assert page.locator("[data-testid=notice]").inner_text() == "账户已冻结。"
    assert page.locator("[data-testid=account-head] [data-testid=frozen]").is_visible()
    assert "冻结" in page.locator("[data-testid=statement]").inner_text()  # its own line
    assert server.account("frank")["frozen"] is True
    refused = sell(server, "frank")
    assert refused.json()["code"] == "account_frozen", refused.text
    one.go("/console/accounts?kind=consumer&q=frank")
    assert page.locator("[data-testid=accounts] [data-testid=frozen]").count() == 1
    one.go("/console/accounts/frank")
    page.click("[data-testid=unfreeze]")
    page.wait_for_selector("[data-testid=freeze]")
    assert page.locator("[data-testid=notice]").inner_text() == "账户已解冻。"
    assert server.account("frank")["frozen"] is False
    assert sell(server, "frank").json()["outcome"] == "ok"
    one.go("/console/accounts/alice")
    page.screenshot(path=str(SHOTS / "console-account.png"), full_page=False)


@pytest.mark.parametrize("username", ["help", "fin"])
def test_support_and_finance_have_no_freeze_button_and_cannot_forge_one(
    server: WebServer, username: str
) -> None:
    client = server.staff_client(username)
    page = client.get("/console/accounts/dave")
    assert page.status_code == 200 and "dave" in page.text
    assert 'data-testid="freeze"' not in page.text and "/freeze" not in page.text
    assert 'name="collection"' not in client.get("/console/collectibles").text  # no issue form
    csrf = csrf_of(page.text)  # a valid token: what stops it must be the role
    before = journal_head(server)
    for path, form in (
        ("/console/accounts/dave/freeze", {}),
        ("/console/accounts/dave/unfreeze", {}),
        ("/console/collectibles", {"collection": "forged", "edition": "5", "value": "1.00"}),
    ):
        answer = client.post(path, data={"csrf": csrf, "key": f"forged-{username}", **form})
        assert answer.status_code == 403, (path, answer.status_code)
    assert journal_head(server) == before
    assert server.account("dave")["frozen"] is False
    assert "forged" not in server.get("/v1/state")["collections"]


def test_search_and_cursor_pages_cover_every_consumer_once(server: WebServer) -> None:
    client = server.staff_client("help")
    first = client.get("/console/accounts?kind=consumer")
    assert first.status_code == 200
    seen = listed(first.text)
    assert len(seen) == 100 and seen[:2] == ["alice", "bob"]  # registration order
    path = next_link(first.text)
    while path is not None:
        page = client.get(path)
        assert page.status_code == 200
        seen += listed(page.text)
        path = next_link(page.text)
    expected = ["alice", "bob", "carol", "dave", "frank"]
    expected += [f"u{n:03d}" for n in range(SEEDED_CONSUMERS)]
    assert seen == expected  # each once, in registration order
    found = client.get("/console/accounts?kind=consumer&q=U01")  # any case, any part
    assert listed(found.text) == [f"u01{n}" for n in range(10)]
    assert next_link(found.text) is None
    assert listed(client.get("/console/accounts?kind=consumer&q=nobody").text) == []
    merchants = client.get("/console/accounts?kind=merchant").text
    assert listed(merchants) == ["m1"]
    agents = client.get("/console/accounts?kind=agent").text
    assert listed(agents) == ["ag1"] and "<td>44</td>" in agents
    for bad in ("?kind=robot", "?after=-1", "?after=x", "?q=" + "x" * 65):
        answer = client.get("/console/accounts" + bad)
        assert answer.status_code == 400 and "text/html" in answer.headers["content-type"], bad


def test_the_account_page_shows_referrals_withdrawals_items_and_balances(
    server: WebServer,
) -> None:
    client = server.staff_client("fin")
    page = client.get("/console/accounts/alice").text
    level_1 = page.split('data-testid="referrals-1"', 1)[1].split("</section>", 1)[0]
    level_2 = page.split('data-testid="referrals-2"', 1)[1].split("</section>", 1)[0]
    assert ">bob<" in level_1 and ">dave<" in level_1 and ">carol<" not in level_1
    assert ">carol<" in level_2 and ">bob<" in level_2  # carol, referred by bob
    withdrawals = page.split('data-testid="withdrawals"', 1)[1].split("</table>", 1)[0]
    assert "w1" in withdrawals and "2.00" in withdrawals
    items = page.split('data-testid="items"', 1)[1].split("</table>", 1)[0]
    assert "vip#2" in items and "vip#1" not in items  # vip#1 was given to bob
    alice = server.account("alice")
    balances = page.split('data-testid="balances"', 1)[1].split("</section>", 1)[0]
    for field in ("ep", "sp", "quota", "cash", "withdrawing"):
        assert f"<strong>{alice[field]}</strong>" in balances, field
    statement = page.split('data-testid="statement"', 1)[1].split("</table>", 1)[0]
    assert "下单" in statement and "卖出" in statement and "申请提现" in statement
    agent = client.get("/console/accounts/ag1").text
    assert "佣金" in agent and "推广关系" not in agent
    assert client.get("/console/accounts/nobody").status_code == 404
    assert client.get("/console/accounts/" + "a" * 200).status_code == 404


def test_an_admin_issues_a_collection_from_the_page(
    server: WebServer, browser: Browser, visits: list[Visit]
) -> None:
    one = visit(browser, server)
    visits.append(one)
    page = staff_login(one, "boss")
    one.go("/console/collectibles")
    page.fill("input[name=collection]", "gold2027")
    page.fill("input[name=edition]", "500")
    page.fill("input[name=value]", "99.00")
    page.click("[data-testid=issue-form] button[type=submit]")
    page.wait_for_selector("tr[data-collection=gold2027]")
    assert page.locator("[data-testid=notice]").inner_text() == "藏品系列 gold2027 已发行。"
    issued: dict[str, Any] = server.get("/v1/state")["collections"]["gold2027"]
    assert issued == {"edition": 500, "value": "99.00", "claimed": 0}
    vip = page.locator("tr[data-collection=vip]").inner_text()
    assert "5.00" in vip and "3" in vip and "2" in vip  # value, issued, claimed
    page.screenshot(path=str(SHOTS / "console-collectibles.png"), full_page=False)
    # Malformed forms come back with a message, and nothing reaches the journal.
    client = server.staff_client("boss")
    csrf = csrf_of(client.get("/console/collectibles").text)
    before = journal_head(server)
    for form in (
        {"collection": "bad id", "edition": "5", "value": "1.00"},
        {"collection": "c9", "edition": "0", "value": "1.00"},
        {"collection": "c9", "edition": "2000000", "value": "1.00"},
        {"collection": "c9", "edition": "5", "value": "0.00"},
        {"collection": "c9", "edition": "5", "value": "1.001"},
    ):
        answer = client.post("/console/collectibles", data={"csrf": csrf, "key": "", **form})
        assert answer.status_code == 400 and 'data-testid="error"' in answer.text, form
        assert f'value="{form["edition"]}"' in answer.text  # the form keeps what was typed
    assert journal_head(server) == before
    again = client.post(
        "/console/collectibles",
        data={"csrf": csrf, "key": "dup", "collection": "vip", "edition": "5", "value": "1.00"},
    )
    assert again.status_code == 409 and "该藏品系列编号已存在" in again.text
    assert client.get("/console/collectibles?issued=nope").text.count("已发行") == 0


def test_provenance_and_claims_name_every_owner(server: WebServer) -> None:
    client = server.staff_client("help")
    page = client.get("/console/collectibles/items/vip%231")
    assert page.status_code == 200
    moves = page.text.split('data-testid="moves"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", moves, re.S)[1:]
    assert len(rows) == 2
    assert "兑换" in rows[0] and ">alice<" in rows[0]
    assert "转赠" in rows[1] and rows[1].index(">alice<") < rows[1].index(">bob<")
    assert 'data-testid="owner"><a href="/console/accounts/bob">bob<' in page.text
    looked_up = client.get("/console/collectibles/items", params={"item": "vip#1"})
    assert looked_up.headers["location"] == "/console/collectibles/items/vip%231"
    assert client.get("/console/collectibles/items/vip%239").status_code == 404
    claims = client.get("/console/collectibles/collections/vip").text
    table = claims.split('data-testid="claims"', 1)[1]
    first_row = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1]
    assert "vip#1" in first_row and first_row.index(">alice<") < first_row.index(">bob<")
    assert client.get("/console/collectibles/collections/nope").status_code == 404


def test_the_member_list_in_a_browser(
    server: WebServer, browser: Browser, visits: list[Visit]
) -> None:
    one = visit(browser, server)
    visits.append(one)
    page = staff_login(one, "help")
    one.go("/console/accounts?kind=consumer")
    page.fill("input[name=q]", "u14")
    page.click("form[role=search] button[type=submit]")
    page.wait_for_url("**q=u14**")
    assert page.locator("[data-testid=accounts] tbody tr").count() == 10
    one.go("/console/accounts?kind=consumer")
    page.screenshot(path=str(SHOTS / "console-accounts.png"), full_page=False)
    page.click("[data-testid=next]")
    page.wait_for_url("**after=100**")
    assert page.locator("[data-testid=accounts] tbody tr").count() == 55


def test_a_search_scans_a_bounded_stretch_and_says_where_it_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = Engine()
    engine.apply({"op": "register", "user": "c0"})
    for number in range(1, 10):
        engine.apply({"op": "register", "user": f"c{number}", "referrer": "c0"})
    monkeypatch.setattr(account_reads, "SCAN_ROWS_MAX", 4)
    first = account_reads.accounts_page(engine, "consumer", "c9", 0)
    assert first["rows"] == [] and first["scanned_to"] == 4 and first["next_after"] == 4
    last = account_reads.accounts_page(engine, "consumer", "C9", 8)
    assert [row["id"] for row in last["rows"]] == ["c9"] and last["next_after"] is None
    level_1, level_2 = account_reads.referrals(engine, "c0", (-1, -1), limit=5) or []
    assert level_1["total"] == 9 and len(level_1["rows"]) == 5 and level_2["total"] == 0
    rest, _ = account_reads.referrals(engine, "c0", (level_1["next_after"], -1), limit=5) or []
    assert [row["id"] for row in rest["rows"]] == ["c6", "c7", "c8", "c9"]
    assert rest["next_after"] is None
    assert account_reads.referrals(engine, "nobody", (-1, -1)) is None
