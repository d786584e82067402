"""The payout endpoints (issue 13): bank batches out, bank result files in, reconciliation,
the payout list, and the payout service's signed callback. Thin: each calls the payouts
package (payouts/channels.py, payouts/dispatcher.py, payouts/reconcile.py).

Who may call them: finance and admin tokens, except the callback, which carries no token and
is authenticated by its Standard Webhooks signature alone (the payout service's secret).
"""

import asyncio
import time
from typing import TYPE_CHECKING, Any, Literal

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

from tokenmall.api.problems import Problem, make_problem, problem
from tokenmall.api.schemas import field_error
from tokenmall.core.fields import ID_CHARS_MAX
from tokenmall.jsonl import decode_command
from tokenmall.ledger.ledger import Result, Submission
from tokenmall.ledger.store import StoreError
from tokenmall.ledger.writer import LedgerClosed
from tokenmall.payouts.channels import EXPORT_MAX, batch_file, export_batch, import_results
from tokenmall.payouts.dispatcher import DispatchSettings, receive_callback
from tokenmall.payouts.files import FileProblem
from tokenmall.payouts.reconcile import report_csv, report_xlsx
from tokenmall.payouts.service import difference_json, payout_list, reconcile_file
from tokenmall.services.tokens import Principal, Role

if TYPE_CHECKING:  # app.py imports this module
    from tokenmall.api.app import Api

FILE_BYTES_MAX = 20 * 1024 * 1024  # a bank file
SUBMIT_CHUNK = 1_000  # an import's outcomes in flight to the writer at once
STAFF = (Role.ADMIN, Role.FINANCE)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"
FILENAME = r"^[\w.() -]{1,100}\.(csv|xlsx|CSV|XLSX)$"


def payout_handlers(api: "Api", settings: DispatchSettings) -> list[HTTPRouteHandler]:
    """Every payout endpoint."""
    return [*batch_handlers(api, settings), *result_handlers(api, settings)]


def chosen_ids(body: bytes) -> list[str] | Problem | None:
    """The withdrawals an export names ({"ids": [...]}), None for an empty body."""
    if not body.strip():
        return None
    found = decode_command(body)
    if not isinstance(found, dict) or set(found) != {"ids"}:
        return make_problem(422, "invalid_command", 'the body is {"ids": [withdrawal ids]}')
    error = field_error("ids", found["ids"], "export")
    if error is not None:
        return make_problem(422, "invalid_command", error)
    return list(found["ids"])


def staff_of(api: "Api", request: Request[Any, Any, Any]) -> Principal | Problem:
    """The finance or admin caller, or the 401/403 to answer."""
    who = api.principal(request.scope)
    if isinstance(who, Problem):
        return who
    if who.role not in STAFF:
        return make_problem(403, "forbidden", "only a finance or admin token may do this")
    return who


def batch_handlers(api: "Api", settings: DispatchSettings) -> list[HTTPRouteHandler]:
    """Bank batches out, and the list of payouts."""
    payouts = api.payouts

    @post("/v1/payouts/batches", status_code=200)
    async def create_batch(request: Request[Any, Any, Any]) -> Response[Any]:
        """Export the approved withdrawals routed to the bank as a new batch (批量代发), or
        those a body {"ids": [...]} names, whatever their route: each is claimed for it, so
        it is in no other file and sent to no service."""
        who = staff_of(api, request)
        if isinstance(who, Problem):
            return who.response()
        ids = chosen_ids(await request.body())
        if isinstance(ids, Problem):
            return ids.response()
        made = await asyncio.to_thread(
            export_batch, payouts, settings.routes, who.actor, EXPORT_MAX, ids
        )
        body = {
            "batch": made.batch,
            "lines": made.lines,
            "total_fen": made.total_fen,
            "skipped": made.skipped,
            "files": None
            if made.batch is None
            else {
                fmt: f"/v1/payouts/batches/{made.batch}/file?format={fmt}"
                for fmt in ("csv", "xlsx")
            },
        }
        return Response(body, status_code=201 if made.batch else 200)

    @get("/v1/payouts/batches")
    async def list_batches(
        request: Request[Any, Any, Any], limit: int = Parameter(default=50, ge=1, le=500)
    ) -> Response[Any]:
        """The bank batches, newest first (finance, admin)."""
        who = staff_of(api, request)
        if isinstance(who, Problem):
            return who.response()
        return Response({"batches": await asyncio.to_thread(payouts.batches, limit)})

    @get("/v1/payouts/batches/{batch:str}/file")
    async def get_batch_file(
        request: Request[Any, Any, Any],
        batch: str,
        file_format: Literal["csv", "xlsx"] = Parameter(query="format", default="xlsx"),
    ) -> Response[Any]:
        """A batch's file for the bank's 批量代发 upload, the same bytes every time."""
        who = staff_of(api, request)
        if isinstance(who, Problem):
            return who.response()
        data = await asyncio.to_thread(batch_file, payouts, batch[:ID_CHARS_MAX], file_format)
        if data is None:
            return problem(404, "unknown_batch", f"no batch {batch!r}")
        return Response(
            data,
            media_type=XLSX if file_format == "xlsx" else CSV,
            headers={"content-disposition": f'attachment; filename="{batch}.{file_format}"'},
        )

    @get("/v1/payouts")
    async def list_payouts(
        request: Request[Any, Any, Any],
        channel: Literal["manual", "webhook", "by_hand"] | None = None,
        claim_state: Literal["exported", "sending", "held", "done"] | None = Parameter(
            query="state", default=None
        ),
    ) -> Response[Any]:
        """Withdrawals handed to a channel, and how their delivery goes (finance, admin)."""
        who = staff_of(api, request)
        if isinstance(who, Problem):
            return who.response()
        return Response(await asyncio.to_thread(payout_list, payouts, channel, claim_state))

    return [create_batch, list_batches, get_batch_file, list_payouts]


def result_handlers(api: "Api", settings: DispatchSettings) -> list[HTTPRouteHandler]:
    """What comes back: bank result files, statements to reconcile, service callbacks."""
    payouts = api.payouts

    async def submit(submission: Submission) -> Result:
        return await api.client.submit(submission)

    async def submit_all(submissions: list[Submission]) -> list[Result]:
        """Together, so that the writer batches them; a chunk at a time, within its queue."""
        results: list[Result] = []
        for start in range(0, len(submissions), SUBMIT_CHUNK):
            chunk = submissions[start : start + SUBMIT_CHUNK]
            results += await asyncio.gather(*(api.client.submit(s) for s in chunk))
        return results

    @post("/v1/payouts/results", request_max_body_size=FILE_BYTES_MAX, status_code=200)
    async def import_result_file(
        request: Request[Any, Any, Any],
        filename: str = Parameter(pattern=FILENAME, description="the file's name (.csv, .xlsx)"),
    ) -> Response[Any]:
        """Import the bank's result file (代发结果): each line completes or fails its
        withdrawal exactly once; the same file again changes nothing."""
        who = staff_of(api, request)
        if isinstance(who, Problem):
            return who.response()
        data = await request.body()
        try:
            report = await import_results(payouts, submit_all, data, filename, who.actor)
        except FileProblem as refused:
            return problem(422, "invalid_file", str(refused))
        except (StoreError, LedgerClosed) as error:
            return problem(503, "unavailable", f"{error} (import again: nothing is applied twice)")
        return Response(report)

    @post("/v1/payouts/reconcile", request_max_body_size=FILE_BYTES_MAX, status_code=200)
    async def reconcile(
        request: Request[Any, Any, Any],
        filename: str = Parameter(pattern=FILENAME, description="the statement's file name"),
        channel: Literal["manual", "webhook"] = "manual",
        since: str | None = Parameter(default=None, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
        until: str | None = Parameter(default=None, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
        report_format: Literal["json", "xlsx", "csv"] = Parameter(query="format", default="json"),
    ) -> Response[Any]:
        """对账: the channel's statement against the ledger, every difference listed."""
        who = staff_of(api, request)
        if isinstance(who, Problem):
            return who.response()
        data = await request.body()
        try:
            differences, summary = await asyncio.to_thread(
                reconcile_file, payouts, data, filename, channel, since, until
            )
        except FileProblem as refused:
            return problem(422, "invalid_file", str(refused))
        if report_format == "xlsx":
            return Response(report_xlsx(differences, summary), media_type=XLSX)
        if report_format == "csv":
            return Response(report_csv(differences), media_type=CSV)
        return Response(
            {
                "agree": not differences,
                "summary": summary,
                "differences": [difference_json(d) for d in differences],
            }
        )

    @post("/v1/payouts/webhook", status_code=200)
    async def callback(request: Request[Any, Any, Any]) -> Response[Any]:
        """The payout service's signed result (Standard Webhooks): no token; the signature
        with the payout service's secret is the authentication."""
        if settings.payout is None:
            return problem(404, "not_found", "no payout service is configured")
        body = await request.body()
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            status, answer = await receive_callback(
                payouts, submit, settings.payout.secret, headers, body, int(time.time() * 1000)
            )
        except (StoreError, LedgerClosed) as error:
            return problem(503, "unavailable", str(error))
        if status >= 400:
            return problem(status, answer["code"], answer["detail"])
        return Response(answer)

    return [import_result_file, reconcile, callback]
