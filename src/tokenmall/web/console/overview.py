"""数据概览 (overview): the economy at a glance, for every staff role."""

from typing import Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from tokenmall.web.pages import Web, who


def handlers(web: Web) -> list[HTTPRouteHandler]:
    @get("/", include_in_schema=False, opt=who("admin", "finance", "support"))
    async def overview(request: Request[Any, Any, Any]) -> Response[str]:
        """数据概览 (any staff role)."""
        session = web.staff(request)
        market = await web.api.query("market")
        return web.render(request, "console/overview.html", session=session, market=market)

    return [overview]
