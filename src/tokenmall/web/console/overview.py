"""数据概览 (overview): the economy at a glance, for every staff role.

What one render costs, whatever the size of the book (services/dashboard.py): one engine read
in the writer between batches (attribute reads, O(1)), one primary-key range of price_days (at
most 365 rows) and one indexed count of the withdrawals in flight. The charts are ECharts
options built here and drawn by app.js from a JSON data island (no inline script: the CSP).
"""

from typing import Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from tokenmall.api.problems import Problem
from tokenmall.ledger.store import Store
from tokenmall.services import dashboard
from tokenmall.web.i18n import gettext as _
from tokenmall.web.pages import PageRefused, Web, in_thread, who


def handlers(web: Web) -> list[HTTPRouteHandler]:
    @get("/", include_in_schema=False, opt=who("admin", "finance", "support"))
    async def overview(request: Request[Any, Any, Any], days: int | None = None) -> Response[str]:
        """数据概览 (any staff role): the figures now and charts of the last `days` settled
        days (30, 90 or 365)."""
        session = web.staff(request)
        chosen = dashboard.DEFAULT_DAYS if days is None else days
        if chosen not in dashboard.RANGES_DAYS:
            raise PageRefused(400, _("Choose a range of 30, 90 or 365 days."))
        figures = await web.api.query("overview")
        if isinstance(figures, Problem):
            raise PageRefused(503, _("The ledger is busy: try again in a moment."))
        history, in_flight = await in_thread(_store_reads, web.store, figures["day"], chosen)
        last = history[-1] if history and history[-1]["day"] == figures["day"] - 1 else None
        return web.render(
            request,
            "console/overview.html",
            session=session,
            figures=figures,
            in_flight=in_flight,
            last_settled=last,
            today_exits=dashboard.today_exits(figures, history),
            days=chosen,
            ranges=dashboard.RANGES_DAYS,
            charts=charts(history, figures),
        )

    return [overview]


def _store_reads(store: Store, today: int, days: int) -> tuple[list[dict[str, Any]], Any]:
    """The store's part of the page, in one trip off the event loop."""
    return dashboard.recent_days(store, today, days), dashboard.withdrawals_in_flight(store)


def charts(history: list[dict[str, Any]], figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """ECharts options: the daily price, the daily sales and dividends, and the pool against
    what is owed. Each settled day's close, then the day in progress ("now"). Values stay the
    decimal strings the services format (ECharts reads numeric strings): no float here."""
    labels = [str(day["day"]) for day in history] + [_("now")]
    return {
        "chart-price": _line(
            labels,
            [{"name": _("Price"), "data": [d["price"] for d in history] + [figures["price"]]}],
        ),
        "chart-sales": _bars(
            labels,
            [
                {
                    "name": _("Sales"),
                    "data": [d["sales"] for d in history] + [figures["day_sales"]],
                },
                {"name": _("Dividends"), "data": [d["dividends"] for d in history] + ["0"]},
            ],
        ),
        "chart-pool": _pool_against_owed(labels, history, figures),
    }


def _pool_against_owed(
    labels: list[str], history: list[dict[str, Any]], figures: dict[str, Any]
) -> dict[str, Any]:
    """The pool against what the platform owed, right after each settlement and now: cash
    owed (withdrawable, or in withdrawals) and SP outstanding."""
    return _line(
        labels,
        [
            {"name": name, "data": [day[key] for day in history] + [figures[key]]}
            for name, key in (
                (_("Dividend pool"), "pool"),
                (_("Cash owed"), "cash_owed"),
                (_("SP outstanding"), "sp_outstanding"),
            )
        ],
    )


def _axes(labels: list[str], names: list[str]) -> dict[str, Any]:
    return {
        "animation": False,  # the first paint is the whole chart
        "tooltip": {"trigger": "axis"},
        "legend": {"data": names, "top": 0},
        "grid": {"left": 64, "right": 24, "top": 36, "bottom": 28},
        "xAxis": {"type": "category", "data": labels},
        "yAxis": {"type": "value", "scale": True},
    }


def _line(labels: list[str], series: list[dict[str, Any]]) -> dict[str, Any]:
    option = _axes(labels, [s["name"] for s in series])
    option["series"] = [{"type": "line", "showSymbol": len(labels) <= 31, **s} for s in series]
    return option


def _bars(labels: list[str], series: list[dict[str, Any]]) -> dict[str, Any]:
    option = _axes(labels, [s["name"] for s in series])
    option["yAxis"]["scale"] = False  # bars start at zero
    option["series"] = [{"type": "bar", **s} for s in series]
    return option
