"""参数设置 (parameters): edit with validation and a simulated preview of the cost."""

from litestar.handlers import HTTPRouteHandler

from tokenmall.web.pages import Web


def handlers(web: Web) -> list[HTTPRouteHandler]:
    return []
