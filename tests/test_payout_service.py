"""The stand-in payout service (tests/support/payout_service.py) behaves as the tests of the
webhook payout channel will assume: signed requests only, one transfer per withdrawal whatever
the retries, scripted failures, and signed callbacks."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.support.payout_service import PayoutService
from tokenmall.payouts import webhooks

SECRET = webhooks.new_secret()


def request_body(withdrawal: str, amount_fen: int = 1234) -> bytes:
    message = {
        "type": "payout.requested",
        "timestamp": "2026-12-01T08:00:00Z",
        "data": {
            "withdrawal": withdrawal,
            "account": "alice",
            "amount": f"{amount_fen // 100}.{amount_fen % 100:02d}",
            "amount_fen": amount_fen,
            "currency": "CNY",
            "payee": {
                "method": "bank",
                "name": "张三",
                "account": "6222000011112222",
                "bank": "ICBC",
            },
        },
    }
    return json.dumps(message, ensure_ascii=False).encode()


def deliver(
    service: PayoutService,
    withdrawal: str,
    amount_fen: int = 1234,
    *,
    secret: str = SECRET,
    timestamp_s: int | None = None,
    timeout_s: float = 2.0,
) -> httpx.Response:
    """One delivery as tokenmall makes it: the same webhook id on every retry."""
    body = request_body(withdrawal, amount_fen)
    sent_s = int(time.time()) if timestamp_s is None else timestamp_s
    headers = webhooks.headers(secret, f"payout_{withdrawal}", sent_s, body)
    headers["content-type"] = "application/json"
    return httpx.post(service.payouts_url, content=body, headers=headers, timeout=timeout_s)


@contextmanager
def receiver(secret: str) -> Iterator[tuple[str, list[tuple[int, str, bytes]]]]:
    """A tiny tokenmall stand-in for callbacks: (its URL, [(status answered, id, body)])."""
    received: list[tuple[int, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # the name http.server calls
            body = self.rfile.read(int(self.headers["content-length"]))
            header_map = dict(self.headers.items())
            try:
                message_id = webhooks.verify(secret, header_map, body, int(time.time()))
                status = 200
            except webhooks.WebhookRefused as refused:
                message_id, status = refused.code, 401
            received.append((status, message_id, body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/callbacks", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def wait_for(condition: Any, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_request_not_signed_with_the_secret_or_stale_is_refused() -> None:
    with PayoutService(secret=SECRET) as service:
        wrong = deliver(service, "w1", secret=webhooks.new_secret())
        stale = deliver(service, "w1", timestamp_s=int(time.time()) - 301)
        unsigned = httpx.post(service.payouts_url, content=request_body("w1"))
        assert [wrong.status_code, stale.status_code, unsigned.status_code] == [401, 401, 400]
        assert wrong.json()["error"].startswith("bad_signature")
        assert stale.json()["error"].startswith("stale_timestamp")
        assert service.refused == 3
        assert service.deliveries == []
        assert service.transfers_count("w1") == 0
    assert service.errors == []


def test_a_withdrawal_is_paid_once_and_a_redelivery_gets_the_same_answer() -> None:
    with PayoutService(secret=SECRET) as service:
        first = deliver(service, "w1")
        again = deliver(service, "w1")
        other = deliver(service, "w2")
        assert first.status_code == again.status_code == 200
        assert first.json()["status"] == "paid"
        assert first.json()["reference"].startswith("BANK")
        assert again.json() == first.json()
        assert other.json()["reference"] != first.json()["reference"]
        assert service.transfers_count("w1") == 1
        assert service.paid["w1"].times_paid == 1
        assert service.paid["w1"].amount_fen == 1234
        assert [d.action for d in service.deliveries] == ["paid", "final", "paid"]
        assert service.deliveries[0].webhook_id == "payout_w1"
        assert service.deliveries[0].body == request_body("w1")
    assert service.errors == []


def test_a_failure_is_final_too() -> None:
    with PayoutService(secret=SECRET) as service:
        service.script("w1", "failed", "paid")
        answers = [deliver(service, "w1").json() for _ in range(2)]
        assert answers == [{"status": "failed", "reason": "账户已冻结 account frozen"}] * 2
        assert service.transfers_count("w1") == 0
        assert "w1" in service.failed
    assert service.errors == []


def test_a_timeout_pays_and_the_retry_gets_the_same_reference() -> None:
    with PayoutService(secret=SECRET, hang_s=0.6) as service:
        service.script("w1", "timeout", "error")
        with pytest.raises(httpx.ReadTimeout):
            deliver(service, "w1", timeout_s=0.2)
        assert service.transfers_count("w1") == 1  # the money left although nobody heard so
        retry = deliver(service, "w1")
        assert retry.status_code == 200
        assert retry.json() == {"status": "paid", "reference": service.paid["w1"].reference}
        assert service.transfers_count("w1") == 1
        time.sleep(0.5)  # the held answer is written to a closed connection: no error
    assert service.errors == []


def test_error_and_drop_pay_nothing_and_the_last_step_repeats() -> None:
    with PayoutService(secret=SECRET) as service:
        service.script("w1", "error", "drop", "paid")
        assert deliver(service, "w1").status_code == 500
        with pytest.raises(httpx.RemoteProtocolError):
            deliver(service, "w1")
        assert service.transfers_count("w1") == 0
        assert deliver(service, "w1").json()["status"] == "paid"
        service.script("w2", "drop")
        for _ in range(2):
            with pytest.raises(httpx.RemoteProtocolError):
                deliver(service, "w2")
        assert service.transfers_count("w2") == 0
        assert [d.action for d in service.deliveries] == ["error", "drop", "paid", "drop", "drop"]
    assert service.errors == []


def test_processing_completes_with_a_signed_callback() -> None:
    with (
        receiver(SECRET) as (url, received),
        PayoutService(secret=SECRET, callback_url=url, callback_delay_s=0.3) as service,
    ):
        service.script("w1", "processing")
        service.script("w2", "processing_failed")
        assert deliver(service, "w1").json() == {"status": "processing"}
        assert deliver(service, "w1").status_code == 202  # in flight: no second transfer
        assert deliver(service, "w2").status_code == 202
        wait_for(lambda: len(service.callbacks) == 2)
        assert [status for status, _, _ in received] == [200, 200]
        messages = {
            json.loads(body)["data"]["withdrawal"]: json.loads(body) for *_, body in received
        }
        paid, failed = messages["w1"], messages["w2"]
        assert paid["type"] == "payout.paid"
        assert paid["data"] == {
            "withdrawal": "w1",
            "amount_fen": 1234,
            "reference": service.paid["w1"].reference,
        }
        assert failed["type"] == "payout.failed"
        assert failed["data"]["reason"] == "账户已冻结 account frozen"
        ids = [message_id for message_id, _, _ in service.callbacks]
        assert len(set(ids)) == 2
        assert all(message_id.startswith("msg_") for message_id in ids)
        assert {status for _, status, _ in service.callbacks} == {200}
        assert deliver(service, "w1").json()["reference"] == service.paid["w1"].reference
        assert service.transfers_count("w1") == 1
        assert service.transfers_count("w2") == 0
    assert service.errors == []


def test_callbacks_sent_by_hand() -> None:
    with (
        receiver(SECRET) as (url, received),
        PayoutService(secret=SECRET, callback_url=url) as service,
    ):
        deliver(service, "w1")
        assert service.send_callback("w1", webhook_id="msg_again")[0] == 200
        assert service.send_callback("w1", webhook_id="msg_again")[0] == 200  # a replay
        assert service.send_callback("w1", timestamp_s=int(time.time()) - 400)[0] == 401
        assert service.send_callback("w1", secret=webhooks.new_secret())[0] == 401
        assert service.send_callback("w1", body=b"{}")[0] == 200
        assert [message_id for _, message_id, _ in received][:2] == ["msg_again"] * 2
        assert json.loads(received[0][2])["data"]["reference"] == service.paid["w1"].reference
        assert service.callbacks == []  # by hand: returned, not recorded
        with pytest.raises(ValueError, match="amount_fen"):
            service.send_callback("never_delivered")
    assert service.errors == []


def test_a_different_amount_for_the_same_withdrawal_is_refused() -> None:
    with PayoutService(secret=SECRET) as service:
        service.script("w1", "error", "paid")
        assert deliver(service, "w1", 1234).status_code == 500
        conflict = deliver(service, "w1", 1235)
        assert conflict.status_code == 409
        assert conflict.json() == {"error": "amount differs"}
        assert deliver(service, "w1", 1234).json()["status"] == "paid"
        assert deliver(service, "w1", 99).status_code == 409
        assert service.transfers_count("w1") == 1
    assert service.errors == []


def test_malformed_and_oversized_requests_are_refused() -> None:
    with PayoutService(secret=SECRET) as service:
        now_s = int(time.time())
        big = b"x" * (64 * 1024 + 1)
        headers = webhooks.headers(SECRET, "payout_big", now_s, big)
        assert httpx.post(service.payouts_url, content=big, headers=headers).status_code == 413
        bad = b'{"type": "payout.requested", "data": {"withdrawal": "w1", "amount_fen": 1.5}}'
        headers = webhooks.headers(SECRET, "payout_w1", now_s, bad)
        answer = httpx.post(service.payouts_url, content=bad, headers=headers)
        assert answer.status_code == 422
        assert "amount_fen" in answer.json()["error"]
        headers = webhooks.headers(SECRET, "payout_w1", now_s, request_body("w1"))
        elsewhere = httpx.post(f"{service.url}/other", content=request_body("w1"), headers=headers)
        assert elsewhere.status_code == 404
        assert [status for status, _ in service.refusals] == [413, 422, 404]
        assert service.refused == 0
        assert service.deliveries == []
    assert service.errors == []
