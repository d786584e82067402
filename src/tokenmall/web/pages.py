"""What every page shares: the session behind the cookie, who may see a page, CSRF checks on
every form, the templates, the language, flash messages and the security headers.

Pages call the same services as the HTTP API (api.app.Api: the writer's client, the store, the
payment codes), never the API over HTTP. A session acts as a Principal whose token id is the
session's public id (ws_…): the journal records every command a page submits as
"<role>:ws_…", and web_sessions says whose session that was (a staff username or an account).
"""

import asyncio
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.enums import MediaType

from tokenmall.api.problems import Problem
from tokenmall.api.resources import ROUTES, Refusal, Route, command_of
from tokenmall.core.units import format_fen
from tokenmall.services import web_sessions
from tokenmall.services.tokens import Principal, Role
from tokenmall.services.web_sessions import WebSession
from tokenmall.web import i18n
from tokenmall.web.i18n import N_
from tokenmall.web.i18n import gettext as _

if TYPE_CHECKING:
    from tokenmall.api.app import Api

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "tm_session"
FLASH_COOKIE = "tm_flash"
LOGIN_CSRF_COOKIE = "tm_login_csrf"
FLASH_CHARS_MAX = 300
FORM_FIELDS_MAX = 600  # a batch approval posts up to 500 ids
FORM_VALUE_CHARS_MAX = 2000
KEY_CHARS_MAX = 64
# No script, style, font or image from anywhere but this server; no inline script; no frames.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # a login link's token must not travel on
    "Cross-Origin-Opener-Policy": "same-origin",
}
STAFF_ROLES = ("admin", "finance", "support")
PAYEE_METHOD_NAMES = {"bank": N_("Bank card"), "wechat": N_("WeChat"), "alipay": N_("Alipay")}
WITHDRAWAL_STATUS_NAMES = {
    "requested": N_("Awaiting review"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "paid": N_("Paid"),
    "failed": N_("Payment failed"),
}
ROLE_NAMES = {
    "admin": N_("admin"),
    "finance": N_("finance"),
    "support": N_("support"),
    "consumer": N_("consumer"),
    "merchant": N_("merchant"),
    "agent": N_("agent"),
}


CALLERS = ("anyone", "admin", "finance", "support", "consumer", "merchant", "agent")


def who(*callers: str) -> dict[str, Any]:
    """A page handler's `opt`: who may call it (CALLERS). The handler still checks (web.staff,
    web.account); tests/test_web_trust.py reads this to prove that nobody else gets in."""
    assert callers and set(callers) <= set(CALLERS), callers
    return {"who": callers}


class PageRefused(Exception):
    """A request a page will not serve: rendered as an error page with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginNeeded(Exception):
    """No live session: go to this login page."""

    def __init__(self, login_path: str) -> None:
        super().__init__(login_path)
        self.login_path = login_path


@dataclass(frozen=True)
class Done:
    """A command the ledger committed (seq), or refused (code and a message to show)."""

    ok: bool
    seq: int | None
    code: str
    message: str


def _money(value: object) -> str:
    """Jinja filter: fen as yuan with two decimals ("12.34"), or a formatted string as is."""
    if isinstance(value, int):
        return format_fen(value)  # type: ignore[arg-type]
    return str(value)


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,  # a misspelt name fails the test that renders the page
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.translate, i18n.translate_plural, newstyle=True
    )
    env.filters["money"] = _money
    env.globals["languages"] = i18n.LANGUAGES
    env.globals["role_names"] = ROLE_NAMES
    return env


def safe_next(path: str | None, default: str) -> str:
    """A path on this site to go back to: never another host (//evil, https://evil)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return default
    return path


class Web:
    """The pages' view of the server: the API's services, the templates and the sessions."""

    def __init__(self, api: "Api") -> None:
        self.api = api
        self.store = api.store
        self.env = environment()

    # --- who is asking -------------------------------------------------------------------
    def session(self, request: Request[Any, Any, Any]) -> WebSession | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        return None if cookie is None else web_sessions.find(self.store, cookie)

    def staff(self, request: Request[Any, Any, Any], *roles: str) -> WebSession:
        """The staff session of this request, if its role is one of `roles` (any staff role
        when none are named); otherwise LoginNeeded or a 403."""
        found = self.session(request)
        if found is None or found.kind != "staff":
            raise LoginNeeded("/console/login?next=" + quote(request.url.path, safe="/"))
        if roles and found.role not in roles:
            raise PageRefused(403, _("Your role may not do this."))
        return found

    def account(self, request: Request[Any, Any, Any], *kinds: str) -> WebSession:
        """The session of a consumer, merchant or agent of one of `kinds`."""
        found = self.session(request)
        if found is None or found.kind != "account":
            raise PageRefused(401, _("Open the mall's link again to log in."))
        if found.role not in kinds:
            raise PageRefused(403, _("This page is not for your account."))
        return found

    @staticmethod
    def principal(session: WebSession) -> Principal:
        """What the services see: staff roles admin and finance act as those API roles;
        support never acts (PageRefused)."""
        if session.role == "support":
            raise PageRefused(403, _("Your role may not do this."))
        return Principal(
            role=Role(session.role),
            account=session.name if session.kind == "account" else None,
            token_id=session.session_id,
            expires_at=None,
        )

    # --- forms ---------------------------------------------------------------------------
    async def form(
        self, request: Request[Any, Any, Any], session: WebSession
    ) -> dict[str, list[str]]:
        """The posted form, once its CSRF token matches the session's (the form's `csrf`
        field, or the X-CSRF-Token header HTMX sends); otherwise a 403."""
        fields = await read_form(request)
        given = request.headers.get("x-csrf-token") or first(fields, "csrf")
        if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
            raise PageRefused(403, _("The form has expired or did not come from this site."))
        return fields

    async def submit(self, session: WebSession, command: dict[str, Any], key: str | None) -> Done:
        """Commit a command as this session (its idempotency key scoped to the session, so a
        double click or a resent form applies once), through the API's own path."""
        if key is not None and not 0 < len(key) <= KEY_CHARS_MAX:
            key = None
        answer = await self.api.submit(self.principal(session), command, key, created=True)
        return done_of(answer)

    # --- answers -------------------------------------------------------------------------
    def render(
        self,
        request: Request[Any, Any, Any],
        template: str,
        status: int = 200,
        session: WebSession | None = None,
        **context: Any,
    ) -> Response[str]:
        # Percent-encoded: a cookie carries only latin-1, and most messages are Chinese.
        flash = unquote(request.cookies.get(FLASH_COOKIE) or "") or None
        html = self.env.get_template(template).render(
            request_path=request.url.path,
            here=here(request),
            language=i18n.language(),
            session=session,
            csrf=session.csrf if session is not None else "",
            form_key=secrets.token_urlsafe(16),
            flash=flash[:FLASH_CHARS_MAX] if flash else None,
            **context,
        )
        response = Response(
            html, status_code=status, media_type=MediaType.HTML, headers=PAGE_HEADERS
        )
        if flash:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    @staticmethod
    def redirect(path: str, flash: str | None = None) -> Response[str]:
        """See `path` next (303: the browser GETs it), with a one-time message on it."""
        response = Response(
            "",
            status_code=303,
            headers={"Location": path, **PAGE_HEADERS},
            media_type=MediaType.HTML,
        )
        if flash:
            response.set_cookie(
                Cookie(
                    key=FLASH_COOKIE,
                    value=quote(flash[:FLASH_CHARS_MAX], safe=""),
                    path="/",
                    httponly=True,
                    samesite="lax",
                    max_age=60,
                )
            )
        return response


def here(request: Request[Any, Any, Any]) -> str:
    """This page's path and query as the browser sent them (still percent-encoded: an item
    id with a # in it must come back as %23), for links back to it."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    path = raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    return path[:FORM_VALUE_CHARS_MAX]


def session_cookie(value: str, secure: bool, max_age: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=max_age,
    )


async def read_form(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    """The form's fields (each a list: a checkbox list repeats a name), bounded in count and
    length; files are refused."""
    data = await request.form()
    fields: dict[str, list[str]] = {}
    for count, (name, value) in enumerate(data.multi_items(), start=1):
        if count > FORM_FIELDS_MAX or not isinstance(value, str):
            raise PageRefused(413, _("The form is too large."))
        if len(value) > FORM_VALUE_CHARS_MAX:
            raise PageRefused(413, _("The form is too large."))
        fields.setdefault(name, []).append(value)
    return fields


def first(fields: Mapping[str, list[str]], name: str, default: str = "") -> str:
    values = fields.get(name)
    return values[0].strip() if values else default


def api_route(path: str, method: str = "POST") -> Route:
    """The API's route of an endpoint: the one definition of its command's shape, schema and
    who may send it, which the pages use as the API does."""
    return next(r for r in ROUTES if r.method == method and r.path == path)


async def submit_as_api(
    web: Web,
    session: WebSession,
    route: Route,
    body: dict[str, Any],
    path_params: dict[str, str],
    key: str | None,
) -> Done:
    """Commit the command the API's `route` makes of a form's `body` and `path_params`,
    checked as the API checks it: its schema (a malformed body is refused as the API refuses
    it), who may send it (PageRefused 403: a page offers only what its session may do) and an
    order's limits; then committed once per form key."""
    command = command_of(route, body, path_params)
    if isinstance(command, Refusal):
        return Done(False, None, command.code, command.detail)
    principal = web.principal(session)
    if route.may(principal, command) is not None:
        raise PageRefused(403, _("Your role may not do this."))
    if command["op"] == "order":
        from tokenmall.api.app import order_problem  # noqa: PLC0415 (api.app imports the pages)

        problem = order_problem(principal, command, web.api.limits, resource=True)
        if problem is not None:
            return done_of(problem)
    return await web.submit(session, command, key or None)


def done_of(answer: Any) -> Done:
    """The API's answer as a page shows it."""
    if isinstance(answer, Problem):
        body = json.loads(answer.body)
        code = str(body.get("code", "error"))
        return Done(False, body.get("seq"), code, describe(code, str(body.get("detail", ""))))
    _status, body_bytes = answer
    body = json.loads(body_bytes)
    return Done(True, body.get("seq"), "ok", _("Done."))


def describe(code: str, detail: str) -> str:
    """A refusal in the reader's language: the rules' code, explained where we know it."""
    known = ERROR_MESSAGES.get(code)
    return f"{_(known)} ({code})" if known else f"{detail} ({code})"


# The refusals people meet on the pages, in words (SPEC §5 codes and the API's).
ERROR_MESSAGES = {
    "insufficient_points": N_("Not enough equity points."),
    "insufficient_stable": N_("Not enough stable points."),
    "insufficient_cash": N_("Not enough cash."),
    "below_minimum": N_("The amount is below the minimum."),
    "over_daily_limit": N_("Over today's limit."),
    "invalid_amount": N_("The amount is not valid."),
    "account_frozen": N_("This account is frozen."),
    "unknown_user": N_("No such consumer."),
    "unknown_account": N_("No such account."),
    "invalid_state": N_("It is not in a state that allows this."),
    "sold_out": N_("Sold out."),
    "not_owner": N_("You do not own this item."),
    "locked": N_("This item is locked for now."),
    "payment_code_refused": N_("The payment code was refused: ask for a new one."),
    "forbidden": N_("Your role may not do this."),
    "rate_limited": N_("Too many requests: wait a moment."),
    "unavailable": N_("The ledger is busy: try again in a moment."),
    "invalid_command": N_("Some of what you entered is not valid."),
    "payout_in_progress": N_("A payout channel holds this withdrawal."),
}


async def in_thread(function: Any, *arguments: Any) -> Any:
    """A blocking read (the store) off the event loop."""
    return await asyncio.to_thread(function, *arguments)


def now_s() -> int:
    return int(time.time())
