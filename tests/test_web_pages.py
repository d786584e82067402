"""Every page, opened in Chromium by someone allowed to see it, on a ledger with something in
it: it answers 200, logs no console error, asks nothing of another host, and on a phone
(the H5 pages and the cashier, 375×667) never scrolls sideways. The pages come from the
routers themselves (tests/support/web.py page_routes), so a new page is checked too."""

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.support.web import (
    DESKTOP,
    PHONE,
    Visit,
    WebServer,
    filled,
    page_routes,
    seeded_web_server,
    visit,
)

BANK = {"method": "bank", "name": "张三", "account": "6222020200001234567", "bank": "工商银行"}
SEED: list[dict[str, Any]] = [
    {"op": "set_params", "params": {"withdraw_min": "0.01"}},
    {"op": "register", "user": "alice"},
    {"op": "register", "user": "bob", "referrer": "alice"},
    {"op": "register", "user": "carol", "referrer": "bob"},
    {"op": "register_merchant", "merchant": "m1"},
    {"op": "register_agent", "agent": "ag1", "region": "44"},
    {"op": "issue_collection", "collection": "c1", "edition": 3, "value": "2.00"},
    {"op": "order", "id": "o1", "user": "alice", "amount": "300.00"},
    {"op": "order", "id": "o2", "user": "bob", "amount": "500.00", "region": "441902"},
    {"op": "order", "id": "o3", "user": "carol", "amount": "200.00"},
    {"op": "settle_day"},
    {"op": "order", "id": "o4", "user": "alice", "amount": "100.00"},
    {"op": "sell", "user": "alice", "points": "5"},
    {"op": "convert", "user": "bob", "points": "5"},
    {"op": "claim_collectible", "user": "alice", "collection": "c1"},
    {"op": "withdraw", "id": "w1", "user": "alice", "amount": "1.00", "payee": BANK},
    {"op": "settle_day"},
]
SAMPLES = {
    "id": "alice",
    "account_id": "alice",
    "item": "c1%231",
    "seq": "3",
    "day": "",
    "batch": "",
    "collection": "c1",
}
QUERIES = {"/console/collectibles/items": "?item=c1%231"}  # pages that need a query
WHO_OPENS = {"/console": "boss", "/h5": "alice", "/shop": "m1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    with seeded_web_server(tmp_path_factory.mktemp("pages"), SEED) as started:
        yield started


def opened_as(browser: Browser, server: WebServer, area: str) -> Visit:
    """A browser context with a session of someone allowed in `area`."""
    who = WHO_OPENS[area]
    client = server.staff_client(who) if area == "/console" else server.account_client(who)
    one = visit(browser, server, PHONE if area != "/console" else DESKTOP)
    cookie = client.cookies.get("tm_session")
    assert cookie is not None
    one.context.add_cookies([{"name": "tm_session", "value": cookie, "url": server.url}])
    return one


def test_every_page_opens_cleanly_for_who_may_see_it(
    browser: Browser, server: WebServer, visits: list[Visit]
) -> None:
    today = server.get("/v1/market")["day"]
    samples = {**SAMPLES, "day": f"{today}"}
    contexts = {area: opened_as(browser, server, area) for area in WHO_OPENS}
    visits.extend(contexts.values())
    opened = 0
    for route in page_routes():
        area = "/" + route.path.strip("/").split("/")[0]
        if route.method != "GET" or area not in contexts or route.path.endswith(".xlsx"):
            continue
        if any(name in route.path for name in ("{file", "{batch", "{fmt")):
            continue  # a download or a day's file: their own tests open them
        one = contexts[area]
        path = filled(route.path, samples) + QUERIES.get(route.path, "")
        response = one.page.goto(one.base + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        one.page.wait_for_load_state("load")
        if area != "/console" and (response.header_value("content-type") or "").startswith(
            "text/html"
        ):
            width = one.page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} is {width}px wide on a 375px phone"
        opened += 1
    assert opened >= 3
