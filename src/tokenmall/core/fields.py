"""Reading a command's fields: structural checks (invalid_command) and amounts (invalid_amount)."""

from collections.abc import Mapping
from typing import Any

from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.units import EP_DECIMALS, MONEY_DECIMALS, Fen, Units, parse_scaled

Command = Mapping[str, Any]  # one command, as decoded from its JSON object

ID_CHARS_MAX = 64
GRANT_DAYS_MAX = 3650


def require_id(command: Mapping[str, Any], field: str) -> str:
    value = command.get(field)
    if type(value) is not str or not 0 < len(value) <= ID_CHARS_MAX:
        raise Rejected(ErrorCode.INVALID_COMMAND, f"{field!r} must be a string of 1-64 characters")
    return value


def require_ids(command: Mapping[str, Any], first: str, second: str) -> tuple[str, str]:
    """Two required ids at once (an order's id and user: one call instead of two)."""
    one, two = command.get(first), command.get(second)
    if type(one) is not str or not 0 < len(one) <= ID_CHARS_MAX:
        raise Rejected(ErrorCode.INVALID_COMMAND, f"{first!r} must be a string of 1-64 characters")
    if type(two) is not str or not 0 < len(two) <= ID_CHARS_MAX:
        raise Rejected(ErrorCode.INVALID_COMMAND, f"{second!r} must be a string of 1-64 characters")
    return one, two


def optional_id(command: Mapping[str, Any], field: str) -> str | None:
    if field not in command:
        return None
    return require_id(command, field)


def require_present(command: Mapping[str, Any], *fields: str) -> None:
    for field in fields:
        if field not in command:
            raise Rejected(ErrorCode.INVALID_COMMAND, f"missing field {field!r}")


def money_fen(raw: object) -> Fen:
    """A positive money/SP amount string with at most 2 decimals, in fen."""
    fen = parse_scaled(raw, MONEY_DECIMALS)
    if not fen:
        raise Rejected(ErrorCode.INVALID_AMOUNT, f"not a positive money amount: {raw!r}")
    return fen


def points_units(raw: object, held_units: Units) -> Units:
    """A positive EP quantity string with at most 8 decimals, or "all" of what is held."""
    if raw == "all":
        if held_units <= 0:
            raise Rejected(ErrorCode.INVALID_AMOUNT, '"all" of an account holding no EP')
        return held_units
    units = parse_scaled(raw, EP_DECIMALS)
    if not units:
        raise Rejected(ErrorCode.INVALID_AMOUNT, f"not a positive EP quantity: {raw!r}")
    return units


def grant_days(raw: object) -> int:
    if type(raw) is not int or not 1 <= raw <= GRANT_DAYS_MAX:
        raise Rejected(ErrorCode.INVALID_AMOUNT, f"days must be an integer 1..3650, got {raw!r}")
    return raw
