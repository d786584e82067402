"""参数设置 (parameters): edit with validation and a simulated preview of the cost.

Every staff role sees the ledger's SPEC §2 parameters and may preview a change: the simulator
runs the same short scenario with the same seed under the ledger's parameters and the proposed
ones (services/param_preview.py) and the page shows both side by side. Only admin saves, and
only what was previewed: the preview carries the change and a digest of the parameters it was
made against; saving submits one journaled `set_params` command (SPEC §4, the same command as
PUT /v1/params), refused if the parameters changed since the preview.
"""

import hashlib
import json
from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler

from tokenmall.core.params import Params
from tokenmall.core.units import EP_DECIMALS, parse_scaled
from tokenmall.services import param_preview
from tokenmall.services.param_preview import Edit, PreviewBusy, Side
from tokenmall.web.i18n import N_
from tokenmall.web.i18n import gettext as _
from tokenmall.web.pages import PageRefused, Web, first, in_thread, who

CHANGES_CHARS_MAX = 4000
SEQ_DIGITS_MAX = 19  # a journal seq is a BIGINT

# Each parameter's name on the page (the words operators use, SPEC §2's meaning).
LABELS = {
    "initial_price": N_("Initial EP price"),
    "contribution_rate": N_("Pool contribution rate"),
    "buyer_share": N_("Buyer's share"),
    "referral_rates": N_("Referral rates (level 1, level 2)"),
    "total_issuance": N_("Total EP issuance"),
    "sell_fee_rate": N_("Sell fee rate"),
    "quota_multiple": N_("Dividend quota multiple"),
    "exit_enabled": N_("Forced exit"),
    "dividend_rate": N_("Daily dividend rate"),
    "level_dividend_rate": N_("Level dividend rate"),
    "level_thresholds": N_("Level thresholds (EP)"),
    "dividend_remainder": N_("Undistributed dividends go to"),
    "withdraw_min": N_("Minimum withdrawal"),
    "withdraw_daily_max": N_("Daily withdrawal limit"),
    "withdraw_review_above": N_("Review withdrawals above"),
    "agent_rates": N_("Agent rates (province, city, district)"),
    "collectible_lock_days": N_("Collectible lock days"),
}
CHOICE_LABELS = {
    "true": N_("on"),
    "false": N_("off"),
    "carry": N_("carry to the next day"),
    "pool": N_("the dividend pool"),
    "platform": N_("the platform"),
}
# What the simulator's figures are called on the page, and how each is shown.
FIGURES = {
    "platform_result": (N_("Platform's result (negative: the operator pays)"), "money"),
    "dividends": (N_("Dividends paid"), "money"),
    "contributions": (N_("Paid into the pool"), "money"),
    "cash_out": (N_("Cash paid to sellers and exits"), "money"),
    "final_price": (N_("Price at the end"), "price"),
    "pool": (N_("Dividend pool at the end"), "money"),
    "sp_outstanding": (N_("SP outstanding at the end"), "money"),
    "share_in_profit": (N_("Consumers in profit"), "share"),
    "orders": (N_("Orders"), "count"),
}
# The core's validation messages (core/params.py, core/rules/parameters.py) in words.
CORE_MESSAGES = {
    message: message
    for message in (
        N_("contribution_rate must be in (0, 1]"),
        N_("buyer_share must be in [0, 1]"),
        N_("referral_rates may have at most 2 entries"),
        N_("each referral rate must be in [0, 1]"),
        N_("buyer_share + sum(referral_rates) must be <= 1 (an order must never lower the price)"),
        N_("sell_fee_rate must be in [0, 1)"),
        N_("quota_multiple must be >= 0"),
        N_("dividend_rate must be in [0, 1]"),
        N_("level_dividend_rate must be in [0, 1]"),
        N_("level_thresholds may have at most 20 entries"),
        N_("level_thresholds must be > 0"),
        N_("level_thresholds must be strictly ascending"),
        N_("withdraw_min must be > 0"),
        N_("withdraw_daily_max must be >= withdraw_min"),
        N_("withdraw_review_above must be >= 0"),
        N_("agent_rates may have at most 3 entries"),
        N_("each agent rate must be in [0, 1)"),
        N_(
            "contribution_rate + sum(agent_rates) must be <= 1 (an order must never promise "
            "more than its amount)"
        ),
        N_("collectible_lock_days must be 0..3650"),
        N_("total_issuance below EP already issued"),
        N_("initial_price is fixed after start"),
        N_("a parameter SPEC v1 did not have"),
    )
}
# A value the core could not read at all: its message quotes the value, so say it by kind.
PARSE_HINTS = {
    "must be a decimal string": N_("Enter a decimal number like 0.30 (lists: comma-separated)."),
    "must be an EP amount string": N_(
        "Enter EP amounts with at most 8 decimals, separated by commas."
    ),
    "must be a money string": N_("Enter an amount in yuan with at most 2 decimals, like 1.00."),
    "must be a JSON integer": N_("Enter a whole number of days from 0 to 3650."),
    "must be true or false": N_("Choose on or off."),
    "must be one of carry": N_("Choose one of the listed places."),
}


def message_of(core_message: str) -> str:
    """A core validation message in the page's language (the core's English when unknown)."""
    known = CORE_MESSAGES.get(core_message)
    if known is not None:
        return _(known)
    for words, hint in PARSE_HINTS.items():
        if words in core_message:
            return _(hint)
    return core_message


def digest(params_json: dict[str, Any]) -> str:
    """Which parameter set a preview was made against (saving refuses another)."""
    canonical = json.dumps(params_json, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def shown(value: float, how: str) -> str:
    """A simulator figure as the page shows it (the simulator's CNY are rounded to the fen)."""
    if how == "money":
        return f"{value:,.2f}"
    if how == "price":
        return f"{value:,.4f}"
    if how == "share":
        return f"{value:.1%}"
    return f"{value:,.0f}"


def comparison(old: Side, new: Side) -> list[dict[str, Any]]:
    """The rows of the side-by-side table: figure, now, proposed, difference."""
    before, after = param_preview.compared(old), param_preview.compared(new)
    rows = []
    for key, (label, how) in FIGURES.items():
        change = after[key] - before[key]
        rows.append(
            {
                "key": key,
                "label": _(label),
                "old": shown(before[key], how),
                "new": shown(after[key], how),
                "change": ("+" if change > 0 else "") + shown(change, how) if change else "—",
                # The operator's own money: a lower result is what the change costs it.
                "costs": key == "platform_result" and change < 0,
            }
        )
    return rows


def chart_option(old: Side, new: Side, column: str, title: str) -> str:
    """An ECharts option of one daily column, both sides: the text of a hidden element that
    app.js draws (not a <script> data island: HTMX drops script tags from what it swaps in,
    allowScriptTags being off). The template escapes it; textContent gives the JSON back."""
    option = {
        "title": {"text": title, "textStyle": {"fontSize": 13}},
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "right": 0},
        "grid": {"left": 60, "right": 16, "top": 36, "bottom": 28},
        "xAxis": {"type": "category", "data": [row["day"] + 1 for row in old.rows]},
        "yAxis": {"type": "value", "scale": True},
        "series": [
            {
                "name": _("Current"),
                "type": "line",
                "showSymbol": False,
                "data": _column(old, column),
            },
            {
                "name": _("Proposed"),
                "type": "line",
                "showSymbol": False,
                "data": _column(new, column),
            },
        ],
    }
    return json.dumps(option, ensure_ascii=False)


def _column(side: Side, column: str) -> list[float]:
    return [round(float(row[column]), 4) for row in side.rows]


def preview_result(
    params_json: dict[str, Any], edit: Edit, before: Side, after: Side
) -> dict[str, Any]:
    """What the page shows of a preview, and what its save form carries."""
    return {
        "rows": comparison(before, after),
        "changes": [
            (
                name,
                param_preview.field_text(name, params_json[name]),
                param_preview.field_text(name, value),
            )
            for name, value in edit.overrides.items()
        ],
        "changes_json": json.dumps(edit.overrides, sort_keys=True),
        "base": digest(params_json),
        "price_chart": chart_option(before, after, "price", _("Price")),
        "result_chart": chart_option(
            before, after, "platform_result", _("Platform's cumulative result (CNY)")
        ),
    }


def issued_units(market: dict[str, Any], params_json: dict[str, Any]) -> int | None:
    """EP issued so far (the cap minus what is left), from the market read."""
    total = parse_scaled(params_json["total_issuance"], EP_DECIMALS)
    left = parse_scaled(market.get("unissued"), EP_DECIMALS)
    return None if total is None or left is None else total - left


def handlers(web: Web) -> list[HTTPRouteHandler]:
    async def ledger_params() -> tuple[dict[str, Any], int | None]:
        """The ledger's parameters and the EP issued so far (engine reads)."""
        params_json = await web.api.query("params")
        market = await web.api.query("market")
        if not isinstance(params_json, dict) or not isinstance(market, dict):
            raise PageRefused(503, _("The ledger is busy: try again in a moment."))
        return params_json, issued_units(market, params_json)

    def page(
        request: Request[Any, Any, Any],
        session: Any,
        params_json: dict[str, Any],
        edit: Edit,
        *,
        status: int = 200,
        fragment: bool = False,
        preview: dict[str, Any] | None = None,
        notice: str = "",
        saved_notice: str = "",
    ) -> Response[str]:
        template = "console/params_editor.html" if fragment else "console/params.html"
        return web.render(
            request,
            template,
            status=status,
            session=session,
            params=params_json,
            names=param_preview.NAMES,
            fixed=param_preview.FIXED,
            choices=param_preview.CHOICES,
            labels=LABELS,
            choice_labels=CHOICE_LABELS,
            edit=edit,
            errors={name: message_of(text) for name, text in edit.errors.items()},
            preview=preview,
            notice=notice,
            saved_notice=saved_notice,
            may_save=session.role == "admin",
            days=param_preview.PREVIEW_DAYS,
            seed=param_preview.PREVIEW_SEED,
        )

    @get("/params", include_in_schema=False, opt=who("admin", "finance", "support"))
    async def params_page(
        request: Request[Any, Any, Any], saved: str | None = None
    ) -> Response[str]:
        """参数设置: the ledger's parameters and the preview form (any staff role). `saved`:
        the journal seq of the set_params just saved, said on the page (a flash cookie cannot
        carry Chinese: cookies are latin-1)."""
        session = web.staff(request)
        params_json, _issued = await ledger_params()
        edit = Edit(param_preview.texts_of(params_json), {}, None, {})
        saved_notice = ""
        if saved is not None and saved.isdigit() and len(saved) <= SEQ_DIGITS_MAX:
            saved_notice = (
                _("Parameters saved (journal seq %(seq)s).", seq=int(saved))
                if int(saved) > 0
                else _("Nothing changed.")
            )
        return page(request, session, params_json, edit, saved_notice=saved_notice)

    @post(
        "/params/preview",
        include_in_schema=False,
        status_code=200,
        opt=who("admin", "finance", "support"),
    )
    async def preview(request: Request[Any, Any, Any]) -> Response[str]:
        """The cost of a change, simulated now and proposed (any staff role; changes nothing).
        HTMX gets the editor alone (always 200 so that it is swapped in); a plain form post
        gets the whole page (422 for a bad value, 503 when another preview runs)."""
        session = web.staff(request)
        fields = await web.form(request, session)
        fragment = request.headers.get("hx-request") == "true"
        params_json, issued = await ledger_params()
        typed = {name: first(fields, name) for name in param_preview.EDITABLE if name in fields}
        edit = param_preview.overrides_of(params_json, typed, issued)

        def answer(status: int, **extra: Any) -> Response[str]:
            code = 200 if fragment else status
            return page(
                request, session, params_json, edit, status=code, fragment=fragment, **extra
            )

        if edit.errors:
            return answer(422)
        if not edit.overrides or edit.new is None:
            return answer(200, notice=_("Nothing changed: edit a value first."))
        old = Params().with_overrides(params_json)
        try:
            sides = await in_thread(param_preview.run_preview, old, edit.new)
        except PreviewBusy:
            return answer(503, notice=_("Another preview is running: try again in a moment."))
        before, after = sides
        return answer(200, preview=preview_result(params_json, edit, before, after))

    @post("/params", include_in_schema=False, status_code=303, opt=who("admin"))
    async def save(request: Request[Any, Any, Any]) -> Response[str]:
        """Apply a previewed change: one set_params command (admin only)."""
        session = web.staff(request, "admin")
        fields = await web.form(request, session)
        params_json, issued = await ledger_params()
        changes = _changes(first(fields, "changes"))
        if first(fields, "base") != digest(params_json):
            raise PageRefused(
                409, _("The parameters changed since this preview: preview the change again.")
            )
        typed = {name: param_preview.field_text(name, value) for name, value in changes.items()}
        edit = param_preview.overrides_of(params_json, typed, issued)
        if edit.errors:
            shown_errors = "; ".join(message_of(text) for text in edit.errors.values())
            raise PageRefused(422, _("Not saved: %(why)s", why=shown_errors))
        if not edit.overrides:
            return web.redirect("/console/params?saved=0")
        done = await web.submit(
            session, {"op": "set_params", "params": edit.overrides}, first(fields, "key")
        )
        if not done.ok:
            raise PageRefused(422, _("Not saved: %(why)s", why=_refusal(done.message)))
        return web.redirect(f"/console/params?saved={done.seq}")

    return [params_page, preview, save]


def _changes(text: str) -> dict[str, Any]:
    """The previewed change a save form carries: a JSON object of editable parameters."""
    try:
        changes = json.loads(text[:CHANGES_CHARS_MAX]) if text else None
    except ValueError:
        changes = None
    if not isinstance(changes, dict) or not changes:
        raise PageRefused(400, _("Preview the change first, then save it."))
    if not set(changes) <= set(param_preview.EDITABLE):
        raise PageRefused(422, _("Not saved: %(why)s", why=_("initial_price is fixed after start")))
    return changes


def _refusal(message: str) -> str:
    """The ledger's refusal of set_params in words ("<detail> (invalid_params)")."""
    detail = message.removesuffix(" (invalid_params)")
    return message_of(detail) if detail != message else message
