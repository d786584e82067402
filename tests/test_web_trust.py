"""Who may open each page: every page route, for every kind of caller (nobody, each staff role,
a consumer, a merchant, an agent), against a real server. A caller the route's handler does not
name is turned away (to the login page, 401 or 403) and its POST changes nothing in the
journal; a caller it names gets in. The routes and their callers are read from the handlers
(opt=who(...)), so a new page cannot be added without saying who may use it."""

from collections.abc import Iterator

import httpx
import pytest

from tests.support.web import (
    WebServer,
    csrf_of,
    filled,
    page_routes,
    seeded_web_server,
)

ACCOUNTS = {"consumer": "alice", "merchant": "m1", "agent": "ag1"}
STAFF_OF_ROLE = {"admin": "boss", "finance": "fin", "support": "help"}
CALLERS = ("nobody", *STAFF_OF_ROLE, *ACCOUNTS)
HOME = {
    "admin": "/console/",
    "finance": "/console/",
    "support": "/console/",
    "consumer": "/h5/",
    "merchant": "/shop/",
    "agent": "/h5/",
}
SAMPLES = {
    "id": "bob",
    "account_id": "bob",
    "item": "c1%231",
    "seq": "1",
    "day": "2026-12-01",
    "batch": "b1",
    "collection": "c1",
    "token": "not.valid",
    "code": "en",
}
TURNED_AWAY = {401, 403}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    seed = (
        {"op": "register", "user": "alice"},
        {"op": "register", "user": "bob", "referrer": "alice"},
        {"op": "register_merchant", "merchant": "m1"},
        {"op": "register_agent", "agent": "ag1", "region": "11"},
        {"op": "issue_collection", "collection": "c1", "edition": 3, "value": "1.00"},
    )
    with seeded_web_server(tmp_path_factory.mktemp("trust"), seed) as started:
        yield started


def client_of(server: WebServer, caller: str) -> tuple[httpx.Client, str]:
    """A client with the caller's session (none for nobody) and its CSRF token."""
    if caller == "nobody":
        return httpx.Client(base_url=server.url, timeout=30), ""
    if caller in STAFF_OF_ROLE:
        client = server.staff_client(STAFF_OF_ROLE[caller])
    else:
        client = server.account_client(ACCOUNTS[caller])
    home = client.get(HOME[caller])
    assert home.status_code == 200, (caller, home.status_code)
    return client, csrf_of(home.text)


def journal_head(server: WebServer) -> int:
    head: int = server.http.get("/healthz").json()["head"]
    return head


def test_every_page_route_says_who_may_call_it() -> None:
    routes = page_routes()
    assert {r.path for r in routes} >= {"/console", "/h5", "/shop", "/console/login"}


@pytest.mark.parametrize("caller", CALLERS)
def test_only_the_named_callers_get_in(server: WebServer, caller: str) -> None:
    client, csrf = client_of(server, caller)
    for route in page_routes():
        if "anyone" in route.callers:
            continue  # the login pages, logout and the language switch: open by design
        path = filled(route.path, SAMPLES)
        allowed = caller in route.callers
        before = journal_head(server)
        if route.method == "GET":
            answer = client.get(path)
        else:  # a valid CSRF token: what stops it must be the role, not the token
            answer = client.request(
                route.method,
                path,
                data={"csrf": csrf, "key": "trust"},
                headers={"X-CSRF-Token": csrf},
            )
        to_login = answer.status_code == 303 and "/console/login" in answer.headers.get(
            "location", ""
        )
        where = f"{caller} {route.method} {path}: {answer.status_code}"
        if allowed:
            assert answer.status_code not in TURNED_AWAY and not to_login, where
            assert answer.status_code < 500, where
        else:
            assert answer.status_code in TURNED_AWAY or to_login, where
            assert journal_head(server) == before, f"{where} changed the journal"
