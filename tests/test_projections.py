"""The statement projector on any JSON a client can send: it never raises, and it records a
change only for commands the rules applied."""

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmall.core.engine import Engine
from tokenmall.ledger.projections import Projection, Projector, balances_of

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
keys = st.sampled_from(["op", "user", "merchant", "order", "id", "amount", "points", "referrer"])
junk_commands = st.dictionaries(keys, json_values, max_size=5)


@given(st.lists(junk_commands, max_size=20))
@settings(max_examples=200, deadline=None)
def test_junk_commands_never_raise_and_record_nothing_when_rejected(
    commands: list[dict[str, Any]],
) -> None:
    engine = Engine()
    projector = Projector(engine)
    for op in ({"op": "register", "user": "u"}, {"op": "register_merchant", "merchant": "m"}):
        assert projector.apply(op, 0, Projection()) is None
    for seq, command in enumerate(commands, start=1):
        before = {name: balances_of(engine, name) for name in ("u", "m")}
        out = Projection()
        code = projector.apply(json.loads(json.dumps(command)), seq, out)
        if code is not None:
            assert out.statement == [] and out.price_days == []
            assert {name: balances_of(engine, name) for name in ("u", "m")} == before
        for row in out.statement:
            assert row.seq == seq


def test_each_kind_of_account_stores_a_different_number_of_fields() -> None:
    """A stored statement line says whose it is by how many balances it holds."""
    from tokenmall.core.accounts import AGENT_FIELDS, CONSUMER_FIELDS, MERCHANT_FIELDS  # noqa: PLC0415

    counts = {len(CONSUMER_FIELDS), len(MERCHANT_FIELDS), len(AGENT_FIELDS)}
    assert len(counts) == 3
