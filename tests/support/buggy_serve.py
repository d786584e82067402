"""`tokenmall` with a bug planted in the rules, to test that the server stops (fail-stop) when
a SPEC §6 invariant breaks, instead of serving on.

The bug: every applied registration also adds one fen to the pool, money from nowhere. It is
planted at import, outside the main guard, so that the ledger's writer process, which
multiprocessing's spawn starts by importing this file again as `__mp_main__`, has it too.
Run as `python tests/support/buggy_serve.py serve ...`.
"""

from collections.abc import Mapping
from typing import Any

from tokenmall.core.engine import Engine
from tokenmall.core.errors import ErrorCode

_correct_try_apply = Engine.try_apply


def _buggy_try_apply(self: Engine, command: Mapping[str, Any]) -> ErrorCode | None:
    code = _correct_try_apply(self, command)
    if code is None and command.get("op") == "register":
        self.pool += 1
    return code


Engine.try_apply = _buggy_try_apply  # type: ignore[method-assign]

if __name__ == "__main__":
    from tokenmall.cli import main

    main()
