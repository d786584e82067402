"""The pages' shell: staff login with lockout, login links, sessions, CSRF, roles, languages,
error pages and the security headers; in Chromium, with no console error and no request
leaving the machine."""

import re
import subprocess
import sys

import httpx

from tests.support.web import (
    STAFF_PASSWORD,
    Visit,
    WebServer,
    csrf_of,
    staff_login,
    visit,
)


def login_form(client: httpx.Client) -> str:
    return csrf_of(client.get("/console/login").text)


def try_login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    csrf = login_form(client)
    return client.post(
        "/console/login",
        data={"csrf": csrf, "next": "/console/", "username": username, "password": password},
    )


def test_staff_log_in_and_out_and_the_session_ends_on_the_server(web_server: WebServer) -> None:
    client = httpx.Client(base_url=web_server.url, timeout=10)
    assert client.get("/console/").status_code == 303  # no session: to the login page
    answer = try_login(client, "fin", STAFF_PASSWORD)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"
    cookie = answer.cookies["tm_session"]
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    page = client.get("/console/")
    assert page.status_code == 200 and "数据概览" in page.text and "fin" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert client.post("/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
    stolen = httpx.Client(base_url=web_server.url, timeout=10, cookies={"tm_session": cookie})
    assert stolen.get("/console/").status_code == 303  # the old cookie opens nothing


def test_five_wrong_passwords_lock_the_account_until_unlocked(web_server: WebServer) -> None:
    client = httpx.Client(base_url=web_server.url, timeout=10)
    for _ in range(5):
        refused = try_login(client, "fin", "not the password")
        assert refused.status_code == 401 and "用户名或密码错误" in refused.text
    locked = try_login(client, "fin", STAFF_PASSWORD)  # the right password, too late
    assert locked.status_code == 401 and "锁定" in locked.text
    unknown = try_login(client, "nobody", STAFF_PASSWORD)
    assert unknown.status_code == 401 and "用户名或密码错误" in unknown.text
    unlocked = subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", "staff", "unlock", "fin"],
        cwd=web_server.directory,
        capture_output=True,
        text=True,
        check=False,
    )
    assert unlocked.returncode == 0, unlocked.stderr
    assert try_login(client, "fin", STAFF_PASSWORD).status_code == 303


def test_a_login_form_without_its_token_is_refused(web_server: WebServer) -> None:
    client = httpx.Client(base_url=web_server.url, timeout=10)
    login_form(client)
    answer = client.post(
        "/console/login",
        data={"csrf": "forged", "username": "fin", "password": STAFF_PASSWORD},
    )
    assert answer.status_code == 403 and "tm_session" not in answer.cookies


def test_a_login_link_works_once_and_only_for_its_own_pages(web_server: WebServer) -> None:
    web_server.command({"op": "register", "user": "alice"})
    web_server.command({"op": "register_merchant", "merchant": "m1"})
    path = web_server.login_path("alice")
    client = httpx.Client(base_url=web_server.url, timeout=10)
    arrived = client.get(path)
    assert arrived.status_code == 303 and arrived.headers["location"] == "/h5/"
    home = client.get("/h5/")
    assert home.status_code == 200 and "alice" in home.text
    assert client.get("/shop/").status_code == 403  # a consumer is not a merchant
    assert client.get("/console/").status_code == 303  # nor staff
    again = httpx.Client(base_url=web_server.url, timeout=10).get(path)
    assert again.status_code == 403 and "已" in again.text  # used: the link works once
    forged = httpx.Client(base_url=web_server.url, timeout=10).get("/login/abc.def")
    assert forged.status_code == 403
    merchant = web_server.account_client("m1")
    assert merchant.get("/shop/").status_code == 200
    assert merchant.get("/h5/").status_code == 403


def test_unknown_pages_and_bad_input_answer_a_page_not_json(web_server: WebServer) -> None:
    client = web_server.staff_client("help")
    missing = client.get("/console/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "页面不存在" in missing.text
    bad_language = client.get("/lang/xx")
    assert bad_language.status_code == 404 and "text/html" in bad_language.headers["content-type"]
    offsite = client.get("/lang/en?next=//evil.example/")
    assert offsite.headers["location"] == "/console/"  # never sent to another site


def test_the_console_speaks_chinese_and_english_in_a_browser(
    web_server: WebServer, visits: list[Visit], browser: object
) -> None:
    one = visit(browser, web_server)  # type: ignore[arg-type]
    visits.append(one)
    page = staff_login(one, "boss")
    assert page.locator("h1").first.inner_text() == "数据概览"
    page.click("text=English")
    page.wait_for_load_state()
    assert page.locator("h1").first.inner_text() == "Overview"
    assert re.search(r"\d", page.locator("[data-testid=price]").inner_text())
    # The logout form without its CSRF token: refused, and the session still works.
    one.watch.expect("status of 403 (Forbidden) (http://127.0.0.1")
    page.evaluate("document.querySelector('form[action=\"/logout\"] input[name=csrf]').remove()")
    page.click("form[action='/logout'] button")
    page.wait_for_load_state()
    assert "did not come from this site" in page.content()
    assert one.go("/console/").locator("h1").first.inner_text() == "Overview"
