"""The merchant cashier (商家收银, /shop/): a merchant takes a consumer's payment code and the
consumer's SP moves; a used or wrong code moves nothing; a double click charges once; a merchant
acts only for itself; the day's takings; redeem, sell as previewed, withdraw. In Chromium at
375×667 for the person's flow, over HTTP for the rest; every flow checked in the ledger."""

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import Browser

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
from tests.test_api import tokenmall

PAYER = "13912345678"  # a consumer id as a mall uses them: a phone number
OTHER = "c2"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One server for the module: consumers with SP (a cash order's EP converted to SP, as
    SPEC §4 gives SP), merchants m1 and m2, and the consumers' own API tokens."""
    started = start_web_server(tmp_path_factory.mktemp("shop"))
    try:
        for user in (PAYER, OTHER):
            started.command({"op": "register", "user": user})
            started.command({"op": "order", "id": f"o-{user}", "user": user, "amount": "1000.00"})
            started.command({"op": "convert", "user": user, "points": "all"})
        for merchant in ("m1", "m2"):
            started.command({"op": "register_merchant", "merchant": merchant})
        yield started
    finally:
        stop_web_server(started)


def consumer_token(server: WebServer, user: str) -> str:
    made = tokenmall(
        "token", "create", "--role", "consumer", "--account", user, cwd=server.directory
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def payment_code(server: WebServer, user: str, token: str) -> str:
    """A payment code, issued as the consumer's app asks for one: with the consumer's token."""
    issued = server.http.post(
        f"/v1/consumers/{user}/payment-codes",
        json={"expires_in": 300},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert issued.status_code == 201, issued.text
    code: str = issued.json()["code"]
    return code


def sp(server: WebServer, account: str) -> str:
    return str(server.account(account)["sp"])


def cents(text: str) -> int:
    whole, _, part = text.partition(".")
    return int(whole) * 100 + int((part + "00")[:2])


def charge_form(client: httpx.Client) -> dict[str, str]:
    page = client.get("/shop/")
    assert page.status_code == 200, page.text
    key = re.search(r'name="key" value="([^"]+)"', page.text)
    assert key is not None
    return {"csrf": csrf_of(page.text), "key": key[1]}


@pytest.fixture(scope="module")
def tokens(server: WebServer) -> dict[str, str]:
    return {user: consumer_token(server, user) for user in (PAYER, OTHER)}


def test_a_merchant_takes_a_payment_code_in_a_browser(
    server: WebServer, tokens: dict[str, str], browser: Browser, visits: list[Visit]
) -> None:
    payer_before, m1_before = cents(sp(server, PAYER)), cents(sp(server, "m1"))
    code = payment_code(server, PAYER, tokens[PAYER])
    one = visit(browser, server, PHONE)
    visits.append(one)
    page = one.go(server.login_path("m1"))
    page.wait_for_url("**/shop/")
    assert page.locator("h1").inner_text() == "收银"
    page.fill("input[name=code]", code[:6] + " " + code[6:])  # typed with a space: still read
    page.fill("input[name=amount]", "12.34")
    page.click("form[data-testid=charge] button[type=submit]")
    page.wait_for_url(re.compile(r".*/shop/\?paid=\d+$"))
    result = page.locator("[data-testid=result]")
    assert "已收款" in result.inner_text() and "¥12.34" in result.inner_text()
    assert page.locator("[data-testid=result-consumer]").inner_text() == "139****5678"
    # the ledger: the consumer's SP moved to the merchant, to the fen
    assert cents(sp(server, PAYER)) == payer_before - 1234
    assert cents(sp(server, "m1")) == m1_before + 1234
    assert page.locator("[data-testid=sp]").inner_text() == sp(server, "m1")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "shop-cashier.png"))

    # the same code again: refused, nothing moves
    page.fill("input[name=code]", code)
    page.fill("input[name=amount]", "1.00")
    page.click("form[data-testid=charge] button[type=submit]")
    page.wait_for_url("**/shop/?refused=*")
    assert "付款码" in page.locator("[data-testid=refusal]").inner_text()
    assert "未收款" in page.locator("[data-testid=result]").inner_text()
    # a wrong code (never issued): refused with the same clear message
    page.fill("input[name=code]", "123456789012345678")
    page.fill("input[name=amount]", "1.00")
    page.click("form[data-testid=charge] button[type=submit]")
    page.wait_for_url("**/shop/?refused=*")
    assert "付款码" in page.locator("[data-testid=refusal]").inner_text()
    # not a code at all: said so before anything is spent
    page.fill("input[name=code]", "12345")
    page.fill("input[name=amount]", "1.00")
    page.click("form[data-testid=charge] button[type=submit]")
    page.wait_for_url("**/shop/?refused=*")
    assert "18" in page.locator("[data-testid=refusal]").inner_text()
    assert cents(sp(server, PAYER)) == payer_before - 1234
    assert cents(sp(server, "m1")) == m1_before + 1234

    # the day's takings list the payment
    page.click("nav.tabbar >> text=今日流水")
    page.wait_for_url("**/shop/takings")
    assert page.locator("[data-testid=count]").inner_text() == "1"
    assert page.locator("[data-testid=sp-total]").inner_text() == "12.34"
    row = page.locator("[data-testid=payments] tbody tr").first.inner_text()
    assert "139****5678" in row and "12.34" in row
    page.screenshot(path=str(SHOTS / "shop-takings.png"))

    # the wallet: redeem SP to EP, sell it as previewed, withdraw the cash
    page.click("nav.tabbar >> text=钱包")
    page.wait_for_url("**/shop/wallet")
    page.fill("form[data-testid=redeem] input[name=amount]", "10.00")
    page.click("form[data-testid=redeem] button[type=submit]")
    page.wait_for_url("**/shop/wallet?done=redeem&seq=*")
    assert "已将 10.00 绿色积分兑换为" in page.locator("[data-testid=notice]").inner_text()
    merchant = server.account("m1")
    assert cents(merchant["sp"]) == m1_before + 234 and merchant["ep"] != "0.00000000"
    page.fill("form[data-testid=sell] input[name=sell]", "all")
    page.click("form[data-testid=sell] button[type=submit]")
    page.wait_for_url("**/shop/wallet?sell=all")
    shown_payout = page.locator("[data-testid=payout]").inner_text().lstrip("¥")
    assert cents(shown_payout) > 0
    page.screenshot(path=str(SHOTS / "shop-wallet.png"))
    page.click("form[data-testid=sell-confirm] button[type=submit]")
    page.wait_for_url("**/shop/wallet?done=sell&seq=*")
    assert shown_payout in page.locator("[data-testid=notice]").inner_text()
    merchant = server.account("m1")
    assert merchant["cash"] == shown_payout and merchant["ep"] == "0.00000000"
    page.fill("form[data-testid=withdraw] input[name=amount]", "1.00")
    page.select_option("form[data-testid=withdraw] select[name=method]", "alipay")
    page.fill("form[data-testid=withdraw] input[name=name]", "张三")
    page.fill("form[data-testid=withdraw] input[name=account]", "13800138000")
    page.click("form[data-testid=withdraw] button[type=submit]")
    page.wait_for_url("**/shop/wallet?done=withdraw&seq=*")
    assert "1.00" in page.locator("[data-testid=notice]").inner_text()
    assert "待审核" in page.locator("[data-testid=withdrawals]").inner_text()
    merchant = server.account("m1")
    assert merchant["withdrawing"] == "1.00"
    assert cents(merchant["cash"]) == cents(shown_payout) - 100


def test_a_double_click_charges_once(server: WebServer, tokens: dict[str, str]) -> None:
    client = server.account_client("m2")
    code = payment_code(server, OTHER, tokens[OTHER])
    before = cents(sp(server, OTHER)), cents(sp(server, "m2"))
    form = {**charge_form(client), "code": code, "amount": "2.00"}
    with ThreadPoolExecutor(2) as pool:  # the same form twice at once, as a double click
        answers = list(pool.map(lambda _: client.post("/shop/charge", data=form), range(2)))
    assert [answer.status_code for answer in answers] == [303, 303]
    assert answers[0].headers["location"] == answers[1].headers["location"]  # the same entry
    assert re.fullmatch(r"/shop/\?paid=\d+", answers[0].headers["location"])
    moved = (before[0] - 200, before[1] + 200)
    assert (cents(sp(server, OTHER)), cents(sp(server, "m2"))) == moved
    # another form (another key) with the spent code: refused, nothing moves
    again = client.post(
        "/shop/charge", data={**charge_form(client), "code": code, "amount": "2.00"}
    )
    assert again.headers["location"] == "/shop/?refused=payment_code_refused"
    assert "请顾客出示新的付款码" in client.get(again.headers["location"]).text
    assert (cents(sp(server, OTHER)), cents(sp(server, "m2"))) == moved


def test_a_merchant_acts_only_for_itself(server: WebServer, tokens: dict[str, str]) -> None:
    client = server.account_client("m2")
    m1_before, m2_before = server.account("m1"), server.account("m2")
    code = payment_code(server, OTHER, tokens[OTHER])
    # a merchant id in the form is ignored: the payment goes to the session's merchant
    form = {**charge_form(client), "code": code, "amount": "1.00", "merchant": "m1"}
    paid = client.post("/shop/charge", data=form)
    assert re.fullmatch(r"/shop/\?paid=\d+", paid.headers["location"])
    assert server.account("m1")["sp"] == m1_before["sp"]
    assert cents(server.account("m2")["sp"]) == cents(m2_before["sp"]) + 100
    redeem = {**charge_form(client), "amount": "1.00", "merchant": "m1"}
    assert client.post("/shop/redeem", data=redeem).status_code == 303
    assert server.account("m1") == m1_before  # m1 untouched; m2 redeemed its own SP
    assert server.account("m2")["ep"] != m2_before["ep"]
    # another merchant's payment or wallet result is not shown on this one's pages
    m1_lines = server.get("/v1/accounts/m1/statement?limit=100")["lines"]
    m1_paid = next(line["seq"] for line in m1_lines if line["op"] == "order")
    m1_redeemed = next(line["seq"] for line in m1_lines if line["op"] == "merchant_redeem")
    assert 'data-testid="result"' not in client.get(f"/shop/?paid={m1_paid}").text
    assert (
        'data-testid="notice"' not in client.get(f"/shop/wallet?done=redeem&seq={m1_redeemed}").text
    )
    # the pages are for merchants only; forms need their CSRF token
    consumer = server.account_client(OTHER)
    assert consumer.get("/shop/").status_code == 403
    assert consumer.get("/shop/wallet").status_code == 403
    anonymous = httpx.Client(base_url=server.url, timeout=10)
    assert anonymous.get("/shop/takings").status_code == 401
    assert client.post("/shop/charge", data={"code": code, "amount": "1.00"}).status_code == 403
    assert server.account("m1") == m1_before


def test_bad_input_is_refused_with_a_message_and_changes_nothing(
    server: WebServer, tokens: dict[str, str]
) -> None:
    client = server.account_client("m2")
    before = server.account("m2"), sp(server, OTHER)
    code = payment_code(server, OTHER, tokens[OTHER])
    for amount in ("0", "-1", "1.234", "abc", "", "1e3"):
        answer = client.post(
            "/shop/charge", data={**charge_form(client), "code": code, "amount": amount}
        )
        assert answer.headers["location"] == "/shop/?refused=invalid_amount"
        assert "金额无效" in client.get(answer.headers["location"]).text
    # a forged refusal code in the link shows no text of the link's own
    forged = client.get("/shop/?refused=<script>")
    assert forged.status_code == 200 and "<script>" not in forged.text
    # more SP than the consumer holds: the rules refuse it (and the code is spent: SPEC)
    too_much = client.post(
        "/shop/charge", data={**charge_form(client), "code": code, "amount": "99999.00"}
    )
    assert too_much.headers["location"] == "/shop/?refused=insufficient_stable"
    assert "顾客的绿色积分不足" in client.get(too_much.headers["location"]).text
    form = {"csrf": csrf_of(client.get("/shop/wallet").text)}
    payee = {"method": "wechat", "name": "李四", "account": "wx_openid_1"}
    bad_payee = client.post(
        "/shop/withdraw",
        data={**form, "key": "k1", "amount": "1.00", **payee, "method": "bank"},
    )
    assert bad_payee.headers["location"] == "/shop/wallet?refused=payee"  # a card needs a bank
    assert "请检查收款信息" in client.get(bad_payee.headers["location"]).text
    too_much_cash = client.post(
        "/shop/withdraw", data={**form, "key": "k2", "amount": "99999.00", **payee}
    )
    assert too_much_cash.headers["location"] == "/shop/wallet?refused=insufficient_cash"
    assert "余额不足" in client.get(too_much_cash.headers["location"]).text
    too_much_ep = client.post("/shop/sell", data={**form, "key": "k3", "points": "99999"})
    assert too_much_ep.headers["location"] == "/shop/wallet?refused=insufficient_points"
    preview = client.get("/shop/wallet?sell=abc")
    assert preview.status_code == 200 and 'class="error"' in preview.text
    assert client.get("/shop/?paid=99999999999999999999").status_code == 200
    assert client.get("/shop/wallet?done=sell&seq=abc").status_code == 200
    assert (server.account("m2"), sp(server, OTHER)) == before


def test_the_takings_start_again_after_the_daily_settlement(server: WebServer) -> None:
    client = server.account_client("m2")
    day = client.get("/shop/takings").text
    assert int(re.findall(r'data-testid="count">(\d+)<', day)[0]) >= 2  # m2's payments above
    server.command({"op": "settle_day"})
    after = client.get("/shop/takings").text
    assert 'data-testid="count">0<' in after and "今天还没有收款" in after
