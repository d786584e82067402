"""Scenarios: SPEC parameters plus a population, read from TOML and checked field by field.

A scenario file has these tables (all optional but `[scenario]`; defaults in the dataclasses):

    [scenario]   name, days, description
    [params]     SPEC §2 overrides, exactly as in a params JSON file (strings for rates)
    [arrivals]   new consumers per day: kind = "poisson" (rate), "fixed" (exactly rate, rounded)
                 or "logistic" (start, peak, midpoint_day, steepness); collapse_day and
                 collapse_factor scale arrivals and orders from that day on (sales fall by
                 1 − factor)
    [orders]     on_arrival (every new consumer orders once on its first day), orders per
                 consumer per day (Poisson), order value distribution
                 ("fixed" value; "uniform" low, high; "lognormal" median, sigma), in CNY
    [referrals]  probability that a new consumer was referred by an earlier one
    [behaviours] shares of consumers (they sum to 1): hold, sell_at_multiple (sell everything
                 when the EP are worth target_multiple × the money put in), sell_on_stall
                 (sell everything when the price rose less than stall_rise over stall_days),
                 convert_and_spend (convert EP to SP and pay merchants in SP), redeem_goods;
                 and for everyone: spend_sp (the daily chance of spending one's SP at a
                 merchant), leave_on_stall (the daily chance of leaving while the price stalls),
                 leave_when_losing (the daily chance of leaving when one's returns are below
                 what one paid, after 30 days)
    [merchants]  count, accept_sp, sell_share (of its EP a merchant sells each day)
    [platform]   gross_margin (share of a cash sale the platform keeps before anything is paid
                 from it), goods_cost (share of a goods value the platform pays to deliver them)
    [agents]     districts (regional agents for a province, its cities and these districts;
                 their commissions, at the [params] agent_rates, come out of the margin)
    [withdrawals] chance (an account's daily chance of withdrawing the cash it is owed),
                 delay_days (until the platform pays a request)
    [collectibles] edition, value (CNY an item), chance (a consumer's daily chance of claiming
                 one for EP), cost (the share of the value the operator pays to deliver one)
    [[events]]   one-off days: kind = "sell" (that share of EP holders sells all) or "sp_run"
                 (that share of SP holders spends all their SP at merchants), day, share

Everything that is wrong is reported in one line naming the field (ScenarioError).
"""

import copy
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tokenmall.core.errors import ParamsError
from tokenmall.core.params import Params

DAYS_MAX = 3_650
RATE_MAX = 1_000_000.0  # consumers or orders per day; far beyond what one run can hold
FILE_BYTES_MAX = 1024 * 1024  # the shipped scenarios are 1-2 KiB


class ScenarioError(ValueError):
    """A scenario file that cannot be used: the message names the field."""


@dataclass(frozen=True)
class Arrivals:
    kind: str = "poisson"  # or "fixed", "logistic"
    rate: float = 20.0  # poisson: new consumers per day
    start: float = 5.0  # logistic: per day on day 0 ...
    peak: float = 100.0  # ... rising to this
    midpoint_day: float = 90.0
    steepness: float = 0.05
    collapse_day: int | None = None
    collapse_factor: float = 1.0  # arrivals and orders are multiplied by this from collapse_day

    def expected(self, day: int) -> float:
        """Expected new consumers on `day`."""
        if self.kind in ("poisson", "fixed"):
            base = self.rate
        else:
            curve = 1 / (1 + math.exp(-self.steepness * (day - self.midpoint_day)))
            base = self.start + (self.peak - self.start) * curve
        return base * self.activity(day)

    def activity(self, day: int) -> float:
        return (
            self.collapse_factor
            if self.collapse_day is not None and day >= self.collapse_day
            else 1.0
        )


@dataclass(frozen=True)
class OrderValues:
    distribution: str = "lognormal"  # "fixed", "uniform", "lognormal"
    value: float = 100.0  # fixed
    low: float = 10.0  # uniform
    high: float = 1_000.0
    median: float = 100.0  # lognormal
    sigma: float = 0.8


@dataclass(frozen=True)
class Orders:
    on_arrival: bool = False
    per_consumer_per_day: float = 0.1
    value: OrderValues = field(default_factory=OrderValues)


@dataclass(frozen=True)
class Behaviours:
    hold: float = 0.5
    sell_at_multiple: float = 0.2
    sell_on_stall: float = 0.1
    convert_and_spend: float = 0.1
    redeem_goods: float = 0.1
    target_multiple: float = 2.0
    stall_days: int = 7
    stall_rise: float = 0.01
    # Every consumer, whatever its kind: the chance a day that one holding SP (dividends come
    # as SP) spends all of it at a merchant, which calls the SP liability in; the chance a
    # day, while the price stalls, that one leaves and never orders again.
    spend_sp: float = 0.1
    leave_on_stall: float = 0.0
    # The daily chance that a consumer who has been there 30 days and would get back less than
    # it paid (its EP at what selling them pays) leaves, and never orders again.
    leave_when_losing: float = 0.0

    KINDS = ("hold", "sell_at_multiple", "sell_on_stall", "convert_and_spend", "redeem_goods")

    def shares(self) -> list[float]:
        return [getattr(self, kind) for kind in self.KINDS]


@dataclass(frozen=True)
class Merchants:
    count: int = 5
    accept_sp: bool = True
    # The share of its EP a merchant sells each day: merchants take SP, turn it into EP at
    # par and want cash for it (a sale pays the price less the fee).
    sell_share: float = 0.5


@dataclass(frozen=True)
class Platform:
    gross_margin: float = 0.35
    goods_cost: float = 0.65


@dataclass(frozen=True)
class Agents:
    """Regional agents (区域代理, SPEC v2 §10): `districts` districts, each consumer living in
    one, with an agent for the province, each city (10 districts a city) and each district;
    what they earn (the [params] agent_rates) is paid from the operator's margin."""

    districts: int = 0


@dataclass(frozen=True)
class Collectibles:
    """Digital collectibles (数字藏品, SPEC v2 §11): one collection of `edition` items worth
    `value` CNY each, issued on day 0; a consumer whose EP cover an item claims one with this
    daily chance (its EP are burned, as for goods). `cost`: the share of an item's value the
    operator pays to deliver it (a digital item: little)."""

    edition: int = 1_000
    value: float = 50.0
    chance: float = 0.0
    cost: float = 0.0


@dataclass(frozen=True)
class Withdrawals:
    """Cash owed (a sale's payout, a commission) leaves through withdrawals (提现, SPEC v2 §9):
    each day an account holding at least withdraw_min asks for all of it with this chance,
    and the platform pays each request delay_days later."""

    chance: float = 0.2
    delay_days: int = 3


@dataclass(frozen=True)
class Event:
    kind: str  # "sell": holders sell all their EP; "sp_run": SP holders spend all their SP
    day: int
    share: float  # of the holders (of EP, or of SP) who do so that day


EVENT_KINDS = ("sell", "sp_run")
# Tables whose fields a sweep may set (the [params] are swept by their own names).
SWEEPABLE_TABLES = (
    "arrivals",
    "orders",
    "referrals",
    "behaviours",
    "merchants",
    "platform",
    "agents",
    "withdrawals",
    "collectibles",
)


def _typed(text: str) -> object:
    """A swept value as TOML would read it (0.3, 12, true, "poisson"), else as text."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


@dataclass(frozen=True)
class Scenario:
    name: str
    days: int
    params: Params
    description: str = ""
    arrivals: Arrivals = field(default_factory=Arrivals)
    orders: Orders = field(default_factory=Orders)
    referral_probability: float = 0.5
    behaviours: Behaviours = field(default_factory=Behaviours)
    merchants: Merchants = field(default_factory=Merchants)
    platform: Platform = field(default_factory=Platform)
    agents: Agents = field(default_factory=Agents)
    withdrawals: Withdrawals = field(default_factory=Withdrawals)
    collectibles: Collectibles = field(default_factory=Collectibles)
    events: tuple[Event, ...] = ()
    params_overrides: dict[str, Any] = field(default_factory=dict)
    source_sha256: str = ""  # of the scenario file's bytes, for the record (empty: not a file)
    # The document it was read from: a sweep of a scenario field reads it again, changed, so
    # that every field is checked by the one parser (compare=False: a cache of the above).
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def with_setting(self, name: str, value: str) -> "Scenario":
        """The scenario with one setting changed (a sweep's point): a SPEC parameter by its
        name (`contribution_rate`), or a scenario field by table and key
        (`platform.gross_margin`, `arrivals.rate`, `orders.value.median`)."""
        if "." not in name:
            return self.with_param(name, value)
        table, *keys = name.split(".")
        if table not in SWEEPABLE_TABLES:
            raise ScenarioError(
                f"sweep {name}: a scenario field is one of {', '.join(SWEEPABLE_TABLES)} "
                "and its key, e.g. platform.gross_margin"
            )
        document = copy.deepcopy(self.document) or {"scenario": {"name": self.name}}
        document.setdefault("scenario", {})["days"] = self.days  # as run, if changed since
        document["params"] = dict(self.params_overrides)  # with any swept before this one
        node = document.setdefault(table, {})
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ScenarioError(f"sweep {name}: {key} is not a table")
        node[keys[-1]] = _typed(value)
        try:
            changed = scenario_of(document)
        except ScenarioError as error:
            raise ScenarioError(f"sweep {name}={value}: {error}") from None
        return replace(changed, source_sha256=self.source_sha256)

    def with_param(self, name: str, value: object) -> "Scenario":
        """The scenario with one SPEC parameter changed (a sweep's point). A list parameter
        (referral_rates, agent_rates) is given as JSON text: '["0.02", "0.01", "0"]'."""
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ScenarioError(f"sweep {name}: {value} is not a JSON list") from None
        overrides = {**self.params_overrides, name: value}
        try:
            params = Params().with_overrides(overrides)
        except ParamsError as error:
            raise ScenarioError(f"sweep {name}={value}: {error}") from None
        return replace(self, params=params, params_overrides=overrides)


def load_scenario(path: Path) -> Scenario:
    text = _read_text(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path}: not TOML: {error}") from None
    except RecursionError:  # tomllib recurses once per level of [ or {
        raise ScenarioError(f"{path}: nested too deeply to be a scenario") from None
    try:
        scenario = scenario_of(document)
    except ScenarioError as error:
        raise ScenarioError(f"{path}: {error}") from None
    return replace(scenario, source_sha256=hashlib.sha256(text.encode()).hexdigest())


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as stream:
            data = stream.read(FILE_BYTES_MAX + 1)  # /dev/zero would fill the memory
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such file") from None
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read: {error.strerror or error}") from None
    if len(data) > FILE_BYTES_MAX:
        raise ScenarioError(f"{path}: larger than {FILE_BYTES_MAX} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text") from None


def scenario_of(document: dict[str, Any]) -> Scenario:
    known = {"scenario", "params", "arrivals", "orders", "referrals", "behaviours", "merchants"}
    more = {"platform", "agents", "withdrawals", "collectibles", "events"}
    _no_unknown("the file", document, known | more)
    head = _table(document, "scenario")
    _no_unknown("[scenario]", head, {"name", "days", "description"})
    name = head.get("name")
    if not isinstance(name, str) or not name:
        raise ScenarioError("[scenario] name must be a non-empty string")
    days = _integer(head, "[scenario] days", "days", 1, DAYS_MAX, default=None)
    overrides = _table(document, "params", required=False)
    try:
        params = Params().with_overrides(overrides)
    except ParamsError as error:
        raise ScenarioError(f"[params]: {error}") from None
    orders_table = _table(document, "orders", required=False)
    referrals = _table(document, "referrals", required=False)
    _no_unknown("[referrals]", referrals, {"probability"})
    scenario = Scenario(
        name=name,
        days=days,
        params=params,
        description=_string(head, "[scenario] description", "description"),
        arrivals=_arrivals(_table(document, "arrivals", required=False)),
        orders=_orders(orders_table),
        referral_probability=_number(
            referrals, "[referrals] probability", "probability", 0, 1, 0.5
        ),
        behaviours=_behaviours(_table(document, "behaviours", required=False)),
        merchants=_merchants(_table(document, "merchants", required=False)),
        platform=_platform(_table(document, "platform", required=False)),
        agents=_agents(_table(document, "agents", required=False)),
        withdrawals=_withdrawals(_table(document, "withdrawals", required=False)),
        collectibles=_collectibles(_table(document, "collectibles", required=False)),
        events=_events(document.get("events", [])),
        params_overrides=dict(overrides),
        document=document,
    )
    for event in scenario.events:
        if event.day >= days:
            raise ScenarioError(f"[[events]] day {event.day} is past the last day ({days - 1})")
    return scenario


def _arrivals(table: dict[str, Any]) -> Arrivals:
    names = {f.name for f in fields(Arrivals)}
    _no_unknown("[arrivals]", table, names)
    kind = table.get("kind", "poisson")
    if kind not in ("poisson", "fixed", "logistic"):
        raise ScenarioError('[arrivals] kind must be "poisson", "fixed" or "logistic"')
    collapse_day = table.get("collapse_day")
    if collapse_day is not None:
        collapse_day = _integer(
            table, "[arrivals] collapse_day", "collapse_day", 0, DAYS_MAX, default=None
        )
    return Arrivals(
        kind=kind,
        rate=_number(table, "[arrivals] rate", "rate", 0, RATE_MAX, Arrivals.rate),
        start=_number(table, "[arrivals] start", "start", 0, RATE_MAX, Arrivals.start),
        peak=_number(table, "[arrivals] peak", "peak", 0, RATE_MAX, Arrivals.peak),
        midpoint_day=_number(table, "[arrivals] midpoint_day", "midpoint_day", 0, DAYS_MAX, 90.0),
        steepness=_number(table, "[arrivals] steepness", "steepness", 0, 10, Arrivals.steepness),
        collapse_day=collapse_day,
        collapse_factor=_number(table, "[arrivals] collapse_factor", "collapse_factor", 0, 1, 1.0),
    )


def _orders(table: dict[str, Any]) -> Orders:
    _no_unknown("[orders]", table, {"on_arrival", "per_consumer_per_day", "value"})
    on_arrival = table.get("on_arrival", False)
    if not isinstance(on_arrival, bool):
        raise ScenarioError("[orders] on_arrival must be true or false")
    value = table.get("value", {})
    if not isinstance(value, dict):
        raise ScenarioError("[orders] value must be a table")
    _no_unknown("[orders] value", value, {f.name for f in fields(OrderValues)})
    distribution = value.get("distribution", "lognormal")
    if distribution not in ("fixed", "uniform", "lognormal"):
        raise ScenarioError('[orders] value distribution must be "fixed", "uniform" or "lognormal"')
    where = "[orders] value"
    values = OrderValues(
        distribution=distribution,
        value=_number(value, f"{where} value", "value", 0.01, 1e9, OrderValues.value),
        low=_number(value, f"{where} low", "low", 0.01, 1e9, OrderValues.low),
        high=_number(value, f"{where} high", "high", 0.01, 1e9, OrderValues.high),
        median=_number(value, f"{where} median", "median", 0.01, 1e9, OrderValues.median),
        sigma=_number(value, f"{where} sigma", "sigma", 0, 5, OrderValues.sigma),
    )
    if values.low > values.high:
        raise ScenarioError(f"{where} low must not exceed high")
    rate = _number(table, "[orders] per_consumer_per_day", "per_consumer_per_day", 0, 100, 0.1)
    return Orders(on_arrival=on_arrival, per_consumer_per_day=rate, value=values)


def _behaviours(table: dict[str, Any]) -> Behaviours:
    _no_unknown("[behaviours]", table, {f.name for f in fields(Behaviours)})
    shares = {
        kind: _number(table, f"[behaviours] {kind}", kind, 0, 1, None)
        for kind in Behaviours.KINDS
        if kind in table
    }
    defaults = Behaviours()
    if shares:
        shares = {kind: shares.get(kind, 0.0) for kind in Behaviours.KINDS}
    else:
        shares = {kind: getattr(defaults, kind) for kind in Behaviours.KINDS}
    if not math.isclose(sum(shares.values()), 1.0, abs_tol=1e-9):
        raise ScenarioError(
            f"[behaviours] shares must sum to 1 (they sum to {sum(shares.values()):g})"
        )
    return Behaviours(
        **shares,
        target_multiple=_number(
            table, "[behaviours] target_multiple", "target_multiple", 1, 1000, 2.0
        ),
        stall_days=_integer(table, "[behaviours] stall_days", "stall_days", 1, DAYS_MAX, default=7),
        stall_rise=_number(table, "[behaviours] stall_rise", "stall_rise", 0, 10, 0.01),
        spend_sp=_number(table, "[behaviours] spend_sp", "spend_sp", 0, 1, defaults.spend_sp),
        leave_on_stall=_number(
            table, "[behaviours] leave_on_stall", "leave_on_stall", 0, 1, defaults.leave_on_stall
        ),
        leave_when_losing=_number(
            table,
            "[behaviours] leave_when_losing",
            "leave_when_losing",
            0,
            1,
            defaults.leave_when_losing,
        ),
    )


def _merchants(table: dict[str, Any]) -> Merchants:
    _no_unknown("[merchants]", table, {"count", "accept_sp", "sell_share"})
    accept = table.get("accept_sp", True)
    if not isinstance(accept, bool):
        raise ScenarioError("[merchants] accept_sp must be true or false")
    return Merchants(
        _integer(table, "[merchants] count", "count", 0, 10_000, default=5),
        accept,
        _number(table, "[merchants] sell_share", "sell_share", 0, 1, Merchants.sell_share),
    )


def _platform(table: dict[str, Any]) -> Platform:
    _no_unknown("[platform]", table, {"gross_margin", "goods_cost"})
    return Platform(
        gross_margin=_number(table, "[platform] gross_margin", "gross_margin", 0, 1, 0.35),
        goods_cost=_number(table, "[platform] goods_cost", "goods_cost", 0, 1, 0.65),
    )


DISTRICTS_MAX = 99 * 10  # 10 districts a city, cities 4401..4499 of one province


def _agents(table: dict[str, Any]) -> Agents:
    _no_unknown("[agents]", table, {"districts"})
    districts = _integer(table, "[agents] districts", "districts", 0, DISTRICTS_MAX, default=0)
    return Agents(districts)


def _collectibles(table: dict[str, Any]) -> Collectibles:
    _no_unknown("[collectibles]", table, {f.name for f in fields(Collectibles)})
    where = "[collectibles]"
    return Collectibles(
        edition=_integer(
            table, f"{where} edition", "edition", 1, 1_000_000, default=Collectibles.edition
        ),
        value=_number(table, f"{where} value", "value", 0.01, 1e9, Collectibles.value),
        chance=_number(table, f"{where} chance", "chance", 0, 1, Collectibles.chance),
        cost=_number(table, f"{where} cost", "cost", 0, 1, Collectibles.cost),
    )


def _withdrawals(table: dict[str, Any]) -> Withdrawals:
    _no_unknown("[withdrawals]", table, {"chance", "delay_days"})
    return Withdrawals(
        chance=_number(table, "[withdrawals] chance", "chance", 0, 1, Withdrawals.chance),
        delay_days=_integer(
            table, "[withdrawals] delay_days", "delay_days", 0, DAYS_MAX, default=3
        ),
    )


def _events(raw: object) -> tuple[Event, ...]:
    if not isinstance(raw, list):
        raise ScenarioError("[[events]] must be an array of tables")
    events = []
    for table in raw:
        if not isinstance(table, dict):
            raise ScenarioError("[[events]] must be an array of tables")
        _no_unknown("[[events]]", table, {"kind", "day", "share"})
        kind = table.get("kind")
        if kind not in EVENT_KINDS:
            raise ScenarioError('[[events]] kind must be "sell" or "sp_run"')
        day = _integer(table, "[[events]] day", "day", 0, DAYS_MAX, default=None)
        events.append(Event(kind, day, _number(table, "[[events]] share", "share", 0, 1, None)))
    return tuple(events)


def _table(document: dict[str, Any], name: str, required: bool = True) -> dict[str, Any]:
    if name not in document:
        if required:
            raise ScenarioError(f"missing table [{name}]")
        return {}
    table = document[name]
    if not isinstance(table, dict):
        raise ScenarioError(f"[{name}] must be a table")
    return table


def _string(table: dict[str, Any], where: str, key: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ScenarioError(f"{where} must be a string")
    return value


def _no_unknown(where: str, table: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r}")


def _number(
    table: dict[str, Any], where: str, key: str, low: float, high: float, default: float | None
) -> float:
    if key not in table:
        if default is None:
            raise ScenarioError(f"{where} is missing")
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{where} must be a number")
    if not low <= value <= high:
        raise ScenarioError(f"{where} must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _integer(
    table: dict[str, Any], where: str, key: str, low: int, high: int, default: int | None
) -> int:
    if key not in table:
        if default is None:
            raise ScenarioError(f"{where} is missing")
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where} must be an integer")
    if not low <= value <= high:
        raise ScenarioError(f"{where} must be between {low} and {high}, got {value}")
    return value
