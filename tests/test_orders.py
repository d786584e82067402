"""The order book keeps earlier days' orders as ids only (issue 11: at most 32 bytes an old
order): the set of ids must stay exact, whatever the ids are."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmall.core.fields import ID_CHARS_MAX
from tokenmall.core.orders import REFUNDABLE, IdSet, OrderBook
from tokenmall.core.units import Fen, Units

ids = st.text(min_size=1, max_size=ID_CHARS_MAX)  # SPEC v1 ids: any characters


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(ids, max_size=40), max_size=30), probes=st.lists(ids))
def test_an_id_set_is_exact_and_lists_its_ids_sorted(
    batches: list[list[str]], probes: list[str]
) -> None:
    id_set, reference = IdSet(), dict[str, int]()
    for batch in batches:
        fresh = list(dict.fromkeys(key for key in batch if key not in reference))
        for flag in (0, 1):
            keys = [key for key in fresh if len(key) % 2 == flag]
            id_set.add_all(keys, flag)
            reference.update(dict.fromkeys(keys, flag))
    assert len(id_set) == len(reference)
    assert list(id_set) == sorted(
        reference.items(), key=lambda item: item[0].encode("utf-8", "surrogatepass")
    )
    for key in [*reference, *probes]:
        assert (key in id_set) == (key in reference)
        assert id_set.flag(key) == reference.get(key)


@settings(max_examples=50, deadline=None)
@given(
    days=st.lists(st.lists(st.tuples(ids, st.sampled_from(["cash", "sp", "refunded"]))), max_size=8)
)
def test_closed_orders_keep_whether_they_could_be_refunded(
    days: list[list[tuple[str, str]]],
) -> None:
    book, reference = OrderBook(), dict[str, int]()
    for day in days:
        for key, kind in dict(day).items():
            if key in book:
                continue
            if kind == "sp":
                book.add_stable(key, "alice", Fen(100))
            else:
                book.add_cash(key, "alice", Fen(100), Fen(30), Fen(200), Units(2), ())
                if kind == "refunded":
                    book.mark_refunded(key)
            reference[key] = REFUNDABLE if kind == "cash" else 0
        book.close_day()
    for key, flag in reference.items():
        assert book.closed_flag(key) == flag
    assert book.closed_items() == sorted(
        reference.items(), key=lambda item: item[0].encode("utf-8", "surrogatepass")
    )
    restored = OrderBook()
    restored.add_closed(book.closed_items())
    assert restored.closed_items() == book.closed_items()


def test_an_id_set_grows_and_stays_small() -> None:
    id_set = IdSet()
    keys = [f"o-{n:09d}" for n in range(50_000)]  # 11 characters, like real order ids
    for start in range(0, len(keys), 1_000):
        id_set.add_all(keys[start : start + 1_000], start // 1_000 % 2)
    assert all(key in id_set for key in keys[::97])
    assert "o-000050000" not in id_set and "o-00000000" not in id_set  # a prefix of an id
    assert "o-0000000001" not in id_set  # one of them is a prefix of this one
    assert "\x00" not in id_set and "o-000000001\x00" not in id_set
    assert id_set.nbytes() / len(keys) < 32


def test_a_day_closed_keeps_each_order_as_its_id_and_whether_it_could_be_refunded() -> None:
    book = OrderBook()
    book.add_cash("cash", "alice", Fen(1000), Fen(300), Fen(2000), Units(21), ())
    book.add_cash("refunded", "alice", Fen(1000), Fen(300), Fen(2000), Units(21), ())
    book.mark_refunded("refunded")
    book.add_stable("sp", "alice", Fen(500))
    order = book.get("cash", day=4)
    assert order is not None and order.day == 4 and order.quota_fen == 2000
    book.close_day()
    assert book.get("cash", day=5) is None and "cash" in book and len(book) == 3
    flags = [book.closed_flag(i) for i in ("cash", "refunded", "sp", "nothing")]
    assert flags == [REFUNDABLE, 0, 0, None]
