"""The rules of SPEC §4, one module per family of commands. Each rule takes the state, the
command and an `Effects` collector; it checks everything first, in SPEC's error order, and only
then changes the state, posting every balance it changes. A rejected command changes nothing."""

from collections.abc import Callable

from tokenmall.core.effects import Effects
from tokenmall.core.fields import Command
from tokenmall.core.rules.accounts import register, register_merchant
from tokenmall.core.rules.orders import order, refund
from tokenmall.core.rules.parameters import set_params
from tokenmall.core.rules.points import convert, grant_stable, merchant_redeem, redeem, sell
from tokenmall.core.rules.settlement import settle_day
from tokenmall.core.state import State

Rule = Callable[[State, Command, Effects], None]

RULES: dict[str, Rule] = {
    "register": register,
    "register_merchant": register_merchant,
    "order": order,
    "sell": sell,
    "redeem": redeem,
    "convert": convert,
    "merchant_redeem": merchant_redeem,
    "refund": refund,
    "grant_stable": grant_stable,
    "set_params": set_params,
    "settle_day": settle_day,
}
