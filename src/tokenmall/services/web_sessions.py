"""Server-side sessions of the web pages. The cookie holds 32 random bytes; the database holds
their SHA-256, who the session is (a staff member, or a consumer, merchant or agent who came by
a login link), its CSRF token, its absolute expiry and when it was last seen. A session ends at
its expiry, after being idle too long, or at logout; the cookie alone can do nothing else.

Rows are kept after a session ends (its expiry set to when it ended), as api_tokens keeps
revoked tokens: the journal names a page's commands by the session's public id ("finance:ws_…"),
and this table is where that id says whose session it was, for as long as the journal lasts."""

import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from tokenmall.ledger.ledger import timestamp, utc_now
from tokenmall.ledger.schema import web_sessions
from tokenmall.ledger.store import Store

COOKIE_CHARS_MAX = 100
STAFF_TTL_S = 8 * 3600  # a working day
STAFF_IDLE_S = 30 * 60
ACCOUNT_TTL_S = 24 * 3600
ACCOUNT_IDLE_S = 2 * 3600
SEEN_EVERY_S = 60  # last-seen is written at most once a minute per session


@dataclass(frozen=True)
class WebSession:
    session_id: str  # ws_…, what the journal's actor names
    kind: str  # "staff" or "account"
    name: str  # the username or the account id
    role: str  # admin, finance, support; consumer, merchant, agent
    csrf: str
    expires_s: int
    seen_s: int


def _hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def start(store: Store, kind: str, name: str, role: str, now_s: float | None = None) -> str:
    """A new session; returns the cookie value (shown once)."""
    now = int(time.time() if now_s is None else now_s)
    cookie = secrets.token_urlsafe(32)
    digest = _hash(cookie)
    ttl_s = STAFF_TTL_S if kind == "staff" else ACCOUNT_TTL_S
    with store.writing_now() as connection:
        connection.execute(
            web_sessions.insert().values(
                hash=digest,
                session_id="ws_" + digest[:12],
                kind=kind,
                name=name,
                role=role,
                csrf=secrets.token_urlsafe(24),
                created_at=timestamp(utc_now()),
                expires_s=now + ttl_s,
                seen_s=now,
            )
        )
    return cookie


def find(store: Store, cookie: str, now_s: float | None = None) -> WebSession | None:
    """The live session of this cookie, or None (unknown, expired, idle too long)."""
    if not cookie or len(cookie) > COOKIE_CHARS_MAX:
        return None
    now = int(time.time() if now_s is None else now_s)
    digest = _hash(cookie)
    with store.reading() as connection:
        row = connection.execute(
            sa.select(web_sessions).where(web_sessions.c.hash == digest)
        ).first()
    if row is None:
        return None
    idle_s = STAFF_IDLE_S if row.kind == "staff" else ACCOUNT_IDLE_S
    if now >= row.expires_s:
        return None
    if now - row.seen_s > idle_s:
        end(store, cookie, now)
        return None
    if now - row.seen_s >= SEEN_EVERY_S:
        with store.writing_now() as connection:
            connection.execute(
                web_sessions.update().where(web_sessions.c.hash == digest).values(seen_s=now)
            )
    return WebSession(row.session_id, row.kind, row.name, row.role, row.csrf, row.expires_s, now)


def end(store: Store, cookie: str, now_s: float | None = None) -> None:
    now = int(time.time() if now_s is None else now_s)
    with store.writing_now() as connection:
        connection.execute(
            web_sessions.update()
            .where((web_sessions.c.hash == _hash(cookie)) & (web_sessions.c.expires_s > now))
            .values(expires_s=now)
        )


def end_all_of(store: Store, kind: str, name: str, now_s: float | None = None) -> int:
    """End every live session of a staff member or an account (a new password, disabling)."""
    now = int(time.time() if now_s is None else now_s)
    live = (
        (web_sessions.c.kind == kind)
        & (web_sessions.c.name == name)
        & (web_sessions.c.expires_s > now)
    )
    with store.writing_now() as connection:
        return int(
            connection.execute(web_sessions.update().where(live).values(expires_s=now)).rowcount
        )


def owner_of(store: Store, session_id: str) -> WebSession | None:
    """Whose session a journal actor's ws_… id was (live or ended)."""
    with store.reading() as connection:
        row = connection.execute(
            sa.select(web_sessions).where(web_sessions.c.session_id == session_id)
        ).first()
    if row is None:
        return None
    return WebSession(row.session_id, row.kind, row.name, row.role, "", row.expires_s, row.seen_s)


SESSIONS_LOOKED_UP_MAX = 500  # a page of journal entries names at most this many


def people(store: Store, actors: Iterable[str | None]) -> dict[str, str]:
    """Whose sessions the journal actors `role:ws_…` among `actors` were: {actor: name}."""
    wanted = {}
    for actor in actors:
        if actor and ":ws_" in actor:
            wanted[actor.partition(":")[2]] = actor
            if len(wanted) >= SESSIONS_LOOKED_UP_MAX:
                break
    if not wanted:
        return {}
    with store.reading() as connection:
        rows = connection.execute(
            sa.select(web_sessions.c.session_id, web_sessions.c.name).where(
                web_sessions.c.session_id.in_(sorted(wanted))
            )
        ).all()
    return {wanted[session_id]: name for session_id, name in rows}
