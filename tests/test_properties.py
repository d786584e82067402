"""Property-based tests of the rules (SPEC §4-§6).

A state machine drives random command sequences, valid and invalid, through the engine. After
every step every SPEC §6 invariant must hold, an applied command's postings and events must
account for every balance it changed (asset by asset, tests/effects_check.py), and a rejected
command must leave the canonical state byte-identical. At the end the whole run is replayed
through an independent, literal reference implementation (tests/reference_model.py), which
must reach the same state.
"""

import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.effects_check import capture, check_applied
from tests.reference_model import replay_reference
from tests.strategies import SETUP, as_line, commands, param_overrides
from tokenmall.core.canonical import canonical_json, canonical_state
from tokenmall.core.engine import Engine
from tokenmall.core.errors import Rejected
from tokenmall.core.invariants import check_invariants
from tokenmall.core.params import Params
from tokenmall.jsonl import numbered_commands, replay_lines


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.overrides: dict[str, Any] = {}
        self.engine = Engine()
        self.lines: list[str] = []
        self.errors: list[dict[str, Any]] = []

    @initialize(overrides=param_overrides)
    def start(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides
        self.engine = Engine(Params().with_overrides(overrides))
        for command in SETUP:  # checked like any step: some depend on the parameters
            self.step(command)

    @rule(command=commands)
    def apply(self, command: dict[str, Any]) -> None:
        self.step(command)

    def step(self, command: dict[str, Any]) -> None:
        before_price = self.engine.price()
        before = canonical_json(canonical_state(self.engine, []))
        self.lines.append(as_line(command))
        exits_before = self.engine.exits
        balances_before = capture(self.engine)
        try:
            applied = self.engine.apply(command)
            event(f"applied {command.get('op')}")
            check_applied(balances_before, self.engine, applied)
        except Rejected as rejected:
            event(f"rejected {rejected.code}")
            self.errors.append({"line": len(self.lines), "code": str(rejected.code)})
            after = canonical_json(canonical_state(self.engine, []))
            assert after == before, f"rejected {rejected.code} but the state changed"
        check_invariants(self.engine, before_price)
        if self.engine.exits > exits_before:
            event("forced exit")

    @invariant()
    def invariants_hold(self) -> None:
        check_invariants(self.engine)

    def teardown(self) -> None:
        expected = replay_reference(self.lines, self.overrides)
        assert canonical_state(self.engine, self.errors) == expected


EngineMachine.TestCase.settings = settings(
    max_examples=600,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineMachine = EngineMachine.TestCase


@st.composite
def scenarios(draw: st.DrawFn) -> list[bytes]:
    return [as_line(command).encode() for command in draw(st.lists(commands, max_size=60))]


@settings(max_examples=60, deadline=None)
@given(lines=scenarios())
def test_replay_is_deterministic(lines: list[bytes]) -> None:
    first = canonical_json(replay_lines(lines, Params()))
    second = canonical_json(replay_lines(list(lines), Params()))
    assert first == second


garbage_line = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.sampled_from(["op", "user", "id", "amount"]), children, max_size=3)
        ),
        max_leaves=8,
    ).map(lambda value: json.dumps(value).encode()),
    commands.map(lambda command: as_line(command).encode()),
)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(garbage_line.filter(lambda line: b"\0" not in line), max_size=30))
def test_replay_survives_garbage_lines(lines: list[bytes]) -> None:
    """Any line is applied or listed in errors: never an exception, never a broken invariant."""
    state = replay_lines(lines, Params())
    reported = [error["line"] for error in state["errors"]]
    assert reported == sorted(set(reported))
    assert all(1 <= line <= len(lines) for line in reported)
    engine = Engine()
    for _, command in numbered_commands(lines):
        if isinstance(command, dict):
            engine.try_apply(command)
    check_invariants(engine)
    assert canonical_state(engine, state["errors"]) == state
