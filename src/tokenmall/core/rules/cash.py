"""Money out and risk control (SPEC v2 §9): withdrawals (提现) and their review, and frozen
accounts (冻结). Money the platform owes an account is its `cash`; it leaves only through a
withdrawal that is requested, reviewed and paid, and each step is a command in the journal."""

from tokenmall.core.accounts import (
    APPROVED,
    FAILED,
    PAID,
    REJECTED,
    REQUESTED,
    Agent,
    Consumer,
    Merchant,
    Withdrawal,
)
from tokenmall.core.effects import Effects, Field, StatusChanged, WithdrawalChanged
from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.fields import Command, money_fen, one_of
from tokenmall.core.state import State
from tokenmall.core.units import ZERO_FEN

CASH, WITHDRAWING, WITHDRAWN = Field.CASH, Field.WITHDRAWING, Field.WITHDRAWN
Account = Consumer | Merchant | Agent
ACCOUNT_KINDS = ("user", "merchant", "agent")
_UNKNOWN = {
    "user": ErrorCode.UNKNOWN_USER,
    "merchant": ErrorCode.UNKNOWN_MERCHANT,
    "agent": ErrorCode.UNKNOWN_AGENT,
}


def refuse_frozen(*accounts: Account) -> None:
    """account_frozen if any of these is frozen (SPEC v2 §4 "Frozen accounts")."""
    for account in accounts:
        if account.frozen:
            raise Rejected(ErrorCode.ACCOUNT_FROZEN, f"account {account.id!r} is frozen")


def credit_cash(state: State, account: Account, fen: int, fx: Effects) -> None:
    """Money the platform now owes `account` (a sale's payout, a commission)."""
    if fen:
        account.cash += fen
        state.cash_owed += fen
        fx.postings.append((account.id, CASH, fen))


def withdraw(state: State, command: Command, fx: Effects) -> None:
    kind = one_of(command, ACCOUNT_KINDS)
    withdrawal_id = command["id"]
    if withdrawal_id in state.withdrawals:
        raise Rejected(ErrorCode.DUPLICATE_WITHDRAWAL, f"withdrawal {withdrawal_id!r} exists")
    account_id = command[kind]
    account: Account | None
    if kind == "user":
        account = state.consumers.get(account_id)
    elif kind == "merchant":
        account = state.merchants.get(account_id)
    else:
        account = state.agents.get(account_id)
    if account is None:
        raise Rejected(_UNKNOWN[kind], f"no {kind} {account_id!r}")
    refuse_frozen(account)
    amount_fen = money_fen(command["amount"])
    params = state.params
    if amount_fen < params.withdraw_min_fen:
        raise Rejected(ErrorCode.BELOW_MINIMUM, "below the smallest withdrawal")
    if amount_fen > account.cash:
        raise Rejected(ErrorCode.INSUFFICIENT_CASH, "more than the account's cash")
    today_fen = state.withdrawn_today.get(account.id, ZERO_FEN) + amount_fen
    if today_fen > params.withdraw_daily_max_fen:
        raise Rejected(ErrorCode.OVER_DAILY_LIMIT, "over the day's withdrawal limit")
    state.withdrawn_today[account.id] = today_fen
    account.cash -= amount_fen
    account.withdrawing += amount_fen
    status = APPROVED if amount_fen <= params.withdraw_review_above_fen else REQUESTED
    state.withdrawals[withdrawal_id] = Withdrawal(
        id=withdrawal_id, account=account.id, amount_fen=amount_fen, status=status
    )
    fx.postings += ((account.id, CASH, -amount_fen), (account.id, WITHDRAWING, amount_fen))
    fx.events.append(WithdrawalChanged(withdrawal_id, account.id, status))


def approve_withdrawal(state: State, command: Command, fx: Effects) -> None:
    withdrawal = _withdrawal_in(state, command, (REQUESTED,))
    _move(withdrawal, APPROVED, fx)


def reject_withdrawal(state: State, command: Command, fx: Effects) -> None:
    withdrawal = _withdrawal_in(state, command, (REQUESTED, APPROVED))
    _back_to_cash(state, withdrawal, fx)
    _move(withdrawal, REJECTED, fx)


def fail_withdrawal(state: State, command: Command, fx: Effects) -> None:
    withdrawal = _withdrawal_in(state, command, (APPROVED,))
    _back_to_cash(state, withdrawal, fx)
    _move(withdrawal, FAILED, fx)


def complete_withdrawal(state: State, command: Command, fx: Effects) -> None:
    withdrawal = _withdrawal_in(state, command, (APPROVED,))
    account = _account_of(state, withdrawal)
    amount_fen = withdrawal.amount_fen
    account.withdrawing -= amount_fen
    account.withdrawn += amount_fen
    state.cash_owed -= amount_fen
    state.withdrawn += amount_fen
    withdrawal.reference = command["reference"]
    fx.postings += ((account.id, WITHDRAWING, -amount_fen), (account.id, WITHDRAWN, amount_fen))
    _move(withdrawal, PAID, fx)


def freeze(state: State, command: Command, fx: Effects) -> None:
    _set_frozen(state, command, True, fx)


def unfreeze(state: State, command: Command, fx: Effects) -> None:
    _set_frozen(state, command, False, fx)


def _set_frozen(state: State, command: Command, frozen: bool, fx: Effects) -> None:
    account_id = command["account"]
    account = state.account(account_id)
    if account is None:
        raise Rejected(ErrorCode.UNKNOWN_ACCOUNT, f"no account {account_id!r}")
    if account.frozen == frozen:
        raise Rejected(ErrorCode.INVALID_STATE, "frozen already" if frozen else "not frozen")
    account.frozen = frozen
    fx.events.append(StatusChanged(account.id, "frozen" if frozen else "unfrozen"))


def _withdrawal_in(state: State, command: Command, statuses: tuple[str, ...]) -> Withdrawal:
    withdrawal_id = command["id"]
    withdrawal = state.withdrawals.get(withdrawal_id)
    if withdrawal is None:
        raise Rejected(ErrorCode.UNKNOWN_WITHDRAWAL, f"no withdrawal {withdrawal_id!r}")
    if withdrawal.status not in statuses:
        raise Rejected(ErrorCode.INVALID_STATE, f"the withdrawal is {withdrawal.status}")
    return withdrawal


def _account_of(state: State, withdrawal: Withdrawal) -> Account:
    account = state.account(withdrawal.account)
    assert account is not None  # accounts are never removed
    return account


def _back_to_cash(state: State, withdrawal: Withdrawal, fx: Effects) -> None:
    account = _account_of(state, withdrawal)
    amount_fen = withdrawal.amount_fen
    account.withdrawing -= amount_fen
    account.cash += amount_fen
    fx.postings += ((account.id, WITHDRAWING, -amount_fen), (account.id, CASH, amount_fen))


def _move(withdrawal: Withdrawal, status: str, fx: Effects) -> None:
    withdrawal.status = status
    fx.events.append(WithdrawalChanged(withdrawal.id, withdrawal.account, status))
