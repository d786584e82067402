"""Withdrawals under races and replays, against a real `tokenmall serve` on SQLite and on
PostgreSQL (issue 12): the bugs of lilishop#145 (eight concurrent ¥100 withdrawals from a ¥100
wallet, all paid), CRMEB's `adopt()` on a double click and likeshop's refusal of a paid
withdrawal cannot happen. One writer applies commands in order, so of racing steps exactly one
applies; these tests hold the server to it, fifty requests at a time.
"""

import json
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_api import start_server, tokenmall
from tests.test_api_trust import NO_RATE_LIMITS, PAYEE
from tokenmall.ledger.ledger import utc_now
from tokenmall.ledger.store import Store, resolve_url
from tokenmall.services.tokens import Role, create_token

RACERS = 50
PENDING = ("requested", "approved")
Request = tuple[str, str, object | None]  # (who, path, body)


@dataclass
class Served:
    client: httpx.Client
    base_url: str
    tokens: dict[str, str]
    directory: Path
    db_url: str

    def call(self, who: str, path: str, body: object | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.post(path, json=body, headers=headers)

    def ok(self, who: str, path: str, body: object | None = None) -> dict[str, Any]:
        response = self.call(who, path, body)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    def state(self) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.tokens['admin']}"}
        result: dict[str, Any] = self.client.get("/v1/state", headers=headers).json()
        return result

    def race(self, requests: Sequence[Request]) -> list[httpx.Response]:
        """Send every (who, path, body) at once: each from its own connection, released
        together by a barrier."""
        barrier = threading.Barrier(len(requests))

        def send(request: Request) -> httpx.Response:
            who, path, body = request
            with httpx.Client(base_url=self.base_url, timeout=30) as client:
                barrier.wait()
                headers = {"Authorization": f"Bearer {self.tokens[who]}"}
                return client.post(path, json=body, headers=headers)

        with ThreadPoolExecutor(len(requests)) as pool:
            return list(pool.map(send, requests))


PARTIES = (
    ("admin", "admin", None),
    ("finance", "finance", None),
    ("integration", "integration", None),
    ("alice", "consumer", "alice"),
)


def new_ledger_tokens(db_url: str) -> dict[str, str]:
    """A migrated ledger and a token for each of PARTIES, by name."""
    store = Store(resolve_url(db_url), create=True)
    try:
        store.migrate()
        return {
            name: create_token(store, Role(role), account, utc_now())[0]
            for name, role, account in PARTIES
        }
    finally:
        store.close()


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[Served]:
    tokens = new_ledger_tokens(db_url)
    process, client = start_server(tmp_path, "--db", db_url, *NO_RATE_LIMITS)
    served = Served(client, str(client.base_url), tokens, tmp_path, db_url)
    try:
        served.ok("admin", "/v1/commands", {"op": "set_params", "params": {"withdraw_min": "0.01"}})
        served.ok("admin", "/v1/consumers", {"user": "alice"})
        yield served
    finally:
        client.close()
        process.terminate()
        process.wait(10)


def give_cash(served: Served, order_id: str) -> int:
    """alice buys and sells everything: her cash grows by the payout; her cash in fen."""
    served.ok("admin", "/v1/orders", {"id": order_id, "user": "alice", "amount": "100.00"})
    served.ok("alice", "/v1/consumers/alice/sell", {"points": "all"})
    return fen(served.state()["users"]["alice"]["cash"])


def fen(text: str) -> int:
    whole, _, cents = text.partition(".")
    return int(whole) * 100 + int(cents)


def money(fen_amount: int) -> str:
    return f"{fen_amount // 100}.{fen_amount % 100:02d}"


def codes(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    return Counter(
        (r.status_code, "ok" if r.status_code < 300 else r.json()["code"]) for r in responses
    )


def assert_books_balance(served: Served) -> None:
    """SPEC v2 §6 from the outside, and the journal's own audit."""
    state = served.state()
    alice = state["users"]["alice"]
    assert fen(alice["cash_out"]) == sum(
        fen(alice[f]) for f in ("cash", "withdrawing", "withdrawn")
    )
    pending = sum(
        fen(w["amount"])
        for w in state["withdrawals"].values()
        if w["status"] in ("requested", "approved")
    )
    assert fen(alice["withdrawing"]) == pending
    assert fen(state["cash_owed"]) == fen(alice["cash"]) + fen(alice["withdrawing"])
    assert fen(state["withdrawn"]) == fen(alice["withdrawn"])
    audit = tokenmall("audit", "verify", "--db", served.db_url, cwd=served.directory)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_fifty_withdrawals_of_the_whole_balance_pay_once(served: Served) -> None:
    cash = give_cash(served, "o1")
    assert cash > 0
    racers = [
        (
            "alice",
            "/v1/consumers/alice/withdrawals",
            {"id": f"w{i}", "amount": money(cash), "payee": PAYEE},
        )
        for i in range(RACERS)
    ]
    answered = codes(served.race(racers))
    assert answered == {(201, "ok"): 1, (409, "insufficient_cash"): RACERS - 1}
    alice = served.state()["users"]["alice"]
    assert (fen(alice["cash"]), fen(alice["withdrawing"])) == (0, cash)
    assert_books_balance(served)


def test_fifty_approvals_and_a_payout_reported_twice_move_the_money_once(served: Served) -> None:
    cash = give_cash(served, "o1")
    served.ok(
        "alice",
        "/v1/consumers/alice/withdrawals",
        {"id": "w1", "amount": money(cash), "payee": PAYEE},
    )
    approvals = codes(served.race([("finance", "/v1/withdrawals/w1/approve", None)] * RACERS))
    assert approvals == {(200, "ok"): 1, (409, "invalid_state"): RACERS - 1}
    # the channel's callback and finance by hand report the same payout at once
    reported = served.race(
        [
            ("integration", "/v1/withdrawals/w1/complete", {"reference": "TX-9"}),
            ("finance", "/v1/withdrawals/w1/complete", {"reference": "TX-9"}),
        ]
    )
    assert codes(reported) == {(200, "ok"): 1, (409, "invalid_state"): 1}
    before = served.state()
    # an outcome for a withdrawal in the wrong state changes nothing (likeshop's refusal of a
    # paid withdrawal returned the money a second time)
    for path, body in (
        ("/v1/withdrawals/w1/fail", {"reason": "bank returned it"}),
        ("/v1/withdrawals/w1/reject", {"reason": "too late"}),
        ("/v1/withdrawals/w1/approve", None),
    ):
        refused = served.call("finance", path, body)
        assert (refused.status_code, refused.json()["code"]) == (409, "invalid_state")
    after = served.state()
    # journaled as rejected (the journal keeps every request), and nothing else changed
    assert len(after.pop("errors")) == len(before.pop("errors")) + 3
    assert after == before
    alice = after["users"]["alice"]
    assert (fen(alice["withdrawn"]), fen(alice["cash"])) == (cash, 0)
    assert after["withdrawals"]["w1"] == {
        "account": "alice",
        "amount": money(cash),
        "status": "paid",
        "reference": "TX-9",
    }
    assert_books_balance(served)


def test_approvals_racing_rejections_return_the_money_at_most_once(served: Served) -> None:
    cash = give_cash(served, "o1")
    for round_number in range(3):
        withdrawal = f"w{round_number}"
        served.ok(
            "alice",
            "/v1/consumers/alice/withdrawals",
            {"id": withdrawal, "amount": "0.01", "payee": PAYEE},
        )
        half = RACERS // 2
        racers: list[Request] = [("finance", f"/v1/withdrawals/{withdrawal}/approve", None)] * half
        racers += [
            ("finance", f"/v1/withdrawals/{withdrawal}/reject", {"reason": "duplicate"})
        ] * half
        answered = codes(served.race(racers))
        # each step applies at most once; a rejection after the approval is allowed (SPEC v2
        # §9), an approval after the rejection is not
        assert answered[(200, "ok")] in (1, 2)
        assert sum(answered.values()) == RACERS
        assert set(answered) <= {(200, "ok"), (409, "invalid_state")}
        status = served.state()["withdrawals"][withdrawal]["status"]
        assert status in ("approved", "rejected")
    alice = served.state()["users"]["alice"]
    rejected = sum(1 for w in served.state()["withdrawals"].values() if w["status"] == "rejected")
    assert fen(alice["cash"]) == cash - 3 + rejected  # a cent back per rejection, once each
    assert_books_balance(served)


def test_a_rejection_keeps_its_reason_in_the_journal(served: Served) -> None:
    give_cash(served, "o1")
    served.ok(
        "alice", "/v1/consumers/alice/withdrawals", {"id": "w1", "amount": "0.01", "payee": PAYEE}
    )
    served.ok("finance", "/v1/withdrawals/w1/reject", {"reason": "账户信息不符 name mismatch"})
    exported = tokenmall("journal", "export", "--db", served.db_url, cwd=served.directory)
    assert exported.returncode == 0, exported.stderr
    last = json.loads(exported.stdout.splitlines()[-1])
    assert last["op"] == "reject_withdrawal"
    assert last["reason"] == "账户信息不符 name mismatch"
    assert last["actor"].startswith("finance:")


def test_the_withdrawal_list_filters_and_pages(served: Served) -> None:
    cash = give_cash(served, "o1")
    assert cash >= 5
    for number in range(5):
        served.ok(
            "alice",
            "/v1/consumers/alice/withdrawals",
            {"id": f"w{number}", "amount": "0.01", "payee": PAYEE},
        )
    served.ok("finance", "/v1/withdrawals/w1/approve")
    served.ok("finance", "/v1/withdrawals/w2/reject", {"reason": "duplicate"})
    served.ok("finance", "/v1/withdrawals/w3/approve")
    served.ok("integration", "/v1/withdrawals/w3/complete", {"reference": "TX-3"})

    def listed(who: str, query: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {served.tokens[who]}"}
        response = served.client.get(f"/v1/withdrawal-list{query}", headers=headers)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    everything = listed("finance", "")["withdrawals"]
    assert [(w["id"], w["status"]) for w in everything] == [
        ("w0", "requested"),
        ("w1", "approved"),
        ("w2", "rejected"),
        ("w3", "paid"),
        ("w4", "requested"),
    ]
    assert everything[3]["reference"] == "TX-3" and everything[3]["amount"] == "0.01"
    assert [w["id"] for w in listed("finance", "?status=requested")["withdrawals"]] == ["w0", "w4"]
    today = everything[0]["requested_at"][:10]
    assert len(listed("finance", f"?day={today}")["withdrawals"]) == 5
    assert listed("finance", "?day=2001-01-01")["withdrawals"] == []
    # pages of two walk every withdrawal once
    walked, after = [], 0
    while True:
        page = listed("admin", f"?limit=2&after={after}")
        walked += page["withdrawals"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert walked == everything
    # alice lists her own; naming someone else's is refused
    assert listed("alice", "")["withdrawals"] == everything
    headers = {"Authorization": f"Bearer {served.tokens['alice']}"}
    other = served.client.get("/v1/withdrawal-list?account=bob", headers=headers)
    assert other.status_code == 403


def test_an_items_provenance_names_every_owner(served: Served) -> None:
    give_cash(served, "o1")
    served.ok("admin", "/v1/consumers", {"user": "bob"})
    served.ok("admin", "/v1/orders", {"id": "o2", "user": "bob", "amount": "100.00"})
    served.ok("admin", "/v1/commands", {"op": "set_params", "params": {"collectible_lock_days": 0}})
    served.ok("admin", "/v1/collections", {"collection": "vip", "edition": 2, "value": "1.00"})
    claimed = served.ok("admin", "/v1/collections/vip/claims", {"user": "bob"})["seq"]
    gifted = served.ok("admin", "/v1/items/vip%231/gift", {"from": "bob", "to": "alice"})["seq"]
    used = served.ok("alice", "/v1/items/vip%231/use", {"user": "alice"})["seq"]
    headers = {"Authorization": f"Bearer {served.tokens['alice']}"}
    found = served.client.get("/v1/item-provenance/vip%231", headers=headers)
    assert found.status_code == 200, found.text
    assert found.json() == {
        "item": "vip#1",
        "owner": "alice",
        "moves": [
            {"seq": claimed, "action": "claim", "account": "bob", "giver": None},
            {"seq": gifted, "action": "gift", "account": "alice", "giver": "bob"},
            {"seq": used, "action": "use", "account": "alice", "giver": None},
        ],
    }
    # the statements show the items too: a gift and a use change no balance, yet are listed
    statement = served.client.get("/v1/accounts/alice/statement", headers=headers).json()
    assert [(m["seq"], m["item"], m["action"]) for m in statement["items"]] == [
        (gifted, "vip#1", "gift"),
        (used, "vip#1", "use"),
    ]
    admin = {"Authorization": f"Bearer {served.tokens['admin']}"}
    bob = served.client.get("/v1/accounts/bob/statement", headers=admin).json()
    assert [(m["action"], m["giver"]) for m in bob["items"]] == [("claim", None), ("gift", "bob")]
    assert used not in [line["seq"] for line in statement["lines"]]
    missing = served.client.get("/v1/item-provenance/vip%232", headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_item")


def test_finance_approves_five_hundred_at_once(served: Served) -> None:
    cash = give_cash(served, "o1")
    assert cash >= 500
    ids = [f"w{number}" for number in range(500)]
    for withdrawal in ids:
        served.ok(
            "alice",
            "/v1/consumers/alice/withdrawals",
            {"id": withdrawal, "amount": "0.01", "payee": PAYEE},
        )
    headers = {"Authorization": f"Bearer {served.tokens['finance']}", "Idempotency-Key": "b1"}
    answer = served.client.post("/v1/withdrawals/approve", json={"ids": ids}, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["approved"], body["refused"]) == (500, 0)
    assert [result["id"] for result in body["results"]] == ids
    statuses = {w["status"] for w in served.state()["withdrawals"].values()}
    assert statuses == {"approved"}
    # the same request again (a double click, a retry): the same results, nothing approved twice
    again = served.client.post("/v1/withdrawals/approve", json={"ids": ids}, headers=headers)
    assert [r["seq"] for r in again.json()["results"]] == [r["seq"] for r in body["results"]]
    # without the key: each is refused as approved already; unknown ids are named
    mixed = served.call("finance", "/v1/withdrawals/approve", {"ids": ["w0", "nope"]})
    assert [(r["id"], r["status"], r["outcome"]) for r in mixed.json()["results"]] == [
        ("w0", 409, "invalid_state"),
        ("nope", 404, "unknown_withdrawal"),
    ]
    too_many = served.call("finance", "/v1/withdrawals/approve", {"ids": [*ids, "w500"]})
    assert (too_many.status_code, too_many.json()["code"]) == (422, "invalid_command")
    twice = served.call("finance", "/v1/withdrawals/approve", {"ids": ["w1", "w1"]})
    assert twice.status_code == 422
    assert_books_balance(served)
