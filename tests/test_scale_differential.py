"""The engine against the reference model on longer, busier runs than the state machine makes.

Hundreds of consumers and thousands of commands exercise what small runs cannot: exit-queue
compaction and stale entries, capped settlements over many holders, long exit cascades, level
funds over many levels. The reference model (tests/reference_model.py) is literal and slow, so
each run is a few thousand commands.
"""

import json
from typing import Any

import pytest

from tests.reference_model import replay_reference
from tests.support.workload import MixGenerator
from tokenmall.core import exits
from tokenmall.core.params import Params
from tokenmall.jsonl import replay_lines

PARAM_SETS: dict[str, dict[str, Any]] = {
    "bench": {"referral_rates": ["0.10", "0.05"]},
    "many exits and levels": {
        "referral_rates": ["0.15", "0.05"],
        "quota_multiple": "0.6",
        "level_thresholds": ["2", "5", "10", "20", "40"],
        "level_dividend_rate": "0.25",
    },
    "capped dividends into the pool": {
        "dividend_rate": "1",
        "quota_multiple": "0.4",
        "dividend_remainder": "pool",
        "sell_fee_rate": "0",
    },
    "no exits, platform remainder": {
        "exit_enabled": False,
        "dividend_rate": "0.9",
        "dividend_remainder": "platform",
        "level_thresholds": ["1"],
    },
}


@pytest.mark.parametrize("name", sorted(PARAM_SETS))
def test_engine_matches_reference_on_a_busy_run(name: str) -> None:
    overrides = PARAM_SETS[name]
    commands = MixGenerator(consumers=150, seed=7, settle_every=50).commands(2500)
    lines = [json.dumps(command) for command in commands]
    state = replay_lines([line.encode() for line in lines], Params().with_overrides(overrides))
    assert state == replay_reference(lines, overrides)


@pytest.mark.parametrize("name", ["bench", "no exits, platform remainder"])
def test_engine_matches_reference_when_the_exit_queue_compacts_often(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no slack, the heap is rebuilt whenever it holds more entries than consumers.
    monkeypatch.setattr(exits, "ENTRIES_PER_CONSUMER_MAX", 1)
    monkeypatch.setattr(exits, "HEAP_SLACK", 0)
    rebuilds = 0
    original_rebuild = exits.ExitQueue.rebuild

    def counting_rebuild(queue: exits.ExitQueue) -> None:
        nonlocal rebuilds
        rebuilds += 1
        original_rebuild(queue)

    monkeypatch.setattr(exits.ExitQueue, "rebuild", counting_rebuild)
    test_engine_matches_reference_on_a_busy_run(name)
    assert rebuilds > 10
