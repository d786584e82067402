"""The consumer pages (会员中心, H5) at /h5/: a consumer (or agent) who came by a login link."""

from typing import Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from tokenmall.web.pages import Web, who


def handlers(web: Web) -> list[HTTPRouteHandler]:
    @get("/", include_in_schema=False, opt=who("consumer", "agent"))
    async def home(request: Request[Any, Any, Any]) -> Response[str]:
        """我的: balances (the consumer's own session)."""
        session = web.account(request, "consumer", "agent")
        account = await web.api.query("account", session.name)
        return web.render(request, "h5/home.html", session=session, account=account)

    return [home]
