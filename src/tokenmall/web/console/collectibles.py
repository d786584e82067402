"""数字藏品 (collectibles): the collections with their claims, issuing a collection (admin only,
as POST /v1/collections in api/resources.py), and any item's provenance (every owner, by
journal entry)."""

from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

from tokenmall.api.schemas import field_error
from tokenmall.core.fields import EDITION_MAX, ID_CHARS_MAX, ITEM_CHARS_MAX
from tokenmall.core.units import MONEY_DECIMALS, parse_scaled
from tokenmall.services import account_reads, queries
from tokenmall.services.web_sessions import WebSession
from tokenmall.web.console.accounts import STAFF, engine_read
from tokenmall.web.i18n import N_
from tokenmall.web.i18n import gettext as _
from tokenmall.web.pages import PageRefused, Web, first, in_thread, who

SEQ_MAX = queries.SEQ_MAX
ISSUE = "issue_collection"
MOVE_LABELS = {"claim": N_("Claimed from the collection"), "gift": N_("Gifted"), "use": N_("Used")}
# Refusals of issue_collection that pages.ERROR_MESSAGES does not word.
ISSUE_REFUSALS = {"duplicate_collection": N_("A collection with this id exists already.")}


def issue_command(fields: dict[str, list[str]]) -> dict[str, Any] | str:
    """The issue_collection command the form asks for, or what is wrong with it (checked as
    the API's schema checks POST /v1/collections, so nothing malformed reaches the journal)."""
    collection = first(fields, "collection")
    edition_text = first(fields, "edition")
    value = first(fields, "value")
    if field_error("collection", collection, ISSUE) is not None:
        return _("A collection id is 1-64 letters or digits, or _ - . : @")
    if not (edition_text.isascii() and edition_text.isdigit() and len(edition_text) <= 7):
        return _("The edition is a whole number from 1 to %(max)s.", max=EDITION_MAX)
    edition = int(edition_text)
    if field_error("edition", edition, ISSUE) is not None:
        return _("The edition is a whole number from 1 to %(max)s.", max=EDITION_MAX)
    value_fen = parse_scaled(value, MONEY_DECIMALS)
    if field_error("value", value, ISSUE) is not None or not value_fen:
        return _("The value is an amount of CNY above zero, with at most 2 decimals.")
    return {"op": ISSUE, "collection": collection, "edition": edition, "value": value}


def item_path(item: str) -> str:
    return "/console/collectibles/items/" + quote(item, safe="")


def handlers(web: Web) -> list[HTTPRouteHandler]:
    async def collections_page(
        request: Request[Any, Any, Any],
        session: WebSession,
        after: int = 0,
        status: int = 200,
        notice: str | None = None,
        error: str | None = None,
        form: dict[str, str] | None = None,
    ) -> Response[str]:
        page = await engine_read(web, "collections_page", after)
        return web.render(
            request,
            "console/collectibles.html",
            status=status,
            session=session,
            page=page,
            after=after,
            may_issue=session.role == "admin",
            notice=notice,
            error=error,
            form=form or {},
        )

    @get("/collectibles", include_in_schema=False, opt=who(*STAFF))
    async def collections(
        request: Request[Any, Any, Any],
        after: int = Parameter(default=0, ge=0, le=SEQ_MAX),
        issued: str | None = Parameter(default=None, max_length=ID_CHARS_MAX),
    ) -> Response[str]:
        """数字藏品: the collections, the issue form for an admin, the provenance lookup
        (admin, finance, support)."""
        session = web.staff(request, *STAFF)
        notice = None
        # "Issued" is said of a collection that exists, whoever made the link.
        if issued and await engine_read(web, "collection_claims", issued, 0, 1) is not None:
            notice = _("Collection %(id)s issued.", id=issued)
        return await collections_page(request, session, after, notice=notice)

    @post("/collectibles", include_in_schema=False, status_code=303, opt=who("admin"))
    async def issue(request: Request[Any, Any, Any]) -> Response[str]:
        """Issue a collection (发行藏品; admin only). A bad form comes back with its values and
        what is wrong; a refusal of the rules (a duplicate id) likewise."""
        session = web.staff(request, "admin")
        fields = await web.form(request, session)
        form = {name: first(fields, name) for name in ("collection", "edition", "value")}
        command = issue_command(fields)
        if isinstance(command, str):
            return await collections_page(request, session, status=400, error=command, form=form)
        done = await web.submit(session, command, first(fields, "key"))
        if not done.ok:
            known = ISSUE_REFUSALS.get(done.code)
            error = f"{_(known)} ({done.code})" if known else done.message
            return await collections_page(request, session, status=409, error=error, form=form)
        return Web.redirect("/console/collectibles?issued=" + quote(command["collection"], safe=""))

    @get("/collectibles/collections/{collection:str}", include_in_schema=False, opt=who(*STAFF))
    async def claims(
        request: Request[Any, Any, Any],
        collection: str,
        after: int = Parameter(default=0, ge=0, le=EDITION_MAX),
    ) -> Response[str]:
        """A collection's claimed items: who claimed each, who holds it now (admin, finance,
        support)."""
        session = web.staff(request, *STAFF)
        found = None
        if field_error("collection", collection, ISSUE) is None:
            found = await engine_read(web, "collection_claims", collection, after)
        if found is None:
            raise PageRefused(404, _("No such collection."))
        claimed_by = await in_thread(
            account_reads.claimers, web.store, [row["item"] for row in found["items"]]
        )
        return web.render(
            request,
            "console/collectibles_claims.html",
            session=session,
            found=found,
            claimed_by=claimed_by,
            after=after,
        )

    @get("/collectibles/items", include_in_schema=False, opt=who(*STAFF))
    async def lookup(
        request: Request[Any, Any, Any],
        item: str = Parameter(default="", max_length=ITEM_CHARS_MAX),
    ) -> Response[str]:
        """The lookup form's answer: to the item's provenance page (admin, finance, support)."""
        web.staff(request, *STAFF)
        if not item.strip():
            raise PageRefused(400, _("Enter an item, e.g. vip#1."))
        return Web.redirect(item_path(item.strip()))

    @get("/collectibles/items/{item:str}", include_in_schema=False, opt=who(*STAFF))
    async def provenance(request: Request[Any, Any, Any], item: str) -> Response[str]:
        """An item's provenance: every move and owner, by journal entry (admin, finance,
        support)."""
        session = web.staff(request, *STAFF)
        found = None
        if 0 < len(item) <= ITEM_CHARS_MAX:
            found = await in_thread(queries.provenance, web.store, item)
        if found is None:
            raise PageRefused(404, _("No such item."))
        return web.render(
            request,
            "console/collectibles_item.html",
            session=session,
            found=found,
            move_labels=MOVE_LABELS,
            used=found["moves"][-1]["action"] == "use",
        )

    return [collections, issue, claims, lookup, provenance]
