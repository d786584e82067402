"""报表 (reports): the daily report of one UTC day, as a page and as XLSX. Both show the one
`DailyReport` that services/daily_report.py reads (integers of fen; EP in 1e-8 units)."""

from datetime import UTC, datetime
from typing import Any, Final

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from tokenmall.api.payouts import XLSX
from tokenmall.core.units import Fen, Units, format_fen, format_units
from tokenmall.payouts.files import header_row, new_workbook, put_text, xlsx_bytes
from tokenmall.services.daily_report import (
    BadDay,
    DailyReport,
    Line,
    daily_report,
    lines,
    next_day,
    parse_day,
)
from tokenmall.web.i18n import N_
from tokenmall.web.i18n import gettext as _
from tokenmall.web.pages import PageRefused, Web, in_thread, who

READERS = ("admin", "finance", "support")
LABELS: Final = {
    "cash_orders": N_("Cash orders"),
    "sales_fen": N_("Sales"),
    "refunds": N_("Refunds"),
    "refunds_fen": N_("Refunded amount"),
    "net_sales_fen": N_("Net sales"),
    "contributions_fen": N_("Contributions to the pool"),
    "settlements": N_("Settlements"),
    "dividends_fen": N_("Dividends paid"),
    "withdrawals_requested": N_("Withdrawals requested"),
    "withdrawals_requested_fen": N_("Amount requested"),
    "withdrawals_paid": N_("Withdrawals paid"),
    "withdrawals_paid_fen": N_("Amount paid out"),
    "withdrawals_returned": N_("Withdrawals rejected or failed"),
    "withdrawals_returned_fen": N_("Amount returned to cash"),
    "referral_units": N_("Referral rewards (EP)"),
    "agent_commissions_fen": N_("Agent commissions"),
    "exits": N_("Forced exits"),
}
UNITS: Final = {"fen": N_("CNY"), "units": N_("EP"), "count": N_("count")}
# The cards on top of the page: the figures an operator looks at first.
HEADLINE: Final = (
    "sales_fen",
    "contributions_fen",
    "dividends_fen",
    "withdrawals_requested_fen",
    "withdrawals_paid_fen",
    "agent_commissions_fen",
)


def shown(line: Line) -> str:
    """A figure as text: yuan with two decimals, EP with eight, or a count."""
    if line.unit == "fen":
        return format_fen(Fen(line.value))
    if line.unit == "units":
        return format_units(Units(line.value))
    return str(line.value)


def today() -> str:
    return datetime.now(UTC).date().isoformat()


async def compute(web: Web, day: str) -> DailyReport:
    """The day's report: one read of the day_totals read model (as of the last batch)."""
    report: DailyReport = await in_thread(daily_report, web.store, day)
    return report


def workbook_bytes(report: DailyReport) -> bytes:
    """The report as a workbook: one sheet, a row a figure (text cells: put_text keeps any
    formula-like text inert, as payouts/files.py does for bank files)."""
    workbook = new_workbook(f"日报 daily report {report.day}")
    sheet = workbook.active
    sheet.title = "日报 Daily report"
    header_row(sheet, (_("Figure"), _("Value"), _("Unit")), (36, 22, 10))
    put_text(sheet.cell(row=2, column=1), _("Day"))
    put_text(sheet.cell(row=2, column=2), report.day)
    for row_number, line in enumerate(lines(report), start=3):
        put_text(sheet.cell(row=row_number, column=1), _(LABELS[line.key]))
        if line.unit == "count":
            sheet.cell(row=row_number, column=2, value=line.value)
        else:  # money and EP as exact text, never a float
            put_text(sheet.cell(row=row_number, column=2), shown(line))
        put_text(sheet.cell(row=row_number, column=3), _(UNITS[line.unit]))
    sheet.freeze_panes = "A2"
    return xlsx_bytes(workbook)


def handlers(web: Web) -> list[HTTPRouteHandler]:
    @get("/reports", include_in_schema=False, opt=who(*READERS))
    async def report_page(request: Request[Any, Any, Any], day: str | None = None) -> Response[str]:
        """报表, the daily report (admin, finance, support)."""
        session = web.staff(request)
        try:
            chosen = parse_day(day) if day else today()
        except BadDay:
            raise PageRefused(400, _("A day is written 2026-12-01.")) from None
        report = await compute(web, chosen)
        all_lines = lines(report)
        return web.render(
            request,
            "console/reports.html",
            session=session,
            report=report,
            lines=all_lines,
            headline=[line for line in all_lines if line.key in HEADLINE],
            labels=LABELS,
            units=UNITS,
            shown=shown,
            previous_day=next_day(chosen, -1),
            next_day=next_day(chosen, 1),
        )

    @get("/reports/{file:str}", include_in_schema=False, opt=who(*READERS))
    async def report_xlsx(request: Request[Any, Any, Any], file: str) -> Response[Any]:
        """The daily report as XLSX, /console/reports/2026-12-01.xlsx (admin, finance,
        support)."""
        web.staff(request)
        day, dot, extension = file.partition(".")
        try:
            parse_day(day)
        except BadDay:
            raise PageRefused(404, _("There is no such page.")) from None
        if not dot or extension != "xlsx":
            raise PageRefused(404, _("There is no such page."))
        report = await compute(web, day)
        data = await in_thread(workbook_bytes, report)
        return Response(
            data,
            media_type=XLSX,
            headers={
                "content-disposition": f'attachment; filename="tokenmall-{day}.xlsx"',
                "cache-control": "no-store",
            },
        )

    return [report_page, report_xlsx]
