"""One-time signed login links (issue 14): valid 5 minutes, once, for an existing consumer,
merchant or agent; a forged, altered, expired or used link logs nobody in."""

import base64
import json
from pathlib import Path

import pytest

from tests.test_api import start_server
from tests.test_cli import tokenmall
from tokenmall.ledger.ledger import Ledger, Settings, Submission
from tokenmall.ledger.store import Store, resolve_url
from tokenmall.services.login_links import TTL_S, LinkRefused, Login, issue_link, redeem_link

NOW_S = 1_800_000_000


def accounts(url: str) -> None:
    commands = [
        {"op": "register", "user": "alice"},
        {"op": "register_merchant", "merchant": "m1"},
        {"op": "register_agent", "agent": "gd", "region": "44"},
    ]
    with Ledger.open(url, Settings()) as ledger:
        assert all(r.ok for r in ledger.execute([Submission.of(c) for c in commands]))


def test_a_link_logs_its_account_in_once_within_five_minutes(db_url: str) -> None:
    accounts(db_url)
    store, other = (
        Store(resolve_url(db_url), create=False),
        Store(resolve_url(db_url), create=False),
    )
    try:
        for account, kind in (("alice", "consumer"), ("m1", "merchant"), ("gd", "agent")):
            token, expires_s = issue_link(store, account, NOW_S)
            assert expires_s == NOW_S + TTL_S
            # another process of the same ledger (the server, after the command line) agrees
            assert redeem_link(other, token, NOW_S + TTL_S - 1) == Login(account, kind)
            with pytest.raises(LinkRefused, match="used already"):
                redeem_link(store, token, NOW_S + 1)
        token, _ = issue_link(store, "alice", NOW_S)
        with pytest.raises(LinkRefused, match="expired"):
            redeem_link(store, token, NOW_S + TTL_S)
        # an altered payload (another account) with the old signature
        encoded, _, signature = token.partition(".")
        payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        forged = base64.urlsafe_b64encode(json.dumps({**payload, "a": "m1"}).encode()).decode()
        for bad in (forged.rstrip("=") + "." + signature, "x", "a.b", "." * 700, token + "x"):
            with pytest.raises(LinkRefused):
                redeem_link(store, bad, NOW_S)
        assert redeem_link(store, token, NOW_S) == Login("alice", "consumer")  # still unused
        with pytest.raises(LinkRefused, match="no consumer, merchant or agent"):
            issue_link(store, "nobody", NOW_S)
    finally:
        store.close()
        other.close()


def test_the_command_line_prints_a_link(tmp_path: Path) -> None:
    accounts(f"sqlite:///{tmp_path / 'tokenmall.db'}")
    printed = tokenmall("login-link", "alice", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    path = printed.stdout.decode().strip()
    assert path.startswith("/login/")
    store = Store(resolve_url(str(tmp_path / "tokenmall.db")), create=False)
    try:
        assert redeem_link(store, path.removeprefix("/login/")) == Login("alice", "consumer")
    finally:
        store.close()
    refused = tokenmall("login-link", "nobody", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.decode().count("\n") == 1


def test_the_back_end_asks_for_a_link_over_http(tmp_path: Path) -> None:
    accounts(f"sqlite:///{tmp_path / 'tokenmall.db'}")
    backend = tokenmall("token", "create", "--role", "integration", cwd=tmp_path).stdout.strip()
    process, client = start_server(tmp_path)
    try:
        headers = {"Authorization": f"Bearer {backend.decode()}"}
        made = client.post("/v1/login-links", json={"account": "m1"}, headers=headers)
        assert made.status_code == 201, made.text
        answer = made.json()
        assert answer["path"] == "/login/" + answer["token"]
        for body, status in (({"account": "nobody"}, 404), ({"user": "m1"}, 422), ([], 422)):
            assert client.post("/v1/login-links", json=body, headers=headers).status_code == status
    finally:
        client.close()
        process.terminate()
        process.wait(10)
    store = Store(resolve_url(str(tmp_path / "tokenmall.db")), create=False)
    try:
        assert redeem_link(store, answer["token"]) == Login("m1", "merchant")
    finally:
        store.close()
