"""`tokenmall serve` over real HTTP: the statement and price-history reads, the resource
endpoints' request bodies and idempotency, the served OpenAPI description, and a SIGTERM while
orders are in flight. Each test runs a real server process (tests.test_api's `server` fixture)."""

import asyncio
import json
import os
import signal
import ssl
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests import test_api
from tests.test_api import (
    Server,
    assert_problem,
    make_token,
    start_server,
    tokenmall,
)
from tokenmall.api.resources import NOT_ONE_COMMAND, PAYMENT_CODE_OP, ROUTES
from tokenmall.core.accounts import MERCHANT_FIELDS
from tokenmall.services.queries import PAGE_MAX

server = test_api.server  # the fixture: pytest finds fixtures among a module's names

PROBLEM_REF = "#/components/schemas/Problem"


def send(
    server: Server,
    method: str,
    path: str,
    body: object | None = None,
    token: str | None = None,
    *,
    raw: bytes | None = None,
    key: str | None = None,
) -> httpx.Response:
    content = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
    headers = server.headers(token or server.admin)
    if key is not None:
        headers["Idempotency-Key"] = key
    return server.client.request(method, path, content=content, headers=headers)


def ok(response: httpx.Response, status: int = 201) -> int:
    """The seq of a command the server committed."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["outcome"] == "ok" and body["replayed"] is False
    seq: int = body["seq"]
    return seq


def get(server: Server, path: str, token: str | None = None, **params: Any) -> httpx.Response:
    return server.client.get(path, params=params, headers=server.headers(token or server.admin))


def state_text(server: Server) -> str:
    response = get(server, "/v1/state")
    assert response.status_code == 200
    return response.text


def head(server: Server) -> int:
    value: int = server.client.get("/healthz").json()["head"]
    return value


def walk_statement(server: Server, account: str, token: str, limit: int) -> list[dict[str, Any]]:
    """Every line of a statement, page by page through `next_after`."""
    lines: list[dict[str, Any]] = []
    after = 0
    for _ in range(1000):
        response = get(server, f"/v1/accounts/{account}/statement", token, after=after, limit=limit)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["lines"]) <= limit
        lines.extend(page["lines"])
        if page["next_after"] is None:
            return lines
        assert page["next_after"] == page["lines"][-1]["seq"] > after
        after = page["next_after"]
    raise AssertionError("the statement did not end")


def assert_lines_add_up(lines: list[dict[str, Any]]) -> None:
    """Each line's balances are the previous line's plus its signed changes (from zero)."""
    previous: dict[str, Any] | None = None
    for line in lines:
        balances, changes = line["balances"], line["changes"]
        assert set(changes) <= set(balances), line
        for name, value in balances.items():
            if name == "exited":
                assert changes.get(name, value) == value
                continue
            if name == "level":
                before_level = 0 if previous is None else previous[name]
                assert before_level + changes.get(name, 0) == value, line
                continue
            change = changes.get(name)
            if change is not None:
                assert change[0] in "+-" and Decimal(change) != 0, line
            start = Decimal(0) if previous is None else Decimal(previous[name])
            assert start + Decimal(change or "0") == Decimal(value), (name, line)
        if previous is not None:
            assert changes, f"a line that changes nothing: {line}"
        previous = balances


def balances_of_account(server: Server, account: str) -> dict[str, Any]:
    response = get(server, f"/v1/accounts/{account}")
    assert response.status_code == 200, response.text
    return {k: v for k, v in response.json().items() if k not in ("id", "kind", "referrer")}


def test_statements(server: Server) -> None:
    admin = server.admin
    alice = make_token(server, "consumer", "alice")
    bob = make_token(server, "consumer", "bob")
    shop = make_token(server, "merchant", "shop")
    mall = make_token(server, "integration")
    ops: dict[int, str] = {}  # seq -> op, of every command the server committed

    def run(method: str, path: str, op: str, body: object, token: str, status: int) -> int:
        seq = ok(send(server, method, path, body, token), status)
        ops[seq] = op
        return seq

    params = {"params": {"referral_rates": ["0.10"]}}  # so bob's orders pay alice, unnamed
    run("PUT", "/v1/params", "set_params", params, admin, 200)
    run("POST", "/v1/consumers", "register", {"user": "alice"}, alice, 201)
    bob_registered = run(
        "POST", "/v1/consumers", "register", {"user": "bob", "referrer": "alice"}, admin, 201
    )
    run("POST", "/v1/merchants", "register_merchant", {"merchant": "shop"}, shop, 201)
    alice_order = {"id": "o0", "user": "alice", "amount": "50.00", "payment_id": "wx-0"}
    run("POST", "/v1/orders", "order", alice_order, mall, 201)  # active: a referrer earns
    order = {"id": "o1", "user": "bob", "amount": "100.00", "payment_id": "wx-1"}
    bob_order = run("POST", "/v1/orders", "order", order, mall, 201)
    converted = run("POST", "/v1/consumers/bob/convert", "convert", {"points": "5"}, bob, 200)
    paid = {"id": "o2", "user": "bob", "amount": "3.00", "pay": "stable", "merchant": "shop"}
    bob_paid = run("POST", "/v1/orders", "order", paid, bob, 201)
    rejected = assert_problem(
        send(server, "POST", "/v1/consumers/bob/sell", {"points": "99999"}, bob),
        409,
        "insufficient_points",
    )["seq"]
    settled = run("POST", "/v1/settlements", "settle_day", None, admin, 200)
    run("POST", "/v1/merchants/shop/redeem", "merchant_redeem", {"amount": "2.00"}, shop, 200)
    run("POST", "/v1/merchants/shop/sell", "sell", {"points": "all"}, shop, 200)
    bob_sold = run("POST", "/v1/consumers/bob/sell", "sell", {"points": "1"}, bob, 200)
    assert set(ops) | {rejected} == set(range(1, head(server) + 1))

    # a consumer reads its own statement; every line is a committed entry, with its op
    own = get(server, "/v1/accounts/bob/statement", bob)
    assert own.status_code == 200, own.text
    page = own.json()
    assert page["account"] == "bob" and page["kind"] == "consumer"
    assert page["next_after"] is None
    lines = page["lines"]
    # the seqs the POSTs returned, of the entries that changed bob (not the rejected sell)
    expected = [bob_registered, bob_order, converted, bob_paid, settled, bob_sold]
    assert [line["seq"] for line in lines] == expected
    assert [line["op"] for line in lines] == [ops[seq] for seq in expected]
    assert lines[0]["op"] == "register" and lines[0]["changes"] == {}
    assert lines[1]["changes"]["ep"].startswith("+") and lines[1]["changes"]["quota"] == "+200.00"
    assert lines[2]["changes"]["ep"] == "-5.00000000"
    assert lines[2]["changes"]["sp"].startswith("+")
    assert lines[3]["changes"] == {"sp": "-3.00"}  # paid the shop in SP
    assert lines[4]["changes"]["dividends"].startswith("+")  # the settlement paid a dividend
    assert lines[-1]["changes"]["ep"] == "-1.00000000"
    assert all(type(line["recorded_at"]) is str for line in lines)
    # who asked for each entry: the admin registered bob, the back end took his payment, bob
    # converted and paid from his own token
    roles = [line["actor"].split(":")[0] for line in lines]
    assert roles == ["admin", "integration", "consumer", "consumer", "admin", "consumer"]
    assert len({line["actor"] for line in lines if line["actor"].startswith("consumer")}) == 1
    assert_lines_add_up(lines)
    # the last line is the account now
    assert lines[-1]["balances"] == balances_of_account(server, "bob")
    # an admin reads any statement, and sees the same
    assert get(server, "/v1/accounts/bob/statement").json() == page

    # alice was not named by bob's order, but its referral EP are on her statement
    alice_lines = get(server, "/v1/accounts/alice/statement", alice).json()["lines"]
    assert bob_order in [line["seq"] for line in alice_lines]
    assert_lines_add_up(alice_lines)
    assert alice_lines[-1]["balances"] == balances_of_account(server, "alice")

    # pages of one line (or two) walk every line exactly once
    assert walk_statement(server, "bob", bob, limit=1) == lines
    assert walk_statement(server, "bob", admin, limit=2) == lines
    middle = lines[2]["seq"]
    rest = get(server, "/v1/accounts/bob/statement", bob, after=middle).json()
    assert rest["lines"] == lines[3:]  # changes relative to the line before the page, too
    assert get(server, "/v1/accounts/bob/statement", bob, after=10**9).json()["lines"] == []

    # a merchant's statement: ep, sp and cash_out only
    merchant = get(server, "/v1/accounts/shop/statement", shop).json()
    assert merchant["kind"] == "merchant"
    assert [line["op"] for line in merchant["lines"]] == [
        "register_merchant",
        "order",
        "merchant_redeem",
        "sell",
    ]
    for line in merchant["lines"]:
        assert set(line["balances"]) == set(MERCHANT_FIELDS)
    assert merchant["lines"][1]["changes"] == {"sp": "+3.00"}
    assert Decimal(merchant["lines"][-1]["balances"]["cash_out"]) > 0
    assert_lines_add_up(merchant["lines"])
    assert merchant["lines"][-1]["balances"] == balances_of_account(server, "shop")

    # who may read what
    for token, account in ((bob, "alice"), (alice, "bob"), (shop, "bob"), (bob, "shop")):
        refused = get(server, f"/v1/accounts/{account}/statement", token)
        assert_problem(refused, 403, "forbidden")
    # a token for another account learns nothing, not even whether the account exists
    assert_problem(get(server, "/v1/accounts/nobody/statement", bob), 403, "forbidden")
    assert_problem(get(server, "/v1/accounts/nobody/statement"), 404, "unknown_account")
    ghost = make_token(server, "consumer", "ghost")  # a token for an account not registered
    assert_problem(get(server, "/v1/accounts/ghost/statement", ghost), 404, "unknown_account")
    assert_problem(server.client.get("/v1/accounts/bob/statement"), 401, "unauthorized")


BAD_STATEMENT_QUERIES = (
    {"limit": "0"},
    {"limit": str(PAGE_MAX + 1)},
    {"limit": "abc"},
    {"limit": "1.5"},
    {"limit": "-1"},
    {"after": "-1"},
    {"after": "x"},
    {"after": ""},
)
BAD_HISTORY_QUERIES = (
    {"limit": "0"},
    {"limit": str(PAGE_MAX + 1)},
    {"limit": "abc"},
    {"after_day": "-2"},
    {"after_day": "yesterday"},
)


def test_bad_read_parameters_are_problems(server: Server) -> None:
    assert ok(send(server, "POST", "/v1/consumers", {"user": "bob"})) == 1
    for query in BAD_STATEMENT_QUERIES:
        response = get(server, "/v1/accounts/bob/statement", **query)
        assert 400 <= response.status_code < 500, (query, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), query
        assert response.json()["status"] == response.status_code
    for query in BAD_HISTORY_QUERIES:
        response = get(server, "/v1/market/history", **query)
        assert 400 <= response.status_code < 500, (query, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), query
    # the bounds themselves are fine
    full = get(server, "/v1/accounts/bob/statement", limit=PAGE_MAX, after=0)
    assert full.status_code == 200 and len(full.json()["lines"]) == 1
    edge = get(server, "/v1/accounts/bob/statement", limit=1, after=2**63 - 1)
    assert edge.status_code == 200 and edge.json()["lines"] == []
    history = get(server, "/v1/market/history", limit=PAGE_MAX, after_day=-1)
    assert history.status_code == 200 and history.json()["days"] == []


def test_huge_read_cursors_are_problems_not_500(server: Server) -> None:
    assert ok(send(server, "POST", "/v1/consumers", {"user": "bob"})) == 1
    for path, query in (
        ("/v1/accounts/bob/statement", {"after": str(2**63)}),
        ("/v1/accounts/bob/statement", {"after": "9" * 30}),
        ("/v1/market/history", {"after_day": str(2**63)}),
    ):
        response = get(server, path, **query)
        assert response.status_code < 500, (path, query, response.text)
        if response.status_code != 200:  # a page past the end would do as well as a 4xx
            assert 400 <= response.status_code < 500
            assert response.headers["content-type"].startswith("application/problem+json")


def test_price_history(server: Server) -> None:
    bob = make_token(server, "consumer", "bob")
    ok(send(server, "POST", "/v1/consumers", {"user": "bob"}, bob))
    empty = get(server, "/v1/market/history", bob).json()
    assert empty["days"] == [] and empty["next_after_day"] is None
    assert empty["today"]["day"] == 0
    assert empty["today"]["price"] == get(server, "/v1/market", bob).json()["price"]

    settlements = []
    for number, amount in enumerate(("100.00", "250.00", None)):
        if amount is not None:
            order = {"id": f"o{number}", "user": "bob", "amount": amount}
            ok(send(server, "POST", "/v1/orders", order))
        settlements.append(ok(send(server, "POST", "/v1/settlements"), 200))

    history = get(server, "/v1/market/history", bob).json()
    market = get(server, "/v1/market", bob).json()
    days = history["days"]
    assert [day["day"] for day in days] == [0, 1, 2]
    assert [day["seq"] for day in days] == settlements
    assert [day["sales"] for day in days] == ["100.00", "250.00", "0.00"]
    prices = [Decimal(day["price"]) for day in days] + [Decimal(history["today"]["price"])]
    assert prices == sorted(prices) and prices[0] > 0  # the price never falls
    assert prices[1] > prices[0]  # and a settled day of sales raised it here
    assert history["next_after_day"] is None
    today = history["today"]
    assert today["day"] == market["day"] == 3
    assert (today["price"], today["pool"], today["supply"]) == (
        market["price"],
        market["pool"],
        market["supply"],
    )
    assert today["sales"] == "0.00"

    # pagination by day
    walked: list[dict[str, Any]] = []
    after_day = -1
    for _ in range(10):
        page = get(server, "/v1/market/history", bob, after_day=after_day, limit=1).json()
        walked.extend(page["days"])
        if page["next_after_day"] is None:
            break
        assert page["next_after_day"] == page["days"][-1]["day"]
        after_day = page["next_after_day"]
    assert walked == days
    later = get(server, "/v1/market/history", bob, after_day=0, limit=PAGE_MAX).json()
    assert later["days"] == days[1:] and later["next_after_day"] is None
    assert get(server, "/v1/market/history", after_day=2).json()["days"] == []
    assert_problem(server.client.get("/v1/market/history"), 401, "unauthorized")


def test_bad_bodies_change_nothing(server: Server) -> None:
    ok(send(server, "POST", "/v1/consumers", {"user": "bob"}))
    ok(send(server, "POST", "/v1/orders", {"id": "o1", "user": "bob", "amount": "100.00"}))
    before, head_before = state_text(server), head(server)
    market_before = get(server, "/v1/market").json()

    unknown = {"id": "o2", "user": "bob", "amount": "1.00", "colour": "red"}
    assert_problem(send(server, "POST", "/v1/orders", unknown), 422, "invalid_command")
    keyed = {"id": "o2", "user": "bob", "amount": "1.00", "key": "k"}
    assert_problem(send(server, "POST", "/v1/orders", keyed), 422, "invalid_command")
    wrong_op = {"op": "refund", "id": "o2", "user": "bob", "amount": "1.00"}
    assert_problem(send(server, "POST", "/v1/orders", wrong_op), 422, "invalid_command")
    other_user = send(server, "POST", "/v1/consumers/bob/sell", {"user": "eve", "points": "1"})
    assert_problem(other_user, 422, "invalid_command")
    assert_problem(send(server, "POST", "/v1/settlements", {"day": 3}), 422, "invalid_command")
    for raw in (b"[1, 2]", b'"text"', b"null", b"12", b"{", b'{"id": NaN}', b"\xff"):
        response = send(server, "POST", "/v1/orders", raw=raw)
        assert_problem(response, 400, "invalid_command")
    too_big = {"id": "o2", "user": "bob", "amount": "1.00", "merchant": "m" * (65 * 1024)}
    for path in ("/v1/orders", "/v1/consumers/bob/sell"):
        response = send(server, "POST", path, too_big)
        assert response.status_code == 413, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 413
    response = server.client.request(
        "PUT",
        "/v1/params",
        content=iter([b'{"params": {"x": "', b"y" * (65 * 1024), b'"}}']),  # chunked
        headers=server.headers(server.admin),
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert state_text(server) == before and head(server) == head_before

    # Bodies that break the endpoint's schema (a number where an amount string is required, a
    # missing field, a malformed amount) are refused at the edge with SPEC's code: no entry.
    for path, body, code in (
        ("/v1/orders", {"id": "o3", "user": "bob", "amount": 100}, "invalid_amount"),
        ("/v1/orders", {"id": "o3", "user": "bob", "amount": "1.005"}, "invalid_amount"),
        ("/v1/orders", {"id": "o3", "user": 7, "amount": "1.00"}, "invalid_command"),
        ("/v1/orders", {"id": "o3", "user": "bob"}, "invalid_command"),
        (
            "/v1/orders",
            {"id": "o3", "user": "bob", "amount": "1", "pay": "gold"},
            "invalid_command",
        ),
        ("/v1/consumers", {}, "invalid_command"),
        ("/v1/consumers/bob/grants", {"amount": "1.00", "days": True}, "invalid_amount"),
        ("/v1/consumers/bob/sell", {"points": "1.123456789"}, "invalid_amount"),
    ):
        refused = assert_problem(send(server, "POST", path, body), 422, code)
        assert "seq" not in refused, refused
    assert state_text(server) == before and head(server) == head_before
    assert get(server, "/v1/market").json() == market_before
    # What only the rules can judge (a zero amount) is theirs to reject, journaled as rejected.
    zero = send(server, "POST", "/v1/orders", {"id": "o3", "user": "bob", "amount": "0.00"})
    assert assert_problem(zero, 422, "invalid_amount")["seq"] == head_before + 1
    after = json.loads(state_text(server))
    assert after["errors"] == [{"line": head_before + 1, "code": "invalid_amount"}]
    assert {**after, "errors": []} == {**json.loads(before), "errors": []}


def test_openapi_describes_every_resource(server: Server) -> None:
    response = server.client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    assert "Problem" in schema["components"]["schemas"]
    assert "code" in schema["components"]["schemas"]["Problem"]["properties"]
    documented: set[tuple[str, str]] = set()
    for route in ROUTES:
        path = route.path.replace(":str}", "}")
        operation = paths[path][route.method.lower()]
        documented.add((path, route.method.lower()))
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        journaled = route.op not in NOT_ONE_COMMAND  # a code, or a batch: no one command
        assert set(body["properties"]) == {*route.body, *(["op"] if journaled else [])}, path
        assert not journaled or body["properties"]["op"]["const"] == route.op
        assert set(body["required"]) == set(route.required), path
        assert body["additionalProperties"] is False
        for name in ("amount", "points", "user", "merchant", "id", "referrer"):
            if name in body["properties"]:
                assert body["properties"][name]["type"] == "string", (path, name)
        parameters = {(p["in"], p["name"]): p for p in operation.get("parameters", [])}
        keyed = route.op != PAYMENT_CODE_OP  # a batch's key names each of its commands
        assert (("header", "Idempotency-Key") in parameters) is keyed, path
        assert not keyed or parameters[("header", "Idempotency-Key")]["required"] is False
        for name in route.path_fields:
            assert parameters[("path", name)]["required"] is True, (path, name)
        responses = operation["responses"]
        assert str(201 if route.created else 200) in responses, path
        problems = {
            status
            for status, answer in responses.items()
            if status.startswith("4")
            and answer.get("content", {}).get("application/problem+json", {}).get("schema")
            == {"$ref": PROBLEM_REF}
        }
        assert {"400", "403", "409", "413", "422"} <= problems, (path, problems)
    writes = {
        (path, method)
        for path, operations in paths.items()
        for method in operations
        if method in ("post", "put", "patch", "delete")
    }
    # every other writing operation is the raw-command endpoint, or a payout one (whose
    # bodies are files, or nothing; docs/payouts.md)
    payout_writes = {
        (f"/v1/payouts/{name}", "post") for name in ("batches", "results", "reconcile", "webhook")
    }
    login_links = {("/v1/login-links", "post")}
    assert writes - documented == {("/v1/commands", "post")} | payout_writes | login_links

    def query_parameters(path: str) -> dict[str, dict[str, Any]]:
        operation = paths[path]["get"]
        assert "400" in operation["responses"], path
        return {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}

    statement = query_parameters("/v1/accounts/{account_id}/statement")
    assert set(statement) == {"after", "limit"}
    assert statement["after"]["type"] == "integer" and statement["after"]["minimum"] == 0
    assert statement["limit"]["type"] == "integer"
    assert (statement["limit"]["minimum"], statement["limit"]["maximum"]) == (1, PAGE_MAX)
    history = query_parameters("/v1/market/history")
    assert set(history) == {"after_day", "limit"}
    assert history["after_day"]["type"] == "integer" and history["after_day"]["minimum"] == -1
    assert (history["limit"]["minimum"], history["limit"]["maximum"]) == (1, PAGE_MAX)


def test_idempotency_over_resource_endpoints(server: Server) -> None:
    key = "register-bob"
    first = send(server, "POST", "/v1/consumers", {"user": "bob"}, key=key)
    assert first.status_code == 201 and first.json() == {
        "seq": 1,
        "outcome": "ok",
        "replayed": False,
    }
    # the same command (an explicit "op" makes no difference) is a replay: 200, same seq
    again = send(server, "POST", "/v1/consumers", {"op": "register", "user": "bob"}, key=key)
    assert again.status_code == 200
    assert again.json() == {"seq": 1, "outcome": "ok", "replayed": True}
    other = send(server, "POST", "/v1/consumers", {"user": "eve"}, key=key)
    conflict = assert_problem(other, 409, "idempotency_conflict")
    assert conflict.get("seq") is None
    elsewhere = send(server, "POST", "/v1/consumers/bob/sell", {"points": "1"}, key=key)
    assert_problem(elsewhere, 409, "idempotency_conflict")

    order = {"id": "o1", "user": "bob", "amount": "100.00"}
    order_key = "order-o1"
    seq = ok(send(server, "POST", "/v1/orders", order, key=order_key))
    balances = balances_of_account(server, "bob")
    reordered = dict(reversed(list(order.items())))
    replay = send(server, "POST", "/v1/orders", reordered, key=order_key)
    assert replay.status_code == 200
    assert replay.json() == {"seq": seq, "outcome": "ok", "replayed": True}
    changed = send(server, "POST", "/v1/orders", {**order, "amount": "5.00"}, key=order_key)
    assert_problem(changed, 409, "idempotency_conflict")
    assert balances_of_account(server, "bob") == balances  # applied once
    lines = get(server, "/v1/accounts/bob/statement").json()["lines"]
    assert [line["seq"] for line in lines] == [1, seq]

    # a rejected command replays its rejection, with its seq
    sell_key = "sell-too-much"
    rejected = send(server, "POST", "/v1/consumers/bob/sell", {"points": "999"}, key=sell_key)
    first_problem = assert_problem(rejected, 409, "insufficient_points")
    repeated = send(server, "POST", "/v1/consumers/bob/sell", {"points": "999"}, key=sell_key)
    second_problem = assert_problem(repeated, 409, "insufficient_points")
    assert second_problem["seq"] == first_problem["seq"] and second_problem["replayed"] is True
    assert head(server) == seq + 1
    state = json.loads(state_text(server))
    assert set(state["users"]) == {"bob"}
    assert state["errors"] == [{"line": seq + 1, "code": "insufficient_points"}]


CLIENTS = 200  # concurrent connections, each placing orders one after another
ORDERS_EACH_MAX = 20
SIGNAL_AFTER = 300  # answers: the server is busy with ~CLIENTS requests when the signal goes
USERS = 10


def buyer(order: str | int) -> int:
    """Which of the USERS consumers places an order (by its id, or by its client's number)."""
    number = order if isinstance(order, int) else int(order.split("-")[1])
    return number % USERS


@dataclass
class Storm:
    """Each order's fate: (order id, status or None for a connection error, (content type,
    body) or None, whether it was answered after the signal)."""

    results: list[tuple[str, int | None, Any, bool]] = field(default_factory=list)
    signalled: bool = False


async def order_storm(base_url: str, admin: str, pid: int) -> Storm:
    """CLIENTS connections (a client each: one shared pool of 200 connections is slow in
    httpx) place orders without pause; SIGTERM goes to the server at the SIGNAL_AFTER-th
    answer, so requests are in flight. A client stops at its first connection error (the server
    stopped listening) or after ORDERS_EACH_MAX orders."""
    storm = Storm()
    tls = ssl.create_default_context()  # once: httpx builds one per client otherwise (slow)
    headers = {"Authorization": f"Bearer {admin}"}

    async def place(client: httpx.AsyncClient, order_id: str, user: str) -> bool:
        body = {"id": order_id, "user": user, "amount": "1.00"}
        try:
            response = await client.post("/v1/orders", json=body, headers=headers)
        except httpx.TransportError:
            storm.results.append((order_id, None, None, storm.signalled))
            return False
        content_type = response.headers.get("content-type", "")
        parsed = response.json() if "json" in content_type else response.text
        answer = (content_type, parsed)
        storm.results.append((order_id, response.status_code, answer, storm.signalled))
        if len(storm.results) >= SIGNAL_AFTER and not storm.signalled:
            os.kill(pid, signal.SIGTERM)
            storm.signalled = True
        return True

    async def customer(number: int) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=20, verify=tls) as client:
            for each in range(ORDERS_EACH_MAX):
                if not await place(client, f"storm-{number}-{each}", f"u{buyer(number)}"):
                    return

    await asyncio.gather(*(customer(number) for number in range(CLIENTS)))
    return storm


def test_sigterm_with_orders_in_flight(server: Server) -> None:
    for number in range(USERS):
        assert server.post({"op": "register", "user": f"u{number}"}).status_code == 200
    registered = head(server)
    storm = asyncio.run(order_storm(str(server.client.base_url), server.admin, server.process.pid))
    returncode = server.process.wait(30)
    stderr = server.process.stderr.read() if server.process.stderr else ""
    assert storm.signalled, "the storm ended before the signal"
    assert returncode in (0, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr, stderr

    acknowledged: dict[str, int] = {}
    refused = failed = answered_late = 0
    for order_id, status, answer, late in storm.results:
        if status is None:
            failed += 1
            continue
        content_type, body = answer
        assert status != 500, body
        if 200 <= status < 300:
            assert status == 201 and body["outcome"] == "ok", body
            acknowledged[order_id] = body["seq"]
            answered_late += late
        else:
            assert status == 503, (status, body)
            assert content_type.startswith("application/problem+json")
            refused += 1
    print(
        f"SIGTERM exit code {returncode}; {len(storm.results)} orders sent: "
        f"{len(acknowledged)} acknowledged ({answered_late} after the signal), "
        f"{refused} refused (503), {failed} connection errors"
    )
    assert answered_late, "no request was in flight at the signal"
    assert acknowledged, "no order was acknowledged"

    directory = server.directory
    audit = tokenmall("audit", "verify", cwd=directory)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    exported = tokenmall("journal", "export", cwd=directory)
    assert exported.returncode == 0, exported.stderr
    journal_lines = exported.stdout.splitlines()
    stored = tokenmall("state", cwd=directory)
    assert stored.returncode == 0, stored.stderr
    state = json.loads(stored.stdout)
    scenario = directory / "exported.jsonl"
    scenario.write_text(exported.stdout, encoding="utf-8")
    replayed = tokenmall("replay", str(scenario), cwd=directory)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == stored.stdout  # no entry half applied
    assert audit.stdout.startswith(f"audit: ok: {len(journal_lines)} entries")

    # every acknowledged order is in the journal under its seq, and was applied
    assert state["errors"] == []
    for order_id, seq in acknowledged.items():
        assert json.loads(journal_lines[seq - 1])["id"] == order_id
    # and nothing else was: no order committed behind a lost answer
    journaled = {json.loads(line)["id"] for line in journal_lines[registered:]}
    assert journaled == set(acknowledged)
    assert Decimal(state["sales"]) == Decimal(len(acknowledged))

    # a restarted server on the same ledger serves that state
    process, client = start_server(directory)
    try:
        restarted = client.get("/v1/state", headers={"Authorization": f"Bearer {server.admin}"})
        assert restarted.status_code == 200 and restarted.json() == state
        assert client.get("/healthz").json()["head"] == len(journal_lines)
        # and each consumer's statement holds exactly its acknowledged orders
        for number in range(USERS):
            statement = client.get(
                f"/v1/accounts/u{number}/statement",
                params={"limit": PAGE_MAX},
                headers={"Authorization": f"Bearer {server.admin}"},
            ).json()
            orders = [line["seq"] for line in statement["lines"] if line["op"] == "order"]
            mine = [seq for order, seq in acknowledged.items() if buyer(order) == number]
            assert orders == sorted(mine)
    finally:
        client.close()
        process.send_signal(signal.SIGTERM)
        process.wait(20)


def writer_pid(server: Server) -> int:
    """The writer process: the server's child started by multiprocessing's spawn (the other one
    is multiprocessing's resource tracker)."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    pids = [
        int(pid)
        for pid in children.read_text().split()
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(pids) == 1, pids
    return pids[0]


def test_a_dead_writer_is_a_503_not_a_hang_or_a_500(server: Server) -> None:
    """If the writer process dies (killed, out of memory), nothing more can commit: every write
    and every engine read is refused with 503, /healthz says so for the load balancer, and what
    was committed before stays readable from the store."""
    seq = ok(send(server, "POST", "/v1/consumers", {"user": "bob"}))
    os.kill(writer_pid(server), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.client.get("/healthz").status_code == 200:
        assert time.monotonic() < deadline, "the server did not notice its writer died"
        time.sleep(0.05)
    assert_problem(server.client.get("/healthz"), 503, "unavailable")
    order = {"id": "o1", "user": "bob", "amount": "1.00"}
    assert_problem(send(server, "POST", "/v1/orders", order), 503, "unavailable")
    assert_problem(get(server, "/v1/market"), 503, "unavailable")
    lines = get(server, "/v1/accounts/bob/statement").json()["lines"]
    assert [line["seq"] for line in lines] == [seq]
    assert json.loads(state_text(server))["users"]["bob"]["ep"] == "0.00000000"


def test_serve_refuses_a_port_in_use_in_one_line(server: Server, tmp_path: Path) -> None:
    """Another process listens there: one line and exit status 2, before any ledger is made."""
    port = str(server.client.base_url.port)
    refused = tokenmall("serve", "--port", port, "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"tokenmall: error: cannot listen on 127.0.0.1:{port}")
    assert refused.stderr.count("\n") == 1
    assert not (tmp_path / "x.db").exists()
