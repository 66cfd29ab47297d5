"""The trigger loop's in-memory book of open orders: per pair, the thresholds sorted, and the
expiries in a heap.

Postgres stays the truth: the book is loaded whole from it (`load`) when a worker takes the trigger
loop's lease, and whenever it may have missed a change; in between it is kept current by the changes
themselves (`add`, `remove`, `note`): a pass costs bisections of sorted lists, never a read of every
open order.

- Stops (sell when the market falls) are kept highest stop first: the ones at or above the market
  are a prefix.
- Limits are kept lowest limit first: the ones the market price reaches are a prefix (each is still
  quoted for its own amount before it triggers; see worker.triggers).

Each entry is the order as last read or written (its `last_seq` names the event it rests on), so a
change seen later (an event with a higher seq) tells the book the order left `open`.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from orderengine.v1 import orders_pb2

S = orders_pb2
LIMIT, STOP = S.ORDER_TYPE_LIMIT, S.ORDER_TYPE_STOP

Pair = tuple[str, str]  # (input mint, output mint)


def pair_of(order: orders_pb2.Order) -> Pair:
    return (order.spec.input_mint, order.spec.output_mint)


@dataclass
class PairBook:
    """One pair's open orders, by threshold: (key, order id) pairs in ascending key order."""

    limits: list[tuple[int, str]] = field(default_factory=list)  # key: limit price
    stops: list[tuple[int, str]] = field(default_factory=list)  # key: -stop price

    def __len__(self) -> int:
        return len(self.limits) + len(self.stops)

    def _side(self, order: orders_pb2.Order) -> tuple[list[tuple[int, str]], tuple[int, str]]:
        price = order.spec.trigger_price
        if order.spec.order_type == STOP:
            return self.stops, (-price, order.order_id)
        return self.limits, (price, order.order_id)

    def add(self, order: orders_pb2.Order) -> None:
        side, key = self._side(order)
        bisect.insort(side, key)

    def remove(self, order: orders_pb2.Order) -> None:
        side, key = self._side(order)
        i = bisect.bisect_left(side, key)
        if i < len(side) and side[i] == key:
            del side[i]

    def due(self, market: int) -> tuple[list[str], list[str]]:
        """At this market price: (ids of the stops that trigger, ids of the limit candidates)."""
        fired = bisect.bisect_right(self.stops, (-market, "\U0010ffff"))
        reachable = bisect.bisect_right(self.limits, (market, "\U0010ffff"))
        return [oid for _, oid in self.stops[:fired]], [oid for _, oid in self.limits[:reachable]]


class Book:
    """Open orders of some types (limit and stop by default), by id, by expiry, and — limit and
    stop orders — by pair and threshold."""

    def __init__(self, kinds: Iterable[orders_pb2.OrderType.ValueType] = (LIMIT, STOP)) -> None:
        self.kinds = frozenset(kinds)
        self.orders: dict[str, orders_pb2.Order] = {}
        self.pairs: dict[Pair, PairBook] = {}
        self._expiries: list[tuple[int, str]] = []  # a heap; entries of removed orders stay until popped

    def __len__(self) -> int:
        return len(self.orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self.orders

    def get(self, order_id: str) -> orders_pb2.Order | None:
        return self.orders.get(order_id)

    def load(self, orders: Iterable[orders_pb2.Order]) -> None:
        """Replaces the whole book with these orders (those open and resting)."""
        self.orders.clear()
        self.pairs.clear()
        self._expiries = []
        for order in orders:
            self.add(order)

    def add(self, order: orders_pb2.Order) -> bool:
        """Adds an open order of a kept type (or replaces an older copy of it); whether it is in."""
        if order.status != S.ORDER_STATUS_OPEN or order.spec.order_type not in self.kinds:
            return False
        known = self.orders.get(order.order_id)
        if known is not None:
            if known.last_seq >= order.last_seq:
                return True
            self.remove(order.order_id)
        self.orders[order.order_id] = order
        if order.spec.order_type in (LIMIT, STOP):
            self.pairs.setdefault(pair_of(order), PairBook()).add(order)
        heapq.heappush(self._expiries, (order.spec.expires_at_us, order.order_id))
        self._compact()
        return True

    def remove(self, order_id: str) -> orders_pb2.Order | None:
        order = self.orders.pop(order_id, None)
        if order is not None and order.spec.order_type in (LIMIT, STOP):
            pair = pair_of(order)
            side = self.pairs[pair]
            side.remove(order)
            if not side:
                del self.pairs[pair]
        return order

    def note(self, order_id: str, seq: int) -> bool:
        """An event of `order_id` with `seq` was committed: an order in the book with an older seq
        has left `open` (routing, cancelled, expired), so it leaves the book. Whether it did."""
        known = self.orders.get(order_id)
        if known is None or seq <= known.last_seq:
            return False
        self.remove(order_id)
        return True

    def expired(self, now_us: int) -> list[orders_pb2.Order]:
        """The orders whose expiry has come, taken out of the book."""
        out: list[orders_pb2.Order] = []
        while self._expiries and self._expiries[0][0] <= now_us:
            at, order_id = heapq.heappop(self._expiries)
            order = self.orders.get(order_id)
            if order is not None and order.spec.expires_at_us == at:
                self.remove(order_id)
                out.append(order)
        self._compact()
        return out

    def _compact(self) -> None:
        """Drops the heap entries removals left behind, once they outnumber the live ones."""
        if len(self._expiries) > 2 * len(self.orders) + 1024:
            self._expiries = [(o.spec.expires_at_us, oid) for oid, o in self.orders.items()]
            heapq.heapify(self._expiries)
