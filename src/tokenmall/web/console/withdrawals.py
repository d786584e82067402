"""提现审核 (withdrawal review): the queue with its filters and summary figures, batch approval,
rejection with a reason, the bank's batch file out and its result file in.

Every role of the console sees the queue; only finance and admin act (the API's reviewer
rule): support gets no buttons, and a form it posts anyway is refused with 403 before
anything is read. Each action calls what the API calls: `Api.approve_all` (批量审核), the
reject_withdrawal command through `web.submit` (so the by-hand guard of api.app holds: a
withdrawal a payout channel holds is not rejected), and payouts/channels.py's export_batch,
batch_file and import_results, as api/payouts.py does.
"""

import asyncio
import hmac
import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie, UploadFile
from litestar.handlers import HTTPRouteHandler

from tokenmall.api.payouts import CSV, FILE_BYTES_MAX, FILENAME, SUBMIT_CHUNK, XLSX
from tokenmall.api.problems import Problem
from tokenmall.core.fields import ID_CHARS_MAX
from tokenmall.core.units import Fen, format_fen
from tokenmall.ledger.ledger import Result, Submission
from tokenmall.ledger.store import StoreError
from tokenmall.ledger.writer import LedgerClosed
from tokenmall.payouts.channels import EXPORT_MAX, Routes, batch_file, export_batch, import_results
from tokenmall.payouts.files import FileProblem
from tokenmall.services import queries
from tokenmall.services.web_sessions import WebSession
from tokenmall.services.withdrawal_review import STATUSES, summary
from tokenmall.web.i18n import N_
from tokenmall.web.i18n import gettext as _
from tokenmall.web.pages import (
    FLASH_CHARS_MAX,
    FLASH_COOKIE,
    WITHDRAWAL_STATUS_NAMES,
    PageRefused,
    Web,
    first,
    in_thread,
    who,
)

PAGE_ROWS = 100
APPROVE_MAX = 500  # as POST /v1/withdrawals/approve
REASON_CHARS_MAX = 200
BATCHES_SHOWN = 10
REVIEWERS = ("admin", "finance")
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ID = re.compile(r"[\w.:@-]{1,64}")
FORMATS = {"csv": CSV, "xlsx": XLSX}
# A batch of the console names its withdrawals (ids): routes do not matter then, so the
# console needs no channel settings of its own (channels.export_batch).
NO_ROUTES = Routes()
STATUS_NAMES = WITHDRAWAL_STATUS_NAMES
CLAIM_NAMES = {
    "exported": N_("in a bank file"),
    "sending": N_("sent to the payout service"),
    "held": N_("held by hand"),
    "done": N_("done"),
}


def handlers(web: Web) -> list[HTTPRouteHandler]:
    return [
        *queue_handlers(web),
        *bank_file_handlers(web),
    ]


def _filters(status: str | None, account: str | None, day: str | None) -> dict[str, str | None]:
    """The queue's filters, checked: a clear 400 for one that cannot be."""
    status = status or None
    account = (account or "").strip() or None
    day = day or None
    if status is not None and status not in STATUSES:
        raise PageRefused(400, _("There is no such status."))
    if account is not None and not ID.fullmatch(account):
        raise PageRefused(400, _("An account id has 1-64 letters, digits or _ - . : @"))
    if day is not None and not DAY.fullmatch(day):
        raise PageRefused(400, _("A day is written 2026-12-01."))
    return {"status": status, "account": account, "day": day}


def _queue_path(**filters: str | int | None) -> str:
    shown = {name: value for name, value in filters.items() if value not in (None, "")}
    return "/console/withdrawals" + ("?" + urlencode(shown) if shown else "")


def queue_handlers(web: Web) -> list[HTTPRouteHandler]:
    """The queue, batch approval and rejection."""

    @get("/withdrawals", include_in_schema=False, opt=who("admin", "finance", "support"))
    async def queue(
        request: Request[Any, Any, Any],
        status: str | None = None,
        account: str | None = None,
        day: str | None = None,
        after: str | None = None,
    ) -> Response[str]:
        """提现审核 (any staff role; only finance and admin get the action buttons)."""
        session = web.staff(request)
        filters = _filters(status, account, day)
        after_seq = int(after) if after and after.isdigit() and len(after) < 19 else 0
        page = await in_thread(
            lambda: queries.withdrawal_list(web.store, after=after_seq, limit=PAGE_ROWS, **filters)
        )
        figures = await in_thread(lambda: summary(web.store, **filters))
        ids = [row["id"] for row in page["withdrawals"]]
        claims = await in_thread(web.api.payouts.payouts_of, ids)
        can_act = session.role in REVIEWERS
        batches = await in_thread(web.api.payouts.batches, BATCHES_SHOWN) if can_act else []
        rows = [{**row, "claim": claims.get(row["id"])} for row in page["withdrawals"]]
        next_path = None
        if page["next_after"] is not None:
            next_path = _queue_path(**filters, after=page["next_after"])
        return web.render(
            request,
            "console/withdrawals.html",
            session=session,
            filters=filters,
            statuses=STATUSES,
            status_names=STATUS_NAMES,
            claim_names=CLAIM_NAMES,
            figures=figures,
            rows=rows,
            next_path=next_path,
            first_path=_queue_path(**filters) if after_seq else None,
            can_act=can_act,
            batches=batches,
            back=_queue_path(**filters),
        )

    @post("/withdrawals/approve", include_in_schema=False, opt=who(*REVIEWERS))
    async def approve(request: Request[Any, Any, Any]) -> Response[str]:
        """批量审核 (finance, admin): Api.approve_all, as POST /v1/withdrawals/approve."""
        session = web.staff(request, *REVIEWERS)
        fields = await web.form(request, session)
        back = _back(first(fields, "back"))
        ids = list(dict.fromkeys(value.strip() for value in fields.get("ids", [])))
        if not ids:
            return _redirect(back, _("Tick the withdrawals to approve first."))
        if len(ids) > APPROVE_MAX:
            raise PageRefused(413, _("At most 500 withdrawals at once."))
        key = first(fields, "key") or None
        answered = await web.api.approve_all(web.principal(session), ids, key)
        if isinstance(answered, Problem):  # not today: approve_all answers each id
            return _redirect(back, str(json.loads(answered.body).get("detail")))
        answer = json.loads(answered[1])
        refused = [r for r in answer["results"] if r["outcome"] != "ok"]
        message = _(
            "Approved %(approved)d; refused %(refused)d.",
            approved=answer["approved"],
            refused=answer["refused"],
        )
        if refused:
            message += " " + ", ".join(f"{r['id']} ({r['outcome']})" for r in refused[:10])
        return _redirect(back, message)

    @post("/withdrawals/{id:str}/reject", include_in_schema=False, opt=who(*REVIEWERS))
    async def reject(request: Request[Any, Any, Any], id: str) -> Response[str]:
        """驳回 with a reason (finance, admin): the reject_withdrawal command, as
        POST /v1/withdrawals/{id}/reject; the money goes back to the account's cash."""
        session = web.staff(request, *REVIEWERS)
        fields = await web.form(request, session)
        back = _back(first(fields, "back"))
        reason = first(fields, "reason")
        if not ID.fullmatch(id):
            raise PageRefused(404, _("There is no such withdrawal."))
        if not reason:
            return _redirect(back, _("Say why the withdrawal is rejected."))
        if len(reason) > REASON_CHARS_MAX:
            return _redirect(back, _("A reason has at most 200 characters."))
        command = {"op": "reject_withdrawal", "id": id, "reason": reason}
        done = await web.submit(session, command, first(fields, "key") or None)
        message = _("Withdrawal %(id)s rejected.", id=id) if done.ok else done.message
        return _redirect(back, message)

    return [queue, approve, reject]


def _redirect(path: str, flash: str) -> Response[str]:
    """Web.redirect with a flash message in any language: the cookie's value is
    percent-encoded (a header is latin-1; Litestar's cookie parser unquotes it again)."""
    response = Web.redirect(path)
    response.set_cookie(
        Cookie(
            key=FLASH_COOKIE,
            value=quote(flash[:FLASH_CHARS_MAX]),
            path="/",
            httponly=True,
            samesite="lax",
            max_age=60,
        )
    )
    return response


def _back(path: str) -> str:
    """The queue's page to go back to (its filters kept); never anywhere else."""
    return (
        path
        if path.startswith("/console/withdrawals") and "//" not in path
        else ("/console/withdrawals")
    )


def bank_file_handlers(web: Web) -> list[HTTPRouteHandler]:
    """The bank's batch file (批量代发) out, its result file (代发结果) in."""

    @post("/withdrawals/export", include_in_schema=False, opt=who(*REVIEWERS))
    async def export(request: Request[Any, Any, Any]) -> Response[str]:
        """导出打款文件 (finance, admin): the ticked approved withdrawals claimed for a new
        bank batch (channels.export_batch), whose file is then downloaded."""
        session = web.staff(request, *REVIEWERS)
        fields = await web.form(request, session)
        back = _back(first(fields, "back"))
        ids = list(dict.fromkeys(value.strip() for value in fields.get("export_ids", [])))
        if not ids:
            return _redirect(back, _("Tick the approved withdrawals to export first."))
        if len(ids) > APPROVE_MAX:
            raise PageRefused(413, _("At most 500 withdrawals at once."))
        actor = web.principal(session).actor
        made = await in_thread(export_batch, web.api.payouts, NO_ROUTES, actor, EXPORT_MAX, ids)
        skipped = ", ".join(s["withdrawal"] for s in made.skipped[:10])
        if made.batch is None:
            message = _("Nothing was exported: %(ids)s", ids=skipped)
            return _redirect(back, message)
        message = _(
            "Bank batch %(batch)s: %(lines)d withdrawals, %(total)s in all.",
            batch=made.batch,
            lines=made.lines,
            total=_money(made.total_fen),
        )
        if skipped:
            message += " " + _("Left out: %(ids)s", ids=skipped)
        return _redirect(back, message)

    @get(
        "/withdrawals/batches/{batch:str}/{fmt:str}",
        include_in_schema=False,
        opt=who(*REVIEWERS),
    )
    async def download(request: Request[Any, Any, Any], batch: str, fmt: str) -> Response[Any]:
        """A batch's file for the bank (finance, admin): CSV or XLSX, the same bytes each
        time (channels.batch_file). Support never sees payees' account numbers."""
        web.staff(request, *REVIEWERS)
        if fmt not in FORMATS or not 0 < len(batch) <= ID_CHARS_MAX:
            raise PageRefused(404, _("There is no such batch."))
        data = await in_thread(batch_file, web.api.payouts, batch, fmt)
        if data is None:
            raise PageRefused(404, _("There is no such batch."))
        return Response(
            data,
            media_type=FORMATS[fmt],
            headers={
                "content-disposition": f'attachment; filename="{batch}.{fmt}"',
                "cache-control": "no-store",
            },
        )

    @post(
        "/withdrawals/import",
        include_in_schema=False,
        opt=who(*REVIEWERS),
        request_max_body_size=FILE_BYTES_MAX,
    )
    async def import_file(request: Request[Any, Any, Any]) -> Response[str]:
        """导入打款结果 (finance, admin): the bank's result file, each line completing or
        failing its withdrawal once (channels.import_results); the report shows every line."""
        session = web.staff(request, *REVIEWERS)
        upload = await _upload(request, session)
        if upload is None:
            raise PageRefused(400, _("Choose the bank's result file (.csv or .xlsx)."))
        filename, data = upload
        if not re.fullmatch(FILENAME, filename):
            raise PageRefused(400, _("The file's name must end in .csv or .xlsx."))
        actor = web.principal(session).actor
        try:
            report = await import_results(web.api.payouts, _submit_all(web), data, filename, actor)
        except FileProblem as refused:
            raise PageRefused(
                422, _("The file cannot be read: %(why)s", why=str(refused))
            ) from None
        except (StoreError, LedgerClosed):
            raise PageRefused(
                503, _("The ledger is busy: import the file again (nothing applies twice).")
            ) from None
        return web.render(
            request,
            "console/withdrawals_import.html",
            session=session,
            report=report,
            status_names=STATUS_NAMES,
        )

    return [export, download, import_file]


async def _upload(request: Request[Any, Any, Any], session: WebSession) -> tuple[str, bytes] | None:
    """The uploaded file's name and bytes, once the form's CSRF token matches the session's
    (pages.read_form refuses files, so this form is read here); None without a file."""
    form = await request.form()
    given = request.headers.get("x-csrf-token") or form.get("csrf")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise PageRefused(403, _("The form has expired or did not come from this site."))
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    return upload.filename[:100], await upload.read()


def _submit_all(web: Web) -> Any:
    """The outcomes to the ledger's writer together, a chunk at a time (as the API does)."""

    async def submit_all(submissions: list[Submission]) -> list[Result]:
        results: list[Result] = []
        for start in range(0, len(submissions), SUBMIT_CHUNK):
            chunk = submissions[start : start + SUBMIT_CHUNK]
            results += await asyncio.gather(*(web.api.client.submit(s) for s in chunk))
        return results

    return submit_all


def _money(fen: int) -> str:
    return format_fen(Fen(fen))
