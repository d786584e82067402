"""One-time signed login links for consumers, merchants and agents (issue 14). They come from
the mall, not from a password: the mall's back end (the integration role) asks for a link for
an account and sends the person to it, as Shopify Multipass does.

A link's token is `base64url(payload) "." base64url(HMAC-SHA256(key, payload))`, the payload
`{"a": account, "k": kind, "exp": POSIX seconds, "n": nonce}`. It is valid for 5 minutes and
once: redeeming notes its nonce, and a nonce noted before is refused. The key is made on first
use and kept in the ledger's database (`server_secrets`), so that the server and `tokenmall
login-link` sign alike; whoever can read that database can read every balance anyway.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from tokenmall.ledger.ledger import timestamp, utc_now
from tokenmall.ledger.schema import login_links_used, server_secrets
from tokenmall.ledger.store import Store, insert_once
from tokenmall.ledger.views import account_kind

TTL_S = 300  # the issue's 5 minutes
KEY_NAME = "login_links"
TOKEN_CHARS_MAX = 600  # an account id of 64 characters fits many times over
PATH = "/login/"  # where the pages (issue 14) take the link


class LinkRefused(Exception):
    """A link that cannot log anyone in: malformed, forged, expired, or used."""


@dataclass(frozen=True)
class Login:
    account: str
    kind: str  # consumer, merchant or agent


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key(store: Store) -> bytes:
    """The ledger's key for login links, made the first time it is needed (by whichever
    process comes first; the other reads the same one)."""
    with store.writing_now() as connection:
        insert_once(
            connection,
            server_secrets,
            {
                "name": KEY_NAME,
                "value": secrets.token_hex(32),
                "created_at": timestamp(utc_now()),
            },
        )
        value = connection.execute(
            sa.select(server_secrets.c.value).where(server_secrets.c.name == KEY_NAME)
        ).scalar_one()
    return bytes.fromhex(value)


def issue_link(store: Store, account: str, now_s: float | None = None) -> tuple[str, int]:
    """A login token for the account and when it expires (POSIX seconds). LinkRefused if no
    such consumer, merchant or agent."""
    kind = account_kind(store, account)
    if kind is None:
        raise LinkRefused(f"no consumer, merchant or agent {account!r}")
    expires_s = int(time.time() if now_s is None else now_s) + TTL_S
    payload = json.dumps(
        {"a": account, "k": kind, "exp": expires_s, "n": secrets.token_hex(16)},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    signature = hmac.new(signing_key(store), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}", expires_s


def redeem_link(store: Store, token: str, now_s: float | None = None) -> Login:
    """Who the link logs in, once. LinkRefused (and nothing noted) for a malformed or forged
    token; for an expired one; for one used before."""
    now = int(time.time() if now_s is None else now_s)
    encoded, _, signature = token.partition(".")
    if len(token) > TOKEN_CHARS_MAX or not encoded or not signature:
        raise LinkRefused("not a login link")
    try:
        payload, given = _unb64(encoded), _unb64(signature)
    except ValueError:
        raise LinkRefused("not a login link") from None
    expected = hmac.new(signing_key(store), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        raise LinkRefused("the link's signature does not match")
    fields = json.loads(payload)  # ours: we signed it
    if now >= fields["exp"]:
        raise LinkRefused("the link has expired: ask the mall for a new one")
    with store.writing_now() as connection:
        connection.execute(login_links_used.delete().where(login_links_used.c.expires_s < now))
        fresh = insert_once(
            connection,
            login_links_used,
            {"nonce": fields["n"], "used_at": timestamp(utc_now()), "expires_s": fields["exp"]},
        )
    if not fresh:
        raise LinkRefused("the link was used already: ask the mall for a new one")
    return Login(fields["a"], fields["k"])
