"""POST /v1/login-links: a one-time login link for a consumer, merchant or agent, asked for by
the mall's back end (integration) or an admin (services/login_links.py says how it works)."""

import asyncio
import time
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from tokenmall.api.problems import Problem, problem
from tokenmall.api.schemas import field_error
from tokenmall.jsonl import decode_command
from tokenmall.services.login_links import PATH, LinkRefused, issue_link
from tokenmall.services.tokens import Role

if TYPE_CHECKING:  # app.py imports this module
    from tokenmall.api.app import Api

ISSUERS = (Role.ADMIN, Role.INTEGRATION)


def login_link_handlers(api: "Api") -> list[HTTPRouteHandler]:
    @post("/v1/login-links", status_code=201)
    async def create_login_link(request: Request[Any, Any, Any]) -> Response[Any]:
        """A link that logs the account in to its pages once, within 5 minutes (integration,
        admin). Body: {"account": id}."""
        who = api.principal(request.scope)
        if isinstance(who, Problem):
            return who.response()
        if who.role not in ISSUERS:
            return problem(403, "forbidden", "only the back end or an admin token may do this")
        body = decode_command(await request.body())
        if not isinstance(body, dict) or set(body) != {"account"}:
            return problem(422, "invalid_command", 'the body is {"account": id}')
        error = field_error("account", body["account"], "login_link")
        if error is not None:
            return problem(422, "invalid_command", error)
        try:
            token, expires_s = await asyncio.to_thread(issue_link, api.store, body["account"])
        except LinkRefused as refused:
            return problem(404, "unknown_account", str(refused))
        expires_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_s))
        answer = {"token": token, "path": PATH + token, "expires_at": expires_at}
        return Response(answer, status_code=201)

    return [create_login_link]
