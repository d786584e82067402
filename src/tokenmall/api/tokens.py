"""Bearer tokens: random, shown once, stored as SHA-256 hashes with a role and an account."""

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from tokenmall.ledger.ledger import timestamp, utc_now
from tokenmall.ledger.schema import api_tokens
from tokenmall.ledger.store import Store

TOKEN_PREFIX = "tm_"
TOKEN_CHARS_MAX = 128


class Role(StrEnum):
    ADMIN = "admin"  # everything
    MERCHANT = "merchant"  # its own account
    CONSUMER = "consumer"  # its own account


@dataclass(frozen=True)
class Principal:
    role: Role
    account: str | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, role: Role, account: str | None) -> str:
    """A new token (returned once; only its hash is kept). ValueError if role and account do
    not fit: an admin has no account, merchants and consumers need one."""
    if role is Role.ADMIN and account is not None:
        raise ValueError("an admin token has no --account")
    if role is not Role.ADMIN and not account:
        raise ValueError(f"a {role} token needs --account ID")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.writing() as connection:
        connection.execute(
            api_tokens.insert().values(
                token_hash=token_hash(token),
                role=str(role),
                account=account,
                created_at=timestamp(utc_now()),
            )
        )
    return token


def find_principal(store: Store, token: str) -> Principal | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > TOKEN_CHARS_MAX:
        return None
    with store.engine.connect() as connection:
        row = connection.execute(
            sa.select(api_tokens.c.role, api_tokens.c.account).where(
                api_tokens.c.token_hash == token_hash(token)
            )
        ).first()
    return None if row is None else Principal(Role(row.role), row.account)


def has_tokens(store: Store) -> bool:
    with store.engine.connect() as connection:
        return connection.execute(sa.select(api_tokens.c.token_hash).limit(1)).first() is not None
