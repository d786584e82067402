"""The limits of `tokenmall serve` (issue 10), on real servers over real sockets: header size,
request time, connections, per-token rates, the largest order, the writer's queue, and the
headers and log lines every answer gets."""

import asyncio
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.test_api import assert_problem, start_server
from tests.test_api_trust import new_token

HEADER_BYTES_MAX = 16 * 1024
ACCESS_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (tk_[0-9a-f]{12}|-) (GET|POST|PUT|DELETE) "
    r"\S+ \d{3} \d+\.\dms$"
)


@dataclass
class Limited:
    process: subprocess.Popen[str]
    client: httpx.Client
    port: int
    admin: str
    admin_id: str
    consumer: str

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Limited]:
    """A server with small limits, its access log on a pipe."""
    admin, admin_id = new_token(tmp_path, "admin")
    consumer, _ = new_token(tmp_path, "consumer", "c1")
    process, client = start_server(
        tmp_path,
        "--request-timeout",
        "1",
        "--max-connections",
        "6",
        "--rate-limit",
        "consumer=5",
        "--order-max",
        "500.00",
        stdout=subprocess.PIPE,
    )
    port = int(str(client.base_url).rsplit(":", 1)[1])
    try:
        yield Limited(process, client, port, admin, admin_id, consumer)
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
        process.wait(10)


def raw_answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    try:
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def test_headers_over_16_kib_are_refused_at_once(limited: Limited) -> None:
    fitting = limited.client.get("/healthz", headers={"X-Pad": "a" * (HEADER_BYTES_MAX - 200)})
    assert fitting.status_code == 200
    with limited.connect() as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20_000)
        answer = raw_answer(connection)
    assert answer.startswith(b"HTTP/1.1 431 ") and b'"code": "headers_too_large"' in answer

    # a header of 64 MB (the probe sent 96): refused after its first 16 KiB, and the server
    # keeps answering others meanwhile
    sent: list[int] = []

    def flood() -> None:
        with limited.connect() as connection:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nX-Huge: ")
            chunk = b"a" * 65536
            try:
                for _ in range(1024):
                    connection.sendall(chunk)
                    sent.append(len(chunk))
            except OSError:  # the server closed the connection: what we expect
                pass

    flooder = threading.Thread(target=flood)
    flooder.start()
    latencies = []
    for _ in range(20):
        started = time.perf_counter()
        assert limited.client.get("/healthz").status_code == 200
        latencies.append(time.perf_counter() - started)
    flooder.join(30)
    assert not flooder.is_alive()
    assert sum(sent) < 8 * 1024 * 1024, "the server read far more than its limit"
    assert max(latencies) < 0.5, latencies


def test_slow_and_idle_connections_are_closed(limited: Limited) -> None:
    """A request must arrive within --request-timeout (1 s here) of its first byte."""
    with limited.connect() as connection:
        started = time.monotonic()
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        try:
            for _ in range(40):  # a byte every 0.1 s would take 4 s
                connection.sendall(b"X")
                time.sleep(0.1)
        except OSError:
            pass
        answer = raw_answer(connection)
        assert time.monotonic() - started < 2.5
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request_timeout" in answer
    with limited.connect() as connection:  # connected, and never a byte
        started = time.monotonic()
        assert raw_answer(connection) == b""
        assert 0.8 < time.monotonic() - started < 2.5


def test_connections_over_the_cap_get_503(limited: Limited) -> None:
    limited.client.close()  # its keep-alive connection would count
    sockets = [limited.connect() for _ in range(6)]
    try:
        over = limited.connect()
        answer = raw_answer(over)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in answer
    finally:
        for connection in sockets:
            connection.close()
    time.sleep(0.2)
    with httpx.Client(base_url=f"http://127.0.0.1:{limited.port}") as client:
        assert client.get("/healthz").status_code == 200  # freed


def test_each_token_has_a_rate(limited: Limited) -> None:
    """consumer=5 per second, a burst of 2 s worth."""
    headers = {"Authorization": f"Bearer {limited.consumer}"}
    statuses = [limited.client.get("/v1/market", headers=headers) for _ in range(25)]
    allowed = [r for r in statuses if r.status_code == 200]
    refused = [r for r in statuses if r.status_code == 429]
    assert 10 <= len(allowed) <= 11 and len(allowed) + len(refused) == 25
    assert_problem(refused[0], 429, "rate_limited")
    assert int(refused[0].headers["retry-after"]) >= 1
    # another token is not slowed by it; after the wait, the consumer may go on
    admin = {"Authorization": f"Bearer {limited.admin}"}
    assert limited.client.get("/v1/market", headers=admin).status_code == 200
    time.sleep(int(refused[0].headers["retry-after"]))
    assert limited.client.get("/v1/market", headers=headers).status_code == 200


def test_the_largest_order_is_configurable(limited: Limited) -> None:
    headers = {"Authorization": f"Bearer {limited.admin}"}
    limited.client.post("/v1/consumers", json={"user": "c1"}, headers=headers)
    order = {"id": "o1", "user": "c1", "amount": "500.01"}
    over = limited.client.post("/v1/orders", json=order, headers=headers)
    assert_problem(over, 422, "order_too_large")
    at_limit = limited.client.post(
        "/v1/orders", json={**order, "amount": "500.00"}, headers=headers
    )
    assert at_limit.status_code == 201


def test_every_answer_carries_its_headers_and_a_log_line(limited: Limited) -> None:
    admin = {"Authorization": f"Bearer {limited.admin}"}
    answers = {
        "unauthenticated": limited.client.get("/v1/market"),
        "read": limited.client.get("/v1/market", headers=admin),
        "command": limited.client.post("/v1/consumers", json={"user": "h1"}, headers=admin),
        "405 command": limited.client.delete("/v1/orders", headers=admin),
        "405 read": limited.client.post("/v1/market", headers=admin),
        "404": limited.client.get("/nowhere", headers=admin),
    }
    for name, response in answers.items():
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["cache-control"] == "no-store", name
        assert "server" not in response.headers, name
    assert answers["unauthenticated"].headers["www-authenticate"] == 'Bearer realm="tokenmall"'
    assert answers["405 command"].headers["allow"] == "POST"
    assert answers["405 read"].headers["allow"] == "GET, OPTIONS"  # Litestar answers OPTIONS
    for path in ("/schema", "/schema/swagger", "/schema/openapi.json"):  # no CDN pages
        assert limited.client.get(path).status_code == 404, path

    limited.process.send_signal(signal.SIGTERM)
    output, _ = limited.process.communicate(timeout=20)
    lines = output.splitlines()
    assert lines and all(ACCESS_LINE.match(line) for line in lines), lines[:5]
    assert any(f" {limited.admin_id} POST /v1/consumers 201 " in line for line in lines)
    assert any(" - GET /v1/market 401 " in line for line in lines)
    assert limited.admin not in output


def test_a_full_writer_queue_answers_503_and_loses_nothing(tmp_path: Path) -> None:
    admin, _ = new_token(tmp_path, "admin")
    process, client = start_server(
        tmp_path, "--queue-max", "2", "--log-level", "warning", stdout=subprocess.PIPE
    )
    headers = {"Authorization": f"Bearer {admin}"}

    async def flood() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=client.base_url, limits=limits, timeout=30) as pool:
            requests = [
                pool.post("/v1/consumers", json={"user": f"u{n}"}, headers=headers)
                for n in range(300)
            ]
            return await asyncio.gather(*requests)

    try:
        answers = asyncio.run(flood())
        statuses = [answer.status_code for answer in answers]
        assert set(statuses) <= {201, 503}, set(statuses)
        busy = [answer for answer in answers if answer.status_code == 503]
        assert busy, "the queue never filled"
        assert all(answer.headers["retry-after"] == "1" for answer in busy)
        committed = sorted(answer.json()["seq"] for answer in answers if answer.status_code == 201)
        assert committed == list(range(1, client.get("/healthz").json()["head"] + 1))
    finally:
        client.close()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert output == ""  # --log-level warning: no access log
