"""Who may put money in, take it out and act (issue 10), against a real `tokenmall serve`:

- every endpoint × every kind of caller, with the status each must get, the list of endpoints
  taken from the served /openapi.json so that a new endpoint fails this test until it has rows;
- the two findings of the adversarial probe, as regression tests: a consumer minting a cash
  order, and a merchant spending a consumer's SP;
- payment codes (付款码), token expiry and revocation, per-token idempotency keys, and who
  submitted each journal entry.
"""

import json
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_api import assert_problem, start_server, tokenmall
from tokenmall.ledger.ledger import utc_now
from tokenmall.ledger.store import Store, resolve_url
from tokenmall.services.tokens import Role, create_token

# Where a withdrawal's money goes (收款账户): required in every request.
PAYEE = {"method": "wechat", "name": "张三", "account": "o6_bmjrPTlm6"}
NO_RATE_LIMITS = tuple(
    option
    for role in ("admin", "integration", "finance", "merchant", "consumer", "agent")
    for option in ("--rate-limit", f"{role}=0")
)


def new_token(
    directory: Path, role: str, account: str | None = None, *extra: str
) -> tuple[str, str]:
    """A token and its id (tk_…), from the CLI, or (without options, to save a process start
    per token) from the service the CLI calls."""
    if not extra:
        store = Store(resolve_url(str(directory / "tokenmall.db")), create=True)
        try:
            store.migrate()
            return create_token(store, Role(role), account, utc_now())
        finally:
            store.close()
    account_args = ("--account", account) if account is not None else ()
    created = tokenmall("token", "create", "--role", role, *account_args, *extra, cwd=directory)
    assert created.returncode == 0, created.stderr
    token_id = created.stderr.split()[-1]
    assert token_id.startswith("tk_"), created.stderr
    return created.stdout.strip(), token_id


@dataclass
class Party:
    """A caller: its token (None: no Authorization header), and its id for the journal."""

    token: str | None
    token_id: str = ""
    role: str = ""


@dataclass
class Ledger:
    """A served ledger and the tokens that act on it."""

    directory: Path
    client: httpx.Client
    parties: dict[str, Party] = field(default_factory=dict)
    seqs: dict[int, str] = field(default_factory=dict)  # entry -> the actor that asked for it
    fresh: Iterator[int] = field(default_factory=lambda: count(1))

    def send(
        self, who: str, method: str, path: str, body: object | None = None, **headers: str
    ) -> httpx.Response:
        party = self.parties[who]
        if party.token is not None:
            headers["Authorization"] = f"Bearer {party.token}"
        content = b"" if body is None else json.dumps(body).encode()
        response = self.client.request(method, path, content=content, headers=headers)
        self._note_entry(party, response)
        return response

    def _note_entry(self, party: Party, response: httpx.Response) -> None:
        """Remember which caller each new journal entry came from."""
        if "json" not in response.headers.get("content-type", ""):
            return
        body = response.json()
        # one command's answer, or a batch's (a result per command)
        answers = body.get("results", [body]) if isinstance(body, dict) else []
        for answer in answers:
            if answer.get("seq") is not None and not answer.get("replayed"):
                assert answer["seq"] not in self.seqs, answer
                self.seqs[answer["seq"]] = f"{party.role}:{party.token_id}"

    def admin(self, method: str, path: str, body: object | None = None) -> dict[str, Any]:
        response = self.send("admin", method, path, body)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self.fresh)}"

    def state(self) -> str:
        return self.send("admin", "GET", "/v1/state").text

    def export(self) -> list[dict[str, Any]]:
        exported = tokenmall("journal", "export", cwd=self.directory)
        assert exported.returncode == 0, exported.stderr
        return [json.loads(line) for line in exported.stdout.splitlines()]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """Admin, integration, consumers c1 and c2, merchants m1 and m2, each with EP and SP, and
    tokens for c1 and m1, plus a revoked and an expired token."""
    parties = {"none": Party(None), "bad": Party("tm_forged")}
    for name, role, account in (
        ("admin", "admin", None),
        ("integration", "integration", None),
        ("c1", "consumer", "c1"),
        ("c2", "consumer", "c2"),
        ("m1", "merchant", "m1"),
        ("m2", "merchant", "m2"),
        ("finance", "finance", None),
        ("a1", "agent", "a1"),
        ("revoked", "consumer", "c1"),
    ):
        token, token_id = new_token(tmp_path, role, account)
        parties[name] = Party(token, token_id, role)
    revoked = tokenmall("token", "revoke", parties["revoked"].token_id, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    token, token_id = new_token(tmp_path, "admin", None, "--expires-in", "1s")
    parties["expired"] = Party(token, token_id, "admin")
    expires_at = time.monotonic() + 1.0
    process, client = start_server(tmp_path, *NO_RATE_LIMITS)
    served = Ledger(tmp_path, client, parties)
    try:
        served.admin("PUT", "/v1/params", {"params": SETUP_PARAMS})
        for agent, region in (("a1", "44"), ("a2", "11")):
            served.admin("POST", "/v1/agents", {"agent": agent, "region": region})
        for user, region in (("c1", "440300"), ("c2", "110101")):
            served.admin("POST", "/v1/consumers", {"user": user})
            order = {"id": served.new_id("setup"), "user": user, "amount": "100.00"}
            served.admin("POST", "/v1/orders", {**order, "region": region})  # commissions
            served.admin("POST", f"/v1/consumers/{user}/convert", {"points": "5"})
            served.admin("POST", f"/v1/consumers/{user}/sell", {"points": "1"})  # cash
        for merchant, user in (("m1", "c1"), ("m2", "c2")):
            served.admin("POST", "/v1/merchants", {"merchant": merchant})
            paid = {"id": served.new_id("setup"), "user": user, "amount": "5.00"}
            served.admin("POST", "/v1/orders", {**paid, "pay": "stable", "merchant": merchant})
            served.admin("POST", f"/v1/merchants/{merchant}/redeem", {"amount": "2.00"})
            served.admin("POST", f"/v1/merchants/{merchant}/sell", {"points": "0.5"})
        collection = {"collection": "col", "edition": 100_000, "value": "0.01"}
        served.admin("POST", "/v1/collections", collection)
        time.sleep(max(0.0, expires_at - time.monotonic()))
        yield served
    finally:
        client.close()
        process.kill()
        process.wait(10)


# -- the matrix -----------------------------------------------------------------------------

UNAUTHENTICATED = ("none", "bad", "revoked", "expired")
# A caller acting on its own account, or on another's: (token, subject consumer, subject
# merchant). The admin and the back end act on c1 and m1.
CALLERS: dict[str, tuple[str, str, str]] = {
    "none": ("none", "c1", "m1"),
    "bad": ("bad", "c1", "m1"),
    "revoked": ("revoked", "c1", "m1"),
    "expired": ("expired", "c1", "m1"),
    "admin": ("admin", "c1", "m1"),
    "integration": ("integration", "c1", "m1"),
    "consumer own": ("c1", "c1", "m1"),
    "consumer other's": ("c1", "c2", "m1"),
    "merchant own": ("m1", "c1", "m1"),
    "merchant other's": ("m1", "c1", "m2"),
    "finance": ("finance", "c1", "m1"),
    "agent own": ("a1", "c1", "m1"),
    "agent other's": ("a1", "c1", "m1"),
}
# The agent a caller acts on (the others act on a1).
AGENT_SUBJECT = {caller: "a2" if caller == "agent other's" else "a1" for caller in CALLERS}
SETUP_PARAMS = {
    "exit_enabled": False,
    "withdraw_min": "0.01",
    "agent_rates": ["0.05"],
    "collectible_lock_days": 0,
}
Build = Callable[[Ledger, str, str, str], tuple[str, object | None]]  # -> (path, body)


@dataclass(frozen=True)
class Case:
    method: str
    template: str  # as /openapi.json names the path
    build: Build  # (ledger, caller, subject consumer, subject merchant) -> (path, body)
    expected: dict[str, int]  # caller -> status


def expect(
    admin: int,
    integration: int,
    consumer_own: int,
    consumer_other: int,
    merchant_own: int,
    merchant_other: int,
    unauthenticated: int = 401,
    *,
    finance: int = 403,
    agent_own: int = 403,
    agent_other: int = 403,
) -> dict[str, int]:
    """The status each caller gets; finance and agents are refused unless said otherwise."""
    statuses = dict.fromkeys(UNAUTHENTICATED, unauthenticated)
    statuses |= {"admin": admin, "integration": integration, "consumer own": consumer_own}
    statuses |= {"consumer other's": consumer_other, "merchant own": merchant_own}
    statuses |= {"finance": finance, "agent own": agent_own, "agent other's": agent_other}
    return statuses | {"merchant other's": merchant_other}


def every(status: int, unauthenticated: int = 401) -> dict[str, int]:
    return expect(
        *(status,) * 6, unauthenticated, finance=status, agent_own=status, agent_other=status
    )


def anyone(status: int = 200) -> dict[str, int]:
    return every(status, status)


def any_token(status: int = 200) -> dict[str, int]:
    return every(status)


ADMIN_ONLY_201 = expect(201, 403, 403, 403, 403, 403)
ADMIN_ONLY_200 = expect(200, 403, 403, 403, 403, 403)


def fixed(path: str, body: object | None = None) -> Build:
    return lambda _ledger, _caller, _user, _merchant: (path, body)


def own_registration(kind: str) -> Build:
    """A consumer or merchant registering: its own account (taken already, so 409 when allowed)
    or the other's; the admin, the back end and the other kind register a new one."""

    def build(ledger: Ledger, caller: str, user: str, merchant: str) -> tuple[str, object]:
        if caller.startswith(kind):
            account = user if kind == "consumer" else merchant
        else:
            account = ledger.new_id(kind[0] + "new")
        return f"/v1/{kind}s", {"user" if kind == "consumer" else "merchant": account}

    return build


def cash_order(ledger: Ledger, _caller: str, user: str, _merchant: str) -> tuple[str, object]:
    order = {"id": ledger.new_id("o"), "user": user, "amount": "1.00"}
    return "/v1/orders", {**order, "payment_id": ledger.new_id("wx")}


def stable_order(ledger: Ledger, _caller: str, user: str, merchant: str) -> tuple[str, object]:
    order = {"id": ledger.new_id("s"), "user": user, "amount": "0.01", "pay": "stable"}
    return "/v1/orders", {**order, "merchant": merchant}


def refund(ledger: Ledger, _caller: str, user: str, _merchant: str) -> tuple[str, object | None]:
    order = ledger.new_id("r")
    ledger.admin("POST", "/v1/orders", {"id": order, "user": user, "amount": "1.00"})
    return f"/v1/orders/{order}/refund", None


def on_consumer(action: str, body: object | None) -> Build:
    return lambda _ledger, _caller, user, _merchant: (f"/v1/consumers/{user}/{action}", body)


def on_merchant(action: str, body: object) -> Build:
    return lambda _ledger, _caller, _user, merchant: (f"/v1/merchants/{merchant}/{action}", body)


def account_read(suffix: str) -> Build:
    def build(_ledger: Ledger, caller: str, user: str, merchant: str) -> tuple[str, None]:
        account = merchant if caller.startswith("merchant") else user
        account = AGENT_SUBJECT[caller] if caller.startswith("agent") else account
        return f"/v1/accounts/{account}{suffix}", None

    return build


# -- SPEC v2 --


def own_withdrawal(kind: str) -> Build:
    def build(ledger: Ledger, caller: str, user: str, merchant: str) -> tuple[str, object]:
        account = {"consumer": user, "merchant": merchant, "agent": AGENT_SUBJECT[caller]}[kind]
        body = {"id": ledger.new_id("w"), "amount": "0.01", "payee": PAYEE}
        return f"/v1/{kind}s/{account}/withdrawals", body

    return build


def withdrawal_step(action: str, body: object | None = None, approved: bool = False) -> Build:
    """A step on a fresh withdrawal of c1's (requested, or approved first)."""

    def build(ledger: Ledger, *_: str) -> tuple[str, object | None]:
        withdrawal = ledger.new_id("w")
        ledger.admin(
            "POST",
            "/v1/consumers/c1/withdrawals",
            {"id": withdrawal, "amount": "0.01", "payee": PAYEE},
        )
        if approved:
            ledger.admin("POST", f"/v1/withdrawals/{withdrawal}/approve")
        return f"/v1/withdrawals/{withdrawal}/{action}", body

    return build


def batch_approval(ledger: Ledger, *_: str) -> tuple[str, object]:
    withdrawal = ledger.new_id("w")
    ledger.admin(
        "POST", "/v1/consumers/c1/withdrawals", {"id": withdrawal, "amount": "0.01", "payee": PAYEE}
    )
    return "/v1/withdrawals/approve", {"ids": [withdrawal]}


def risk(action: str) -> Build:
    """Freeze a fresh consumer, or unfreeze one frozen for the purpose."""

    def build(ledger: Ledger, *_: str) -> tuple[str, object]:
        account = ledger.new_id("risky")
        ledger.admin("POST", "/v1/consumers", {"user": account})
        if action == "unfreeze":
            ledger.admin("POST", "/v1/risk/freeze", {"account": account})
        return f"/v1/risk/{action}", {"account": account}

    return build


def new_agent(ledger: Ledger, *_: str) -> tuple[str, object]:
    number = next(ledger.fresh)
    return "/v1/agents", {"agent": f"ag{number}", "region": f"{number % 90 + 10:02d}{number:04d}"}


def end_agent(ledger: Ledger, *rest: str) -> tuple[str, None]:
    _, body = new_agent(ledger, *rest)
    ledger.admin("POST", "/v1/agents", body)
    assert isinstance(body, dict)
    return f"/v1/agents/{body['agent']}/end", None


def new_collection(ledger: Ledger, *_: str) -> tuple[str, object]:
    body = {"collection": ledger.new_id("col"), "edition": 1, "value": "1.00"}
    return "/v1/collections", body


def claim(_ledger: Ledger, _caller: str, user: str, _merchant: str) -> tuple[str, object]:
    return "/v1/collections/col/claims", {"user": user}


def item_step(action: str) -> Build:
    """A gift or use of an item the subject consumer just claimed ("#" escaped in the path)."""

    def build(ledger: Ledger, _caller: str, user: str, _merchant: str) -> tuple[str, object]:
        ledger.admin("POST", "/v1/collections/col/claims", {"user": user})
        item = newest_item(ledger)
        other = "c2" if user == "c1" else "c1"
        body = {"from": user, "to": other} if action == "gift" else {"user": user}
        return f"/v1/items/{item.replace('#', '%23')}/{action}", body

    return build


def own_withdrawal_list(_ledger: Ledger, caller: str, user: str, merchant: str) -> tuple[str, None]:
    """The caller's subject's withdrawals (none named for the roles that read them all)."""
    account = {"consumer": user, "merchant": merchant, "agent": AGENT_SUBJECT[caller]}.get(
        caller.split(maxsplit=1)[0]
    )
    query = "" if account is None else f"?account={account}"
    return f"/v1/withdrawal-list{query}", None


def provenance(ledger: Ledger, _caller: str, user: str, _merchant: str) -> tuple[str, None]:
    ledger.admin("POST", "/v1/collections/col/claims", {"user": user})
    return f"/v1/item-provenance/{newest_item(ledger).replace('#', '%23')}", None


def newest_item(ledger: Ledger) -> str:
    """The item of "col" claimed last (the highest serial)."""
    items: dict[str, Any] = json.loads(ledger.state())["items"]
    return max((item for item in items if item.startswith("col#")), key=lambda i: int(i[4:]))


# -- issue 13: payouts --


def approved_withdrawal(ledger: Ledger) -> None:
    """A fresh approved withdrawal of c1's, for the bank (no payout service is configured)."""
    withdrawal = ledger.new_id("w")
    body = {"id": withdrawal, "amount": "0.01", "payee": PAYEE}
    ledger.admin("POST", "/v1/consumers/c1/withdrawals", body)
    ledger.admin("POST", f"/v1/withdrawals/{withdrawal}/approve")


def new_batch(ledger: Ledger, *_: str) -> tuple[str, None]:
    approved_withdrawal(ledger)
    return "/v1/payouts/batches", None


def batch_file(ledger: Ledger, *_: str) -> tuple[str, None]:
    approved_withdrawal(ledger)
    batch = ledger.admin("POST", "/v1/payouts/batches")["batch"]
    return f"/v1/payouts/batches/{batch}/file?format=csv", None


def raw_command(ledger: Ledger, *_: str) -> tuple[str, object]:
    return "/v1/commands", {"op": "register", "user": ledger.new_id("raw")}


# its own token, and those that read any account: the admin, the back end and finance
ACCOUNT_READERS = expect(200, 200, 200, 403, 200, 403, finance=200, agent_own=200)
FINANCE_200 = expect(200, 403, 403, 403, 403, 403, finance=200)
FINANCE_201 = expect(201, 403, 403, 403, 403, 403, finance=201)
FINANCE_422 = expect(422, 403, 403, 403, 403, 403, finance=422)
OWN_OR_OPERATOR = expect(200, 403, 200, 403, 403, 403)  # the consumer itself, or the admin
OWN_OR_OPERATOR_201 = expect(201, 403, 201, 403, 403, 403)
MERCHANT_OR_OPERATOR = expect(200, 403, 403, 403, 200, 403)
CASES = (
    Case("GET", "/healthz", fixed("/healthz"), anyone()),
    Case("GET", "/openapi.json", fixed("/openapi.json"), anyone()),
    Case("GET", "/v1/market", fixed("/v1/market"), any_token()),
    Case("GET", "/v1/market/history", fixed("/v1/market/history"), any_token()),
    Case("GET", "/v1/holders/top", fixed("/v1/holders/top"), any_token()),
    Case("GET", "/v1/levels", fixed("/v1/levels"), any_token()),
    Case("GET", "/v1/state", fixed("/v1/state"), ADMIN_ONLY_200),
    Case("GET", "/v1/accounts/{account_id}", account_read(""), ACCOUNT_READERS),
    Case(
        "GET",
        "/v1/accounts/{account_id}/statement",
        account_read("/statement"),
        ACCOUNT_READERS,
    ),
    Case("POST", "/v1/commands", raw_command, ADMIN_ONLY_200),
    Case(
        "POST", "/v1/consumers", own_registration("consumer"), expect(201, 201, 409, 403, 403, 403)
    ),
    Case(
        "POST", "/v1/merchants", own_registration("merchant"), expect(201, 201, 403, 403, 409, 403)
    ),
    # a cash order says money was paid: the back end (or the admin) only
    Case("POST", "/v1/orders", cash_order, expect(201, 201, 403, 403, 403, 403)),
    # an SP order spends a consumer's SP: the consumer's own token; a merchant needs a payment
    # code (tested below), the back end may not
    Case("POST", "/v1/orders", stable_order, expect(201, 403, 201, 403, 403, 403)),
    Case("POST", "/v1/orders/{order}/refund", refund, expect(200, 200, 403, 403, 403, 403)),
    Case(
        "POST",
        "/v1/consumers/{user}/payment-codes",
        on_consumer("payment-codes", {}),
        expect(403, 403, 201, 403, 403, 403),  # consent only the payer can give
    ),
    Case(
        "POST",
        "/v1/consumers/{user}/sell",
        on_consumer("sell", {"points": "0.01"}),
        OWN_OR_OPERATOR,
    ),
    Case(
        "POST",
        "/v1/consumers/{user}/redeem",
        on_consumer("redeem", {"points": "0.01"}),
        OWN_OR_OPERATOR,
    ),
    Case(
        "POST",
        "/v1/consumers/{user}/convert",
        on_consumer("convert", {"points": "0.01"}),
        OWN_OR_OPERATOR,
    ),
    Case(
        "POST",
        "/v1/consumers/{user}/grants",
        on_consumer("grants", {"amount": "1.00", "days": 1}),
        ADMIN_ONLY_201,
    ),
    Case(
        "POST",
        "/v1/merchants/{merchant}/sell",
        on_merchant("sell", {"points": "0.01"}),
        MERCHANT_OR_OPERATOR,
    ),
    Case(
        "POST",
        "/v1/merchants/{merchant}/redeem",
        on_merchant("redeem", {"amount": "0.01"}),
        MERCHANT_OR_OPERATOR,
    ),
    Case("PUT", "/v1/params", fixed("/v1/params", {"params": {}}), ADMIN_ONLY_200),
    Case("POST", "/v1/settlements", fixed("/v1/settlements"), ADMIN_ONLY_200),
    # SPEC v2: a withdrawal is the account's own request; review is finance's; the payout's
    # outcome is the back end's (or finance's by hand); risk, agents and collections the admin's
    Case(
        "POST",
        "/v1/consumers/{user}/withdrawals",
        own_withdrawal("consumer"),
        OWN_OR_OPERATOR_201,
    ),
    Case(
        "POST",
        "/v1/merchants/{merchant}/withdrawals",
        own_withdrawal("merchant"),
        expect(201, 403, 403, 403, 201, 403),
    ),
    Case(
        "POST",
        "/v1/agents/{agent}/withdrawals",
        own_withdrawal("agent"),
        expect(201, 403, 403, 403, 403, 403, agent_own=201),
    ),
    Case(
        "POST",
        "/v1/withdrawals/{id}/approve",
        withdrawal_step("approve"),
        expect(200, 403, 403, 403, 403, 403, finance=200),
    ),
    Case(
        "POST",
        "/v1/withdrawals/approve",
        batch_approval,
        expect(200, 403, 403, 403, 403, 403, finance=200),
    ),
    Case(
        "POST",
        "/v1/withdrawals/{id}/reject",
        withdrawal_step("reject", {"reason": "account under review"}),
        expect(200, 403, 403, 403, 403, 403, finance=200),
    ),
    Case(
        "POST",
        "/v1/withdrawals/{id}/complete",
        withdrawal_step("complete", {"reference": "TX-1"}, approved=True),
        expect(200, 200, 403, 403, 403, 403, finance=200),
    ),
    Case(
        "POST",
        "/v1/withdrawals/{id}/fail",
        withdrawal_step("fail", None, approved=True),
        expect(200, 200, 403, 403, 403, 403, finance=200),
    ),
    Case("POST", "/v1/risk/freeze", risk("freeze"), ADMIN_ONLY_200),
    Case("POST", "/v1/risk/unfreeze", risk("unfreeze"), ADMIN_ONLY_200),
    Case("POST", "/v1/agents", new_agent, ADMIN_ONLY_201),
    Case("POST", "/v1/agents/{agent}/end", end_agent, ADMIN_ONLY_200),
    Case("POST", "/v1/collections", new_collection, ADMIN_ONLY_201),
    Case(
        "POST", "/v1/collections/{collection}/claims", claim, expect(201, 403, 201, 403, 403, 403)
    ),
    Case("POST", "/v1/items/{item}/gift", item_step("gift"), OWN_OR_OPERATOR),
    Case("POST", "/v1/items/{item}/use", item_step("use"), OWN_OR_OPERATOR),
    # an account's own withdrawals, or all of them for those who read any account
    Case("GET", "/v1/withdrawal-list", own_withdrawal_list, ACCOUNT_READERS),
    # an item's owners: those who read any account, or a consumer that held it
    Case(
        "GET",
        "/v1/item-provenance/{item}",
        provenance,
        expect(200, 200, 200, 403, 403, 403, finance=200),
    ),
    # issue 13: money out is finance's (and the admin's); a payout service's callback carries
    # no token (its signature is checked; without a service configured there is none)
    Case("POST", "/v1/payouts/batches", new_batch, FINANCE_201),
    Case("GET", "/v1/payouts/batches", fixed("/v1/payouts/batches"), FINANCE_200),
    Case("GET", "/v1/payouts/batches/{batch}/file", batch_file, FINANCE_200),
    # an empty file: past the door, refused as a file (422)
    Case("POST", "/v1/payouts/results", fixed("/v1/payouts/results?filename=r.csv"), FINANCE_422),
    Case(
        "POST", "/v1/payouts/reconcile", fixed("/v1/payouts/reconcile?filename=s.csv"), FINANCE_422
    ),
    Case("GET", "/v1/payouts", fixed("/v1/payouts"), FINANCE_200),
    Case("POST", "/v1/payouts/webhook", fixed("/v1/payouts/webhook"), anyone(404)),
    # issue 14: a login link says who a person is: the mall's back end (or the admin) only
    Case(
        "POST",
        "/v1/login-links",
        fixed("/v1/login-links", {"account": "c1"}),
        expect(201, 201, 403, 403, 403, 403),
    ),
)


def served_endpoints(ledger: Ledger) -> set[tuple[str, str]]:
    """Every (method, path) the server has, from its own description."""
    described = ledger.send("admin", "GET", "/openapi.json").json()
    endpoints = {("GET", "/openapi.json")}
    for path, operations in described["paths"].items():
        endpoints |= {(method.upper(), path) for method in operations if method != "parameters"}
    return endpoints


def test_every_endpoint_refuses_every_caller_it_should(ledger: Ledger) -> None:
    assert served_endpoints(ledger) == {(case.method, case.template) for case in CASES}, (
        "an endpoint without rows in CASES (or a row for one that is gone)"
    )
    for case in CASES:
        assert set(case.expected) == set(CALLERS)
        for caller, (party, user, merchant) in CALLERS.items():
            path, body = case.build(ledger, caller, user, merchant)
            response = ledger.send(party, case.method, path, body)
            where = f"{case.method} {path} by {caller}: {response.text[:300]}"
            assert response.status_code == case.expected[caller], where
            if response.status_code == 401:
                assert response.headers["www-authenticate"].startswith("Bearer"), where
    # nothing refused reached the journal, and every entry names the token that asked for it
    head = ledger.client.get("/healthz").json()["head"]
    assert set(ledger.seqs) == set(range(1, head + 1))
    actors = {seq: line["actor"] for seq, line in enumerate(ledger.export(), start=1)}
    assert actors == ledger.seqs


# -- the probe's findings ---------------------------------------------------------------------


def test_no_token_but_the_back_ends_can_say_money_was_paid(ledger: Ledger) -> None:
    """Finding 1: a consumer token created an unpaid cash order of 100,000.00, sold everything
    and took 26,885.91 of the pool; an order of 99999999999999999999.99 used up the cap."""
    before = ledger.state()
    head = ledger.client.get("/healthz").json()["head"]
    huge = {"id": "mint", "user": "c1", "amount": "100000.00"}
    for who in ("c1", "m1"):
        assert_problem(ledger.send(who, "POST", "/v1/orders", huge), 403, "forbidden")
        paid = {**huge, "payment_id": "wx-fake"}
        assert_problem(ledger.send(who, "POST", "/v1/orders", paid), 403, "forbidden")
        raw = {"op": "order", **huge}
        assert_problem(ledger.send(who, "POST", "/v1/commands", raw), 403, "forbidden")
    # the back end, the only one that may: within the largest order, naming its payment
    over = {"id": "big", "user": "c1", "payment_id": "wx-big"}
    for amount in ("99999999999999999999.99", "100000.01"):
        response = ledger.send("integration", "POST", "/v1/orders", {**over, "amount": amount})
        assert_problem(response, 422, "order_too_large")
    raw_over = {"op": "order", **over, "amount": "100000.01"}
    assert_problem(ledger.send("admin", "POST", "/v1/commands", raw_over), 422, "order_too_large")
    unnamed = {"id": "big", "user": "c1", "amount": "10.00"}
    assert_problem(
        ledger.send("integration", "POST", "/v1/orders", unnamed), 422, "invalid_command"
    )
    assert ledger.state() == before
    assert ledger.client.get("/healthz").json()["head"] == head
    # the largest order is allowed, once per payment
    paid = {"id": "big", "user": "c1", "amount": "100000.00", "payment_id": "wx-big"}
    assert ledger.send("integration", "POST", "/v1/orders", paid).status_code == 201
    again = {**paid, "id": "big-again"}
    taken = assert_problem(
        ledger.send("integration", "POST", "/v1/orders", again), 409, "duplicate_payment"
    )
    assert taken["seq"] is None  # not journaled
    journaled = [line for line in ledger.export() if line.get("id") == "big"]
    assert journaled == [
        {**paid, "op": "order", "actor": f"integration:{ledger.parties['integration'].token_id}"}
    ]


def test_sp_moves_only_with_the_consumers_consent(ledger: Ledger) -> None:
    """Finding 2: a merchant token took a consumer's whole SP with an SP order naming them."""
    before = ledger.state()
    for user in ("c1", "c2"):
        taking = {"id": "take", "user": user, "amount": "1.00", "pay": "stable", "merchant": "m1"}
        assert_problem(ledger.send("m1", "POST", "/v1/orders", taking), 403, "forbidden")
        assert_problem(
            ledger.send("m1", "POST", "/v1/commands", {"op": "order", **taking}), 403, "forbidden"
        )
    assert_problem(
        ledger.send(
            "integration",
            "POST",
            "/v1/orders",
            {"id": "t", "user": "c1", "amount": "1.00", "pay": "stable", "merchant": "m1"},
        ),
        403,
        "forbidden",
    )
    assert ledger.state() == before

    def issue(who: str, user: str, **body: Any) -> httpx.Response:
        return ledger.send(who, "POST", f"/v1/consumers/{user}/payment-codes", body)

    def charge(
        who: str, code: str, amount: str, merchant: str = "m1", **extra: Any
    ) -> httpx.Response:
        body = {"id": ledger.new_id("pay"), "amount": amount, "pay": "stable", "merchant": merchant}
        return ledger.send(
            who,
            "POST",
            "/v1/orders",
            {**body, "payment_code": code, **extra.pop("body", {})},
            **extra,
        )

    # only the consumer's own token issues its codes
    for who in ("admin", "integration", "m1", "c2"):
        assert_problem(issue(who, "c1"), 403, "forbidden")
    issued = issue("c1", "c1", max_amount="2.00")
    assert issued.status_code == 201, issued.text
    code = issued.json()["code"]
    assert len(code) == 18 and code.isdigit() and issued.json()["max_amount"] == "2.00"
    assert issued.json()["expires_in"] == 60
    # over its limit: refused, and the code still works
    assert_problem(charge("m1", code, "2.01"), 403, "payment_code_refused")
    # paid: the merchant need not know who the consumer is; a retry is a replay
    first = charge("m1", code, "1.50", body={"id": "scan-1"}, **{"Idempotency-Key": "scan-1"})
    assert first.status_code == 201, first.text
    again = charge("m1", code, "1.50", body={"id": "scan-1"}, **{"Idempotency-Key": "scan-1"})
    assert again.status_code == 200 and again.json()["replayed"] is True
    # used: not again, not by another merchant, not by the same one under another key
    assert_problem(charge("m1", code, "0.50"), 403, "payment_code_refused")
    assert_problem(charge("m2", code, "0.50", merchant="m2"), 403, "payment_code_refused")
    # a code pays only its consumer, only the merchant presenting it, and only while valid
    other = issue("c1", "c1").json()["code"]
    assert_problem(charge("m1", other, "0.10", body={"user": "c2"}), 403, "payment_code_refused")
    assert_problem(charge("m1", "0" * 18, "0.10"), 403, "payment_code_refused")
    assert_problem(charge("m1", other, "0.10", merchant="m2"), 403, "forbidden")
    short = issue("c1", "c1", expires_in=5)
    assert short.status_code == 201
    time.sleep(5.2)
    assert_problem(charge("m1", short.json()["code"], "0.10"), 403, "payment_code_refused")
    # the journal keeps the consent: the merchant's token asked, the consumer's code allowed it
    (paid,) = [line for line in ledger.export() if line.get("id") == "scan-1"]
    assert paid["actor"] == f"merchant:{ledger.parties['m1'].token_id}"
    assert paid["user"] == "c1" and "payment_code" not in paid
    assert paid["consent"]["issued_by"] == ledger.parties["c1"].token_id
    assert paid["consent"]["code"].startswith("pc_") and code not in json.dumps(paid)
    state = json.loads(ledger.state())
    assert state["merchants"]["m1"]["sp"] != json.loads(before)["merchants"]["m1"]["sp"]
    # 主扫: the consumer pays from its own token
    scan = {"id": "main-scan", "user": "c1", "amount": "0.20", "pay": "stable", "merchant": "m2"}
    assert ledger.send("c1", "POST", "/v1/orders", scan).status_code == 201


# -- tokens, keys and the journal ------------------------------------------------------------


def test_idempotency_keys_belong_to_their_token(ledger: Ledger) -> None:
    """Another caller's key neither conflicts nor reveals that it exists."""
    key = {"Idempotency-Key": "checkout-1"}
    mine = {"id": "k1", "user": "c1", "amount": "1.00", "payment_id": "wx-k1"}
    first = ledger.send("integration", "POST", "/v1/orders", mine, **key)
    assert first.status_code == 201
    assert ledger.send("integration", "POST", "/v1/orders", mine, **key).json()["replayed"] is True
    # the admin uses the same key for another command: applied, not a conflict
    theirs = {"id": "k2", "user": "c2", "amount": "1.00"}
    second = ledger.send("admin", "POST", "/v1/orders", theirs, **key)
    assert second.status_code == 201 and second.json()["seq"] == first.json()["seq"] + 1
    # nor does the same command under another token's key replay the first
    same = ledger.send("admin", "POST", "/v1/orders", {**mine, "payment_id": "wx-k1b"}, **key)
    assert_problem(same, 409, "idempotency_conflict")  # the admin's own earlier use of the key
    sell = ledger.send("c1", "POST", "/v1/consumers/c1/sell", {"points": "0.01"}, **key)
    assert sell.status_code == 200 and sell.json()["replayed"] is False


def test_tokens_expire_and_revoke_without_a_restart(ledger: Ledger) -> None:
    directory = ledger.directory
    token, token_id = new_token(directory, "consumer", "c2", "--note", "c2's phone")
    ledger.parties["late"] = Party(token, token_id, "consumer")
    assert ledger.send("late", "GET", "/v1/accounts/c2").status_code == 200
    revoked = tokenmall("token", "revoke", token_id, cwd=directory)
    assert revoked.returncode == 0 and token_id in revoked.stdout
    started = time.monotonic()
    while ledger.send("late", "GET", "/v1/accounts/c2").status_code == 200:
        assert time.monotonic() - started < 1.0, "a revoked token still worked after 1 s"
        time.sleep(0.05)
    assert_problem(ledger.send("late", "GET", "/v1/accounts/c2"), 401, "unauthorized")
    listed = tokenmall("token", "list", cwd=directory).stdout.splitlines()
    assert listed[0].split() == ["ID", "ROLE", "ACCOUNT", "STATUS", "CREATED", "EXPIRES", "NOTE"]
    rows = {line.split()[0]: line.split() for line in listed[1:]}
    assert rows[token_id][1:4] == ["consumer", "c2", "revoked"] and listed[-1].endswith(
        "c2's phone"
    )
    assert rows[ledger.parties["expired"].token_id][3] == "expired"
    assert rows[ledger.parties["admin"].token_id][3] == "active"
    admin_token = ledger.parties["admin"].token
    assert admin_token is not None and all(admin_token not in line for line in listed)
    for args in (
        ("token", "revoke", token_id),  # twice
        ("token", "revoke", "tk_000000000000"),
        ("token", "create", "--role", "merchant", "--account", "c1"),  # c1 is a consumer
        ("token", "create", "--role", "consumer", "--account", "m1"),
        ("token", "create", "--role", "integration", "--account", "c1"),
        ("token", "create", "--role", "admin", "--expires-in", "forever"),
        ("token", "create", "--role", "admin", "--expires-in", "99999d"),
    ):
        refused = tokenmall(*args, cwd=directory)
        assert refused.returncode == 2, args
        assert len(refused.stderr.splitlines()) == 1 and "Traceback" not in refused.stderr, args


def test_a_token_for_an_id_registered_as_the_other_kind_reads_nothing(ledger: Ledger) -> None:
    """A consumer token made before anyone registered its id; the id became a merchant."""
    token, token_id = new_token(ledger.directory, "consumer", "later")
    ledger.parties["later"] = Party(token, token_id, "consumer")
    ledger.admin("POST", "/v1/merchants", {"merchant": "later"})
    for path in ("/v1/accounts/later", "/v1/accounts/later/statement"):
        assert_problem(ledger.send("later", "GET", path), 403, "forbidden")


def test_the_journal_says_who_asked_and_the_audit_checks_it(tmp_path: Path) -> None:
    ingested = tokenmall(
        "ingest", str(Path(__file__).parent / "golden" / "small.jsonl"), cwd=tmp_path
    )
    assert ingested.returncode == 0, ingested.stderr
    database = tmp_path / "tokenmall.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600  # a new ledger file is the owner's
    audit = tokenmall("audit", "verify", cwd=tmp_path)
    assert audit.returncode == 0 and audit.stdout.rstrip().endswith("submitted by: cli 11"), (
        audit.stdout
    )
    actors = {
        line["actor"]
        for line in map(
            json.loads, tokenmall("journal", "export", cwd=tmp_path).stdout.splitlines()
        )
    }
    assert len(actors) == 1 and actors.pop().startswith("cli:")
    # the actor is inside the hash chain: changing who asked is tampering
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE journal SET actor = 'admin:tk_000000000000' WHERE seq = 3")
    tampered = tokenmall("audit", "verify", cwd=tmp_path)
    assert tampered.returncode == 1 and "entry 3 does not match the hash chain" in tampered.stdout


def test_a_token_store_made_first_is_private_too(tmp_path: Path) -> None:
    new_token(tmp_path, "admin")
    assert stat.S_IMODE((tmp_path / "tokenmall.db").stat().st_mode) == 0o600
    served, client = start_server(tmp_path)
    try:
        wal = tmp_path / "tokenmall.db-wal"
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    finally:
        client.close()
        served.kill()
        served.wait(10)
