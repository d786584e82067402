"""The consumer pages (会员中心, H5): a consumer seeded with EP by orders through the API opens
its login link on a 375×667 phone, sells and gets exactly the payout it was shown, withdraws,
shows a payment code, invites, gifts an item; each flow checked in the ledger afterwards.
Another consumer's id in a URL or a form changes nothing. The previews are the core's own
formulas (checked against the engine)."""

import os
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.support.web import (
    PHONE,
    SHOTS,
    Visit,
    WebServer,
    csrf_of,
    start_web_server,
    stop_web_server,
    visit,
)
from tokenmall.core.engine import Engine
from tokenmall.core.errors import ErrorCode
from tokenmall.core.units import format_fen
from tokenmall.services.consumer_view import (
    TradePreview,
    ep_value_fen,
    percent_text,
    qr_svg,
    sale_of_value_fen,
    trade_preview,
)
from tokenmall.web.pages import SESSION_COOKIE

MALL_URL = "https://mall.test/join"
H5_PAGES = (
    "/h5/",
    "/h5/market",
    "/h5/statement",
    "/h5/trade",
    "/h5/wallet",
    "/h5/pay",
    "/h5/invite",
    "/h5/items",
    "/h5/risk",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    os.environ["TOKENMALL_MALL_URL"] = MALL_URL  # the server inherits it
    try:
        started = start_web_server(tmp_path_factory.mktemp("h5"))
    finally:
        del os.environ["TOKENMALL_MALL_URL"]
    try:
        seed(started)
        yield started
    finally:
        stop_web_server(started)


def seed(server: WebServer) -> None:
    """Consumers with EP from cash orders (as the mall's back end reports them), a referral
    chain alice <- bob <- carol, a day settled (dividends), collectibles, and an agent."""
    params = {"referral_rates": ["0.10", "0.05"], "collectible_lock_days": 0}
    server.command({"op": "set_params", "params": {**params, "agent_rates": ["0.01"]}})
    for user, referrer in (("alice", None), ("bob", "alice"), ("carol", "bob"), ("dave", None)):
        server.command(
            {"op": "register", "user": user, **({"referrer": referrer} if referrer else {})}
        )
    server.command({"op": "register_agent", "agent": "ag1", "region": "11"})
    for n, (user, amount) in enumerate(
        (("alice", "300.00"), ("bob", "200.00"), ("carol", "100.00"))
    ):
        server.command(
            {"op": "order", "id": f"o{n}", "user": user, "amount": amount, "region": "110101"}
        )
    server.command({"op": "settle_day"})
    server.command({"op": "order", "id": "o9", "user": "dave", "amount": "50.00"})
    server.command({"op": "issue_collection", "collection": "c1", "edition": 3, "value": "1.00"})
    for user in ("alice", "alice", "bob"):  # alice c1#1, c1#2; bob c1#3
        server.command({"op": "claim_collectible", "collection": "c1", "user": user})


def client_of(server: WebServer, account: str) -> tuple[httpx.Client, str]:
    client = server.account_client(account)
    home = client.get("/h5/")
    assert home.status_code == 200, home.text
    return client, csrf_of(home.text)


def text_of(html: str, name: str) -> str:
    found = re.search(rf'data-testid="{name}"[^>]*>([^<]*)<', html)
    assert found is not None, f"no {name} on the page"
    return found[1].strip()


def fen(text: str) -> int:
    return int(Decimal(text.lstrip("¥+")) * 100)


# --- the previews are the engine's own numbers ----------------------------------------------
def test_previews_give_what_the_engine_then_applies() -> None:
    engine = Engine()
    engine.apply({"op": "register", "user": "a"})
    engine.apply({"op": "register", "user": "b"})
    engine.apply({"op": "order", "id": "1", "user": "a", "amount": "123.45"})
    engine.apply({"op": "order", "id": "2", "user": "b", "amount": "77.70"})
    for action, field in (("sell", "cash"), ("convert", "sp"), ("redeem", "goods")):
        consumer = engine.consumers["a"]
        preview = trade_preview(action, "3.3", consumer.ep, engine.price(), engine.rates.sell_keep)
        assert isinstance(preview, TradePreview)
        assert preview.value_fen == ep_value_fen(preview.units, engine.price())
        before = getattr(consumer, field)
        engine.apply({"op": action, "user": "a", "points": "3.3"})
        assert getattr(consumer, field) - before == preview.receive_fen
    held = engine.consumers["a"].ep
    keep = engine.rates.sell_keep
    assert trade_preview("sell", "all", held, engine.price(), keep).units == held  # type: ignore[union-attr]
    assert trade_preview("sell", "999", held, engine.price(), keep) == ErrorCode.INSUFFICIENT_POINTS
    assert trade_preview("sell", "-1", held, engine.price(), keep) == ErrorCode.INVALID_AMOUNT
    assert trade_preview("sell", "all", 0, engine.price(), keep) == ErrorCode.INVALID_AMOUNT  # type: ignore[arg-type]
    assert format_fen(sale_of_value_fen(10_000, keep)) == "90.00"  # type: ignore[arg-type]
    assert percent_text("0.10") == "10" and percent_text("0.125") == "12.5"


def test_qr_codes_are_inline_svg_without_style() -> None:
    svg = qr_svg("123456789012345678", "付款码 <x>")
    assert svg.startswith("<svg") and "style" not in svg and "<script" not in svg
    assert "&lt;x&gt;" in svg and 'class="qrcode"' in svg


# --- pages over HTTP ------------------------------------------------------------------------
def test_every_page_opens_for_a_consumer_and_shows_its_own_numbers(server: WebServer) -> None:
    client, _csrf = client_of(server, "alice")
    for path in H5_PAGES:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert 'href="/h5/risk"' in answer.text, path  # the risk notice, from every page
    alice, market = server.account("alice"), server.get("/v1/market")
    home = client.get("/h5/").text
    # value now = floor(ep × pool / supply), to the fen
    ep_units, pool_fen = int(Decimal(alice["ep"]) * 10**8), fen(market["pool"])
    supply_units = int(Decimal(market["supply"]) * 10**8)
    assert fen(text_of(home, "value")) == ep_units * pool_fen // supply_units
    assert text_of(home, "quota") == "¥" + alice["quota"] and text_of(home, "ep") == alice["ep"]
    statement = client.get("/h5/statement").text
    assert 'data-testid="dividend"' in statement  # the settlement's line, marked
    invite = client.get("/h5/invite").text
    assert text_of(invite, "link") == MALL_URL + "?ref=alice"
    assert "bob" in invite and "carol" in invite  # two levels of referrals
    assert 'data-testid="commissions"' in invite  # bob's and carol's orders paid alice EP
    poster = client.get("/h5/invite/poster.svg")
    assert poster.headers["content-type"].startswith("image/svg+xml")
    assert "alice" in poster.text and "style=" not in poster.text
    pay = client.get("/h5/pay").text
    digits = re.sub(r"\D", "", re.search(r'data-testid="code"[^>]*>(.*?)</p>', pay)[1])  # type: ignore[index]
    assert len(digits) == 18 and "<svg" in pay and "style=" not in pay
    risk = client.get("/h5/risk").text
    assert "10%" in risk and "90.00" in risk and "出局" in risk


def test_an_agent_sees_its_cash_and_wallet_only(server: WebServer) -> None:
    client, _csrf = client_of(server, "ag1")
    home = client.get("/h5/").text
    assert text_of(home, "cash") == "¥" + server.account("ag1")["cash"]
    assert client.get("/h5/wallet").status_code == 200
    for path in ("/h5/trade", "/h5/pay", "/h5/invite", "/h5/items"):
        assert client.get(path).status_code == 403, path


def test_another_consumers_id_in_a_url_or_form_changes_nothing(server: WebServer) -> None:
    client, csrf = client_of(server, "carol")
    bob_before = server.account("bob")
    head = server.http.get("/healthz").json()["head"]
    # Forms name no account: extra fields naming bob are ignored, and a preview changes nothing.
    preview = client.post(
        "/h5/trade",
        data={"csrf": csrf, "key": "k1", "action": "sell", "points": "1", "user": "bob"},
    )
    assert preview.status_code == 200 and 'data-testid="preview"' in preview.text
    assert server.http.get("/healthz").json()["head"] == head
    # bob's item: carol cannot give it away (the rules refuse: not the owner).
    gift = client.post(
        "/h5/items/gift",
        data={"csrf": csrf, "key": "k2", "item": "c1#3", "to": "dave", "from": "bob"},
    )
    assert gift.status_code == 409 and "not_owner" in gift.text
    # Reads name the session's own account only; another's item's provenance: 403.
    statement = client.get("/h5/statement", params={"account": "bob", "user": "bob"})
    # (the language switch links back to this very URL, query and all: leave it out)
    shown = re.sub(r'<nav class="lang".*?</nav>', "", statement.text.split("<main")[1], flags=re.S)
    assert statement.status_code == 200 and "bob" not in shown
    assert client.get("/h5/items", params={"item": "c1#3"}).status_code == 403
    assert server.account("bob") == bob_before
    assert server.get("/v1/item-provenance/c1%233")["owner"] == "bob"
    # carol's own withdrawal names no one else: a "user" field does not move bob's cash.
    withdraw = client.post(
        "/h5/wallet",
        data={
            "csrf": csrf,
            "key": "k3",
            "amount": "1.00",
            "method": "wechat",
            "name": "Carol",
            "account": "carol123",
            "user": "bob",
        },
    )
    assert withdraw.status_code == 422 and "insufficient_cash" in withdraw.text  # carol has none
    assert server.account("bob") == bob_before


def test_bad_input_is_a_message_and_changes_nothing(server: WebServer) -> None:
    client, csrf = client_of(server, "dave")
    head = server.http.get("/healthz").json()["head"]
    for points, code in (
        ("abc", "invalid_amount"),
        ("9999", "insufficient_points"),
        ("", "invalid_amount"),
    ):
        answer = client.post(
            "/h5/trade", data={"csrf": csrf, "key": "x", "action": "sell", "points": points}
        )
        assert answer.status_code == 422 and code in answer.text, (points, answer.text[:300])
    # A confirmation whose amount is no longer what it gives: shown again, not applied.
    moved = client.post(
        "/h5/trade",
        data={
            "csrf": csrf,
            "key": "y",
            "action": "sell",
            "points": "1",
            "step": "confirm",
            "shown_fen": "1",
        },
    )
    assert moved.status_code == 409 and 'data-testid="preview"' in moved.text
    no_payee = client.post("/h5/wallet", data={"csrf": csrf, "key": "z", "amount": "1.00"})
    assert no_payee.status_code == 422 and "invalid_command" in no_payee.text
    forged = client.post("/h5/trade", data={"csrf": "forged", "action": "sell", "points": "1"})
    assert forged.status_code == 403
    assert server.http.get("/healthz").json()["head"] == head


# --- in Chromium, on a phone ----------------------------------------------------------------
def open_phone(browser: Browser, server: WebServer, visits: list[Visit], account: str) -> Visit:
    one = visit(browser, server, PHONE)
    visits.append(one)
    one.go(server.login_path(account))
    one.page.wait_for_url("**/h5/")
    return one


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def test_a_consumer_sells_and_gets_the_payout_it_was_shown(
    server: WebServer, browser: Browser, visits: list[Visit]
) -> None:
    one = open_phone(browser, server, visits, "alice")
    page = one.page
    assert page.locator("[data-testid=account]").inner_text() == "alice"
    shot(page, "h5-home")
    cash_before = fen(server.account("alice")["cash"])
    one.go("/h5/trade")
    page.fill("[data-testid=form-sell] input[name=points]", "5")
    with page.expect_navigation():
        page.click("[data-testid=form-sell] button[type=submit]")
    shown = page.locator("[data-testid=receive]").inner_text()
    shot(page, "h5-trade")
    with page.expect_navigation():
        page.click("[data-testid=confirm]")
    assert fen(server.account("alice")["cash"]) - cash_before == fen(shown)
    # the page says what the ledger applied: the cash the sale paid
    assert (
        page.locator("[data-testid=done] [data-field=cash]")
        .inner_text()
        .endswith("+" + shown.lstrip("¥"))
    )
    statement = server.get("/v1/accounts/alice/statement?after=0&limit=500")["lines"]
    assert statement[-1]["op"] == "sell" and statement[-1]["changes"]["cash"] == "+" + shown.lstrip(
        "¥"
    )
    assert statement[-1]["actor"].startswith("consumer:ws_")  # the page's session, journaled

    # A withdrawal from the page: in the ledger, requested (awaiting review).
    one.go("/h5/wallet")
    page.fill("input[name=amount]", "2.00")
    page.select_option("select[name=method]", "bank")
    page.fill("input[name=name]", "张三")
    page.fill("input[name=account]", "6222020200001234567")
    page.fill("input[name=bank]", "工商银行")
    with page.expect_navigation():
        page.click("[data-testid=withdraw] button[type=submit]")
    listed = server.get("/v1/withdrawal-list?account=alice")["withdrawals"]
    assert [(w["amount"], w["status"]) for w in listed] == [("2.00", "requested")]
    assert page.locator("[data-status=requested]").count() == 1
    assert "-2.00" in page.locator("[data-testid=done] [data-field=cash]").inner_text()

    one.go("/h5/pay")
    assert len(re.sub(r"\D", "", page.locator("[data-testid=code]").inner_text())) == 18
    shot(page, "h5-pay")
    one.go("/h5/invite")
    shot(page, "h5-invite")
    one.go("/h5/risk")
    shot(page, "h5-risk")
    one.go("/h5/market")
    page.wait_for_selector(".chart canvas")  # ECharts drew the price history

    # A gift moves the item: its provenance names the new holder.
    one.go("/h5/items")
    page.once("dialog", lambda dialog: dialog.accept())
    page.select_option("[data-testid=gift] select[name=item]", "c1#1")
    page.fill("[data-testid=gift] input[name=to]", "dave")
    with page.expect_navigation():
        page.click("[data-testid=gift] button[type=submit]")
    assert "dave" in page.locator("[data-testid=provenance]").inner_text()
    moved = server.get("/v1/item-provenance/c1%231")
    assert moved["owner"] == "dave" and moved["moves"][-1]["giver"] == "alice"
    cookies: list[Any] = one.context.cookies()
    assert any(cookie["name"] == SESSION_COOKIE for cookie in cookies)


def test_every_page_loads_in_english_without_errors(
    server: WebServer, browser: Browser, visits: list[Visit]
) -> None:
    one = visit(browser, server, PHONE, "en")
    visits.append(one)
    one.go(server.login_path("bob"))
    one.page.wait_for_url("**/h5/")
    one.page.click("text=English")
    one.page.wait_for_load_state()
    for path in H5_PAGES:
        page = one.go(path)
        assert page.locator("h1").count() == 1, path
        # nothing wider than the phone: no sideways scrolling
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
    assert "Risk notice" in one.page.content() and "deposits" in one.page.content()
