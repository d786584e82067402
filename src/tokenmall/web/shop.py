"""The merchant cashier (商家收银) at /shop/: a merchant who came by a login link."""

from typing import Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from tokenmall.web.pages import Web, who


def handlers(web: Web) -> list[HTTPRouteHandler]:
    @get("/", include_in_schema=False, opt=who("merchant"))
    async def home(request: Request[Any, Any, Any]) -> Response[str]:
        """收银台: balances (the merchant's own session)."""
        session = web.account(request, "merchant")
        account = await web.api.query("account", session.name)
        return web.render(request, "shop/home.html", session=session, account=account)

    return [home]
