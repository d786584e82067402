"""A payment is credited once (decision 58), on both backends: a second order naming the
`payment_id` of an applied order is refused without a journal entry, in the same batch, in a
later one, and after a restart; an order the rules rejected takes no payment id."""

from tokenmall.ledger.ledger import DUPLICATE_PAYMENT, Ledger, Settings, Submission


def order(order_id: str, payment: str, user: str = "alice") -> Submission:
    command = {"op": "order", "id": order_id, "user": user, "amount": "10.00"}
    return Submission.of({**command, "payment_id": payment}, actor="integration:tk_000000000001")


def test_a_payment_is_credited_once(db_url: str) -> None:
    with Ledger.open(db_url, Settings()) as ledger:
        results = ledger.execute(
            [
                Submission.of({"op": "register", "user": "alice"}),
                order("o0", "wx-0", user="nobody"),  # rejected by the rules: takes nothing
                order("o1", "wx-0"),
                order("o2", "wx-0"),  # the same payment, in the same batch
                order("o3", "wx-3"),
            ]
        )
        assert [r.outcome for r in results] == [
            "ok",
            "unknown_user",
            "ok",
            DUPLICATE_PAYMENT,
            "ok",
        ]
        assert results[3].seq is None and ledger.head_seq == 4
        later = ledger.execute([order("o4", "wx-3"), order("o5", "wx-5")])
        assert [(r.seq, r.outcome) for r in later] == [(None, DUPLICATE_PAYMENT), (5, "ok")]
    with Ledger.open(db_url, Settings()) as reopened:
        again = reopened.execute([order("o6", "wx-5"), order("o7", "wx-7")])
        assert [(r.seq, r.outcome) for r in again] == [(None, DUPLICATE_PAYMENT), (6, "ok")]
        assert reopened.engine.consumers["alice"].ep > 0
        assert set(reopened.engine.orders.ids()) == {"o1", "o3", "o5", "o7"}
