"""JSON Schemas of the fields a resource endpoint's body may hold, and the check that holds a
body to them. The same schemas go into /openapi.json, so what the description promises is what
the server enforces: a body that breaks them is refused with 422 before it reaches the ledger
(it is not journaled). What only the rules can judge (an unknown user, too few points, a zero
amount) is the ledger's to reject, and is journaled as rejected, as SPEC §7 lists errors.
"""

import re
from typing import Any

from tokenmall.core.fields import EDITION_MAX, GRANT_DAYS_MAX, ID_CHARS_MAX, ITEM_CHARS_MAX
from tokenmall.core.units import AMOUNT_CHARS_MAX
from tokenmall.payouts.payee import (
    ACCOUNT_PATTERN,
    BANK_CHARS_MAX,
    METHODS,
    NAME_CHARS_MAX,
    parse_payee,
)
from tokenmall.services.payment_codes import CODE_DIGITS, TTL_MAX_S, TTL_MIN_S

Schema = dict[str, Any]
KEY_CHARS_MAX = 200  # an Idempotency-Key; the ledger stores it scoped: "<token id>/<key>"
REASON_CHARS_MAX = 200  # a rejection's reason
BATCH_APPROVE_MAX = 500  # withdrawals approved by one request

ID: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": ID_CHARS_MAX,
    # Python's \w: a letter or digit of any script, or _ (SPEC v2 §4).
    "pattern": r"^[\w.:@-]+$",
    "description": "1-64 letters or digits of any script, or _ - . : @",
}
MONEY: Schema = {
    "type": "string",
    "maxLength": AMOUNT_CHARS_MAX,
    "pattern": r"^[0-9]+(\.[0-9]{1,2})?$",
    "description": "CNY (or SP) with at most 2 decimals, as a string; more than zero",
    "examples": ["100.00"],
}
POINTS: Schema = {
    "type": "string",
    "maxLength": AMOUNT_CHARS_MAX,
    "pattern": r"^([0-9]+(\.[0-9]{1,8})?|all)$",
    "description": 'EP with at most 8 decimals, as a string, or "all"',
    "examples": ["1.5", "all"],
}
FIELD_SCHEMAS: dict[str, Schema] = {
    "user": ID,
    "merchant": ID,
    "referrer": ID,
    "id": ID,
    "order": ID,
    "amount": MONEY,
    "points": POINTS,
    "pay": {"type": "string", "enum": ["cash", "stable"], "default": "cash"},
    "days": {"type": "integer", "minimum": 1, "maximum": GRANT_DAYS_MAX},
    "payment_id": {
        **ID,
        "pattern": r"^[0-9A-Za-z_.:@-]+$",
        "description": "the payment provider's transaction number; each is credited once",
        "examples": ["4200001234202611301234567890"],
    },
    "payment_code": {
        "type": "string",
        "pattern": rf"^[0-9]{{{CODE_DIGITS}}}$",
        "description": "the consumer's payment code (付款码), for a merchant charging SP",
    },
    "max_amount": {**MONEY, "description": "the most the code may pay (CNY of SP)"},
    "expires_in": {
        "type": "integer",
        "minimum": TTL_MIN_S,
        "maximum": TTL_MAX_S,
        "default": 60,
        "description": "seconds the code is valid",
    },
    "params": {
        "type": "object",
        "description": "SPEC §2 parameters to change (any but initial_price)",
    },
    # SPEC v2
    "agent": ID,
    "account": ID,
    "from": ID,
    "to": ID,
    "collection": ID,
    "reference": {**ID, "description": "the payment channel's transfer number"},
    "item": {"type": "string", "minLength": 1, "maxLength": ITEM_CHARS_MAX},
    "reason": {
        "type": "string",
        "minLength": 1,
        "maxLength": REASON_CHARS_MAX,
        "description": "why (kept in the journal with the command)",
    },
    "region": {
        "type": "string",
        "pattern": r"^[0-9]{6}$",
        "description": "the GB/T 2260 district code the order was sold in",
        "examples": ["441902"],
    },
    "until": {"type": "integer", "minimum": 0, "maximum": 10**9, "description": "last day"},
    "edition": {"type": "integer", "minimum": 1, "maximum": EDITION_MAX},
    "value": {**MONEY, "description": "CNY of EP an item costs"},
    "payee": {
        "type": "object",
        "description": "where the money goes (收款账户); kept in the journal with the request",
        "properties": {
            "method": {"type": "string", "enum": list(METHODS)},
            "name": {"type": "string", "minLength": 1, "maxLength": NAME_CHARS_MAX},
            "account": {
                "type": "string",
                "pattern": ACCOUNT_PATTERN,
                "description": "a bank card, phone number, e-mail or WeChat openid",
            },
            "bank": {
                "type": "string",
                "maxLength": BANK_CHARS_MAX,
                "description": "the bank's name (开户行), for method bank only",
            },
        },
        "required": ["method", "name", "account"],
        "additionalProperties": False,
        "examples": [
            {"method": "bank", "name": "张三", "account": "6222020200001234567", "bank": "工商银行"}
        ],
    },
    "ids": {
        "type": "array",
        "items": ID,
        "minItems": 1,
        "maxItems": BATCH_APPROVE_MAX,
        "uniqueItems": True,
        "description": "the withdrawals to approve",
    },
}

# A field whose schema depends on the op: an agent's region may be a province or a city.
OP_FIELD_SCHEMAS: dict[tuple[str, str], Schema] = {
    ("register_agent", "region"): {
        "type": "string",
        "pattern": r"^[0-9]{2}([0-9]{2}){0,2}$",
        "description": "a GB/T 2260 province (2 digits), city (4) or district (6) code",
        "examples": ["44", "4419", "441902"],
    },
}


def schema_of(name: str, op: str) -> Schema:
    return OP_FIELD_SCHEMAS.get((op, name)) or FIELD_SCHEMAS[name]


# Fields SPEC calls amounts: a bad one is invalid_amount, not invalid_command.
AMOUNT_FIELDS = frozenset({"amount", "points", "days", "max_amount", "value"})

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "object": (dict,),
    "array": (list,),
}


def field_error(name: str, value: object, op: str) -> str | None:
    """Why `value` does not fit the schema of field `name` of `op`, or None."""
    schema = schema_of(name, op)
    kind = schema["type"]
    if type(value) not in JSON_TYPES[kind]:  # a bool is not an integer here
        return f"{name!r} must be a JSON {kind}"
    if isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            return f"{name!r} has the wrong length"
        if "pattern" in schema and not re.fullmatch(schema["pattern"][1:-1], value):
            return f"{name!r} is malformed: {schema.get('description', schema['pattern'])}"
        if "enum" in schema and value not in schema["enum"]:
            return f"{name!r} must be one of {', '.join(schema['enum'])}"
    if isinstance(value, list):
        return _array_error(name, value, schema)
    if name == "payee":
        try:
            parse_payee(value)
        except ValueError as error:
            return f"'payee': {error}"
    if isinstance(value, int) and not schema["minimum"] <= value <= schema["maximum"]:
        return f"{name!r} must be {schema['minimum']}..{schema['maximum']}"
    return None


def _array_error(name: str, value: list[Any], schema: Schema) -> str | None:
    if not schema["minItems"] <= len(value) <= schema["maxItems"]:
        return f"{name!r} holds {schema['minItems']}-{schema['maxItems']} items"
    items = schema["items"]
    for item in value:
        if type(item) is not str or not items["minLength"] <= len(item) <= items["maxLength"]:
            return f"each of {name!r} must be an id"
        if not re.fullmatch(items["pattern"][1:-1], item):
            return f"each of {name!r} must be an id: {items['description']}"
    if schema.get("uniqueItems") and len(set(value)) != len(value):
        return f"{name!r} names an item twice"
    return None
