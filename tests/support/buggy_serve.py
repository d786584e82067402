"""`tokenmall` with a bug planted in the rules, to test that the server stops (fail-stop) when
a SPEC §6 invariant breaks, instead of serving on.

The bug: every applied registration also adds one fen to the pool, money from nowhere. It is
planted at import, outside the main guard, so that the ledger's writer process, which
multiprocessing's spawn starts by importing this file again as `__mp_main__`, has it too.
Run as `python tests/support/buggy_serve.py serve ...`.
"""

from collections.abc import Mapping
from typing import Any

from tokenmall.core.effects import Applied
from tokenmall.core.engine import Engine

_correct_apply = Engine.apply


def _buggy_apply(self: Engine, command: Mapping[str, Any]) -> Applied:
    applied = _correct_apply(self, command)
    if command.get("op") == "register":
        self.pool += 1
    return applied


Engine.apply = _buggy_apply  # type: ignore[method-assign]

if __name__ == "__main__":
    from tokenmall.cli import main

    main()
