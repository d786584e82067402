"""The web front end's routes, served by `tokenmall serve` beside the API: /console/ (operators,
运营后台), /h5/ (consumers, 会员中心), /shop/ (merchants, 商家收银), the login pages, the
language switch and /static/ (the package's own CSS, scripts and vendored libraries).

Every page answers HTML: an error is a page with a message, never problem+json or a traceback.
"""

import logging
import secrets
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from tokenmall.services import staff as staff_service
from tokenmall.services import web_sessions
from tokenmall.services.login_links import LinkRefused, redeem_link
from tokenmall.web import console, h5, i18n, shop
from tokenmall.web.i18n import N_
from tokenmall.web.i18n import gettext as _
from tokenmall.web.pages import (
    HERE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    LoginNeeded,
    PageRefused,
    Web,
    first,
    in_thread,
    read_form,
    safe_next,
    session_cookie,
    who,
)

PAGE_PREFIXES = ("/console", "/h5", "/shop", "/login", "/lang", "/logout", "/logged-out")
LOG = logging.getLogger("tokenmall.web")
HOME_OF_KIND = {"consumer": "/h5/", "merchant": "/shop/", "agent": "/h5/"}
# What services/staff.py and services/login_links.py say when a login fails, for the catalog
# (shown through _()).
LOGIN_REFUSALS = (
    N_("wrong username or password"),
    N_("too many wrong passwords: this account is locked for 15 minutes"),
    N_("not a login link"),
    N_("the link's signature does not match"),
    N_("the link has expired: ask the mall for a new one"),
    N_("the link was used already: ask the mall for a new one"),
)


def web_routers(web: Web) -> list[ControllerRouterHandler]:
    """Everything the pages serve, for create_app."""

    async def choose_language(request: Request[Any, Any, Any]) -> None:
        i18n.set_language(request.cookies.get(i18n.LANGUAGE_COOKIE))

    def refused(request: Request[Any, Any, Any], error: PageRefused) -> Response[str]:
        session = None
        try:
            session = web.session(request)
        except Exception:
            session = None
        return web.render(
            request, "error.html", status=error.status, session=session, message=error.message
        )

    def login_needed(_request: Request[Any, Any, Any], error: LoginNeeded) -> Response[str]:
        return web.redirect(error.login_path)

    def http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[str]:
        status = error.status_code
        message = {
            404: _("There is no such page."),
            405: _("This page does not take that request."),
        }.get(status, _("The request is not valid."))
        if isinstance(error, ValidationException):
            message = _("Some of what you entered is not valid.")
        return refused(request, PageRefused(status, message))

    def internal_error(request: Request[Any, Any, Any], error: Exception) -> Response[str]:
        LOG.error("page %s failed", request.url.path, exc_info=error)
        return refused(request, PageRefused(500, _("Something went wrong on our side.")))

    page_errors: dict[Any, Any] = {
        PageRefused: refused,
        LoginNeeded: login_needed,
        HTTPException: http_error,
        Exception: internal_error,
    }

    def router(path: str, handlers: list[HTTPRouteHandler]) -> Router:
        return Router(
            path=path,
            route_handlers=handlers,
            before_request=choose_language,
            exception_handlers=page_errors,
        )

    return [
        router("/", [*entry_handlers(web)]),
        router("/console", console.handlers(web)),
        router("/h5", h5.handlers(web)),
        router("/shop", shop.handlers(web)),
        create_static_files_router(
            path="/static",
            directories=[HERE / "static"],
            cache_control=None,
            include_in_schema=False,
            send_as_attachment=False,
        ),
    ]


def page_not_found(
    web: Web, request: Request[Any, Any, Any], error: HTTPException
) -> Response[str]:
    """No route at all under a page prefix (the routers' own handlers never see it)."""
    i18n.set_language(request.cookies.get(i18n.LANGUAGE_COOKIE))
    message = (
        _("There is no such page.") if error.status_code == 404 else _("The request is not valid.")
    )
    return web.render(request, "error.html", status=error.status_code, message=message)


def entry_handlers(web: Web) -> list[HTTPRouteHandler]:
    """Logging in and out, and the language switch."""

    @get("/login/{token:str}", include_in_schema=False, opt=who("anyone"))
    async def login_by_link(request: Request[Any, Any, Any], token: str) -> Response[str]:
        """A consumer, merchant or agent arrives from the mall with a one-time link."""
        try:
            login = await in_thread(redeem_link, web.store, token)
        except LinkRefused as error:
            why = _(str(error))
            raise PageRefused(403, _("This login link does not work: %(why)s", why=why)) from None
        cookie = await in_thread(
            web_sessions.start, web.store, "account", login.account, login.kind
        )
        response = web.redirect(HOME_OF_KIND[login.kind])
        response.set_cookie(
            session_cookie(
                cookie, secure=request.url.scheme == "https", max_age=web_sessions.ACCOUNT_TTL_S
            )
        )
        return response

    @get("/console/login", include_in_schema=False, opt=who("anyone"))
    async def login_page(request: Request[Any, Any, Any], next: str | None = None) -> Response[str]:
        # Login CSRF: the form carries the same random value as a cookie set here.
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or _random()
        response = web.render(
            request, "login.html", next=safe_next(next, "/console/"), login_csrf=token, error=None
        )
        response.set_cookie(
            Cookie(
                key=LOGIN_CSRF_COOKIE,
                value=token,
                path="/console/login",
                httponly=True,
                samesite="strict",
                max_age=3600,
            )
        )
        return response

    @post("/console/login", include_in_schema=False, status_code=303, opt=who("anyone"))
    async def log_in(request: Request[Any, Any, Any]) -> Response[str]:
        fields = await read_form(request)
        expected = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not expected or first(fields, "csrf") != expected:
            raise PageRefused(403, _("The form has expired or did not come from this site."))
        next_path = safe_next(first(fields, "next"), "/console/")
        try:
            member = await in_thread(
                staff_service.log_in,
                web.store,
                first(fields, "username"),
                fields.get("password", [""])[0],
            )
        except staff_service.LoginRefused as error:
            return web.render(
                request,
                "login.html",
                status=401,
                next=next_path,
                login_csrf=expected,
                error=_(str(error)),
            )
        cookie = await in_thread(
            web_sessions.start, web.store, "staff", member.username, str(member.role)
        )
        response = web.redirect(next_path)
        response.set_cookie(
            session_cookie(
                cookie, secure=request.url.scheme == "https", max_age=web_sessions.STAFF_TTL_S
            )
        )
        return response

    @post("/logout", include_in_schema=False, status_code=303, opt=who("anyone"))
    async def log_out(request: Request[Any, Any, Any]) -> Response[str]:
        session = web.session(request)
        if session is not None:
            await web.form(request, session)  # a cross-site form may not log anyone out
            cookie = request.cookies.get(SESSION_COOKIE, "")
            await in_thread(web_sessions.end, web.store, cookie)
        response = web.redirect(
            "/console/login" if session is None or session.kind == "staff" else "/logged-out"
        )
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @get("/logged-out", include_in_schema=False, opt=who("anyone"))
    async def logged_out(request: Request[Any, Any, Any]) -> Response[str]:
        return web.render(
            request,
            "error.html",
            status=200,
            message=_("You have logged out. Open the mall's link to come back."),
        )

    @get("/lang/{code:str}", include_in_schema=False, opt=who("anyone"))
    async def switch_language(code: str, next: str | None = None) -> Response[str]:
        if code not in i18n.LANGUAGES:
            raise PageRefused(404, _("There is no such page."))
        # `next` is the page's path as the browser sent it (percent-encoded, decision in
        # pages.here); quoting what else it may hold keeps the header ASCII.
        response = Web.redirect(quote(safe_next(next, "/console/"), safe="/?&=+:,;@%!$'()*"))
        response.set_cookie(
            Cookie(
                key=i18n.LANGUAGE_COOKIE, value=code, path="/", samesite="lax", max_age=365 * 86400
            )
        )
        return response

    @get("/favicon.ico", include_in_schema=False, opt=who("anyone"))
    async def favicon() -> Response[str]:
        """Browsers ask for it on pages without a <link rel=icon> (an SVG opened alone)."""
        return Web.redirect("/static/favicon.svg")

    return [favicon, login_by_link, login_page, log_in, log_out, logged_out, switch_language]


def _random() -> str:
    return secrets.token_urlsafe(24)
