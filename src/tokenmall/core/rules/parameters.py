"""set_params (SPEC §4): change any parameter but initial_price from now on."""

from collections.abc import Mapping

from tokenmall.core.effects import Effects
from tokenmall.core.errors import ErrorCode, ParamsError, Rejected
from tokenmall.core.fields import Command
from tokenmall.core.state import State

V1_PARAMS = frozenset(
    [
        "initial_price",
        "contribution_rate",
        "buyer_share",
        "referral_rates",
        "total_issuance",
        "sell_fee_rate",
        "quota_multiple",
        "exit_enabled",
        "dividend_rate",
        "level_dividend_rate",
        "level_thresholds",
        "dividend_remainder",
    ]
)


def set_params(state: State, command: Command, fx: Effects) -> None:
    overrides = command["params"]
    if not isinstance(overrides, Mapping):
        raise Rejected(ErrorCode.INVALID_PARAMS, "params must be a JSON object")
    if state.rules_v1 and not V1_PARAMS.issuperset(overrides):
        raise Rejected(ErrorCode.INVALID_PARAMS, "a parameter SPEC v1 did not have")
    if "initial_price" in overrides:
        raise Rejected(ErrorCode.INVALID_PARAMS, "initial_price is fixed after start")
    try:
        params = state.params.with_overrides(overrides)
    except ParamsError as error:
        raise Rejected(ErrorCode.INVALID_PARAMS, str(error)) from None
    if params.total_issuance_units < state.issued:
        raise Rejected(ErrorCode.INVALID_PARAMS, "total_issuance below EP already issued")
    state.replace_params(params)
