"""Units, exact parsing and formatting (SPEC §1).

Money and SP are integers of fen (0.01 CNY); EP are integers of 1e-8 EP ("units"). A price is a
pair of integers `(fen, units)` meaning `fen / units` fen per unit: with `pool_fen / supply_units`
it is exact, and one CNY per EP is `(100, 10**8)`.
"""

from fractions import Fraction

FEN_PER_CNY = 100
UNITS_PER_EP = 10**8
MONEY_DECIMALS = 2
EP_DECIMALS = 8
# No real amount needs more characters; the limit also keeps int() parsing cheap.
AMOUNT_CHARS_MAX = 64

Price = tuple[int, int]
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


def parse_scaled(text: object, decimals: int) -> int | None:
    """A plain non-negative decimal string as an integer of 10**-decimals, or None if malformed.

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


def format_fen(fen: int) -> str:
    return format_scaled(fen, MONEY_DECIMALS)


def format_units(units: int) -> str:
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


def ceil_div(numerator: int, denominator: int) -> int:
    """Exact ceiling of a non-negative quotient."""
    return -(-numerator // denominator)
