"""The merchant cashier (商家收银) at /shop/: a merchant who came by a login link.

- 收银 `/shop/`: take an SP payment by the consumer's payment code (付款码, 被扫) and an amount,
  exactly as the API's POST /v1/orders does for a merchant token; the SP and cash balances.
- 今日流水 `/shop/takings`: the payments taken since the last daily settlement (日结).
- 钱包 `/shop/wallet`: redeem SP to EP, sell EP (the payout after the fee shown before
  confirming), withdraw cash to a payee, and the merchant's withdrawals.

Every command is the API route's own (api/resources.py ROUTES): its body checked by the same
schema, its permission by the same rule, an order by the same order_problem, then committed
through web.submit. The merchant is always the session's account: an id in a form is ignored.
"""

import hashlib
import re
import secrets
from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler

from tokenmall.api.problems import Problem
from tokenmall.api.resources import Route
from tokenmall.core.errors import ErrorCode
from tokenmall.core.units import MONEY_DECIMALS, format_fen, parse_scaled
from tokenmall.payouts.payee import METHODS, parse_payee
from tokenmall.services import consumer_view, merchant_view, queries
from tokenmall.services.merchant_view import MerchantView
from tokenmall.services.payment_codes import CODE_DIGITS
from tokenmall.services.web_sessions import WebSession
from tokenmall.web.i18n import N_
from tokenmall.web.i18n import gettext as _
from tokenmall.web.pages import (
    ERROR_MESSAGES,
    PAYEE_METHOD_NAMES,
    WITHDRAWAL_STATUS_NAMES,
    PageRefused,
    Web,
    api_route,
    first,
    in_thread,
    submit_as_api,
    who,
)

WITHDRAWALS_SHOWN = 20  # a page of the merchant's withdrawals
POINTS_CHARS_MAX = 30  # an EP amount typed in the sell form
METHOD_NAMES = PAYEE_METHOD_NAMES
STATUS_NAMES = WITHDRAWAL_STATUS_NAMES
# Refusals the pages explain in their own words (the rest: pages.ERROR_MESSAGES), by the code
# the redirect carries: a page's result is shown from the ledger or the code, never from text
# a request brought.
BAD_CODE, BAD_PAYEE = "payment_code_format", "payee"
MESSAGES = {
    "insufficient_stable": N_("Not enough SP."),
    BAD_PAYEE: N_("Check the payee: the name, the account (no spaces) and, for a card, the bank."),
}
CASHIER_MESSAGES = {
    **MESSAGES,
    "insufficient_stable": N_(
        "The customer does not have enough SP for this amount. The code is used: ask for a new one."
    ),
    "payment_code_refused": N_(
        "The payment code was refused (used, expired, or not valid): ask the customer to "
        "show a new one."
    ),
    BAD_CODE: N_("A payment code is 18 digits."),
}
CODE_PARAM = re.compile(r"[a-z_]{1,40}")
DONE_ACTIONS = ("redeem", "sell", "withdraw")


ORDER = api_route("/v1/orders")
REDEEM = api_route("/v1/merchants/{merchant:str}/redeem")
SELL = api_route("/v1/merchants/{merchant:str}/sell")
WITHDRAW = api_route("/v1/merchants/{merchant:str}/withdrawals")


def refusal_text(code: str | None, messages: dict[str, str]) -> str | None:
    """What a page says of a refusal code a redirect brought (None: no refusal)."""
    if code is None:
        return None
    if CODE_PARAM.fullmatch(code) is None:
        return _(ERROR_MESSAGES["invalid_command"])
    known = messages.get(code) or ERROR_MESSAGES.get(code)
    return f"{_(known)} ({code})" if known else _("Refused (%(code)s).", code=code)


def command_id(prefix: str, session: WebSession, key: str | None) -> str:
    """An order's or a withdrawal's id: the same for the same form (a double click names the
    same command), different for every other form and session."""
    if not key:
        return f"{prefix}-{secrets.token_hex(12)}"
    digest = hashlib.sha256(f"{session.session_id}/{key}".encode()).hexdigest()
    return f"{prefix}-{digest[:24]}"


def money_text(text: str) -> str | None:
    """A typed amount as the API's money string ("12.5" -> "12.50"), or None if it is not a
    positive amount with at most 2 decimals."""
    fen = parse_scaled(text.replace(",", "").replace("¥", "").strip(), MONEY_DECIMALS)
    return format_fen(fen) if fen else None


def code_digits(text: str) -> str | None:
    """A payment code as typed or scanned (spaces and dashes allowed), or None."""
    digits = "".join(char for char in text if char not in " -")
    return digits if len(digits) == CODE_DIGITS and digits.isascii() and digits.isdigit() else None


async def view_of(web: Web, session: WebSession) -> MerchantView:
    found = await web.api.query("merchant_view", session.name)
    if isinstance(found, Problem):
        raise PageRefused(503, _(ERROR_MESSAGES["unavailable"]))
    if found is None:
        raise PageRefused(404, _(ERROR_MESSAGES["unknown_account"]))
    return found  # type: ignore[no-any-return]


def seq_param(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() and len(text) <= 19 else None


def handlers(web: Web) -> list[HTTPRouteHandler]:
    @get("/", include_in_schema=False, opt=who("merchant"))
    async def cashier(
        request: Request[Any, Any, Any], paid: str | None = None, refused: str | None = None
    ) -> Response[str]:
        """收银台 (the merchant's own session): the charge form, its result, the balances."""
        session = web.account(request, "merchant")
        view = await view_of(web, session)
        seq = seq_param(paid)
        result = None
        if seq is not None:
            result = await in_thread(merchant_view.payment, web.store, session.name, seq)
        return web.render(
            request,
            "shop/cashier.html",
            session=session,
            account=view.account,
            result=result,
            refusal=refusal_text(refused, CASHIER_MESSAGES),
        )

    @post("/charge", include_in_schema=False, status_code=303, opt=who("merchant"))
    async def charge(request: Request[Any, Any, Any]) -> Response[str]:
        """Take an SP payment by payment code (the merchant's own session; any merchant id in
        the form is ignored)."""
        session = web.account(request, "merchant")
        fields = await web.form(request, session)
        key = first(fields, "key") or None
        code = code_digits(first(fields, "code"))
        amount = money_text(first(fields, "amount"))
        if code is None:
            return Web.redirect(f"/shop/?refused={BAD_CODE}")
        if amount is None:
            return Web.redirect("/shop/?refused=invalid_amount")
        body = {
            "id": command_id("pay", session, key),
            "amount": amount,
            "pay": "stable",
            "merchant": session.name,
            "payment_code": code,
        }
        done = await submit_as_api(web, session, ORDER, body, {}, key)
        if not done.ok or done.seq is None:
            return Web.redirect(f"/shop/?refused={done.code}")
        return Web.redirect(f"/shop/?paid={done.seq}")

    @get("/takings", include_in_schema=False, opt=who("merchant"))
    async def takings(request: Request[Any, Any, Any]) -> Response[str]:
        """今日流水 (the merchant's own session): the payments since the last settlement."""
        session = web.account(request, "merchant")
        day = await in_thread(merchant_view.takings, web.store, session.name)
        return web.render(request, "shop/takings.html", session=session, day=day)

    @get("/wallet", include_in_schema=False, opt=who("merchant"))
    async def wallet(
        request: Request[Any, Any, Any],
        sell: str | None = None,
        after: str | None = None,
        done: str | None = None,
        seq: str | None = None,
        refused: str | None = None,
    ) -> Response[str]:
        """钱包 (the merchant's own session): balances, redeem, sell with its preview, withdraw
        and the withdrawals; the result of the last of those, read from the ledger."""
        session = web.account(request, "merchant")
        view = await view_of(web, session)
        preview: dict[str, str] | None = None
        preview_error = None
        points = (sell or "").strip()[:POINTS_CHARS_MAX]
        if points:
            found = merchant_view.sell_preview(view, points)
            if isinstance(found, ErrorCode):
                preview_error = refusal_text(str(found), MESSAGES)
            else:
                preview = consumer_view.shown_preview(found)
        after_seq = seq_param(after) or 0
        withdrawals = await in_thread(
            lambda: queries.withdrawal_list(
                web.store, account=session.name, after=after_seq, limit=WITHDRAWALS_SHOWN
            )
        )
        notice = await done_text(web, session, done, seq_param(seq))
        return web.render(
            request,
            "shop/wallet.html",
            session=session,
            account=view.account,
            preview=preview,
            preview_error=preview_error,
            points=points,
            withdrawals=withdrawals,
            methods=[(method, METHOD_NAMES[method]) for method in METHODS],
            status_names=STATUS_NAMES,
            notice=notice,
            refusal=refusal_text(refused, MESSAGES),
        )

    @post("/redeem", include_in_schema=False, status_code=303, opt=who("merchant"))
    async def redeem(request: Request[Any, Any, Any]) -> Response[str]:
        """SP to EP at par (商家等值兑换, the merchant's own session)."""
        return await wallet_action(web, request, "redeem", REDEEM)

    @post("/sell", include_in_schema=False, status_code=303, opt=who("merchant"))
    async def sell_points(request: Request[Any, Any, Any]) -> Response[str]:
        """Sell EP back to the platform (回购, the merchant's own session), as previewed."""
        return await wallet_action(web, request, "sell", SELL)

    @post("/withdraw", include_in_schema=False, status_code=303, opt=who("merchant"))
    async def withdraw(request: Request[Any, Any, Any]) -> Response[str]:
        """Request a withdrawal of cash to a payee (申请提现, the merchant's own session)."""
        return await wallet_action(web, request, "withdraw", WITHDRAW)

    return [cashier, charge, takings, wallet, redeem, sell_points, withdraw]


async def wallet_action(
    web: Web, request: Request[Any, Any, Any], action: str, chosen: Route
) -> Response[str]:
    """Submit a wallet command for the session's merchant; back to the wallet, which says
    what it did (from the ledger) or why not."""
    session = web.account(request, "merchant")
    fields = await web.form(request, session)
    key = first(fields, "key") or None
    built = wallet_body(action, fields, session, key)
    if isinstance(built, str):
        return Web.redirect(f"/shop/wallet?refused={built}")
    done = await submit_as_api(web, session, chosen, built, {"merchant": session.name}, key)
    if not done.ok or done.seq is None:
        return Web.redirect(f"/shop/wallet?refused={done.code}")
    return Web.redirect(f"/shop/wallet?done={action}&seq={done.seq}")


async def done_text(
    web: Web, session: WebSession, action: str | None, seq: int | None
) -> str | None:
    """What a wallet command did, from the merchant's own statement line of its entry."""
    if action not in DONE_ACTIONS or seq is None:
        return None
    line = await in_thread(consumer_view.line_at, web.store, session.name, seq)
    if line is None or line["op"] != LINE_OPS[action]:
        return None
    changes = line["changes"]
    if action == "redeem":
        return _(
            "Redeemed %(amount)s SP for %(ep)s EP.",
            amount=unsigned(changes.get("sp")),
            ep=unsigned(changes.get("ep")),
        )
    if action == "sell":
        return _("Sold: %(cash)s added to your cash.", cash=unsigned(changes.get("cash")))
    return _("Withdrawal of %(amount)s requested.", amount=unsigned(changes.get("withdrawing")))


LINE_OPS = {"redeem": "merchant_redeem", "sell": "sell", "withdraw": "withdraw"}


def unsigned(change: object) -> str:
    """A statement change ("+12.34", "-1.00") without its sign."""
    return str(change or "0").lstrip("+-")


def wallet_body(
    action: str, fields: dict[str, list[str]], session: WebSession, key: str | None
) -> dict[str, Any] | str:
    """The body a wallet form makes (the API route's fields), or the refusal code of what is
    wrong in it before anything is submitted."""
    if action == "sell":
        return {"points": first(fields, "points")[:POINTS_CHARS_MAX]}
    amount = money_text(first(fields, "amount"))
    if amount is None:
        return "invalid_amount"
    if action == "redeem":
        return {"amount": amount}
    payee = {
        "method": first(fields, "method"),
        "name": first(fields, "name"),
        "account": first(fields, "account").replace(" ", ""),
    }
    if payee["method"] == "bank":
        payee["bank"] = first(fields, "bank")
    try:
        parse_payee(payee)
    except ValueError:
        return BAD_PAYEE
    return {"id": command_id("wd", session, key), "amount": amount, "payee": payee}
