"""会员 / 商家 / 代理 (members, merchants, agents): lists with search and cursors, the account
page (balances, statement, two referral levels, withdrawals, items) and freeze / unfreeze.

Everyone on the staff reads; only an admin freezes or unfreezes (the API's rule for
/v1/risk/freeze and /v1/risk/unfreeze, api/resources.py). SPEC v2's freeze and unfreeze take the
account alone: there is no reason field to send.
"""

from typing import Any, Literal
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter

from tokenmall.api.problems import Problem
from tokenmall.api.schemas import field_error
from tokenmall.services import account_reads, queries, web_sessions
from tokenmall.web.i18n import N_
from tokenmall.web.i18n import gettext as _
from tokenmall.web.pages import WITHDRAWAL_STATUS_NAMES, PageRefused, Web, first, in_thread, who

STAFF = ("admin", "finance", "support")
SEQ_MAX = queries.SEQ_MAX
STATEMENT_LINES = 50
SIDE_ROWS = 20  # referrals, withdrawals and items per page on the account page
KIND_TITLES = {"consumer": N_("Members"), "merchant": N_("Merchants"), "agent": N_("Agents")}

# Every balance field a page shows (core/accounts.py's *_FIELDS), in words operators use.
FIELD_LABELS = {
    "ep": N_("EP"),
    "sp": N_("SP"),
    "locked_sp": N_("Locked SP"),
    "quota": N_("Dividend quota"),
    "level": N_("Level"),
    "cash_out": N_("Sale proceeds"),
    "goods": N_("Goods redeemed"),
    "dividends": N_("Dividends received"),
    "exited": N_("Exited"),
    "cash": N_("Withdrawable cash"),
    "withdrawing": N_("Withdrawing"),
    "withdrawn": N_("Withdrawn"),
    "frozen": N_("Frozen"),
    "commissions": N_("Commissions"),
    "ended": N_("Term ended"),
}
# What each journal entry did, for the statement (SPEC §4, §9-§11 ops).
OP_LABELS = {
    "register": N_("Registered"),
    "register_merchant": N_("Merchant registered"),
    "register_agent": N_("Agent registered"),
    "order": N_("Order placed"),
    "refund": N_("Refund"),
    "sell": N_("Sale"),
    "redeem": N_("Redeemed for goods"),
    "convert": N_("Converted to SP"),
    "merchant_redeem": N_("Merchant redemption"),
    "grant_stable": N_("Locked SP granted"),
    "settle_day": N_("Daily settlement"),
    "withdraw": N_("Withdrawal requested"),
    "approve_withdrawal": N_("Withdrawal approved"),
    "reject_withdrawal": N_("Withdrawal rejected"),
    "complete_withdrawal": N_("Withdrawal paid"),
    "fail_withdrawal": N_("Withdrawal failed"),
    "freeze": N_("Frozen"),
    "unfreeze": N_("Unfrozen"),
    "end_agent": N_("Agent term ended"),
    "claim_collectible": N_("Collectible claimed"),
    "gift_collectible": N_("Collectible gifted"),
    "use_collectible": N_("Collectible used"),
}
WITHDRAWAL_STATES = WITHDRAWAL_STATUS_NAMES
RISK_ACTIONS = {"freeze": N_("Account frozen."), "unfreeze": N_("Account unfrozen.")}


async def engine_read(web: Web, name: str, *arguments: Any) -> Any:
    """An engine read (services/queries.py ENGINE_QUERIES), or a page saying the ledger is busy."""
    answer = await web.api.query(name, *arguments)
    if isinstance(answer, Problem):
        raise PageRefused(503, _("The ledger is busy: try again in a moment."))
    return answer


def valid_account_id(account_id: str) -> bool:
    return field_error("account", account_id, "freeze") is None


async def find_account(web: Web, account_id: str) -> dict[str, Any]:
    """The account's balances now, or a 404 page."""
    found = await engine_read(web, "account", account_id) if valid_account_id(account_id) else None
    if found is None:
        raise PageRefused(404, _("No such account."))
    return dict(found)


def handlers(web: Web) -> list[HTTPRouteHandler]:
    @get("/accounts", include_in_schema=False, opt=who(*STAFF))
    async def account_list(
        request: Request[Any, Any, Any],
        kind: Literal["consumer", "merchant", "agent"] = "consumer",
        q: str = Parameter(default="", max_length=account_reads.SEARCH_CHARS_MAX),
        after: int = Parameter(default=0, ge=0, le=SEQ_MAX),
    ) -> Response[str]:
        """会员 / 商家 / 代理 lists: search by id, a cursor page (admin, finance, support)."""
        session = web.staff(request, *STAFF)
        search = q.strip()
        page = await engine_read(web, "accounts_page", kind, search, after)
        return web.render(
            request,
            "console/accounts.html",
            session=session,
            kind=kind,
            kind_title=KIND_TITLES[kind],
            kind_titles=KIND_TITLES,
            search=search,
            page=page,
        )

    @get("/accounts/{account_id:str}", include_in_schema=False, opt=who(*STAFF))
    async def account_page(
        request: Request[Any, Any, Any],
        account_id: str,
        after: int = Parameter(default=0, ge=0, le=SEQ_MAX),
        r1: int = Parameter(default=-1, ge=-1, le=SEQ_MAX),
        r2: int = Parameter(default=-1, ge=-1, le=SEQ_MAX),
        w: int = Parameter(default=0, ge=0, le=SEQ_MAX),
        i: int = Parameter(default=0, ge=0, le=SEQ_MAX),
        done: Literal["freeze", "unfreeze"] | None = None,
    ) -> Response[str]:
        """One account: balances, statement, referrals, withdrawals, items; freeze and
        unfreeze buttons for an admin (admin, finance, support)."""
        session = web.staff(request, *STAFF)
        account = await find_account(web, account_id)
        statement = await in_thread(
            queries.statement, web.store, account_id, after, STATEMENT_LINES
        )
        withdrawals = await in_thread(
            lambda: queries.withdrawal_list(web.store, account=account_id, after=w, limit=SIDE_ROWS)
        )
        referrals, items = [], None
        if account["kind"] == "consumer":
            referrals = await engine_read(web, "referrals", account_id, (r1, r2), SIDE_ROWS)
            items = await in_thread(account_reads.items_held, web.store, account_id, i, SIDE_ROWS)
        return web.render(
            request,
            "console/accounts_detail.html",
            session=session,
            account=account,
            fields=[name for name in account if name in FIELD_LABELS],  # its kind's order
            field_labels=FIELD_LABELS,
            op_labels=OP_LABELS,
            withdrawal_states=WITHDRAWAL_STATES,
            kind_titles=KIND_TITLES,
            statement=statement,
            statement_after=after,
            people=await in_thread(
                web_sessions.people, web.store, [line["actor"] for line in statement["lines"]]
            ),
            withdrawals=withdrawals,
            referrals=referrals,
            items=items,
            may_act=session.role == "admin",
            # What the admin just did, said only while it is still true.
            notice=_(RISK_ACTIONS[done])
            if done and account["frozen"] == (done == "freeze")
            else None,
        )

    async def risk(request: Request[Any, Any, Any], account_id: str, op: str) -> Response[str]:
        """Freeze or unfreeze (admin only): the role first, then the form's token, then the
        account must exist, so a refused request journals nothing."""
        session = web.staff(request, "admin")
        fields = await web.form(request, session)
        account = await find_account(web, account_id)
        done = await web.submit(session, {"op": op, "account": account["id"]}, first(fields, "key"))
        if not done.ok:
            raise PageRefused(409, done.message)
        # The notice travels in the address, not in a cookie: it is one of two fixed words.
        return Web.redirect(f"{account_path(account['id'])}?done={op}")

    @post(
        "/accounts/{account_id:str}/freeze",
        include_in_schema=False,
        status_code=303,
        opt=who("admin"),
    )
    async def freeze(request: Request[Any, Any, Any], account_id: str) -> Response[str]:
        """冻结 an account (admin only)."""
        return await risk(request, account_id, "freeze")

    @post(
        "/accounts/{account_id:str}/unfreeze",
        include_in_schema=False,
        status_code=303,
        opt=who("admin"),
    )
    async def unfreeze(request: Request[Any, Any, Any], account_id: str) -> Response[str]:
        """解冻 an account (admin only)."""
        return await risk(request, account_id, "unfreeze")

    return [account_list, account_page, freeze, unfreeze]


def account_path(account_id: str) -> str:
    return "/console/accounts/" + quote(account_id, safe="")
