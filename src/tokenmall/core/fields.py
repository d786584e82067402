"""Reading a command's fields: structural checks (invalid_command) and amounts (invalid_amount).

SPEC v2 §4 "Structure checks": every one is `invalid_command` and comes before any other error
of the command. The engine checks the id fields wherever they appear, before the op is looked
up (`check_ids`), then each op's required fields and nulls (`check_fields`); a rule checks
what is particular to it (one seller, a region, an edition) first thing, through the helpers
here.
"""

import re
from collections.abc import Mapping
from typing import Any

from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.units import (
    AMOUNT_CHARS_MAX,
    EP_DECIMALS,
    MONEY_DECIMALS,
    Fen,
    Units,
    parse_scaled,
)

Command = Mapping[str, Any]  # one command, as decoded from its JSON object

ID_CHARS_MAX = 64
GRANT_DAYS_MAX = 3650
ITEM_CHARS_MAX = 80
EDITION_MAX = 1_000_000
# The fields that hold ids (SPEC §4), checked wherever they appear, even where a command does
# not use them.
ID_FIELDS = frozenset(
    [
        "user",
        "referrer",
        "merchant",
        "agent",
        "account",
        "from",
        "to",
        "id",
        "order",
        "collection",
        "reference",
    ]
)
# 1-64 code points, each a letter or digit of any script or one of _ - . : @. Python's \w is
# exactly str.isalnum() or "_" (sre's word class for str patterns), so this is SPEC's rule.
_VALID_ID = re.compile(r"[\w.:@-]{1,64}").fullmatch
_DISTRICT = re.compile(r"[0-9]{6}").fullmatch  # ASCII digits only: [0-9], not \d
_REGION = re.compile(r"[0-9]{2}(?:[0-9]{2}){0,2}").fullmatch


def is_valid_id(value: object) -> bool:
    """An id of SPEC v2 §4 (what `check_ids` asks of each id field). One of letters and digits
    only, most of them, is judged by str.isalnum without the pattern."""
    return type(value) is str and (
        (len(value) <= ID_CHARS_MAX and value.isalnum()) or _VALID_ID(value) is not None
    )


def is_v1_id(value: object) -> bool:
    """An id of SPEC v1: any string of 1-64 characters."""
    return type(value) is str and 0 < len(value) <= ID_CHARS_MAX


def check_ids(command: Mapping[str, Any]) -> None:
    """Every id field present holds a valid id (SPEC v2 §4), whatever the op."""
    # Runs for every command: the keys are walked (no set built).
    for name in command:
        if name in ID_FIELDS and not is_valid_id(command[name]):
            raise Rejected(
                ErrorCode.INVALID_COMMAND,
                f"{name!r} must be an id: 1-64 letters, digits or _ - . : @",
            )


V1_ID_FIELDS = frozenset(["user", "referrer", "merchant", "id", "order"])


def check_v1_ids(command: Mapping[str, Any]) -> None:
    """SPEC v1's ids: any string of 1-64 characters, in the fields v1 had."""
    for name in V1_ID_FIELDS.intersection(command):
        if not is_v1_id(command[name]):
            raise Rejected(
                ErrorCode.INVALID_COMMAND, f"{name!r} must be a string of 1-64 characters"
            )


def check_fields(
    command: Mapping[str, Any], required: tuple[str, ...], known: tuple[str, ...]
) -> None:
    """The op's required fields are present, and none of its fields is JSON null."""
    for name in required:
        if name not in command:
            raise Rejected(ErrorCode.INVALID_COMMAND, f"missing field {name!r}")
    if None in command.values():  # seldom: then find whose it is (an extra field's is ignored)
        for name in known:
            if name in command and command[name] is None:
                raise Rejected(ErrorCode.INVALID_COMMAND, f"{name!r} is null")


def one_of(command: Mapping[str, Any], names: tuple[str, ...]) -> str:
    """The one of `names` that the command gives (a seller, a withdrawing account)."""
    given = [name for name in names if name in command]
    if len(given) != 1:
        raise Rejected(ErrorCode.INVALID_COMMAND, f"needs exactly one of {', '.join(names)}")
    return given[0]


def check_item(command: Mapping[str, Any]) -> str:
    item = command.get("item")
    if type(item) is not str or len(item) > ITEM_CHARS_MAX:
        raise Rejected(
            ErrorCode.INVALID_COMMAND, "'item' must be a string of at most 80 characters"
        )
    return item


def check_district(raw: object) -> str:
    """An order's region: a 6-digit GB/T 2260 area code."""
    if type(raw) is not str or _DISTRICT(raw) is None:
        raise Rejected(ErrorCode.INVALID_COMMAND, "'region' must be 6 ASCII digits")
    return raw


def check_region(raw: object) -> str:
    """An agent's region: a province (2 digits), city (4) or district (6)."""
    if type(raw) is not str or _REGION(raw) is None:
        raise Rejected(ErrorCode.INVALID_COMMAND, "'region' must be 2, 4 or 6 ASCII digits")
    return raw


def json_int(raw: object, low: int, high: int | None, what: str) -> int:
    """A JSON integer in [low, high] (not a bool, not 1.0), else invalid_command."""
    if type(raw) is not int or raw < low or (high is not None and raw > high):
        limit = f"{low}..{high}" if high is not None else f">= {low}"
        raise Rejected(ErrorCode.INVALID_COMMAND, f"{what} must be a JSON integer {limit}")
    return raw


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


# The largest amount whose "yuan.fen" string is within AMOUNT_CHARS_MAX: what `money_fen` could
# have read, for amounts given as integers (`Engine.order`).
FEN_MAX = 10 ** (AMOUNT_CHARS_MAX - 1) - 1


def positive_fen(amount_fen: Fen) -> Fen:
    """A positive money/SP amount given in fen (an int), as `money_fen` would accept it."""
    if type(amount_fen) is not int or not 0 < amount_fen <= FEN_MAX:  # a bool is not one
        raise Rejected(ErrorCode.INVALID_AMOUNT, f"not a positive money amount: {amount_fen!r} fen")
    return amount_fen


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
