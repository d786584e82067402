"""The consumer pages (会员中心, H5) at /h5/: a consumer who came by a login link, and a
regional agent (who holds cash only: home, market, statement and wallet).

Every page acts on the session's own account and on nothing else: no handler reads an account
id from the URL or a form. Commands are formed and authorised as the HTTP API forms them (its
route table, api/resources.py), then committed through the same path (Web.submit)."""

import hashlib
import os
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter
from markupsafe import Markup

from tokenmall.api.problems import Problem
from tokenmall.core.errors import ErrorCode
from tokenmall.core.units import Fen, format_fen, format_price, format_units
from tokenmall.payouts.payee import METHODS
from tokenmall.services import account_reads, consumer_view, queries
from tokenmall.services.consumer_view import AccountView, TradePreview
from tokenmall.services.payment_codes import CODE_DIGITS, TooManyCodes
from tokenmall.services.web_sessions import WebSession
from tokenmall.web.i18n import N_
from tokenmall.web.i18n import gettext as _
from tokenmall.web.pages import (
    ERROR_MESSAGES,
    PAGE_HEADERS,
    PAYEE_METHOD_NAMES,
    WITHDRAWAL_STATUS_NAMES,
    Done,
    PageRefused,
    Web,
    api_route,
    describe,
    first,
    in_thread,
    submit_as_api,
    who,
)

# Where a referral link sends people: the mall's own sign-up page. Without it, this site.
MALL_URL_ENV = "TOKENMALL_MALL_URL"
STATEMENT_ROWS = 50  # statement lines per page
WITHDRAWALS_ROWS = 20
ITEMS_ROWS = 50
REFERRALS_ROWS = 20  # referrals listed per level (the counts are exact)
HISTORY_DAYS = 90  # settled days in the price chart
CODE_TTL_S = 60  # a payment code's life (services/payment_codes.py)
PRICE_DECIMALS = 4  # the UI's price, as the seeds print it (SPEC §1)
ITEM_CHARS_MAX = 80
CONSUMER, AGENT = "consumer", "agent"

TRADE_ACTIONS = {
    "sell": (N_("Sell"), "/v1/consumers/{user:str}/sell"),
    "convert": (N_("Convert to SP"), "/v1/consumers/{user:str}/convert"),
    "redeem": (N_("Redeem for goods"), "/v1/consumers/{user:str}/redeem"),
}
WITHDRAW_ROUTES = {
    CONSUMER: ("/v1/consumers/{user:str}/withdrawals", "user"),
    AGENT: ("/v1/agents/{agent:str}/withdrawals", "agent"),
}
GIFT_ROUTE = "/v1/items/{item:str}/gift"
PAYEE_METHODS = PAYEE_METHOD_NAMES
assert tuple(PAYEE_METHODS) == METHODS
WITHDRAWAL_STATUS = WITHDRAWAL_STATUS_NAMES
OP_NAMES = {
    "register": N_("Joined"),
    "order": N_("Order"),
    "refund": N_("Refund"),
    "sell": N_("Sale"),
    "redeem": N_("Redeemed for goods"),
    "convert": N_("Converted to SP"),
    "settle_day": N_("Dividend"),
    "grant_stable": N_("SP granted"),
    "withdraw": N_("Withdrawal"),
    "approve_withdrawal": N_("Withdrawal approved"),
    "reject_withdrawal": N_("Withdrawal rejected"),
    "complete_withdrawal": N_("Withdrawal paid"),
    "fail_withdrawal": N_("Withdrawal failed"),
    "claim_collectible": N_("Collectible claimed"),
    "gift_collectible": N_("Collectible gifted"),
    "use_collectible": N_("Collectible used"),
    "freeze": N_("Frozen"),
    "unfreeze": N_("Unfrozen"),
    "set_params": N_("Rules changed"),
}
FIELD_NAMES = {
    "ep": N_("EP"),
    "sp": N_("SP"),
    "locked_sp": N_("Locked SP"),
    "quota": N_("Quota"),
    "level": N_("Level"),
    "cash_out": N_("Sold for"),
    "goods": N_("Goods"),
    "dividends": N_("Dividends"),
    "exited": N_("Exited"),
    "cash": N_("Cash"),
    "withdrawing": N_("Withdrawing"),
    "withdrawn": N_("Withdrawn"),
    "frozen": N_("Frozen"),
    "commissions": N_("Commissions"),
    "ended": N_("Term ended"),
}
ITEM_ACTIONS = {"claim": N_("Claimed"), "gift": N_("Gifted"), "use": N_("Used")}
# Refusals the consumer pages meet beyond pages.ERROR_MESSAGES.
MORE_ERRORS = {
    "already_used": N_("This item was used already."),
    "unknown_item": N_("No such item."),
    "duplicate_withdrawal": N_("This withdrawal was sent already."),
}


def say(code: str, detail: str = "") -> str:
    """A refusal in words: the pages' common ones, then this area's."""
    if code in ERROR_MESSAGES or code not in MORE_ERRORS:
        return describe(code, detail)
    return f"{_(MORE_ERRORS[code])} ({code})"


async def act(
    web: Web,
    session: WebSession,
    path: str,
    path_params: dict[str, str],
    body: dict[str, Any],
    key: str,
) -> Done:
    """Commit the command the API's route at `path` makes of this body (pages.submit_as_api:
    the session's own account only), its refusal in this area's words."""
    done = await submit_as_api(web, session, api_route(path), body, path_params, key)
    return done if done.ok else Done(False, done.seq, done.code, say(done.code, done.message))


async def engine_read(web: Web, name: str, *arguments: Any) -> Any:
    found = await web.api.query(name, *arguments)
    if isinstance(found, Problem):
        raise PageRefused(503, _("The ledger is busy: try again in a moment."))
    return found


async def view_of(web: Web, session: WebSession) -> AccountView:
    """The session's own account now; its kind must be the session's (a link made for an id
    before someone registered it as the other kind opens nothing)."""
    found: AccountView | None = await engine_read(web, "h5_account", session.name)
    if found is None or found.kind != session.role:
        raise PageRefused(403, _("This page is not for your account."))
    return found


def figures(view: AccountView) -> dict[str, Any]:
    """What the pages show of an account's EP: the price (4 decimals), the value now and the
    sale fee."""
    value_fen = consumer_view.ep_value_fen(view.ep_units, view.price)
    return {
        "price": format_price(view.price, PRICE_DECIMALS),
        "value": format_fen(value_fen),
        "value_fen": value_fen,
        "fee_percent": consumer_view.percent_text(view.params["sell_fee_rate"]),
    }


def mall_url(request: Request[Any, Any, Any]) -> str:
    configured = os.environ.get(MALL_URL_ENV, "").strip()
    return configured or str(request.base_url).rstrip("/") + "/"


def referral_link(request: Request[Any, Any, Any], account_id: str) -> str:
    base = mall_url(request)
    return f"{base}{'&' if '?' in base else '?'}ref={quote(account_id, safe='')}"


def withdrawal_id(session: WebSession, key: str) -> str:
    """The withdrawal's id, from the form's one-time key: a resent form names the same
    withdrawal, so the ledger applies it once."""
    return "h5-" + hashlib.sha256(f"{session.session_id}/{key}".encode()).hexdigest()[:20]


async def done_line(web: Web, session: WebSession, seq: int | None) -> dict[str, Any] | None:
    """What journal entry `seq` changed in the session's own account, shown after a command
    (a redirect carries the seq, not a message: the page says what the ledger applied)."""
    if not seq:
        return None
    found: dict[str, Any] | None = await in_thread(
        consumer_view.line_at, web.store, session.name, seq
    )
    return found


DONE_SEQ = Parameter(default=None, ge=1, le=queries.SEQ_MAX)


def page(
    web: Web,
    request: Request[Any, Any, Any],
    template: str,
    session: WebSession,
    status: int = 200,
    **context: Any,
) -> Response[str]:
    return web.render(
        request,
        template,
        status=status,
        session=session,
        field_names=FIELD_NAMES,
        op_names=OP_NAMES,
        **context,
    )


def handlers(web: Web) -> list[HTTPRouteHandler]:
    return [
        *overview_handlers(web),
        *trade_handlers(web),
        *wallet_handlers(web),
        *invite_handlers(web),
        *item_handlers(web),
        *risk_handlers(web),
    ]


def overview_handlers(web: Web) -> list[HTTPRouteHandler]:
    """我的, 行情 and 账单 (分红记录)."""

    @get("/", include_in_schema=False, opt=who(CONSUMER, AGENT))
    async def home(request: Request[Any, Any, Any]) -> Response[str]:
        """我的 (a consumer or an agent, its own account): balances, the EP's value now, quota."""
        session = web.account(request, CONSUMER, AGENT)
        view = await view_of(web, session)
        thresholds = view.params["level_thresholds"]
        next_level = thresholds[view.level] if view.level < len(thresholds) else None
        return page(
            web,
            request,
            "h5/home.html",
            session,
            account=view.account,
            view=view,
            next_level_ep=next_level,
            **figures(view),
        )

    @get("/market", include_in_schema=False, opt=who(CONSUMER, AGENT))
    async def market(request: Request[Any, Any, Any]) -> Response[str]:
        """行情 (a consumer or an agent): the price chart, price, pool, supply."""
        session = web.account(request, CONSUMER, AGENT)
        view = await view_of(web, session)
        now = await engine_read(web, "market")
        today = await engine_read(web, "today")
        first_day = max(-1, int(today["day"]) - HISTORY_DAYS - 1)
        history = await in_thread(queries.price_history, web.store, first_day, HISTORY_DAYS)
        return page(
            web,
            request,
            "h5/market.html",
            session,
            market=now,
            today=today,
            price=figures(view)["price"],
            chart=price_chart(history["days"], today),
        )

    @get("/statement", include_in_schema=False, opt=who(CONSUMER, AGENT))
    async def statement(
        request: Request[Any, Any, Any],
        after: int = Parameter(default=0, ge=0, le=queries.SEQ_MAX),
    ) -> Response[str]:
        """账单 and 分红记录 (a consumer or an agent, its own): statement lines, dividends
        marked, a cursor page of STATEMENT_ROWS."""
        session = web.account(request, CONSUMER, AGENT)
        found = await in_thread(
            consumer_view.statement_page, web.store, session.name, after, STATEMENT_ROWS
        )
        return page(
            web,
            request,
            "h5/statement.html",
            session,
            lines=found["lines"],
            items=found["items"],
            next_after=found["next_after"],
            after=after,
            item_actions=ITEM_ACTIONS,
        )

    return [home, market, statement]


def trade_handlers(web: Web) -> list[HTTPRouteHandler]:
    """交易: sell, convert, redeem."""

    async def trade_page(
        request: Request[Any, Any, Any],
        session: WebSession,
        view: AccountView,
        status: int = 200,
        preview: TradePreview | None = None,
        error: str | None = None,
        notice: str | None = None,
        asked: dict[str, str] | None = None,
        done: dict[str, Any] | None = None,
    ) -> Response[str]:
        return page(
            web,
            request,
            "h5/trade.html",
            session,
            done_line=done,
            status=status,
            account=view.account,
            actions=TRADE_ACTIONS,
            preview=preview,
            shown=None if preview is None else consumer_view.shown_preview(preview),
            error=error,
            notice=notice,
            asked=asked or {},
            **figures(view),
        )

    @get("/trade", include_in_schema=False, opt=who(CONSUMER))
    async def trade(request: Request[Any, Any, Any], done: int | None = DONE_SEQ) -> Response[str]:
        """交易 (a consumer, its own EP): sell, convert, redeem, each previewed first; `done`:
        the journal entry just applied, whose changes to its account the page shows."""
        session = web.account(request, CONSUMER)
        view = await view_of(web, session)
        return await trade_page(request, session, view, done=await done_line(web, session, done))

    @post("/trade", include_in_schema=False, status_code=200, opt=who(CONSUMER))
    async def trade_post(request: Request[Any, Any, Any]) -> Response[str]:
        """A consumer's sale, conversion or redemption of its own EP: step "preview" shows what
        it gives at the price now; step "confirm" commits exactly the EP previewed, if the
        amount shown is still what it gives."""
        session = web.account(request, CONSUMER)
        fields = await web.form(request, session)
        action, points = first(fields, "action"), first(fields, "points")[:80]
        asked = {"action": action, "points": points}
        view = await view_of(web, session)
        if action not in TRADE_ACTIONS:
            error = _("Choose sell, convert or redeem.")
            return await trade_page(request, session, view, 422, error=error, asked=asked)
        preview = consumer_view.trade_preview(
            action, points, view.ep_units, view.price, view.sell_keep
        )
        if isinstance(preview, ErrorCode):
            return await trade_page(
                request, session, view, 422, error=say(str(preview)), asked=asked
            )
        if first(fields, "step") != "confirm":
            return await trade_page(request, session, view, preview=preview, asked=asked)
        if first(fields, "shown_fen") != str(preview.receive_fen):
            notice = _("The price has moved: here is what it gives now. Confirm again.")
            return await trade_page(
                request, session, view, 409, preview=preview, notice=notice, asked=asked
            )
        _label, path = TRADE_ACTIONS[action]
        body = {"points": format_units(preview.units)}
        done = await act(web, session, path, {"user": session.name}, body, first(fields, "key"))
        if not done.ok:
            return await trade_page(request, session, view, 409, error=done.message, asked=asked)
        return web.redirect(f"/h5/trade?done={done.seq}")

    return [trade, trade_post]


def wallet_handlers(web: Web) -> list[HTTPRouteHandler]:
    """提现."""

    async def wallet_page(
        request: Request[Any, Any, Any],
        session: WebSession,
        after: int,
        status: int = 200,
        error: str | None = None,
        asked: dict[str, str] | None = None,
        done: dict[str, Any] | None = None,
    ) -> Response[str]:
        view = await view_of(web, session)
        found = await in_thread(
            lambda: queries.withdrawal_list(
                web.store, account=session.name, after=after, limit=WITHDRAWALS_ROWS
            )
        )
        return page(
            web,
            request,
            "h5/wallet.html",
            session,
            done_line=done,
            status=status,
            account=view.account,
            params=view.params,
            withdrawals=found["withdrawals"],
            next_after=found["next_after"],
            after=after,
            statuses=WITHDRAWAL_STATUS,
            methods=PAYEE_METHODS,
            error=error,
            asked=asked or {"method": "bank"},
        )

    @get("/wallet", include_in_schema=False, opt=who(CONSUMER, AGENT))
    async def wallet(
        request: Request[Any, Any, Any],
        after: int = Parameter(default=0, ge=0, le=queries.SEQ_MAX),
        done: int | None = DONE_SEQ,
    ) -> Response[str]:
        """提现 (a consumer or an agent, its own cash): withdraw, and its withdrawals' status;
        `done`: the withdraw entry just applied."""
        session = web.account(request, CONSUMER, AGENT)
        line = await done_line(web, session, done)
        return await wallet_page(request, session, after, done=line)

    @post("/wallet", include_in_schema=False, status_code=200, opt=who(CONSUMER, AGENT))
    async def withdraw(request: Request[Any, Any, Any]) -> Response[str]:
        """A withdrawal of the session's own cash to the payee it names (申请提现)."""
        session = web.account(request, CONSUMER, AGENT)
        fields = await web.form(request, session)
        asked = {
            name: first(fields, name)[:100]
            for name in ("amount", "method", "name", "account", "bank")
        }
        payee = {name: asked[name] for name in ("method", "name", "account")}
        if asked["method"] == "bank" or asked["bank"]:
            payee["bank"] = asked["bank"]
        key = first(fields, "key")
        path, field_name = WITHDRAW_ROUTES[session.role]
        body = {"id": withdrawal_id(session, key), "amount": asked["amount"], "payee": payee}
        done = await act(web, session, path, {field_name: session.name}, body, key)
        if not done.ok:
            return await wallet_page(request, session, 0, 422, error=done.message, asked=asked)
        return web.redirect(f"/h5/wallet?done={done.seq}")

    return [wallet, withdraw]


def invite_handlers(web: Web) -> list[HTTPRouteHandler]:
    """付款码 and 推广."""

    @get("/pay", include_in_schema=False, opt=who(CONSUMER))
    async def pay(request: Request[Any, Any, Any]) -> Response[str]:
        """付款码 (a consumer, for its own SP): a new one-use payment code each time the page
        opens, as a QR code and as digits (as the API's issue_code makes one)."""
        session = web.account(request, CONSUMER)
        view = await view_of(web, session)
        try:
            issued = web.api.codes.issue(session.name, session.session_id, CODE_TTL_S, None)
        except TooManyCodes:
            raise PageRefused(503, _("The ledger is busy: try again in a moment.")) from None
        groups = [issued.code[i : i + 4] for i in range(0, CODE_DIGITS, 4)]
        svg = consumer_view.qr_svg(issued.code, _("Payment code"))
        return page(
            web,
            request,
            "h5/pay.html",
            session,
            account=view.account,
            code=issued,
            code_groups=groups,
            qr=Markup(svg),
        )

    @get("/invite", include_in_schema=False, opt=who(CONSUMER))
    async def invite(
        request: Request[Any, Any, Any],
        after: int = Parameter(default=0, ge=0, le=queries.SEQ_MAX),
    ) -> Response[str]:
        """推广 (a consumer, its own): referral link and QR code, referrals two levels down,
        the commissions its statement holds (佣金明细), a cursor page at a time."""
        session = web.account(request, CONSUMER)
        link = referral_link(request, session.name)
        # both levels below it, first page of each (services/account_reads.py)
        levels = await engine_read(web, "referrals", session.name, (-1, -1), REFERRALS_ROWS)
        found = await in_thread(
            consumer_view.statement_page, web.store, session.name, after, STATEMENT_ROWS
        )
        return page(
            web,
            request,
            "h5/invite.html",
            session,
            link=link,
            qr=Markup(consumer_view.qr_svg(link, _("My referral link"))),
            levels=levels or [],
            commissions=[line for line in found["lines"] if line["commission"]],
            next_after=found["next_after"],
            after=after,
        )

    @get("/invite/poster.svg", include_in_schema=False, opt=who(CONSUMER))
    async def poster(request: Request[Any, Any, Any]) -> Response[str]:
        """推广海报 (a consumer, its own): an SVG poster with its referral QR code."""
        session = web.account(request, CONSUMER)
        link = referral_link(request, session.name)
        svg = consumer_view.qr_svg(link).replace(
            "<svg ", '<svg x="170" y="430" width="410" height="410" ', 1
        )
        text = web.env.get_template("h5/poster.svg.html").render(
            account=session.name,
            link=link,
            qr=Markup(svg),
        )
        return Response(text, media_type="image/svg+xml", headers=PAGE_HEADERS)

    return [pay, invite, poster]


def item_handlers(web: Web) -> list[HTTPRouteHandler]:
    """藏品."""

    async def items_page(
        request: Request[Any, Any, Any],
        session: WebSession,
        item: str,
        after: int,
        status: int = 200,
        error: str | None = None,
        done: int | None = None,
    ) -> Response[str]:
        view = await view_of(web, session)
        held = await in_thread(account_reads.items_held, web.store, session.name, after, ITEMS_ROWS)
        provenance = None
        if item:
            provenance = await in_thread(queries.provenance, web.store, item[:ITEM_CHARS_MAX])
            if provenance is None:
                error, status = _("No such item."), 404
            elif session.name not in {move["account"] for move in provenance["moves"]}:
                # As the API: only a consumer that held the item may read its provenance.
                raise PageRefused(403, _("Only a consumer that held this item may see it."))
        return page(
            web,
            request,
            "h5/items.html",
            session,
            status=status,
            held=held["items"],
            next_after=held["next_after"],
            after=after,
            provenance=provenance,
            lock_days=view.params["collectible_lock_days"],
            item_actions=ITEM_ACTIONS,
            error=error,
            # the gift just made, if it is one of this item's moves
            done_seq=done
            if provenance and done in {m["seq"] for m in provenance["moves"]}
            else None,
        )

    @get("/items", include_in_schema=False, opt=who(CONSUMER))
    async def items(
        request: Request[Any, Any, Any],
        item: str = Parameter(default="", max_length=ITEM_CHARS_MAX),
        after: int = Parameter(default=0, ge=0, le=queries.SEQ_MAX),
        done: int | None = DONE_SEQ,
    ) -> Response[str]:
        """藏品 (a consumer, its own): the collectibles it holds, and an item's provenance if
        it held that item (`done`: the gift just made)."""
        session = web.account(request, CONSUMER)
        return await items_page(request, session, item, after, done=done)

    @post("/items/gift", include_in_schema=False, status_code=200, opt=who(CONSUMER))
    async def gift(request: Request[Any, Any, Any]) -> Response[str]:
        """A consumer gives one of its own items to another consumer (转赠)."""
        session = web.account(request, CONSUMER)
        fields = await web.form(request, session)
        item, receiver = first(fields, "item")[:ITEM_CHARS_MAX], first(fields, "to")[:80]
        if not item or not receiver:
            error = _("Name the item and who receives it.")
            return await items_page(request, session, "", 0, 422, error=error)
        body = {"from": session.name, "to": receiver}
        done = await act(web, session, GIFT_ROUTE, {"item": item}, body, first(fields, "key"))
        if not done.ok:
            return await items_page(request, session, "", 0, 409, error=done.message)
        return web.redirect(f"/h5/items?item={quote(item, safe='')}&done={done.seq}")

    return [items, gift]


def risk_handlers(web: Web) -> list[HTTPRouteHandler]:
    """风险提示."""

    @get("/risk", include_in_schema=False, opt=who(CONSUMER, AGENT))
    async def risk(request: Request[Any, Any, Any]) -> Response[str]:
        """风险提示 (a consumer or an agent): how the price and the dividends really work, with
        the rates in force now."""
        session = web.account(request, CONSUMER, AGENT)
        view = await view_of(web, session)
        params = view.params
        percent = consumer_view.percent_text
        example_fen = Fen(10_000)  # ¥100.00 of displayed value
        return page(
            web,
            request,
            "h5/risk.html",
            session,
            fee=percent(params["sell_fee_rate"]),
            contribution=percent(params["contribution_rate"]),
            dividend=percent(params["dividend_rate"]),
            level_dividend=percent(params["level_dividend_rate"]),
            quota_multiple=params["quota_multiple"],
            exit_enabled=params["exit_enabled"],
            example_value=format_fen(example_fen),
            example_payout=format_fen(consumer_view.sale_of_value_fen(example_fen, view.sell_keep)),
        )

    return [risk]


def price_chart(days: list[dict[str, Any]], today: dict[str, Any]) -> dict[str, Any]:
    """An ECharts option: the price at each settlement, and now."""
    labels = [str(day["day"]) for day in days] + [_("Now")]
    prices = [day["price"] for day in days] + [today["price"]]
    return {
        "grid": {"left": 48, "right": 12, "top": 24, "bottom": 28},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": labels, "name": _("Trading day")},
        "yAxis": {"type": "value", "scale": True, "name": _("CNY per EP")},
        "series": [
            {"type": "line", "name": _("Price"), "data": prices, "showSymbol": len(prices) < 30}
        ],
    }
