"""`tokenmall serve`: a real server process on a free port, driven over real HTTP."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 30.0


def tokenmall(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[str]
    client: httpx.Client
    directory: Path
    admin: str

    def headers(self, token: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", **extra}

    def post(self, command: object, token: str | None = None, **headers: str) -> httpx.Response:
        return self.client.post(
            "/v1/commands",
            content=json.dumps(command),
            headers=self.headers(token or self.admin, **headers),
        )


def start_server(
    directory: Path,
    *options: str,
    stdout: int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> tuple[subprocess.Popen[str], httpx.Client]:
    """`tokenmall serve` on a free port (or `port`) in `directory`, once /healthz answers;
    `options` go to serve, `env` adds to its environment; `stdout` (the access log) is dropped
    unless asked for (subprocess.PIPE)."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenmall.cli", "serve", "--port", str(port), *options],
        env=None if env is None else {**os.environ, **env},
        cwd=directory,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                return process, client
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    created = tokenmall("token", "create", "--role", "admin", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    admin = created.stdout.strip()
    process, client = start_server(tmp_path)
    try:
        yield Server(process, client, tmp_path, admin)
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
        process.wait(10)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["status"] == status and body["code"] == code
    return body


def test_commands_are_durable_and_idempotent(server: Server) -> None:
    assert server.post({"op": "register", "user": "alice"}).json() == {
        "seq": 1,
        "outcome": "ok",
        "replayed": False,
    }
    order = {"op": "order", "id": "o1", "user": "alice", "amount": "100.00"}
    first = server.post(order, **{"Idempotency-Key": "k-1"})
    again = server.post(order, **{"Idempotency-Key": "k-1"})
    assert first.json() == {"seq": 2, "outcome": "ok", "replayed": False}
    assert again.json() == {"seq": 2, "outcome": "ok", "replayed": True}
    other = server.post({**order, "amount": "5.00"}, **{"Idempotency-Key": "k-1"})
    assert_problem(other, 409, "idempotency_conflict")
    rejected = assert_problem(
        server.post({"op": "sell", "user": "alice", "points": "999"}), 409, "insufficient_points"
    )
    assert rejected["seq"] == 3  # journaled, as replay lists it in errors
    assert_problem(server.post({"op": "sell", "user": "bob", "points": "1"}), 404, "unknown_user")
    state = server.client.get("/v1/state", headers=server.headers(server.admin))
    assert state.status_code == 200
    assert state.json()["users"]["alice"]["ep"] == "21.00000000"
    assert state.json()["errors"] == [
        {"line": 3, "code": "insufficient_points"},
        {"line": 4, "code": "unknown_user"},
    ]

    # SIGTERM: a clean stop (uvicorn finishes, then ends by the signal it caught, as
    # process managers expect), and the store holds exactly what was acknowledged
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(20) in (0, -signal.SIGTERM)
    stored = tokenmall("state", cwd=server.directory)
    assert json.loads(stored.stdout) == state.json()
    audit = tokenmall("audit", "verify", cwd=server.directory)
    assert audit.returncode == 0 and audit.stdout.startswith("audit: ok: 4 entries")


def test_tokens_and_roles(server: Server) -> None:
    no_token = server.client.post("/v1/commands", content=b"{}")
    assert_problem(no_token, 401, "unauthorized")
    assert_problem(server.post({"op": "settle_day"}, token="tm_forged"), 401, "unauthorized")
    assert_problem(server.post({"op": "settle_day"}, token="not-even-ours"), 401, "unauthorized")
    created = tokenmall(
        "token", "create", "--role", "consumer", "--account", "alice", cwd=server.directory
    )
    consumer = created.stdout.strip()
    assert consumer.startswith("tm_") and consumer != server.admin
    assert_problem(server.post({"op": "settle_day"}, token=consumer), 403, "forbidden")
    assert_problem(
        server.client.get("/v1/state", headers=server.headers(consumer)), 403, "forbidden"
    )
    # nothing reached the journal
    assert server.client.get("/healthz").json()["head"] == 0


def test_bad_input_is_a_problem_not_a_crash(server: Server) -> None:
    headers = server.headers(server.admin)
    for body in (b"garbage", b"[1, 2]", b'"text"', b'{"op": NaN}', b"\xff\xfe"):
        response = server.client.post("/v1/commands", content=body, headers=headers)
        assert_problem(response, 400, "invalid_command")
    too_big = server.client.post("/v1/commands", content=b" " * (65 * 1024), headers=headers)
    assert too_big.status_code == 413
    bad_key = server.post({"op": "settle_day"}, **{"Idempotency-Key": "k" * 300})
    assert_problem(bad_key, 422, "invalid_command")
    unknown = server.post({"op": "fly"})
    assert_problem(unknown, 422, "unknown_op")
    assert server.client.get("/nowhere").status_code == 404


def test_the_cli_refuses_bad_token_requests(tmp_path: Path) -> None:
    for args in (
        ("token", "create", "--role", "admin", "--account", "x"),
        ("token", "create", "--role", "consumer"),
        ("token", "create", "--role", "root"),
    ):
        result = tokenmall(*args, cwd=tmp_path)
        assert result.returncode == 2, args
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def make_token(server: Server, role: str, account: str | None = None, *extra: str) -> str:
    account_args = ("--account", account) if account is not None else ()
    created = tokenmall(
        "token", "create", "--role", role, *account_args, *extra, cwd=server.directory
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def call(server: Server, method: str, path: str, body: object | None, token: str) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    return server.client.request(method, path, content=content, headers=server.headers(token))


def test_resource_endpoints_and_who_may_use_them(server: Server) -> None:
    admin = server.admin
    alice = make_token(server, "consumer", "alice")
    shop = make_token(server, "merchant", "shop")
    mall = make_token(server, "integration")
    # a consumer registers itself; an admin registers others; a merchant registers itself
    assert call(server, "POST", "/v1/consumers", {"user": "alice"}, alice).status_code == 201
    body = {"user": "bob", "referrer": "alice"}
    assert_problem(call(server, "POST", "/v1/consumers", body, alice), 403, "forbidden")
    assert call(server, "POST", "/v1/consumers", body, admin).status_code == 201
    assert call(server, "POST", "/v1/merchants", {"merchant": "shop"}, shop).status_code == 201
    # cash orders come from the back end, naming their payment; no consumer or merchant token
    # may say that money was paid
    order = {"id": "o1", "user": "alice", "amount": "100.00"}
    assert_problem(call(server, "POST", "/v1/orders", order, alice), 403, "forbidden")
    assert_problem(call(server, "POST", "/v1/orders", order, shop), 403, "forbidden")
    assert_problem(call(server, "POST", "/v1/orders", order, mall), 422, "invalid_command")
    paid = {**order, "payment_id": "wx-1"}
    assert call(server, "POST", "/v1/orders", paid, mall).status_code == 201
    # alice converts EP to SP and pays the shop in SP from her own token (主扫); the shop
    # cannot charge her without a payment code
    converted = call(server, "POST", "/v1/consumers/alice/convert", {"points": "5"}, alice)
    assert converted.status_code == 200, converted.text
    sp_order = {"id": "o3", "user": "alice", "amount": "1.00", "pay": "stable", "merchant": "shop"}
    assert_problem(call(server, "POST", "/v1/orders", sp_order, shop), 403, "forbidden")
    assert call(server, "POST", "/v1/orders", sp_order, alice).status_code == 201
    # the path names the account; a body that says otherwise is malformed
    mismatch = call(
        server, "POST", "/v1/consumers/alice/sell", {"user": "bob", "points": "1"}, admin
    )
    assert_problem(mismatch, 422, "invalid_command")
    wrong_op = call(server, "POST", "/v1/consumers/alice/sell", {"op": "redeem"}, admin)
    assert_problem(wrong_op, 422, "invalid_command")
    assert_problem(
        call(server, "POST", "/v1/consumers/bob/sell", {"points": "1"}, alice), 403, "forbidden"
    )
    sold = call(server, "POST", "/v1/consumers/alice/sell", {"points": "1"}, alice)
    assert sold.status_code == 200, sold.text
    # the operator's commands
    for method, path, body_ in (
        ("POST", "/v1/settlements", None),
        ("PUT", "/v1/params", {"params": {"sell_fee_rate": "0.05"}}),
        ("POST", "/v1/orders/o1/refund", None),
        ("POST", "/v1/consumers/bob/grants", {"amount": "10.00", "days": 5}),
    ):
        assert_problem(call(server, method, path, body_, alice), 403, "forbidden")
        assert_problem(call(server, method, path, body_, shop), 403, "forbidden")
        if path != "/v1/orders/o1/refund":  # the back end refunds what it was paid
            assert_problem(call(server, method, path, body_, mall), 403, "forbidden")
    params = {"params": {"sell_fee_rate": "0.05"}}
    assert call(server, "PUT", "/v1/params", params, admin).status_code == 200
    assert call(server, "POST", "/v1/settlements", None, admin).status_code == 200
    grant = {"amount": "10.00", "days": 5}
    assert call(server, "POST", "/v1/consumers/bob/grants", grant, admin).status_code == 201
    refund = call(server, "POST", "/v1/orders/o1/refund", None, admin)
    assert_problem(refund, 409, "refund_window_closed")  # settled: a new day
    state = server.client.get("/v1/state", headers=server.headers(admin)).json()
    assert state["users"]["bob"]["locked_sp"] != "0.00"
    assert state["merchants"]["shop"]["sp"] == "1.00"
    assert [error["code"] for error in state["errors"]] == ["refund_window_closed"]


def test_reads(server: Server) -> None:
    admin = server.admin
    for user in ("alice", "bob", "carol"):
        assert call(server, "POST", "/v1/consumers", {"user": user}, admin).status_code == 201
    for number, (user, amount) in enumerate((("alice", "100.00"), ("bob", "3000.00"))):
        order = {"id": f"o{number}", "user": user, "amount": amount}
        assert call(server, "POST", "/v1/orders", order, admin).status_code == 201
    call(server, "POST", "/v1/consumers/alice/convert", {"points": "1"}, admin)
    bob = make_token(server, "consumer", "bob")
    market = server.client.get("/v1/market", headers=server.headers(bob))
    assert market.status_code == 200
    state = server.client.get("/v1/state", headers=server.headers(admin)).json()
    summary = market.json()
    for field in ("price", "pool", "supply", "unissued", "treasury", "sp_outstanding"):
        assert summary[field] == state[field], field
    assert summary["treasury"] == "1.00000000" and summary["sp_backing"] != "0.00"
    own = server.client.get("/v1/accounts/bob", headers=server.headers(bob))
    assert own.status_code == 200
    assert {k: v for k, v in own.json().items() if k not in ("id", "kind", "referrer")} == (
        state["users"]["bob"]
    )
    other = server.client.get("/v1/accounts/alice", headers=server.headers(bob))
    assert_problem(other, 403, "forbidden")
    missing = server.client.get("/v1/accounts/nobody", headers=server.headers(admin))
    assert_problem(missing, 404, "unknown_account")
    top = server.client.get("/v1/holders/top", headers=server.headers(bob)).json()
    assert [row["user"] for row in top] == ["bob", "alice"]  # carol holds nothing
    levels = server.client.get("/v1/levels", headers=server.headers(bob)).json()
    assert [row["level"] for row in levels] == list(range(1, 11))
    assert levels[0]["reached"] == 1  # bob, whose 3,000.00 buys several levels; alice: 21 EP
    assert sum(row["consumers"] for row in levels) == 1
    assert_problem(server.client.get("/v1/market"), 401, "unauthorized")


def test_schemathesis_finds_no_server_error(server: Server) -> None:
    """Generated requests for every operation in the served /openapi.json, as an admin (so
    requests reach the ledger), must never get a 5xx."""
    schemathesis = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{server.client.base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {server.admin}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--seed",
            "2026",
        ],
        cwd=server.directory,  # where schemathesis keeps its own files
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    failures = result.stdout.partition("=== FAILURES ===")[2] or result.stdout[-3000:]
    assert result.returncode == 0, failures[:6000]
    assert "passed" in result.stdout
