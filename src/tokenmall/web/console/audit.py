"""审计 (audit): the journal head, audit verify in the background, journal browsing."""

from litestar.handlers import HTTPRouteHandler

from tokenmall.web.pages import Web


def handlers(web: Web) -> list[HTTPRouteHandler]:
    return []
