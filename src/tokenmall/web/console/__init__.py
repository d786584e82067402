"""The operator console (运营后台) at /console/: staff only (admin, finance, support). One
module per section; each gives its route handlers, and says in each handler's docstring which
staff roles may use it (tests/test_web_trust.py proves nobody else can)."""

from litestar.handlers import HTTPRouteHandler

from tokenmall.web.console import (
    accounts,
    audit,
    collectibles,
    overview,
    params,
    reports,
    withdrawals,
)
from tokenmall.web.pages import Web

SECTIONS = [overview, accounts, withdrawals, params, collectibles, audit, reports]


def handlers(web: Web) -> list[HTTPRouteHandler]:
    return [handler for section in SECTIONS for handler in section.handlers(web)]
