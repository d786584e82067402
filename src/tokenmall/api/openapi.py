"""The request and response schemas of /openapi.json.

The handlers read raw JSON (strict, exactly as `replay` reads a line), so Litestar cannot infer
their bodies; this module adds them to the description it generates, from the same route table
the handlers use. Bodies are described as the rules accept them; the server itself answers
anything else with a problem (400/422), never by guessing.
"""

import copy
from typing import Any

from tokenmall.api.problems import PROBLEM_JSON
from tokenmall.api.resources import NOT_ONE_COMMAND, PAYMENT_CODE_OP, ROUTES, Route
from tokenmall.api.schemas import KEY_CHARS_MAX, Schema, schema_of

RESULT: Schema = {
    "type": "object",
    "required": ["seq", "outcome", "replayed"],
    "properties": {
        "seq": {"type": "integer", "description": "the command's journal entry"},
        "outcome": {"type": "string", "const": "ok"},
        "replayed": {
            "type": "boolean",
            "description": "true when an Idempotency-Key named an earlier identical command",
        },
    },
}
PROBLEM: Schema = {
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "the SPEC §4 error code, or an HTTP one"},
        "detail": {"type": "string"},
        "seq": {"type": ["integer", "null"], "description": "the journal entry, if any"},
    },
}
PAYMENT_CODE: Schema = {
    "type": "object",
    "required": ["code", "user", "expires_in", "expires_at", "max_amount"],
    "properties": {
        "code": {"type": "string", "description": "18 digits, to show as a barcode or QR code"},
        "user": {"type": "string"},
        "expires_in": {"type": "integer", "description": "seconds"},
        "expires_at": {"type": "string", "description": "UTC"},
        "max_amount": {"type": ["string", "null"]},
    },
}
RESULT_REF = "#/components/schemas/CommandResult"
IDEMPOTENCY_KEY: Schema = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retrying with the same key and the same command returns the first result",
    "schema": {"type": "string", "minLength": 1, "maxLength": KEY_CHARS_MAX},
}


BATCH_RESULT: Schema = {
    "type": "object",
    "properties": {
        "approved": {"type": "integer"},
        "refused": {"type": "integer"},
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "status": {"type": "integer", "description": "as if asked alone"},
                    "outcome": {"type": "string", "description": "ok, or the error code"},
                    "seq": {"type": ["integer", "null"]},
                },
            },
        },
    },
}


def body_schema(route: Route) -> Schema:
    properties = {name: schema_of(name, route.op) for name in route.body}
    if route.op not in NOT_ONE_COMMAND:  # not one ledger command: it has no op
        properties["op"] = {"type": "string", "const": route.op}
    return {
        "type": "object",
        "properties": properties,
        "required": list(route.required),
        "additionalProperties": False,
    }


def complete(generated: Schema) -> Schema:
    """The generated description with request bodies, results, problems and security."""
    schema = copy.deepcopy(generated)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(
        {"CommandResult": RESULT, "Problem": PROBLEM, "PaymentCode": PAYMENT_CODE}
    )
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    schema["security"] = [{"bearer": []}]
    paths: dict[str, Any] = schema.setdefault("paths", {})
    for route in ROUTES:
        path = route.path.replace(":str}", "}")
        operation = _command_operation(route.op, route.summary, route.path_fields)
        _describe_command(operation, body_schema(route), 201 if route.created else 200)
        if route.op == PAYMENT_CODE_OP:  # not a ledger command: no key, its own result
            operation["parameters"].remove(IDEMPOTENCY_KEY)
            content = operation["responses"]["201"]["content"]["application/json"]
            content["schema"] = {"$ref": "#/components/schemas/PaymentCode"}
            operation["responses"]["201"]["description"] = "The code, shown once"
        elif route.op in NOT_ONE_COMMAND:  # a batch: a result per command
            content = operation["responses"]["200"]["content"]["application/json"]
            content["schema"] = BATCH_RESULT
            operation["responses"]["200"]["description"] = "Each withdrawal's outcome, in order"
        paths.setdefault(path, {})[route.method.lower()] = operation
    operation = _command_operation("command", "One SPEC §4 command as JSON (admin)", ())
    command_body = {"type": "object", "required": ["op"], "properties": {"op": {"type": "string"}}}
    _describe_command(operation, command_body, 200)
    paths["/v1/commands"] = {"post": operation}
    for operations in paths.values():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "responses" in operation:
                _describe_problems(operation, writes=method != "get")
    return schema


def _command_operation(op: str, summary: str, path_fields: tuple[str, ...]) -> Schema:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": schema_of(name, op)}
        for name in path_fields
    ]
    name = "_".join([op, *path_fields]) if path_fields else op
    return {"summary": summary, "operationId": name, "parameters": parameters}


def _describe_command(operation: Schema, body: Schema, status: int) -> None:
    operation["requestBody"] = {
        "required": bool(body.get("required")),
        "content": {"application/json": {"schema": body}},
    }
    operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
    operation["responses"] = {
        str(status): {
            "description": "Committed (or the first result of a replayed key)",
            "content": {"application/json": {"schema": {"$ref": RESULT_REF}}},
        }
    }


READ_PROBLEMS = (
    ("400", "A query parameter is malformed or out of range"),
    ("401", "No token, or an unknown one"),
    ("403", "This token may not read that"),
    ("404", "No such account"),
    ("429", "Too many requests for this token; see Retry-After"),
    ("503", "The ledger's writer is not running"),
)
WRITE_PROBLEMS = (
    ("400", "Not one JSON object"),
    ("401", "No token, or an unknown one"),
    ("403", "This token may not do that (or a payment code was refused)"),
    ("404", "No such account or order"),
    ("409", "The rules rejected the command, or the key names another command"),
    ("413", "The body is over 64 KiB"),
    ("422", "A field is missing, unknown or malformed, or the rules found it invalid"),
    ("429", "Too many requests for this token; see Retry-After"),
    ("503", "The ledger cannot commit now; retry with the same Idempotency-Key"),
)


def _describe_problems(operation: Schema, writes: bool) -> None:
    problem = {"content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status, description in WRITE_PROBLEMS if writes else READ_PROBLEMS:
        operation["responses"].setdefault(status, {"description": description, **problem})
