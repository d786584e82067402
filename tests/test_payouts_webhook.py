"""The payout service channel and the exchange hook (issue 13), against a real `tokenmall
serve` and real local counterparts (tests/support/payout_service.py): signed requests from the
outbox, retried with the same id and the same bytes after a timeout, an error, a dropped
connection and a kill -9 of the server; signed callbacks, with every forgery, replay and late
or contradicting callback refused or harmless; collectible events to the exchange hook."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.payout_service import PayoutService
from tests.test_api import free_port, start_server, tokenmall
from tests.test_api_trust import NO_RATE_LIMITS
from tests.test_api_withdrawal_races import Served, fen, new_ledger_tokens
from tokenmall.ledger.store import Store, resolve_url
from tokenmall.payouts import webhooks
from tokenmall.payouts.store import PayoutStore

SECRET = webhooks.new_secret()
PAYEE = {"method": "alipay", "name": "王五", "account": "wangwu@example.com"}
WAIT_S = 30.0
SECRETS = {"TOKENMALL_PAYOUT_SECRET": SECRET, "TOKENMALL_EXCHANGE_SECRET": SECRET}


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout_s:g} s for {what}"
        time.sleep(0.05)


@dataclass
class Payouts:
    served: Served
    service: PayoutService
    process: Any
    port: int
    options: tuple[str, ...]

    def withdraw(self, withdrawal: str, amount: str = "1.00") -> None:
        body = {"id": withdrawal, "amount": amount, "payee": PAYEE}
        self.served.ok("alice", "/v1/consumers/alice/withdrawals", body)

    def statuses(self) -> dict[str, str]:
        return {w: v["status"] for w, v in self.served.state()["withdrawals"].items()}

    def wait_statuses(self, expected: dict[str, str]) -> None:
        wait_for(lambda: self.statuses() == expected, f"withdrawals {expected}")

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.served.client.close()

    def start(self) -> None:
        env = SECRETS
        self.process, client = start_server(
            self.served.directory, *self.options, env=env, port=self.port
        )
        self.served.client = client


@contextmanager
def serving(
    tmp_path: Path, db_url: str, callback: bool, *extra: str, **service: Any
) -> Iterator[Payouts]:
    """A server whose payouts all go to a local payout service (and, with `callback`, the
    service calls back), alice with cash, withdrawals approved on request."""
    tokens = new_ledger_tokens(db_url)
    port = free_port()
    callback_url = f"http://127.0.0.1:{port}/v1/payouts/webhook" if callback else None
    with PayoutService(SECRET, callback_url, **service) as payout_service:
        options = (
            "--db",
            db_url,
            *NO_RATE_LIMITS,
            "--payout-webhook",
            payout_service.payouts_url,
            *extra,
        )
        env = SECRETS
        process, client = start_server(tmp_path, *options, env=env, port=port)
        served = Served(client, str(client.base_url), tokens, tmp_path, db_url)
        payouts = Payouts(served, payout_service, process, port, options)
        try:
            params = {"withdraw_min": "0.01", "withdraw_review_above": "500.00"}
            served.ok("admin", "/v1/commands", {"op": "set_params", "params": params})
            served.ok("admin", "/v1/consumers", {"user": "alice"})
            served.ok("admin", "/v1/orders", {"id": "o1", "user": "alice", "amount": "100.00"})
            served.ok("alice", "/v1/consumers/alice/sell", {"points": "all"})
            yield payouts
            assert payout_service.errors == []
        finally:
            payouts.served.client.close()
            payouts.process.terminate()
            payouts.process.wait(10)


def assert_each_paid_once(payouts: Payouts, withdrawals: list[str]) -> None:
    """Each was paid once at the service, every request for it had the same id and bytes,
    and the ledger holds the service's reference."""
    state = payouts.served.state()
    for withdrawal in withdrawals:
        assert payouts.service.transfers_count(withdrawal) == 1, withdrawal
        sent = [d for d in payouts.service.deliveries if d.withdrawal == withdrawal]
        assert {d.webhook_id for d in sent} == {f"payout_{withdrawal}"}
        assert len({d.body for d in sent}) == 1
        reference = payouts.service.paid[withdrawal].reference
        assert state["withdrawals"][withdrawal]["reference"] == reference
    audit = tokenmall(
        "audit", "verify", "--db", payouts.served.db_url, cwd=payouts.served.directory
    )
    assert audit.returncode == 0, audit.stdout


def test_each_answer_of_the_service_pays_once(db_url: str, tmp_path: Path) -> None:
    with serving(tmp_path, db_url, True, "--payout-timeout", "1", hang_s=2.0) as payouts:
        service = payouts.service
        service.script("w1", "paid")
        service.script("w2", "failed")
        service.script("w3", "timeout", "paid")  # paid, but the answer came too late
        service.script("w4", "processing")  # then a signed callback
        service.script("w5", "error", "paid")
        service.script("w6", "drop", "paid")
        cash_before = fen(payouts.served.state()["users"]["alice"]["cash"])
        for number in range(1, 7):
            payouts.withdraw(f"w{number}")
        expected = {f"w{n}": "paid" for n in range(1, 7)} | {"w2": "failed"}
        payouts.wait_statuses(expected)
        assert_each_paid_once(payouts, ["w1", "w3", "w4", "w5", "w6"])
        alice = payouts.served.state()["users"]["alice"]
        assert fen(alice["cash"]) == cash_before - 500  # w2's 1.00 came back
        assert fen(alice["withdrawn"]) == 500
        assert [status for _, status, _ in service.callbacks] == [200]  # w4's
        # the retries: w3 and w5 and w6 were asked twice, w1 once
        asked = {w: sum(d.withdrawal == w for d in service.deliveries) for w in expected}
        assert asked["w1"] == 1 and min(asked["w3"], asked["w5"], asked["w6"]) == 2
        # finance's list shows each with its delivery
        headers = {"Authorization": f"Bearer {payouts.served.tokens['finance']}"}
        listed = payouts.served.client.get("/v1/payouts?channel=webhook", headers=headers)
        rows = {row["withdrawal"]: row for row in listed.json()["payouts"]}
        assert {w: (r["state"], r["outcome"]) for w, r in rows.items()} == {
            w: ("done", status) for w, status in expected.items()
        }
        assert rows["w5"]["delivery"]["attempts"] == 2
        assert rows["w5"]["delivery"]["state"] == "delivered"
        # nothing more is sent: every message is delivered
        time.sleep(1.5)
        assert sum(asked.values()) == len(service.deliveries)


def test_callbacks_forged_replayed_late_or_contradicting_change_nothing(
    db_url: str, tmp_path: Path
) -> None:
    with serving(tmp_path, db_url, False) as payouts:
        service, served = payouts.service, payouts.served
        service.script("w1", "processing")
        payouts.withdraw("w1")
        wait_for(lambda: any(d.withdrawal == "w1" for d in service.deliveries), "the request")
        service.callback_url = f"{served.base_url}/v1/payouts/webhook"  # for the hand-sent ones
        # while the service holds it, nobody rejects or fails it by hand
        for path, body in (
            ("/v1/withdrawals/w1/reject", {"reason": "changed my mind"}),
            ("/v1/withdrawals/w1/fail", {"reason": "by hand"}),
        ):
            refused = served.call("finance", path, body)
            assert (refused.status_code, refused.json()["code"]) == (409, "payout_in_progress")
        before = served.state()
        now_s = int(time.time())
        for kwargs, status, code in (
            ({"secret": webhooks.new_secret()}, 401, "bad_signature"),
            # well outside the tolerance: a loaded machine may take seconds to get here
            ({"timestamp_s": now_s - webhooks.TOLERANCE_DEFAULT_S - 60}, 401, "stale_timestamp"),
            ({"timestamp_s": now_s + webhooks.TOLERANCE_DEFAULT_S + 60}, 401, "stale_timestamp"),
            ({"body": b'{"type": "payout.paid"}'}, 422, "invalid_callback"),
            ({"amount_fen": 999}, 409, "amount_differs"),
        ):
            answered, text = service.send_callback("w1", "paid", **kwargs)
            assert (answered, json.loads(text)["code"]) == (status, code), kwargs
        unsigned = httpx.post(f"{served.base_url}/v1/payouts/webhook", content=b"{}")
        assert unsigned.status_code == 401
        assert served.state() == before
        # the real one, then its replay, a contradiction and a late duplicate
        answered, _ = service.send_callback("w1", "paid", webhook_id="msg_real")
        assert answered == 200
        answered, text = service.send_callback("w1", "paid", webhook_id="msg_real")
        assert (answered, json.loads(text)["code"]) == (409, "webhook_replayed")
        answered, text = service.send_callback("w1", "failed")
        assert (answered, json.loads(text)["code"]) == (409, "conflict")
        answered, text = service.send_callback("w1", "paid")
        assert (answered, json.loads(text)["result"]) == (200, "already_applied")
        after = served.state()
        assert after["withdrawals"]["w1"]["status"] == "paid"
        assert fen(after["withdrawn"]) == 100
        # one journal entry took the outcome, under the key payout:w1, by the channel
        exported = tokenmall("journal", "export", "--db", served.db_url, cwd=served.directory)
        entries = [json.loads(line) for line in exported.stdout.splitlines()]
        outcomes = [
            c
            for c in entries
            if c["op"] in ("complete_withdrawal", "fail_withdrawal", "reject_withdrawal")
        ]
        assert [(c["op"], c["actor"]) for c in outcomes] == [
            ("complete_withdrawal", "channel:webhook")
        ]
        # the exchange hook is off by default: collectibles queue nothing
        served.ok("admin", "/v1/collections", {"collection": "c", "edition": 2, "value": "1.00"})
        served.ok("admin", "/v1/orders", {"id": "o2", "user": "alice", "amount": "100.00"})
        served.ok("alice", "/v1/collections/c/claims", {"user": "alice"})
        store = Store(resolve_url(db_url), create=False)
        try:
            assert PayoutStore(store).messages("exchange") == []
        finally:
            store.close()


def test_kill_9_with_payouts_in_flight_pays_nothing_twice(db_url: str, tmp_path: Path) -> None:
    with serving(tmp_path, db_url, False, hang_s=4.0) as payouts:
        service = payouts.service
        service.script("w1", "paid")
        service.script("w2", "timeout", "paid")  # the service pays; the answer never arrives
        service.script("w3", "drop", "paid")  # the connection drops; nothing is paid yet
        for number in (1, 2, 3):
            payouts.withdraw(f"w{number}")
        wait_for(lambda: {d.withdrawal for d in service.deliveries} >= {"w1", "w2", "w3"}, "3")
        wait_for(lambda: payouts.statuses()["w1"] == "paid", "w1 paid")
        assert service.transfers_count("w2") == 1  # paid at the service, still approved here
        payouts.kill()  # between "approved" and "paid", with the outbox half sent
        payouts.start()
        payouts.wait_statuses({"w1": "paid", "w2": "paid", "w3": "paid"})
        assert_each_paid_once(payouts, ["w1", "w2", "w3"])


class _Hook(BaseHTTPRequestHandler):
    """The exchange's end: records each event whose signature verifies."""

    server: "_HookServer"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        try:
            webhooks.verify(SECRET, dict(self.headers.items()), body, int(time.time()))
        except webhooks.WebhookRefused:
            self.send_response(401)
        else:
            with self.server.lock:
                self.server.events.append((self.headers["webhook-id"], json.loads(body)))
            self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


class _HookServer(ThreadingHTTPServer):
    events: list[tuple[str, dict[str, Any]]]
    lock: threading.Lock


def test_the_exchange_hook_gets_every_collectible_event_signed(
    sqlite_url: str, tmp_path: Path
) -> None:
    hook = _HookServer(("127.0.0.1", 0), _Hook)
    hook.events, hook.lock = [], threading.Lock()
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hook.server_address[1]}/events"
    try:
        with serving(tmp_path, sqlite_url, False, "--exchange-hook", url) as payouts:
            served = payouts.served
            params = {"collectible_lock_days": 0}
            served.ok("admin", "/v1/commands", {"op": "set_params", "params": params})
            served.ok("admin", "/v1/consumers", {"user": "bob"})
            body = {"collection": "dragon", "edition": 3, "value": "1.00"}
            served.ok("admin", "/v1/collections", body)
            served.ok("admin", "/v1/orders", {"id": "o2", "user": "alice", "amount": "100.00"})
            served.ok("alice", "/v1/collections/dragon/claims", {"user": "alice"})
            item = next(iter(served.state()["items"]))
            path = f"/v1/items/{item.replace('#', '%23')}"
            served.ok("alice", f"{path}/gift", {"from": "alice", "to": "bob"})
            served.ok("admin", f"{path}/use", {"user": "bob"})
            wait_for(lambda: len(hook.events) == 4, "four events")
    finally:
        hook.shutdown()
    kinds = [(event["type"], event["data"].get("holder")) for _, event in hook.events]
    assert sorted(kinds, key=lambda k: k[0]) == sorted(
        [
            ("collectible.issued", None),
            ("collectible.claimed", "alice"),
            ("collectible.gifted", "bob"),
            ("collectible.used", "bob"),
        ],
        key=lambda k: k[0],
    )
    for message_id, event in hook.events:
        assert message_id == f"evt_{event['data']['seq']}"
    gifted = next(event for _, event in hook.events if event["type"] == "collectible.gifted")
    assert (gifted["data"]["from"], gifted["data"]["item"]) == ("alice", item)


@pytest.mark.parametrize(
    ("variables", "options", "message"),
    [
        ({}, ["--payout-webhook", "http://127.0.0.1:9/p"], "needs its secret"),
        ({"TOKENMALL_PAYOUT_SECRET": "nope"}, ["--payout-webhook", "http://x/p"], "whsec_"),
        ({"TOKENMALL_PAYOUT_SECRET": SECRET}, ["--payout-webhook", "ftp://x/p"], "http"),
        ({}, ["--payout-route", "bank=webhook"], "no payout service"),
        ({}, ["--payout-route", "cash=manual"], "methods bank, wechat, alipay"),
    ],
)
def test_payout_options_refused_in_one_line(
    tmp_path: Path, variables: dict[str, str], options: list[str], message: str
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOKENMALL_")}
    done = subprocess.run(
        [sys.executable, "-m", "tokenmall.cli", "serve", *options],
        env=environment | variables,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
