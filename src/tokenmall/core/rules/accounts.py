"""register and register_merchant (SPEC §4)."""

from tokenmall.core.accounts import Consumer, Merchant
from tokenmall.core.effects import Effects, Registered
from tokenmall.core.errors import ErrorCode, Rejected
from tokenmall.core.fields import Command
from tokenmall.core.state import State


def register(state: State, command: Command, fx: Effects) -> None:
    user_id = command["user"]
    referrer_id = command.get("referrer")
    if state.account_exists(user_id):
        raise Rejected(ErrorCode.DUPLICATE_ACCOUNT, f"account {user_id!r} exists")
    if referrer_id is not None and referrer_id not in state.consumers:
        raise Rejected(ErrorCode.UNKNOWN_REFERRER, f"no consumer {referrer_id!r}")
    state.consumers[user_id] = Consumer(consumer_id=user_id, referrer=referrer_id, book=state.book)
    fx.events.append(Registered(user_id, "consumer"))


def register_merchant(state: State, command: Command, fx: Effects) -> None:
    merchant_id = command["merchant"]
    if state.account_exists(merchant_id):
        raise Rejected(ErrorCode.DUPLICATE_ACCOUNT, f"account {merchant_id!r} exists")
    state.merchants[merchant_id] = Merchant(id=merchant_id)
    fx.events.append(Registered(merchant_id, "merchant"))
