"""The rules engine's compiled kernel (_kernel.c), when it was built: see Engine.place_orders."""

from collections.abc import Callable
from typing import Any

from tokenmall.core.units import Fen, Units

def place_orders(
    engine: Any,
    orders: list[tuple[str, str, int, str | None]],
    config: tuple[
        Callable[[str, str, int, str | None], bool], Callable[[], None], Any, int, int, int
    ],
) -> list[bool]: ...
def holding_fund(
    ep: list[Units],
    quota: list[Fen],
    sp: list[Fen],
    dividends: list[Fen],
    fund_fen: Fen,
) -> tuple[list[int], int] | None: ...
