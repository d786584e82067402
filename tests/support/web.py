"""What the page tests share: a real `tokenmall serve` with staff accounts of every role, a
way to seed its ledger through the API, login links, and Chromium through Playwright.

Browser: Debian's Chromium (/usr/bin/chromium, or $TOKENMALL_CHROMIUM) driven by Playwright's
Python package. Without it the browser tests skip, except under CI=true, where they fail:
.ci/run installs it.
"""

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.test_api import start_server
from tokenmall.ledger.ledger import utc_now
from tokenmall.ledger.store import DEFAULT_DB, Store
from tokenmall.services.staff import StaffRole, create_staff
from tokenmall.services.tokens import Role, create_token

STAFF_PASSWORD = "correct horse battery staple"
STAFF = {"boss": "admin", "fin": "finance", "help": "support"}
PHONE = {"width": 375, "height": 667}
DESKTOP = {"width": 1440, "height": 900}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Where page tests leave the screenshots they take on the way (to look at after a run; the
# docs' pictures come from docs/screenshots.py): the system's temporary folder, not the repo.
SHOTS = Path(tempfile.gettempdir()) / "tokenmall-test-shots"


@dataclass
class WebServer:
    """A running server: `http` talks to it (the API, with the admin token), `url` is its base."""

    process: subprocess.Popen[str]
    http: httpx.Client
    directory: Path
    admin: str
    url: str

    def command(self, command: dict[str, Any], expect_ok: bool = True) -> httpx.Response:
        response = self.http.post(
            "/v1/commands", json=command, headers={"Authorization": f"Bearer {self.admin}"}
        )
        if expect_ok:
            assert response.status_code in (200, 201), response.text
            assert response.json()["outcome"] == "ok", response.text
        return response

    def get(self, path: str) -> Any:
        response = self.http.get(path, headers={"Authorization": f"Bearer {self.admin}"})
        assert response.status_code == 200, response.text
        return response.json()

    def account(self, account_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/v1/accounts/{account_id}")
        return found

    def login_path(self, account: str) -> str:
        """A one-time login link for a consumer, merchant or agent (as the mall would get)."""
        response = self.http.post(
            "/v1/login-links",
            json={"account": account},
            headers={"Authorization": f"Bearer {self.admin}"},
        )
        assert response.status_code == 201, response.text
        path: str = response.json()["path"]
        return path

    def staff_client(self, username: str) -> httpx.Client:
        """An HTTP client logged in as this staff member (cookies kept), without a browser."""
        client = httpx.Client(base_url=self.url, timeout=10, follow_redirects=False)
        form = client.get("/console/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        answer = client.post(
            "/console/login",
            data={
                "csrf": csrf[1],
                "next": "/console/",
                "username": username,
                "password": STAFF_PASSWORD,
            },
        )
        assert answer.status_code == 303, answer.text
        return client

    def account_client(self, account: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=10, follow_redirects=False)
        answer = client.get(self.login_path(account))
        assert answer.status_code == 303, answer.text
        return client


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "the page has no form with a CSRF token"
    return found[1]


def start_web_server(directory: Path, *options: str) -> WebServer:
    """`tokenmall serve` in `directory` with the staff of STAFF and an admin token, made in
    this process (the commands that make them have tests of their own; here they would cost
    a Python start and a migration each)."""
    store = Store(f"sqlite:///{directory / DEFAULT_DB}", create=True)
    try:
        store.migrate()
        for username, role in STAFF.items():
            create_staff(store, username, StaffRole(role), STAFF_PASSWORD)
        admin, _token_id = create_token(store, Role.ADMIN, None, utc_now(), None, "web tests")
    finally:
        store.close()
    process, client = start_server(directory, *options)
    return WebServer(process, client, directory, admin, str(client.base_url))


@contextmanager
def seeded_web_server(directory: Path, commands: Iterable[dict[str, Any]]) -> Iterator[WebServer]:
    """A web server whose ledger has had `commands` sent through the API as admin, one at a
    time (each must be applied), and stopped afterwards: a test module's server."""
    started = start_web_server(directory)
    try:
        for command in commands:
            started.command(command)
        yield started
    finally:
        stop_web_server(started)


def stop_web_server(server: WebServer) -> None:
    server.http.close()
    if server.process.poll() is None:
        server.process.kill()
    server.process.wait(10)


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[WebServer]:
    server = start_web_server(tmp_path)
    try:
        yield server
    finally:
        stop_web_server(server)


def chromium_path() -> str | None:
    return os.environ.get("TOKENMALL_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for one test module. Missing: skip, or fail under CI=true.
    Not for the whole session: Playwright's sync API keeps an event loop running in the
    thread while it is open, and tests run by the same xdist worker after a page test would
    find asyncio.run refused."""
    executable = chromium_path()
    in_ci = os.environ.get("CI") == "true"
    if executable is None:
        message = "no Chromium: apt-get install chromium (or set TOKENMALL_CHROMIUM)"
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, headless=True)
        except PlaywrightError as error:
            if in_ci:
                pytest.fail(f"Chromium did not start: {error}")
            pytest.skip(f"Chromium did not start: {error}")
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Watch:
    """What a browser context saw that a page must never do: errors in the console, uncaught
    exceptions, and requests to anywhere but this machine."""

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # errors a test provokes on purpose

    def expect(self, text: str) -> None:
        """A console error containing `text` is what the test wants (a refused form's 403)."""
        self.expected.append(text)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def on_request(self, request: Request) -> None:
        host = urlsplit(request.url).hostname
        if request.url.startswith(("data:", "blob:", "about:")):
            return
        if host not in LOCAL_HOSTS:
            self.outside.append(request.url)

    def check(self) -> None:
        unexpected = [e for e in self.errors if not any(t in e for t in self.expected)]
        assert not unexpected, unexpected
        assert not self.outside, self.outside


@dataclass
class Visit:
    context: BrowserContext
    page: Page
    watch: Watch
    base: str

    def go(self, path: str) -> Page:
        response = self.page.goto(self.base + path)
        assert response is not None
        return self.page


def visit(
    browser: Browser,
    server: WebServer,
    viewport: dict[str, int] | None = None,
    language: str = "zh-CN",
) -> Visit:
    """A fresh browser context (no cookies) on the server, watched."""
    context = browser.new_context(viewport=viewport or DESKTOP, locale=language)  # type: ignore[arg-type]
    watch = Watch()
    page = context.new_page()
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.errors.append(f"uncaught: {error}"))
    context.on("request", watch.on_request)
    return Visit(context, page, watch, server.url.rstrip("/"))


@pytest.fixture
def visits(browser: Browser) -> Iterator[list[Visit]]:
    """Visits opened in a test are checked (no console error, nothing off the machine) and
    closed at its end: append each one made with visit()."""
    opened: list[Visit] = []
    yield opened
    try:
        for one in opened:
            one.watch.check()
    finally:
        for one in opened:
            one.context.close()


def staff_login(one: Visit, username: str) -> Page:
    page = one.go("/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/**")
    return page


@dataclass(frozen=True)
class PageRoute:
    method: str
    path: str  # with {name:type} parameters
    callers: tuple[str, ...]  # from the handler's opt=who(...)


def page_routes() -> list[PageRoute]:
    """Every page route and who may call it, read from the handlers themselves (an
    introspection of the real routers; nothing is served)."""
    from litestar import Litestar  # noqa: PLC0415

    from tokenmall.web.app import web_routers  # noqa: PLC0415
    from tokenmall.web.pages import Web  # noqa: PLC0415

    class NoApi:  # the routers only keep references until a request comes
        store = payouts = codes = client = None

    app = Litestar(route_handlers=web_routers(Web(NoApi())), openapi_config=None)  # type: ignore[arg-type]
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            methods = set(handler.http_methods) - {"HEAD", "OPTIONS"}  # Litestar's own
            if route.path.startswith("/static") or not methods:
                continue
            callers = handler.opt.get("who")
            assert callers, f"{route.path} does not say who may call it (opt=who(...))"
            for method in sorted(methods):
                found.append(PageRoute(method, route.path, tuple(callers)))
    return found


def filled(path: str, samples: dict[str, str]) -> str:
    """A route's path with each {name:type} parameter replaced by samples[name] (or "x")."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: samples.get(m[1], "x"), path)
