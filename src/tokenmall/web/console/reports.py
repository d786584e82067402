"""报表 (reports): the daily report as a page and as XLSX."""

from litestar.handlers import HTTPRouteHandler

from tokenmall.web.pages import Web


def handlers(web: Web) -> list[HTTPRouteHandler]:
    return []
