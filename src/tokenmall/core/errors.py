"""Error codes of SPEC §12 (v2) and the exceptions that carry them.

Expected failures are values (a `Rejected` carries an `ErrorCode`); a broken invariant is a bug and
raises `InvariantViolation`, which must stop the process.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_COMMAND = "invalid_command"
    UNKNOWN_OP = "unknown_op"
    DUPLICATE_ACCOUNT = "duplicate_account"
    UNKNOWN_REFERRER = "unknown_referrer"
    DUPLICATE_ORDER = "duplicate_order"
    UNKNOWN_USER = "unknown_user"
    UNKNOWN_MERCHANT = "unknown_merchant"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_PAYMENT = "invalid_payment"
    INSUFFICIENT_STABLE = "insufficient_stable"
    INSUFFICIENT_POINTS = "insufficient_points"
    ISSUANCE_EXHAUSTED = "issuance_exhausted"
    UNKNOWN_ORDER = "unknown_order"
    NOT_REFUNDABLE = "not_refundable"
    REFUND_WINDOW_CLOSED = "refund_window_closed"
    POINTS_ALREADY_USED = "points_already_used"
    INVALID_PARAMS = "invalid_params"
    # SPEC v2 §12
    ACCOUNT_FROZEN = "account_frozen"
    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_AGENT = "unknown_agent"
    INVALID_STATE = "invalid_state"
    DUPLICATE_WITHDRAWAL = "duplicate_withdrawal"
    UNKNOWN_WITHDRAWAL = "unknown_withdrawal"
    BELOW_MINIMUM = "below_minimum"
    INSUFFICIENT_CASH = "insufficient_cash"
    OVER_DAILY_LIMIT = "over_daily_limit"
    REGION_TAKEN = "region_taken"
    DUPLICATE_COLLECTION = "duplicate_collection"
    UNKNOWN_COLLECTION = "unknown_collection"
    SOLD_OUT = "sold_out"
    UNKNOWN_ITEM = "unknown_item"
    NOT_OWNER = "not_owner"
    ALREADY_USED = "already_used"
    LOCKED = "locked"


class Rejected(Exception):
    """A command was refused; the state is unchanged."""

    def __init__(self, code: ErrorCode, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else str(code))
        self.code = code
        self.detail = detail


class ParamsError(ValueError):
    """A parameter set is invalid (SPEC §2); the message says which parameter and why."""


class InvariantViolation(RuntimeError):
    """A SPEC §6 invariant does not hold: a bug. Never caught by the engine."""
