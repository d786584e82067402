"""参数设置 (parameters): what a change of the SPEC §2 parameters would cost, before it is made.

The preview runs the simulator (sim.runner.run_job, the same code as `tokenmall simulate`) on
one short, fixed scenario twice, with the same seed: once with the ledger's parameters, once
with the proposed ones, so the difference between the two sides comes from the parameters,
not from luck. The scenario is a fresh platform (not the ledger's accounts): 30 days, about
300 consumers; a run takes well under a second on one core. One preview runs at a time per
server (PREVIEW_LOCK); a second one while it runs is refused with PreviewBusy, not queued.

Editing: the page's text fields become a set_params override (`overrides_of`), checked by
the core's own Params validation; each error is put next to the field it names.
"""

import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from tokenmall.core.engine import Engine
from tokenmall.core.errors import ParamsError
from tokenmall.core.params import Params
from tokenmall.sim.runner import Job, run_job
from tokenmall.sim.scenario import Arrivals, Orders, OrderValues, Scenario

PREVIEW_SEED = 20261201
PREVIEW_DAYS = 30
PREVIEW_ARRIVALS_PER_DAY = 10.0  # fixed: 300 consumers over the 30 days
LIST_ENTRIES_MAX = 20  # level_thresholds has at most 20; a longer list is refused unread
FIELD_CHARS_MAX = 400
LOCK_DAYS_DIGITS_MAX = 6

# The parameters as the page shows them, in SPEC §2's order. `initial_price` is fixed after
# start (set_params refuses it): shown, never edited.
FIXED = ("initial_price",)
LISTS = ("referral_rates", "level_thresholds", "agent_rates")
CHOICES = {"exit_enabled": ("true", "false"), "dividend_remainder": ("carry", "pool", "platform")}
NAMES = tuple(Params().as_json())
EDITABLE = tuple(name for name in NAMES if name not in FIXED)

PREVIEW_LOCK = threading.Lock()


class PreviewBusy(Exception):
    """Another preview is running on this server."""


def current_params(engine: Engine) -> dict[str, Any]:
    """The ledger's parameters in SPEC §2's JSON form (an engine read: ENGINE_QUERIES)."""
    return engine.params.as_json()


# --- editing -----------------------------------------------------------------------------


def field_text(name: str, value: Any) -> str:
    """A parameter's JSON value as the page's text field shows it (lists comma-separated)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _json_of(name: str, text: str) -> Any:
    """A text field as the JSON value set_params takes; the core judges it."""
    text = text.strip()[:FIELD_CHARS_MAX]
    if name in LISTS:
        items = [item.strip() for item in text.split(",")] if text else []
        return items[: LIST_ENTRIES_MAX + 1]  # one over: the core refuses "at most N"
    if name == "exit_enabled":
        return {"true": True, "false": False}.get(text, text)
    if name == "collectible_lock_days" and text.isdigit() and len(text) <= LOCK_DAYS_DIGITS_MAX:
        return int(text)  # anything else reaches the core as a string: "must be a JSON integer"
    return text


@dataclass(frozen=True)
class Edit:
    """A proposed change: the fields as typed, the overrides they make (only what differs from
    the ledger), the new parameter set if valid, and the errors by field ("" for the form)."""

    texts: dict[str, str]
    overrides: dict[str, Any]
    new: Params | None
    errors: dict[str, str]


def texts_of(params_json: dict[str, Any]) -> dict[str, str]:
    return {name: field_text(name, params_json[name]) for name in NAMES}


def overrides_of(
    current_json: dict[str, Any], fields: dict[str, str], issued_units: int | None = None
) -> Edit:
    """The page's fields against the ledger's parameters. A field not sent keeps its value.
    Errors are the core's (Params validation), each put next to the field it names; every
    field with an error goes back to the ledger's value and the rest is checked again, so all
    bad fields are named at once. `issued_units`: the EP issued so far, which set_params
    will not let total_issuance fall below (checked here too, to say it by the field)."""
    current = Params().with_overrides(current_json)
    texts = texts_of(current_json)
    for name in EDITABLE:
        if name in fields:
            texts[name] = fields[name][:FIELD_CHARS_MAX]
    proposed = {name: _json_of(name, texts[name]) for name in EDITABLE}
    errors: dict[str, str] = {}
    while True:
        trial = {name: value for name, value in proposed.items() if name not in errors}
        try:
            new = current.with_overrides(trial)
        except ParamsError as error:
            name = field_of(str(error))
            if name in errors:  # no field to take back: show it for the form
                name = ""
            errors[name] = str(error)
            if not name:
                return Edit(texts, {}, None, errors)
            continue
        break
    if issued_units is not None and new.total_issuance_units < issued_units:
        errors["total_issuance"] = "total_issuance below EP already issued"
    if errors:
        return Edit(texts, {}, None, errors)
    new_json = new.as_json()
    changed = {name: new_json[name] for name in EDITABLE if new_json[name] != current_json[name]}
    return Edit(texts, changed, new, {})


_NAME_PATTERN = re.compile(r"\b(" + "|".join(sorted(NAMES, key=len, reverse=True)) + r")\b")
_PLAIN_NAMES = {"each referral rate": "referral_rates", "each agent rate": "agent_rates"}


def field_of(message: str) -> str:
    """The parameter a core error is about: the first one it names ("" if none)."""
    for words, name in _PLAIN_NAMES.items():
        if message.startswith(words):
            return name
    found = _NAME_PATTERN.search(message)
    return found[1] if found else ""


# --- the preview -------------------------------------------------------------------------


def preview_scenario(params: Params) -> Scenario:
    """The short scenario both sides run: 10 new consumers a day for 30 days, each ordering on
    arrival and then about once every ten days (lognormal values around 100 CNY); half of them
    referred; the simulator's default behaviours, merchants and platform margin."""
    return Scenario(
        name="param-preview",
        days=PREVIEW_DAYS,
        params=params,
        description="参数预览: 30 days, 300 consumers",
        arrivals=Arrivals(kind="fixed", rate=PREVIEW_ARRIVALS_PER_DAY),
        orders=Orders(
            on_arrival=True,
            per_consumer_per_day=0.1,
            value=OrderValues(distribution="lognormal", median=100.0, sigma=0.8),
        ),
        params_overrides=params.as_json(),
    )


def preview_job(params: Params, seed: int = PREVIEW_SEED) -> Job:
    """The simulator's job for one side: run 0 of the seed, as `tokenmall simulate --runs 1`."""
    return Job(preview_scenario(params), {}, 0, np.random.SeedSequence(seed).spawn(1)[0])


@dataclass(frozen=True)
class Side:
    """One side of the preview: the simulator's run summary and its daily rows."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1]

    def total(self, column: str) -> float:
        return float(round(sum(row[column] for row in self.rows), 2))


def run_side(params: Params, seed: int = PREVIEW_SEED) -> Side:
    _point, _run, rows, summary = run_job(preview_job(params, seed))
    return Side(summary, rows)


def run_preview(old: Params, new: Params, seed: int = PREVIEW_SEED) -> tuple[Side, Side]:
    """Both sides (blocking: call it in a thread); PreviewBusy if one is already running."""
    if not PREVIEW_LOCK.acquire(blocking=False):
        raise PreviewBusy
    try:
        return run_side(old, seed), run_side(new, seed)
    finally:
        PREVIEW_LOCK.release()


# What the page compares, from the simulator's summary and rows: (key, label msgid, how).
COMPARED = (
    "platform_result",
    "dividends",
    "contributions",
    "cash_out",
    "final_price",
    "pool",
    "sp_outstanding",
    "share_in_profit",
    "orders",
)


def compared(side: Side) -> dict[str, float]:
    """The figures the page puts side by side (CNY, price, share, count)."""
    return {
        "platform_result": side.summary["platform_result"],
        "dividends": side.total("dividends"),
        "contributions": side.total("contributions"),
        "cash_out": side.total("cash_out"),
        "final_price": side.summary["final_price"],
        "pool": side.last["pool"],
        "sp_outstanding": side.last["sp_outstanding"],
        "share_in_profit": side.summary["share_in_profit"],
        "orders": float(side.summary["orders"]),
    }
