"""The rules engine's compiled kernel (core/_kernel.c), if it was built.

Two loops of a full-rules simulation take most of its time: the day's orders
(`Engine.place_orders`) and the holding fund's payments to every holder (settle_day). The
kernel runs them in C on the engine's own objects, each exactly as the Python code beside it
does; whatever it cannot take whole (a number beyond 63 bits, a rejection, a capped
payment) it leaves to that Python code before changing anything. tests/test_kernel.py runs
both on the same commands and compares the states.

`KERNEL` is the module, or None when it was not built (no C compiler when tokenmall was
installed: the optional extension of setup.py) or TOKENMALL_NO_KERNEL=1 turns it off (to
compare, or to rule it out). Callers ask `compiled()` each time, so that tests can set
`KERNEL` to None.
"""

import os
from collections.abc import Callable
from typing import Any, Protocol, cast

from tokenmall.core.units import Fen, Units


class Kernel(Protocol):
    """What core/_kernel.c provides: its functions' types, for mypy (the module has no stub:
    this is the one place they are written)."""

    def place_orders(
        self,
        engine: Any,
        orders: list[tuple[str, str, int, str | None]],
        config: tuple[
            Callable[[str, str, int, str | None], bool], Callable[[], None], Any, int, int, int
        ],
    ) -> list[bool]: ...

    def holding_fund(
        self,
        ep: list[Units],
        quota: list[Fen],
        sp: list[Fen],
        dividends: list[Fen],
        fund_fen: Fen,
    ) -> tuple[list[int], int] | None: ...


def _load() -> Kernel | None:
    if os.environ.get("TOKENMALL_NO_KERNEL", "") not in ("", "0"):
        return None
    try:
        from tokenmall.core import _kernel  # type: ignore[attr-defined]  # noqa: PLC0415
    except ImportError:
        return None
    return cast(Kernel, _kernel)


KERNEL = _load()


def compiled() -> Kernel | None:
    """The kernel now (KERNEL as it is set)."""
    return KERNEL


# The largest amount a kernel order takes: its sums then stay within 63 bits.
KERNEL_FEN_MAX = 2**62
