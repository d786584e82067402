"""提现审核 (withdrawal review): the queue, batch approval, rejection, bank files."""

from litestar.handlers import HTTPRouteHandler

from tokenmall.web.pages import Web


def handlers(web: Web) -> list[HTTPRouteHandler]:
    return []
