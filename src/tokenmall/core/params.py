"""Parameters of SPEC §2: parsing from JSON, validation, and their canonical JSON form."""

import dataclasses
import reprlib
from collections.abc import Callable, Mapping
from fractions import Fraction
from itertools import pairwise
from typing import Any, Literal, cast

from tokenmall.core.errors import ParamsError
from tokenmall.core.units import (
    EP_DECIMALS,
    MONEY_DECIMALS,
    UNITS_PER_EP,
    ZERO_FEN,
    Fen,
    Units,
    format_fen,
    format_units,
    parse_fraction,
    parse_scaled,
)

RemainderMode = Literal["carry", "pool", "platform"]
REMAINDER_MODES: tuple[RemainderMode, ...] = ("carry", "pool", "platform")
REFERRAL_LEVELS_MAX = 2
AGENT_LEVELS_MAX = 3  # province, city, district
LOCK_DAYS_MAX = 3650
WITHDRAW_MIN_FEN = Fen(100)  # ¥1.00
WITHDRAW_DAILY_MAX_FEN = Fen(5_000_000)  # ¥50,000.00
LEVELS_MAX = 20
ZERO = Fraction(0)
ONE = Fraction(1)
# A bad value is quoted in the error, cut short: a 1 MiB string or a list nested 900 deep would
# make a one-line error unreadable (and a plain repr of deeper nesting raises RecursionError).
_QUOTE = reprlib.Repr()
_QUOTE.maxstring = _QUOTE.maxother = 80
_QUOTE.maxlevel = 3


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Params:
    """One valid parameter set. Rates are exact fractions; EP quantities are integer units."""

    initial_price: Fraction = Fraction(1)  # CNY per EP
    contribution_rate: Fraction = Fraction(3, 10)
    buyer_share: Fraction = Fraction(7, 10)
    referral_rates: tuple[Fraction, ...] = (ZERO, ZERO)
    total_issuance_units: Units = 100_000_000 * UNITS_PER_EP
    sell_fee_rate: Fraction = Fraction(1, 10)
    quota_multiple: Fraction = Fraction(2)
    exit_enabled: bool = True
    dividend_rate: Fraction = Fraction(2, 10)
    level_dividend_rate: Fraction = Fraction(1, 10)
    level_thresholds_units: tuple[Units, ...] = tuple(
        ep * UNITS_PER_EP
        for ep in (100, 300, 1000, 3000, 10000, 30000, 100000, 300000, 1000000, 3000000)
    )
    dividend_remainder: RemainderMode = "carry"
    # SPEC v2 §2: withdrawals (§9), regional agents (§10), collectibles (§11). Money in fen.
    withdraw_min_fen: Fen = WITHDRAW_MIN_FEN
    withdraw_daily_max_fen: Fen = WITHDRAW_DAILY_MAX_FEN
    withdraw_review_above_fen: Fen = ZERO_FEN
    agent_rates: tuple[Fraction, ...] = (ZERO, ZERO, ZERO)
    collectible_lock_days: int = 30

    def __post_init__(self) -> None:
        _validate(self)

    def with_overrides(self, overrides: object) -> "Params":
        """A new parameter set with the JSON overrides applied; ParamsError if any is invalid."""
        if not isinstance(overrides, Mapping):
            raise ParamsError("params must be a JSON object")
        changes: dict[str, Any] = {}
        for name, raw in overrides.items():
            parser = _PARSERS.get(name)
            if parser is None:
                raise ParamsError(f"unknown parameter {_QUOTE.repr(name)}")
            field, value = parser(name, raw)
            changes[field] = value
        return dataclasses.replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        """The parameters in the JSON form that `with_overrides` accepts."""
        return {
            "initial_price": fraction_text(self.initial_price),
            "contribution_rate": fraction_text(self.contribution_rate),
            "buyer_share": fraction_text(self.buyer_share),
            "referral_rates": [fraction_text(rate) for rate in self.referral_rates],
            "total_issuance": format_units(self.total_issuance_units),
            "sell_fee_rate": fraction_text(self.sell_fee_rate),
            "quota_multiple": fraction_text(self.quota_multiple),
            "exit_enabled": self.exit_enabled,
            "dividend_rate": fraction_text(self.dividend_rate),
            "level_dividend_rate": fraction_text(self.level_dividend_rate),
            "level_thresholds": [format_units(units) for units in self.level_thresholds_units],
            "dividend_remainder": self.dividend_remainder,
            "withdraw_min": format_fen(self.withdraw_min_fen),
            "withdraw_daily_max": format_fen(self.withdraw_daily_max_fen),
            "withdraw_review_above": format_fen(self.withdraw_review_above_fen),
            "agent_rates": [fraction_text(rate) for rate in self.agent_rates],
            "collectible_lock_days": self.collectible_lock_days,
        }


def fraction_text(value: Fraction) -> str:
    """A fraction that came from a decimal string, written back as a plain decimal."""
    scale = 0
    while (value * 10**scale).denominator != 1:
        scale += 1
    scaled = int(value * 10**scale)
    if scale == 0:
        return str(scaled)
    whole, part = divmod(scaled, 10**scale)
    return f"{whole}.{part:0{scale}d}"


def _decimal(name: str, raw: object) -> Fraction:
    value = parse_fraction(raw)
    if value is None:
        raise ParamsError(f'{name} must be a decimal string like "0.30", got {_QUOTE.repr(raw)}')
    return value


def _ep_units(name: str, raw: object) -> Units:
    units = parse_scaled(raw, EP_DECIMALS)
    if units is None:
        raise ParamsError(
            f"{name} must be an EP amount string with at most 8 decimals, got {_QUOTE.repr(raw)}"
        )
    return units


def _money_fen(name: str, raw: object) -> Fen:
    fen = parse_scaled(raw, MONEY_DECIMALS)
    if fen is None:
        raise ParamsError(
            f'{name} must be a money string with at most 2 decimals like "1.00", '
            f"got {_QUOTE.repr(raw)}"
        )
    return fen


def _string_list(name: str, raw: object) -> list[object]:
    if not isinstance(raw, list):
        raise ParamsError(f"{name} must be a JSON array of decimal strings, got {_QUOTE.repr(raw)}")
    return cast(list[object], raw)


def _parse_decimal(name: str, raw: object) -> tuple[str, object]:
    return name, _decimal(name, raw)


def _parse_referral_rates(name: str, raw: object) -> tuple[str, object]:
    return name, tuple(_decimal(name, item) for item in _string_list(name, raw))


def _parse_total_issuance(name: str, raw: object) -> tuple[str, object]:
    return "total_issuance_units", _ep_units(name, raw)


def _parse_thresholds(name: str, raw: object) -> tuple[str, object]:
    return "level_thresholds_units", tuple(
        _ep_units(name, item) for item in _string_list(name, raw)
    )


def _parse_money(name: str, raw: object) -> tuple[str, object]:
    return f"{name}_fen", _money_fen(name, raw)


def _parse_lock_days(name: str, raw: object) -> tuple[str, object]:
    if type(raw) is not int or not 0 <= raw <= LOCK_DAYS_MAX:
        raise ParamsError(f"{name} must be a JSON integer 0..3650, got {_QUOTE.repr(raw)}")
    return name, raw


def _parse_exit_enabled(name: str, raw: object) -> tuple[str, object]:
    if not isinstance(raw, bool):
        raise ParamsError(f"{name} must be true or false, got {_QUOTE.repr(raw)}")
    return name, raw


def _parse_remainder(name: str, raw: object) -> tuple[str, object]:
    if raw not in REMAINDER_MODES:
        raise ParamsError(f"{name} must be one of carry, pool, platform, got {_QUOTE.repr(raw)}")
    return name, raw


_PARSERS: dict[str, Callable[[str, object], tuple[str, object]]] = {
    "initial_price": _parse_decimal,
    "contribution_rate": _parse_decimal,
    "buyer_share": _parse_decimal,
    "referral_rates": _parse_referral_rates,
    "total_issuance": _parse_total_issuance,
    "sell_fee_rate": _parse_decimal,
    "quota_multiple": _parse_decimal,
    "exit_enabled": _parse_exit_enabled,
    "dividend_rate": _parse_decimal,
    "level_dividend_rate": _parse_decimal,
    "level_thresholds": _parse_thresholds,
    "dividend_remainder": _parse_remainder,
    "withdraw_min": _parse_money,
    "withdraw_daily_max": _parse_money,
    "withdraw_review_above": _parse_money,
    "agent_rates": _parse_referral_rates,
    "collectible_lock_days": _parse_lock_days,
}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ParamsError(message)


def _validate(params: Params) -> None:
    _require(params.initial_price > 0, "initial_price must be > 0")
    _require(ZERO < params.contribution_rate <= ONE, "contribution_rate must be in (0, 1]")
    _require(ZERO <= params.buyer_share <= ONE, "buyer_share must be in [0, 1]")
    _require(
        len(params.referral_rates) <= REFERRAL_LEVELS_MAX,
        "referral_rates may have at most 2 entries",
    )
    _require(
        all(ZERO <= rate <= ONE for rate in params.referral_rates),
        "each referral rate must be in [0, 1]",
    )
    _require(
        params.buyer_share + sum(params.referral_rates, ZERO) <= ONE,
        "buyer_share + sum(referral_rates) must be <= 1 (an order must never lower the price)",
    )
    _require(ZERO <= params.sell_fee_rate < ONE, "sell_fee_rate must be in [0, 1)")
    _require(params.quota_multiple >= ZERO, "quota_multiple must be >= 0")
    _require(ZERO <= params.dividend_rate <= ONE, "dividend_rate must be in [0, 1]")
    _require(ZERO <= params.level_dividend_rate <= ONE, "level_dividend_rate must be in [0, 1]")
    thresholds = params.level_thresholds_units
    _require(len(thresholds) <= LEVELS_MAX, "level_thresholds may have at most 20 entries")
    _require(all(units > 0 for units in thresholds), "level_thresholds must be > 0")
    _require(
        all(low < high for low, high in pairwise(thresholds)),
        "level_thresholds must be strictly ascending",
    )
    _require(params.dividend_remainder in REMAINDER_MODES, "dividend_remainder is invalid")
    _require(params.withdraw_min_fen > 0, "withdraw_min must be > 0")
    _require(
        params.withdraw_daily_max_fen >= params.withdraw_min_fen,
        "withdraw_daily_max must be >= withdraw_min",
    )
    _require(params.withdraw_review_above_fen >= 0, "withdraw_review_above must be >= 0")
    _require(len(params.agent_rates) <= AGENT_LEVELS_MAX, "agent_rates may have at most 3 entries")
    _require(
        all(ZERO <= rate < ONE for rate in params.agent_rates),
        "each agent rate must be in [0, 1)",
    )
    _require(
        params.contribution_rate + sum(params.agent_rates, ZERO) <= ONE,
        "contribution_rate + sum(agent_rates) must be <= 1 (an order must never promise more "
        "than its amount)",
    )
    _require(
        0 <= params.collectible_lock_days <= LOCK_DAYS_MAX,
        "collectible_lock_days must be 0..3650",
    )


Ratio = tuple[int, int]


def _ratio(value: Fraction) -> Ratio:
    return (value.numerator, value.denominator)


class Rates:
    """The rates of a Params as integer (numerator, denominator) pairs, for the hot paths."""

    __slots__ = (
        "agent",
        "buyer_share",
        "contribution",
        "dividend",
        "level_dividend",
        "quota_multiple",
        "referral",
        "sell_keep",
    )

    def __init__(self, params: Params) -> None:
        self.contribution = _ratio(params.contribution_rate)
        self.buyer_share = _ratio(params.buyer_share)
        self.referral = [_ratio(rate) for rate in params.referral_rates]
        self.sell_keep = _ratio(ONE - params.sell_fee_rate)
        self.quota_multiple = _ratio(params.quota_multiple)
        self.dividend = _ratio(params.dividend_rate)
        self.level_dividend = _ratio(params.level_dividend_rate)
        # Province, city, district; a missing entry is 0 (SPEC §10).
        self.agent = [_ratio(rate) for rate in params.agent_rates]
        self.agent += [(0, 1)] * (AGENT_LEVELS_MAX - len(self.agent))
