"""Staff accounts of the operator console (运营后台): a username, a role and an argon2id
password hash. Roles: admin (everything), finance (提现审核, payouts, reports) and support
(reads only). Five wrong passwords in a row lock the account for 15 minutes (a right password
does not open it early); `tokenmall staff unlock` opens it at once.

A wrong username costs the same argon2 work as a wrong password, so that timing does not say
which usernames exist."""

import re
import time
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tokenmall.ledger.ledger import timestamp, utc_now
from tokenmall.ledger.schema import staff
from tokenmall.ledger.store import Store, insert_once

USERNAME = re.compile(r"[a-z][a-z0-9_.-]{1,31}")
PASSWORD_CHARS_MIN = 10
PASSWORD_CHARS_MAX = 200  # argon2 takes any length; a limit keeps a request's work bounded
FAILURES_MAX = 5
LOCKED_S = 15 * 60
_HASHER = PasswordHasher()  # argon2id with the library's RFC 9106 "low memory" defaults
_DUMMY_HASH = _HASHER.hash("not anyone's password")


class StaffRole(StrEnum):
    ADMIN = "admin"
    FINANCE = "finance"
    SUPPORT = "support"


class StaffError(Exception):
    """Bad input to a staff command: one line for the CLI."""


class LoginRefused(Exception):
    """A login that fails; the message is safe to show (it never says which part was wrong)."""


@dataclass(frozen=True)
class StaffMember:
    username: str
    role: StaffRole
    created_at: str
    disabled_at: str | None
    locked_until_s: int


def check_password(password: str) -> None:
    if not PASSWORD_CHARS_MIN <= len(password) <= PASSWORD_CHARS_MAX:
        raise StaffError(f"a password has {PASSWORD_CHARS_MIN}-{PASSWORD_CHARS_MAX} characters")


def create_staff(store: Store, username: str, role: StaffRole, password: str) -> None:
    if not USERNAME.fullmatch(username):
        raise StaffError(
            "a username is 2-32 characters: a lower-case letter, then letters, digits, _ . -"
        )
    check_password(password)
    with store.writing_now() as connection:
        fresh = insert_once(
            connection,
            staff,
            {
                "username": username,
                "role": str(role),
                "password_hash": _HASHER.hash(password),
                "created_at": timestamp(utc_now()),
            },
        )
    if not fresh:
        raise StaffError(f"staff {username!r} exists already")


def set_password(store: Store, username: str, password: str) -> None:
    check_password(password)
    _update(store, username, password_hash=_HASHER.hash(password), failures=0, locked_until_s=0)


def unlock(store: Store, username: str) -> None:
    _update(store, username, failures=0, locked_until_s=0)


def disable(store: Store, username: str) -> None:
    _update(store, username, disabled_at=timestamp(utc_now()))


def _update(store: Store, username: str, **values: object) -> None:
    with store.writing_now() as connection:
        changed = connection.execute(
            staff.update().where(staff.c.username == username).values(**values)
        ).rowcount
    if not changed:
        raise StaffError(f"no staff {username!r}")


def list_staff(store: Store) -> list[StaffMember]:
    with store.reading() as connection:
        rows = connection.execute(sa.select(staff).order_by(staff.c.username)).all()
    return [
        StaffMember(
            row.username, StaffRole(row.role), row.created_at, row.disabled_at, row.locked_until_s
        )
        for row in rows
    ]


def log_in(store: Store, username: str, password: str, now_s: float | None = None) -> StaffMember:
    """The staff member whose password this is, or LoginRefused. Counts failures and locks."""
    now = int(time.time() if now_s is None else now_s)
    refused = LoginRefused("wrong username or password")
    if len(password) > PASSWORD_CHARS_MAX or len(username) > 32:
        raise refused
    with store.reading() as connection:
        row = connection.execute(sa.select(staff).where(staff.c.username == username)).first()
    if row is None:
        _verify(_DUMMY_HASH, password)
        raise refused
    if row.locked_until_s > now:
        raise LoginRefused("too many wrong passwords: this account is locked for 15 minutes")
    if not _verify(row.password_hash, password):
        failures = row.failures + 1
        locked = now + LOCKED_S if failures >= FAILURES_MAX else 0
        with store.writing_now() as connection:
            connection.execute(
                staff.update()
                .where(staff.c.username == username)
                .values(failures=staff.c.failures + 1, locked_until_s=locked)
            )
        raise refused
    if row.disabled_at is not None:
        raise refused
    if row.failures:
        with store.writing_now() as connection:
            connection.execute(
                staff.update().where(staff.c.username == username).values(failures=0)
            )
    return StaffMember(row.username, StaffRole(row.role), row.created_at, None, 0)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
