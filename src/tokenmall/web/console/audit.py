"""审计 (audit): the journal head, audit verify in the background, journal browsing.

Reading is harmless, so every staff role reads these pages; running verify replays the whole
journal (CPU for about two minutes per million entries), so only admin and finance start it. One
runs at a time per server (services/audit_jobs.VerifyRunner); the page polls a small fragment
with HTMX every second until it is done.
"""

from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

from tokenmall.services import audit_jobs, queries, web_sessions
from tokenmall.services.web_sessions import WebSession
from tokenmall.web.i18n import gettext as _
from tokenmall.web.pages import PageRefused, Web, in_thread, who

STAFF = ("admin", "finance", "support")
VERIFIERS = ("admin", "finance")


def handlers(web: Web) -> list[HTTPRouteHandler]:
    runner = audit_jobs.VerifyRunner()  # this server's one verify at a time

    def verify_state(session: WebSession) -> dict[str, Any]:
        """What the verify panel shows: the last verify of this server, and the button to the
        roles that may press it."""
        job = runner.current
        report = job.report if job is not None else None
        return {
            "job": job,
            "report": report,
            "broken_seq": audit_jobs.broken_seq(report) if report is not None else None,
            "may_verify": session.role in VERIFIERS,
        }

    @get("/audit", include_in_schema=False, opt=who(*STAFF))
    async def audit_page(request: Request[Any, Any, Any]) -> Response[str]:
        """审计 (any staff role): the head, the chain's start, verify and its last result."""
        session = web.staff(request)
        chain = await in_thread(audit_jobs.chain, web.store)
        return web.render(
            request,
            "console/audit.html",
            session=session,
            chain=chain,
            **verify_state(session),
        )

    @get("/audit/verify", include_in_schema=False, opt=who(*STAFF))
    async def verify_fragment(request: Request[Any, Any, Any]) -> Response[str]:
        """The verify panel alone (any staff role): HTMX polls it while a verify runs."""
        session = web.staff(request)
        return web.render(
            request, "console/audit_verify.html", session=session, **verify_state(session)
        )

    @post("/audit/verify", include_in_schema=False, status_code=200, opt=who(*VERIFIERS))
    async def start_verify(request: Request[Any, Any, Any]) -> Response[str]:
        """Start audit verify in the background (admin, finance); a second start while one
        runs shows the running one."""
        session = web.staff(request, *VERIFIERS)
        await web.form(request, session)
        await in_thread(runner.start, web.store, session.name)
        if request.headers.get("hx-request") == "true":
            return web.render(
                request,
                "console/audit_verify.html",
                session=session,
                **verify_state(session),
            )
        # Without HTMX: back to the page, whose panel shows the verify (started or running).
        # No flash: Web.redirect's cookie cannot carry Chinese text (latin-1 headers).
        return Web.redirect("/console/audit#verify")

    @get("/audit/journal", include_in_schema=False, opt=who(*STAFF))
    async def journal_page(
        request: Request[Any, Any, Any],
        after: int | None = Parameter(default=None, ge=0, le=queries.SEQ_MAX),
        before: int | None = Parameter(default=None, ge=1, le=queries.SEQ_MAX),
        op: str = Parameter(default="", max_length=audit_jobs.FILTER_CHARS_MAX),
        actor: str = Parameter(default="", max_length=audit_jobs.FILTER_CHARS_MAX),
    ) -> Response[str]:
        """The journal (any staff role): up to 100 entries after `after`, or before `before`
        (the newest by default), filtered by op and actor (a prefix: "admin", "cli:")."""
        session = web.staff(request)
        page = await in_thread(
            lambda: audit_jobs.journal_page(
                web.store, after=after, before=before, op=op.strip(), actor=actor.strip()
            )
        )
        return web.render(
            request,
            "console/audit_journal.html",
            session=session,
            page=page,
            people=await in_thread(
                web_sessions.people, web.store, [e.get("actor") for e in page.entries]
            ),
            op=op.strip(),
            actor=actor.strip(),
        )

    @get("/audit/journal/{seq:int}", include_in_schema=False, opt=who(*STAFF))
    async def journal_entry(request: Request[Any, Any, Any], seq: int) -> Response[str]:
        """One journal entry (any staff role): its command, hashes and the changes it made."""
        session = web.staff(request)
        entry = await in_thread(audit_jobs.journal_entry, web.store, seq) if seq > 0 else None
        if entry is None:
            raise PageRefused(404, _("There is no journal entry %(seq)s.", seq=seq))
        people = await in_thread(web_sessions.people, web.store, [entry.get("actor")])
        return web.render(
            request, "console/audit_entry.html", session=session, entry=entry, people=people
        )

    return [audit_page, verify_fragment, start_verify, journal_page, journal_entry]
