"""Units, exact parsing and formatting (SPEC §1).

Money and SP are integers of fen (0.01 CNY), `Fen`; EP are integers of 1e-8 EP ("units"),
`Units`. A price is a pair `(fen, units)` meaning `fen / units` fen per unit, `Price`: with
`pool_fen / supply_units` it is exact, and one CNY per EP is `(FEN_PER_CNY, UNITS_PER_EP)`.

`Fen` and `Units` are distinct types for mypy, so that fen passed where units are expected (or a
pair of plain ints where a price is) is a type error; at run time they are plain ints and cost
nothing. `Fen(x)` and `Units(x)` are function calls at run time: hot paths get their Fen and Units
from typed fields, parameters and arithmetic instead (below), never by calling them.
"""

from fractions import Fraction
from typing import TYPE_CHECKING, Final, Literal, NewType, overload

if TYPE_CHECKING:
    # What mypy sees (none of it runs): int subclasses whose arithmetic keeps the unit wherever
    # the result has one, so the rules' integer formulas type-check as written, with no casts
    # (a cast is a call at run time). Multiplying or dividing by a plain int (a rate's numerator
    # or denominator, a count) keeps the unit; fen times units is FenUnits, which divided by
    # units is fen and by fen units (`units * pool_fen // supply_units` is Fen); fen plus or
    # minus units is a plain int, which no Fen or Units field or parameter takes. The overloads
    # naming the other unit overlap the plain-int ones on purpose: the first that matches wins.

    class Fen(int):
        """Money, SP or quota: an integer of fen (0.01 CNY)."""

        def __new__(cls, fen: int, /) -> "Fen": ...
        @overload
        def __add__(self, other: "Units", /) -> int: ...  # type: ignore[overload-overlap]
        @overload
        def __add__(self, other: int, /) -> "Fen": ...
        def __add__(self, other: int, /) -> int: ...
        def __radd__(self, other: int, /) -> "Fen": ...
        @overload
        def __sub__(self, other: "Units", /) -> int: ...  # type: ignore[overload-overlap]
        @overload
        def __sub__(self, other: int, /) -> "Fen": ...
        def __sub__(self, other: int, /) -> int: ...
        def __rsub__(self, other: int, /) -> "Fen": ...
        @overload
        def __mul__(self, other: "Units", /) -> "FenUnits": ...  # type: ignore[overload-overlap]
        @overload
        def __mul__(self, other: int, /) -> "Fen": ...
        def __mul__(self, other: int, /) -> int: ...
        def __rmul__(self, other: int, /) -> "Fen": ...
        def __floordiv__(self, other: int, /) -> "Fen": ...
        def __neg__(self) -> "Fen": ...
        def __pos__(self) -> "Fen": ...
        def __abs__(self) -> "Fen": ...

    class Units(int):
        """EP: an integer of 1e-8 EP."""

        def __new__(cls, units: int, /) -> "Units": ...
        @overload
        def __add__(self, other: Fen, /) -> int: ...  # type: ignore[overload-overlap]
        @overload
        def __add__(self, other: int, /) -> "Units": ...
        def __add__(self, other: int, /) -> int: ...
        def __radd__(self, other: int, /) -> "Units": ...
        @overload
        def __sub__(self, other: Fen, /) -> int: ...  # type: ignore[overload-overlap]
        @overload
        def __sub__(self, other: int, /) -> "Units": ...
        def __sub__(self, other: int, /) -> int: ...
        def __rsub__(self, other: int, /) -> "Units": ...
        @overload
        def __mul__(self, other: Fen, /) -> "FenUnits": ...  # type: ignore[overload-overlap]
        @overload
        def __mul__(self, other: int, /) -> "Units": ...
        def __mul__(self, other: int, /) -> int: ...
        def __rmul__(self, other: int, /) -> "Units": ...
        def __floordiv__(self, other: int, /) -> "Units": ...
        def __neg__(self) -> "Units": ...
        def __pos__(self) -> "Units": ...
        def __abs__(self) -> "Units": ...

    class FenUnits(int):
        """Fen times units: an intermediate of price arithmetic, never stored."""

        def __add__(self, other: int, /) -> "FenUnits": ...
        def __radd__(self, other: int, /) -> "FenUnits": ...
        def __sub__(self, other: int, /) -> "FenUnits": ...
        def __rsub__(self, other: int, /) -> "FenUnits": ...
        def __mul__(self, other: int, /) -> "FenUnits": ...
        def __rmul__(self, other: int, /) -> "FenUnits": ...
        @overload
        def __floordiv__(self, other: Units, /) -> Fen: ...
        @overload
        def __floordiv__(self, other: Fen, /) -> Units: ...
        @overload
        def __floordiv__(self, other: int, /) -> int: ...
        def __floordiv__(self, other: int, /) -> int: ...
        def __neg__(self) -> "FenUnits": ...

else:
    Fen = NewType("Fen", int)
    Units = NewType("Units", int)

FEN_PER_CNY: Final = Fen(100)
UNITS_PER_EP: Final = Units(10**8)
MONEY_DECIMALS: Final = 2
EP_DECIMALS: Final = 8
# No real amount needs more characters; the limit also keeps int() parsing cheap.
AMOUNT_CHARS_MAX = 64
# Zero as a Fen and as Units, for initial balances (a constant costs nothing, a call does).
ZERO_FEN: Final = Fen(0)
ZERO_UNITS: Final = Units(0)

# (fen, units): a tuple of plain ints, or (units, fen), is not a Price. A plain tuple, not a
# NamedTuple: the engine builds one for every command, and a NamedTuple's constructor is a call.
Price = tuple[Fen, Units]
_POWERS_OF_TEN: list[int] = [10**exponent for exponent in range(EP_DECIMALS + 1)]


def _decimal_digits(text: object) -> tuple[str, str] | None:
    """The whole and fraction digits of a plain decimal string ("12.5" -> ("12", "5")).

    str.partition and isdigit are a third faster than a regular expression here; isascii rules
    out other scripts' digits.
    """
    if type(text) is not str or len(text) > AMOUNT_CHARS_MAX:
        return None
    whole, dot, fraction = text.partition(".")
    if not (whole.isdigit() and whole.isascii()):
        return None
    if dot and not (fraction.isdigit() and fraction.isascii()):
        return None
    return whole, fraction


@overload
def parse_scaled(text: object, decimals: Literal[2]) -> Fen | None: ...
@overload
def parse_scaled(text: object, decimals: Literal[8]) -> Units | None: ...
@overload
def parse_scaled(text: object, decimals: int) -> int | None: ...
def parse_scaled(text: object, decimals: int) -> int | None:
    """A plain non-negative decimal string as an integer of 10**-decimals, or None if malformed:
    Fen with MONEY_DECIMALS, Units with EP_DECIMALS.

    Zero is returned as 0; callers decide whether zero is allowed. (The checks of
    _decimal_digits, written out: every order parses an amount, and a call costs as much.)
    """
    if type(text) is not str or len(text) > AMOUNT_CHARS_MAX:
        return None
    whole, dot, fraction = text.partition(".")
    if not (whole.isdigit() and whole.isascii()):
        return None
    if dot and not (fraction.isdigit() and fraction.isascii() and len(fraction) <= decimals):
        return None
    return int(whole + fraction) * _POWERS_OF_TEN[decimals - len(fraction)]


def parse_fraction(text: object) -> Fraction | None:
    """A plain non-negative decimal string of any precision as an exact Fraction, or None."""
    digits = _decimal_digits(text)
    if digits is None:
        return None
    whole, fraction = digits
    return Fraction(int(whole + fraction), 10 ** len(fraction))


def format_scaled(value: int, decimals: int) -> str:
    """An integer of 10**-decimals as a fixed-point string ("12.34")."""
    sign = "-" if value < 0 else ""
    whole, fraction = divmod(abs(value), 10**decimals)
    return f"{sign}{whole}.{fraction:0{decimals}d}"


def format_fen(fen: Fen) -> str:
    return format_scaled(fen, MONEY_DECIMALS)


def format_units(units: Units) -> str:
    return format_scaled(units, EP_DECIMALS)


def price_cny_scaled(price: Price, decimals: int) -> int:
    """The price in CNY per EP, times 10**decimals, rounded half-up (SPEC §1: display only)."""
    fen, units = price
    # fen/units fen per unit = fen * 10**8 / (units * 100) CNY per EP.
    scale: int = 10**decimals
    numerator = fen * UNITS_PER_EP * scale
    denominator = units * FEN_PER_CNY
    return (2 * numerator + denominator) // (2 * denominator)


def format_price(price: Price, decimals: int = EP_DECIMALS) -> str:
    return format_scaled(price_cny_scaled(price, decimals), decimals)


@overload
def ceil_div(numerator: "FenUnits", denominator: Units) -> Fen: ...
@overload
def ceil_div(numerator: "FenUnits", denominator: Fen) -> Units: ...
@overload
def ceil_div(numerator: int, denominator: int) -> int: ...
def ceil_div(numerator: int, denominator: int) -> int:
    """Exact ceiling of a non-negative quotient."""
    return -(-numerator // denominator)
