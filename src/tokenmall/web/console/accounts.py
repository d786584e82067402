"""会员 / 商家 / 代理 (members, merchants, agents): lists, account pages, freeze."""

from litestar.handlers import HTTPRouteHandler

from tokenmall.web.pages import Web


def handlers(web: Web) -> list[HTTPRouteHandler]:
    return []
