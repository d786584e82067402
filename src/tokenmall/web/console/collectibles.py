"""数字藏品 (collectibles): issue collections, claims, provenance."""

from litestar.handlers import HTTPRouteHandler

from tokenmall.web.pages import Web


def handlers(web: Web) -> list[HTTPRouteHandler]:
    return []
