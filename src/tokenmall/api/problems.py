"""RFC 9457 problem details carrying SPEC's error codes, and the HTTP status for each."""

import json
from dataclasses import dataclass
from typing import Any

from litestar import Response

from tokenmall.core.errors import ErrorCode
from tokenmall.ledger.ledger import DUPLICATE_PAYMENT, IDEMPOTENCY_CONFLICT

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://tokenmall.dev/problems/"  # names the problem; not fetched by anything

STATUS_OF_CODE: dict[str, int] = {
    ErrorCode.INVALID_COMMAND: 422,
    ErrorCode.UNKNOWN_OP: 422,
    ErrorCode.INVALID_AMOUNT: 422,
    ErrorCode.INVALID_PAYMENT: 422,
    ErrorCode.INVALID_PARAMS: 422,
    ErrorCode.UNKNOWN_USER: 404,
    ErrorCode.UNKNOWN_MERCHANT: 404,
    ErrorCode.UNKNOWN_ORDER: 404,
    ErrorCode.UNKNOWN_REFERRER: 409,
    ErrorCode.DUPLICATE_ACCOUNT: 409,
    ErrorCode.DUPLICATE_ORDER: 409,
    ErrorCode.INSUFFICIENT_STABLE: 409,
    ErrorCode.INSUFFICIENT_POINTS: 409,
    ErrorCode.ISSUANCE_EXHAUSTED: 409,
    ErrorCode.NOT_REFUNDABLE: 409,
    ErrorCode.REFUND_WINDOW_CLOSED: 409,
    ErrorCode.POINTS_ALREADY_USED: 409,
    IDEMPOTENCY_CONFLICT: 409,
    DUPLICATE_PAYMENT: 409,
    # SPEC v2: what names nothing is 404; a step the state does not allow now is 409
    ErrorCode.UNKNOWN_ACCOUNT: 404,
    ErrorCode.UNKNOWN_AGENT: 404,
    ErrorCode.UNKNOWN_WITHDRAWAL: 404,
    ErrorCode.UNKNOWN_COLLECTION: 404,
    ErrorCode.UNKNOWN_ITEM: 404,
    ErrorCode.BELOW_MINIMUM: 422,
    ErrorCode.ACCOUNT_FROZEN: 409,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.DUPLICATE_WITHDRAWAL: 409,
    ErrorCode.INSUFFICIENT_CASH: 409,
    ErrorCode.OVER_DAILY_LIMIT: 409,
    ErrorCode.REGION_TAKEN: 409,
    ErrorCode.DUPLICATE_COLLECTION: 409,
    ErrorCode.SOLD_OUT: 409,
    ErrorCode.NOT_OWNER: 409,
    ErrorCode.ALREADY_USED: 409,
    ErrorCode.LOCKED: 409,
}
Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Problem:
    """An error answer, ready to send either through Litestar or straight over ASGI."""

    status: int
    body: bytes
    headers: Headers = ()  # WWW-Authenticate on 401, Allow on 405, Retry-After on 429/503

    def response(self) -> Response[bytes]:
        return Response(
            content=self.body,
            status_code=self.status,
            media_type=PROBLEM_JSON,
            headers=dict(self.headers),
        )


def make_problem(
    status: int, code: str, detail: str, headers: Headers = (), **extra: Any
) -> Problem:
    body = {"type": TYPE_BASE + code, "title": code, "status": status, "code": code}
    body["detail"] = detail
    body.update(extra)
    return Problem(status, json.dumps(body, ensure_ascii=False).encode(), headers)


def problem(status: int, code: str, detail: str, **extra: Any) -> Response[bytes]:
    return make_problem(status, code, detail, **extra).response()


def unauthorized(detail: str, error: str | None = None) -> Problem:
    """401 with the challenge RFC 6750 asks for (`error="invalid_token"` for a bad token)."""
    challenge = 'Bearer realm="tokenmall"' + (f', error="{error}"' if error else "")
    return make_problem(401, "unauthorized", detail, (("WWW-Authenticate", challenge),))


def retry_later(status: int, code: str, detail: str, after_s: int) -> Problem:
    """429 or 503 with Retry-After (whole seconds, at least 1)."""
    return make_problem(status, code, detail, (("Retry-After", str(max(1, after_s))),))
