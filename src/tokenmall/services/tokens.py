"""Bearer tokens: random, shown once, stored as SHA-256 hashes with a role, an account, an
optional expiry and a revocation time. A token's public id ("tk_" and the first 12 hex digits of
its hash) names it in lists, logs and the journal; the token itself is never stored."""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa

from tokenmall.ledger.ledger import TIMESTAMP_FORMAT, timestamp
from tokenmall.ledger.schema import api_tokens
from tokenmall.ledger.store import Store
from tokenmall.ledger.views import account_kind

TOKEN_PREFIX = "tm_"
TOKEN_CHARS_MAX = 128
TOKEN_ID_PREFIX = "tk_"
TOKEN_ID_HEX_DIGITS = 12  # 48 bits: ids of random tokens do not collide in practice
NOTE_CHARS_MAX = 200
EXPIRES_IN_MAX = timedelta(days=3650)
TOKENS_LISTED_MAX = 10_000


class Role(StrEnum):
    ADMIN = "admin"  # the operator: everything
    INTEGRATION = "integration"  # the mall's back end: says what was paid (cash orders, refunds)
    MERCHANT = "merchant"  # its own merchant account
    CONSUMER = "consumer"  # its own consumer account
    FINANCE = "finance"  # the finance team: reviews withdrawals, reports payouts (提现审核)
    AGENT = "agent"  # its own regional agent account (区域代理)


ACCOUNT_KIND_OF_ROLE = {
    Role.MERCHANT: "merchant",
    Role.CONSUMER: "consumer",
    Role.AGENT: "agent",
}


@dataclass(frozen=True)
class Principal:
    """Who a request comes from."""

    role: Role
    account: str | None
    token_id: str
    expires_at: str | None  # a timestamp() string, or None: never

    @property
    def actor(self) -> str:
        """What the journal records as the submitter of its commands."""
        return f"{self.role}:{self.token_id}"

    @property
    def expires_at_s(self) -> float | None:
        """The expiry as a POSIX time (comparing floats per request is cheaper than strings)."""
        if self.expires_at is None:
            return None
        return datetime.strptime(self.expires_at, TIMESTAMP_FORMAT).replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class TokenInfo:
    """A row of `tokenmall token list`."""

    token_id: str
    role: str
    account: str | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    note: str | None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and timestamp(now) >= self.expires_at:
            return "expired"
        return "active"


class TokenError(ValueError):
    """A token cannot be created or revoked as asked: one line for the user."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id_of(hash_hex: str) -> str:
    return TOKEN_ID_PREFIX + hash_hex[:TOKEN_ID_HEX_DIGITS]


def parse_duration(text: str) -> timedelta:
    """ "30d", "12h", "15m", "90s" as a timedelta (1 s to 3650 days); TokenError otherwise."""
    found = re.fullmatch(r"([0-9]{1,7})([smhd])", text.strip())
    if found is None:
        raise TokenError(f"{text!r} is not a duration like 30d, 12h, 15m or 90s")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[found.group(2)]
    duration = timedelta(**{unit: int(found.group(1))})
    if not timedelta(seconds=1) <= duration <= EXPIRES_IN_MAX:
        raise TokenError(f"{text!r}: a token lasts from 1s to {EXPIRES_IN_MAX.days}d")
    return duration


def create_token(
    store: Store,
    role: Role,
    account: str | None,
    now: datetime,
    expires_in: timedelta | None = None,
    note: str | None = None,
) -> tuple[str, str]:
    """A new token and its id (the token is returned once; only its hash is kept). TokenError if
    role and account do not fit: admin and integration tokens have no account; merchant and
    consumer tokens need one, and an existing account must be of the role's kind."""
    _check_account(store, role, account)
    if note is not None and not (len(note) <= NOTE_CHARS_MAX and note.isprintable()):
        raise TokenError(f"--note must be at most {NOTE_CHARS_MAX} printable characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    hash_hex = token_hash(token)
    with store.writing() as connection:
        connection.execute(
            api_tokens.insert().values(
                token_hash=hash_hex,
                token_id=token_id_of(hash_hex),
                role=str(role),
                account=account,
                created_at=timestamp(now),
                expires_at=None if expires_in is None else timestamp(now + expires_in),
                note=note,
            )
        )
    return token, token_id_of(hash_hex)


def _check_account(store: Store, role: Role, account: str | None) -> None:
    kind = ACCOUNT_KIND_OF_ROLE.get(role)
    if kind is None:
        if account is not None:
            raise TokenError(f"an {role} token has no --account")
        return
    if not account:
        raise TokenError(f"a {role} token needs --account ID")
    existing = account_kind(store, account)
    if existing is not None and existing != kind:
        raise TokenError(f"{account!r} is a {existing} account; a {role} token cannot act for it")


def revoke_token(store: Store, token_id: str, now: datetime) -> TokenInfo:
    """Revoke a token by its id; TokenError if there is none or it is revoked already."""
    with store.writing() as connection:
        updated = connection.execute(
            api_tokens.update()
            .where(api_tokens.c.token_id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=timestamp(now))
        )
        if updated.rowcount == 0:
            known = connection.execute(
                sa.select(api_tokens.c.token_id).where(api_tokens.c.token_id == token_id)
            ).first()
            raise TokenError(
                f"token {token_id} is revoked already" if known else f"no token {token_id!r}"
            )
    (info,) = [row for row in list_tokens(store) if row.token_id == token_id]
    return info


def list_tokens(store: Store) -> list[TokenInfo]:
    """Every token (at most TOKENS_LISTED_MAX), oldest first; never the tokens themselves."""
    columns = [api_tokens.c[name] for name in TokenInfo.__dataclass_fields__]
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.select(*columns)
            .order_by(api_tokens.c.created_at, api_tokens.c.token_id)
            .limit(TOKENS_LISTED_MAX)
        ).all()
    return [TokenInfo(*row) for row in rows]


def find_principal(store: Store, token: str) -> Principal | None:
    """The principal of a token that exists and is not revoked (expiry is the caller's to check
    at each request, against its own clock)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > TOKEN_CHARS_MAX:
        return None
    columns = api_tokens.c.role, api_tokens.c.account, api_tokens.c.token_id
    with store.engine.connect() as connection:
        row = connection.execute(
            sa.select(*columns, api_tokens.c.expires_at).where(
                api_tokens.c.token_hash == token_hash(token), api_tokens.c.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        return None
    return Principal(Role(row.role), row.account, row.token_id, row.expires_at)


def has_tokens(store: Store) -> bool:
    with store.engine.connect() as connection:
        return connection.execute(sa.select(api_tokens.c.token_hash).limit(1)).first() is not None
