"""The trigger loop's in-memory book: sorted thresholds per pair, expiries, and changes by seq."""

from __future__ import annotations

import random

from orderengine.v1 import orders_pb2
from worker.book import Book, PairBook
from worker.triggers import decide

S = orders_pb2


def order(
    oid: str,
    kind: orders_pb2.OrderType.ValueType,
    price: int,
    expires_at_us: int = 10**18,
    pair: tuple[str, str] = ("SOL", "USDC"),
    last_seq: int = 2,
    status: orders_pb2.OrderStatus.ValueType = S.ORDER_STATUS_OPEN,
) -> orders_pb2.Order:
    return S.Order(
        order_id=oid,
        status=status,
        last_seq=last_seq,
        spec=S.OrderSpec(
            order_type=kind,
            trigger_price=price,
            expires_at_us=expires_at_us,
            input_mint=pair[0],
            output_mint=pair[1],
        ),
    )


def test_due_is_the_same_prefix_as_a_full_sort_whatever_the_order_of_arrival() -> None:
    rng = random.Random(11)
    orders = [
        order(f"o{i}", rng.choice([S.ORDER_TYPE_LIMIT, S.ORDER_TYPE_STOP]), rng.randint(90, 110))
        for i in range(500)
    ]
    side = PairBook()
    for o in orders:
        side.add(o)
    for market in (80, 95, 100, 105, 120):
        stops, limits = side.due(market)
        assert sorted(stops) == sorted(
            o.order_id
            for o in orders
            if o.spec.order_type == S.ORDER_TYPE_STOP and o.spec.trigger_price >= market
        )
        assert sorted(limits) == sorted(
            o.order_id
            for o in orders
            if o.spec.order_type == S.ORDER_TYPE_LIMIT and o.spec.trigger_price <= market
        )
    gone = orders[::3]
    for o in gone:
        side.remove(o)
    assert len(side) == len(orders) - len(gone)
    stops, limits = side.due(100)
    assert not {o.order_id for o in gone} & (set(stops) | set(limits))


def test_decide_still_answers_from_the_book() -> None:
    book = [order(f"l{p}", S.ORDER_TYPE_LIMIT, p) for p in (150, 90, 100, 101)]
    book += [order(f"s{p}", S.ORDER_TYPE_STOP, p) for p in (99, 100, 120, 80)]
    stops, limits = decide(book, 100)
    assert [o.spec.trigger_price for o in stops] == [120, 100]
    assert [o.spec.trigger_price for o in limits] == [90, 100]


def test_the_book_holds_only_open_resting_orders_and_a_later_event_takes_one_out() -> None:
    book = Book()
    assert book.add(order("a", S.ORDER_TYPE_LIMIT, 100, last_seq=2))
    assert not book.add(order("m", S.ORDER_TYPE_MARKET, 0))
    assert not book.add(order("c", S.ORDER_TYPE_LIMIT, 100, status=S.ORDER_STATUS_CANCELLED))
    assert book.add(order("b", S.ORDER_TYPE_STOP, 90, pair=("SOL", "USDT")))
    assert len(book) == 2 and set(book.pairs) == {("SOL", "USDC"), ("SOL", "USDT")}
    assert not book.note("a", 2)  # the event the book already holds (a repeat): it stays
    assert "a" in book
    assert book.note("a", 3)  # routing, cancelled or expired: it leaves
    assert "a" not in book and ("SOL", "USDC") not in book.pairs  # an empty pair goes too
    assert not book.note("zzz", 9)  # an order the book never had
    book.load([order("x", S.ORDER_TYPE_LIMIT, 5)])
    assert list(book.orders) == ["x"] and list(book.pairs) == [("SOL", "USDC")]


def test_expiries_come_out_once_in_time_order_and_removed_orders_never() -> None:
    book = Book()
    for i in range(10):
        book.add(order(f"e{i}", S.ORDER_TYPE_LIMIT, 100 + i, expires_at_us=1000 + i * 10))
    book.remove("e2")
    book.note("e3", 5)
    assert [o.order_id for o in book.expired(1035)] == ["e0", "e1"]
    assert book.expired(1035) == []
    assert [o.order_id for o in book.expired(2000)] == [f"e{i}" for i in range(4, 10)]
    assert len(book) == 0 and not book.pairs


def test_a_newer_copy_replaces_the_old_one_and_an_older_copy_changes_nothing() -> None:
    book = Book()
    book.add(order("a", S.ORDER_TYPE_LIMIT, 100, last_seq=2))
    book.add(order("a", S.ORDER_TYPE_LIMIT, 100, last_seq=1))
    assert book.orders["a"].last_seq == 2
    assert len(book.pairs[("SOL", "USDC")]) == 1
    book.add(order("a", S.ORDER_TYPE_LIMIT, 120, last_seq=4))
    assert book.pairs[("SOL", "USDC")].limits == [(120, "a")]


def test_ten_thousand_orders_compact_their_expiry_heap() -> None:
    book = Book()
    for i in range(10_000):
        book.add(order(f"o{i}", S.ORDER_TYPE_LIMIT, i, expires_at_us=10**15 + i))
    for i in range(10_000):
        if i % 5:
            book.remove(f"o{i}")
    book.expired(0)  # nothing due; the heap is compacted to the live orders
    assert len(book._expiries) == 2_000
    assert [o.order_id for o in book.expired(10**15 + 10)] == ["o0", "o5", "o10"]


def test_a_book_of_sniper_orders_keeps_them_by_id_and_expiry_only() -> None:
    book = Book((S.ORDER_TYPE_SNIPER,))
    assert book.add(order("s1", S.ORDER_TYPE_SNIPER, 0, expires_at_us=50))
    assert book.add(order("s2", S.ORDER_TYPE_SNIPER, 0, expires_at_us=500))
    assert not book.add(order("l1", S.ORDER_TYPE_LIMIT, 100))  # not a kept type
    assert set(book.orders) == {"s1", "s2"} and not book.pairs
    assert book.note("s2", 3) and set(book.orders) == {"s1"}
    assert [o.order_id for o in book.expired(100)] == ["s1"] and len(book) == 0
