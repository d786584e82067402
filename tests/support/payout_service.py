"""A real payout service on a local port, for the tests: a stand-in for a bank, WeChat Pay's
商家转账 or Alipay's transfer gateway, which tokenmall's webhook payout channel talks to.

    with PayoutService(secret=secret, callback_url=url) as service:
        service.script("w1", "timeout", "paid")
        ... tokenmall sends POST {service.url}/payouts ...
        assert service.transfers_count("w1") == 1

tokenmall sends a signed (Standard Webhooks) `payout.requested` message. The service answers
what the test scripted for that withdrawal, one step per delivery (the last step repeats;
unscripted withdrawals are paid):
- "paid": 200 {"status": "paid", "reference": "BANK000001"};
- "failed": 200 {"status": "failed", "reason": "账户已冻结 account frozen"};
- "processing" / "processing_failed": 202 {"status": "processing"}; with a callback_url, the
  transfer completes (paid / failed) after `callback_delay_s` and a signed `payout.paid` /
  `payout.failed` callback says so, and deliveries meanwhile are answered 202 again (no new
  step); without a callback_url nothing completes: the next delivery takes the next step;
- "timeout": the money is paid at once, but the answer waits `hang_s` (the client gives up);
- "error": 500, nothing paid; "drop": the connection closes unanswered, nothing paid.
Like the real gateways, the withdrawal id is the idempotency key (out_bill_no, out_biz_no): once
paid or failed, every later delivery gets the same answer and pays nothing, and a delivery whose
amount differs from an earlier one is refused (409).
"""

import contextlib
import itertools
import json
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self, get_args

import httpx

from tokenmall.core.units import Fen, format_fen
from tokenmall.payouts import webhooks

Step = Literal["paid", "failed", "processing", "processing_failed", "timeout", "error", "drop"]
STEPS: frozenset[str] = frozenset(get_args(Step))
BODY_BYTES_MAX = 64 * 1024
DRAIN_BYTES_MAX = 1024 * 1024  # an oversized body is read up to this before the 413 (see below)
ID_CHARS_MAX = 256
FAILURE_REASON = "账户已冻结 account frozen"
SOCKET_TIMEOUT_S = 10  # a client that stops sending mid-request frees its thread after this
CALLBACK_TIMEOUT_S = 5

# References are unique in the whole test process, as a bank's are: two services started by one
# test never hand out the same one.
_references = itertools.count(1)
_references_lock = threading.Lock()


def _next_reference(prefix: str) -> str:
    with _references_lock:
        return f"{prefix}{next(_references):06d}"


@dataclass(frozen=True)
class Delivery:
    """One authentic payout request, as received."""

    webhook_id: str
    withdrawal: str
    amount_fen: int
    body: bytes
    received_s: float  # Unix time
    # What the service did: a step, or "final" (the earlier outcome again), "in_flight" (a
    # callback is due), "amount_differs" (refused, 409).
    action: str


@dataclass
class Transfer:
    """A withdrawal's final outcome at the service."""

    withdrawal: str
    amount_fen: int
    reference: str
    status: Literal["paid", "failed"]
    reason: str  # "" when paid
    times_paid: int  # money movements for this withdrawal: 1 when paid; more is a bug

    def answer(self) -> dict[str, str]:
        if self.status == "paid":
            return {"status": "paid", "reference": self.reference}
        return {"status": "failed", "reason": self.reason}


class PayoutService:
    """The service, on 127.0.0.1 and a port the OS picks, for the length of a `with` block."""

    def __init__(
        self,
        secret: str,
        callback_url: str | None = None,
        *,
        callback_delay_s: float = 0.2,
        hang_s: float = 5.0,
        tolerance_s: int = webhooks.TOLERANCE_DEFAULT_S,
        reference_prefix: str = "BANK",
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        webhooks.secret_key(secret)  # a malformed secret fails here, not at the first request
        self.secret = secret
        self.callback_url = callback_url
        self.callback_delay_s = callback_delay_s
        self.hang_s = hang_s
        self.tolerance_s = tolerance_s
        self.reference_prefix = reference_prefix
        self.clock_s = clock_s
        self.deliveries: list[Delivery] = []
        self.paid: dict[str, Transfer] = {}
        self.failed: dict[str, Transfer] = {}
        self.callbacks: list[tuple[str, int, bytes]] = []  # (webhook id, status, body answered)
        self.refused = 0  # requests refused by the signature check
        self.refusals: list[tuple[int, str]] = []  # every refused request: (status, why)
        self.errors: list[BaseException] = []  # unexpected exceptions: tests assert it is empty
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Step]] = {}
        self._steps_taken: dict[str, int] = {}
        self._amounts_fen: dict[str, int] = {}  # the first amount asked for each withdrawal
        self._in_flight: set[str] = set()  # processing, callback due
        self._transfers_made: dict[str, int] = {}
        self._message_prefix = f"msg_{secrets.token_hex(3)}_"  # unique across services
        self._messages = itertools.count(1)
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []
        self._server: _Server | None = None
        self._serving: threading.Thread | None = None

    # -- life ---------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.service = self
        self._serving = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._serving.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stopping.set()  # hanging answers and pending callbacks give up now
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._serving is not None:
            self._serving.join()
        for worker in list(self._workers):
            worker.join(CALLBACK_TIMEOUT_S + 1)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the payout service is not running: use it in a `with` block")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def payouts_url(self) -> str:
        return f"{self.url}/payouts"

    # -- what the tests ask -------------------------------------------------------------------

    def script(self, withdrawal: str, *steps: Step) -> None:
        """The answers to the next deliveries for a withdrawal, in order; the last repeats."""
        unknown = [step for step in steps if step not in STEPS]
        if not steps or unknown:
            raise ValueError(f"steps are some of {sorted(STEPS)}, not {unknown or 'none'}")
        with self._lock:
            self._scripts[withdrawal] = list(steps)
            self._steps_taken[withdrawal] = 0

    def transfers_count(self, withdrawal: str) -> int:
        """How many times the service moved money for a withdrawal (0 or 1, or a bug)."""
        with self._lock:
            return self._transfers_made.get(withdrawal, 0)

    def send_callback(
        self,
        withdrawal: str,
        status: Literal["paid", "failed"] = "paid",
        webhook_id: str | None = None,
        timestamp_s: int | None = None,
        secret: str | None = None,
        body: bytes | None = None,
        *,
        amount_fen: int | None = None,
    ) -> tuple[int, bytes]:
        """Send one callback by hand (a replay, a stale one, a forged one, a late one): tokenmall's
        status and answer. It changes nothing at the service and is not in `callbacks`."""
        if body is None:
            with self._lock:
                transfer = self.paid.get(withdrawal) or self.failed.get(withdrawal)
                known_fen = self._amounts_fen.get(withdrawal)
            reference = transfer.reference if transfer else _next_reference(self.reference_prefix)
            fen = amount_fen if amount_fen is not None else known_fen
            if fen is None:
                raise ValueError(f"no delivery for {withdrawal!r}: give amount_fen or body")
            reason = (transfer.reason if transfer else "") or FAILURE_REASON
            body = _callback_body(withdrawal, status, fen, reference, reason)
        return self._post_callback(
            webhook_id or self._new_message_id(),
            body,
            int(self.clock_s()) if timestamp_s is None else timestamp_s,
            secret or self.secret,
        )

    # -- the service's work -------------------------------------------------------------------

    def deliver(self, webhook_id: str, withdrawal: str, amount_fen: int, body: bytes) -> str:
        """Take an authentic delivery: what to answer (the action recorded with it)."""
        with self._lock:
            first_fen = self._amounts_fen.setdefault(withdrawal, amount_fen)
            if first_fen != amount_fen:
                action = "amount_differs"
            elif withdrawal in self.paid or withdrawal in self.failed:
                action = "final"
            elif withdrawal in self._in_flight:
                action = "in_flight"
            else:
                action = self._next_step(withdrawal)
                self._start(withdrawal, amount_fen, action)
            self.deliveries.append(
                Delivery(webhook_id, withdrawal, amount_fen, body, self.clock_s(), action)
            )
            return action

    def _next_step(self, withdrawal: str) -> Step:
        steps = self._scripts.get(withdrawal, ["paid"])
        taken = self._steps_taken.get(withdrawal, 0)
        self._steps_taken[withdrawal] = taken + 1
        return steps[min(taken, len(steps) - 1)]

    def _start(self, withdrawal: str, amount_fen: int, step: Step) -> None:
        """The part of a step that happens at the service at once (the lock is held)."""
        if step in ("paid", "timeout"):
            self._finish(withdrawal, amount_fen, "paid")
        elif step == "failed":
            self._finish(withdrawal, amount_fen, "failed")
        elif step in ("processing", "processing_failed") and self.callback_url is not None:
            self._in_flight.add(withdrawal)
            outcome: Literal["paid", "failed"] = "paid" if step == "processing" else "failed"
            worker = threading.Thread(
                target=self._complete_later, args=(withdrawal, amount_fen, outcome), daemon=True
            )
            self._workers.append(worker)
            worker.start()

    def _finish(self, withdrawal: str, amount_fen: int, status: Literal["paid", "failed"]) -> None:
        """Record a final outcome, moving the money if paid (the lock is held)."""
        reason = "" if status == "paid" else FAILURE_REASON
        transfer = Transfer(
            withdrawal, amount_fen, _next_reference(self.reference_prefix), status, reason, 0
        )
        if status == "paid":
            transfer.times_paid = self._transfers_made[withdrawal] = (
                self._transfers_made.get(withdrawal, 0) + 1
            )
            self.paid[withdrawal] = transfer
        else:
            self.failed[withdrawal] = transfer
        self._in_flight.discard(withdrawal)

    def final_answer(self, withdrawal: str) -> dict[str, str] | None:
        with self._lock:
            transfer = self.paid.get(withdrawal) or self.failed.get(withdrawal)
            return transfer.answer() if transfer else None

    def note_refusal(self, status: int, why: str, *, by_signature_check: bool) -> None:
        with self._lock:
            self.refusals.append((status, why))
            if by_signature_check:
                self.refused += 1

    def hold(self, seconds: float) -> bool:
        """Wait, as a slow bank does; False when the service stops meanwhile."""
        return not self._stopping.wait(seconds)

    def _complete_later(
        self, withdrawal: str, amount_fen: int, status: Literal["paid", "failed"]
    ) -> None:
        try:
            if self._stopping.wait(self.callback_delay_s):
                return
            with self._lock:
                transfer = self.paid.get(withdrawal) or self.failed.get(withdrawal)
                if transfer is None:
                    self._finish(withdrawal, amount_fen, status)
                    transfer = self.paid.get(withdrawal) or self.failed[withdrawal]
            body = _callback_body(
                withdrawal, transfer.status, amount_fen, transfer.reference, transfer.reason
            )
            message_id = self._new_message_id()
            status_code, answer = self._post_callback(message_id, body, None, self.secret)
            with self._lock:
                self.callbacks.append((message_id, status_code, answer))
        except Exception as error:  # a bug in the stand-in: the test must see it
            self.errors.append(error)

    def _post_callback(
        self, message_id: str, body: bytes, timestamp_s: int | None, secret: str
    ) -> tuple[int, bytes]:
        """POST one signed callback; (0, b"") when tokenmall does not answer."""
        if self.callback_url is None:
            raise ValueError("this payout service has no callback_url")
        sent_s = int(self.clock_s()) if timestamp_s is None else timestamp_s
        headers = webhooks.headers(secret, message_id, sent_s, body)
        headers["content-type"] = "application/json"
        try:
            response = httpx.post(
                self.callback_url, content=body, headers=headers, timeout=CALLBACK_TIMEOUT_S
            )
        except httpx.HTTPError:  # tokenmall down or slow: a real gateway would try again later
            return 0, b""
        return response.status_code, response.content

    def _new_message_id(self) -> str:
        return f"{self._message_prefix}{next(self._messages):06d}"


def _callback_body(
    withdrawal: str, status: Literal["paid", "failed"], amount_fen: int, reference: str, reason: str
) -> bytes:
    data: dict[str, Any] = {"withdrawal": withdrawal, "amount_fen": amount_fen}
    data["reference"] = reference
    if status == "failed":
        data["reason"] = reason
    message = {"type": f"payout.{status}", "timestamp": _iso_now(), "data": data}
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_request(body: bytes) -> tuple[str, int] | str:
    """(withdrawal, amount in fen) of a payout.requested body, or why it is malformed."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return "the body is not JSON"
    if not isinstance(message, dict) or message.get("type") != "payout.requested":
        return 'type must be "payout.requested"'
    data = message.get("data")
    if not isinstance(data, dict):
        return "data must be an object"
    withdrawal, amount_fen = data.get("withdrawal"), data.get("amount_fen")
    if not isinstance(withdrawal, str) or not 0 < len(withdrawal) <= ID_CHARS_MAX:
        return "data.withdrawal must be an id"
    if type(amount_fen) is not int or amount_fen <= 0:
        return "data.amount_fen must be a positive integer of fen"
    if data.get("amount") != format_fen(Fen(amount_fen)):
        return "data.amount must be data.amount_fen in yuan (12.34 for 1234)"
    if data.get("currency") != "CNY" or not isinstance(data.get("account"), str):
        return "data.currency must be CNY and data.account a string"
    payee = data.get("payee")
    if not isinstance(payee, dict) or not isinstance(payee.get("method"), str):
        return "data.payee must be an object with a method"
    return withdrawal, amount_fen


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging answer never keeps the test process alive
    service: PayoutService

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        # A client that went away (a timeout, a drop) is part of the tests, not an error.
        if error is not None and not isinstance(error, ConnectionError | TimeoutError):
            self.service.errors.append(error)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = SOCKET_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read `deliveries`, `refusals` and `errors` instead."""

    def do_POST(self) -> None:  # the name http.server calls
        service = self.server.service
        if self.path != "/payouts":
            self._refuse(404, "no such path: POST /payouts")
            return
        body = self._body()
        if body is None:
            return
        authentic = self._authentic(body)
        if authentic is None:
            return
        parsed = parse_request(body)
        if isinstance(parsed, str):
            self._refuse(422, parsed)
            return
        withdrawal, amount_fen = parsed
        action = service.deliver(authentic, withdrawal, amount_fen, body)
        self._act(action, withdrawal)

    def _body(self) -> bytes | None:
        """The request body, or None once refused (411, 413)."""
        length_text = self.headers.get("content-length")
        if length_text is None or not length_text.isdigit():
            self._refuse(411, "a Content-Length is required")
            return None
        length = int(length_text)
        if length > BODY_BYTES_MAX:
            # Read what was sent (up to a bound) before answering: closing a socket with unread
            # data sends a reset, and the client would see that instead of the 413.
            self.rfile.read(min(length, DRAIN_BYTES_MAX))
            self._refuse(413, f"the body is over {BODY_BYTES_MAX} bytes")
            return None
        return self.rfile.read(length)

    def _authentic(self, body: bytes) -> str | None:
        """The webhook id of a signed, fresh request, or None once refused (400, 401)."""
        service = self.server.service
        names = (webhooks.ID_HEADER, webhooks.TIMESTAMP_HEADER, webhooks.SIGNATURE_HEADER)
        if any(len(self.headers.get_all(name, [])) > 1 for name in names):
            self._refuse(400, "a webhook header is given twice")
            return None
        header_map = {name.lower(): value for name, value in self.headers.items()}
        try:
            return webhooks.verify(
                service.secret, header_map, body, int(service.clock_s()), service.tolerance_s
            )
        except webhooks.WebhookRefused as refused:
            status = 401 if refused.code in ("bad_signature", "stale_timestamp") else 400
            self._refuse(status, f"{refused.code}: {refused}", by_signature_check=True)
            return None

    def _act(self, action: str, withdrawal: str) -> None:
        service = self.server.service
        if action == "amount_differs":
            self._answer(409, {"error": "amount differs"})
        elif action in ("final", "paid", "failed"):
            self._answer(200, service.final_answer(withdrawal) or {})
        elif action in ("processing", "processing_failed", "in_flight"):
            self._answer(202, {"status": "processing"})
        elif action == "timeout":
            if service.hold(service.hang_s):
                self._answer(200, service.final_answer(withdrawal) or {})
        elif action == "error":
            self._answer(500, {"error": "internal error"})
        elif action == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may be gone already
                self.connection.shutdown(socket.SHUT_RDWR)
        else:
            raise AssertionError(f"unknown action {action}")

    def _refuse(self, status: int, why: str, *, by_signature_check: bool = False) -> None:
        self.server.service.note_refusal(status, why, by_signature_check=by_signature_check)
        self._answer(status, {"error": why})

    def _answer(self, status: int, answer: dict[str, str]) -> None:
        payload = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True
