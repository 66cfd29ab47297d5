"""Open resting orders of some types, in memory (a worker.book.Book), kept current by the committed
events instead of being read from Postgres on every pass.

Postgres stays the truth: the book is read whole (ListOrders, status open) the first time it is
needed, after every (re)subscription to the resting events channel (whatever was published while
there was no subscription was never seen), and every RESYNC_S as a safety net. In between, the
events persistence publishes on `{prefix}:events:resting` (an order opens, or leaves `open`; never
a market order's) keep it current: an `open` event of an order the book does
not hold is read (GetOrders, many per call; Postgres says whether it is still open and of a kept
type), any later event of an order it holds (routing, cancelled, expired, failed) takes it out.

Used by the loops a lease-holding worker runs (worker.triggers for limit and stop orders,
worker.sniper for sniper orders): `refresh()` at the start of each pass, `forget()` when the lease
is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

import grpc
import orjson

from common import event_messages
from common.redis_client import follow_channel
from orderengine.v1 import orders_pb2
from worker.book import Book
from worker.lease import Lease, lead_passes

if TYPE_CHECKING:
    from worker.consumer import Worker

log = logging.getLogger(__name__)

S = orders_pb2
PAGE = 200  # ListOrders' largest page
FETCH_CHUNK = 1000  # GetOrders' limit per call
# The book is read whole again this often, a safety net beside the events (a lost subscription
# already forces a reload). Rare: at 10,000 open orders a read costs ~0.7 s of persistence CPU.
RESYNC_S = 300.0
INBOX_MAX = 100_000
SUBSCRIBE_WAIT_S = 2.0
# the statuses an event may carry for an order that is, or was just, open
_AFTER_OPEN = frozenset({"open", "routing", "cancelled", "expired", "failed"})


# the `type` an `open` event's data names (gateway.views.resting_json), by order type
TYPE_NAMES = {S.ORDER_TYPE_LIMIT: "limit", S.ORDER_TYPE_STOP: "stop", S.ORDER_TYPE_SNIPER: "sniper"}


class OpenOrders:
    def __init__(self, worker: Worker, kinds: Iterable[orders_pb2.OrderType.ValueType], role: str) -> None:
        self.w = worker
        self.role = role
        self.book = Book(kinds)
        self._names = frozenset(TYPE_NAMES[kind] for kind in self.book.kinds)
        self.reloads = 0
        self._inbox: list[tuple[str, int, bool]] = []  # (order id, seq, is `open`) from the channel
        self._refetch: set[str] = set()  # ids to read again: opened since the load, or refused
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._generation = 0  # subscriptions made; the book is current for `_synced` only
        self._synced = -1
        self._synced_at = 0.0

    async def refresh(self) -> bool:
        """Brings the book up to date (a pass starts with it); False if it cannot be (no events
        channel: Redis is away), and the pass should wait."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name=f"{self.role}-events")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                await self._subscribed.wait()
        if not self._subscribed.is_set():
            return False
        if self._synced != self._generation or time.monotonic() - self._synced_at > RESYNC_S:
            await self.reload()
        self._apply_inbox()
        if self._refetch:
            await self._fetch()
        return True

    def stale(self) -> None:
        """The book may have fallen behind (a pass cut short): read it whole on the next refresh."""
        self._synced = -1

    def refetch(self, order_ids: Iterable[str]) -> None:
        """These orders' state is unknown (a decision refused, or its answer lost): read them again,
        and keep them if still open."""
        self._refetch.update(order_ids)

    async def append(self, events: list[orders_pb2.NewEvent]) -> orders_pb2.AppendEventsResponse:
        """Appends a pass's decisions (triggers, expiries) in one AppendEvents call. Each decided
        order leaves the book whatever the answer; one whose decision was refused (cancelled or
        decided elsewhere first) or whose answer was lost is read again."""
        for event in events:
            self.book.remove(event.order_id)
        try:
            response = await self.w.orders.AppendEvents(
                orders_pb2.AppendEventsRequest(events=events), timeout=10.0
            )
        except grpc.aio.AioRpcError:
            self.refetch(e.order_id for e in events)  # committed or not: read them again
            raise
        self.refetch(e.order_id for e, r in zip(events, response.results, strict=True) if r.code)
        return response

    async def lead(self, lease: Lease, interval_s: float, tick: Callable[[], Awaitable[None]]) -> None:
        """Runs the loop that keeps this book: `tick` once per interval while this worker holds
        `lease`; without it the book is dropped (read afresh when this worker leads again), and a
        pass cut short leaves it to be read whole on the next one."""
        await lead_passes(
            self.w.stopping, lease, interval_s, tick, follow=self.forget, interrupted=self.stale
        )

    async def forget(self) -> None:
        """Not (or no longer) the leader: no subscription, no book."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        self._subscribed.clear()
        self.book.load(())
        self._inbox.clear()
        self._refetch.clear()
        self._synced = -1

    # --- the events channel ---------------------------------------------------------------------
    async def _listen(self) -> None:
        await follow_channel(
            self.w.redis, self.w.keys.resting_events, self._on_subscribed, self._take, self._subscribed.clear
        )

    def _on_subscribed(self) -> None:
        """Each (re)subscription starts a new generation, for which the book is read again."""
        self._generation += 1
        self._subscribed.set()

    def _take(self, data: bytes | str) -> None:
        """Keeps what may change the book: an order opened, or an event that may follow `open`.
        Only a message with an `open` event is parsed (its terms name the order's type); of the
        others (nearly all: every market order's events) the heads are enough."""
        raw = data if isinstance(data, bytes) else data.encode()
        if b'"status":"open"' not in raw:
            for head_id, head_seq, status in event_messages.heads(raw):
                if status in _AFTER_OPEN:
                    self._inbox.append((head_id, head_seq, False))
            self._check_inbox()
            return
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        for item in doc if isinstance(doc, list) else (doc,):
            if not isinstance(item, dict) or item.get("status") not in _AFTER_OPEN:
                continue
            oid, seq, opened = item.get("orderId"), item.get("seq"), item["status"] == "open"
            terms = item.get("data")
            kind = terms.get("type") if isinstance(terms, dict) else None
            if opened and kind is not None and kind not in self._names:
                continue  # an order of a type this book does not keep
            if isinstance(oid, str) and isinstance(seq, int):
                self._inbox.append((oid, seq, opened))
        self._check_inbox()

    def _check_inbox(self) -> None:
        if len(self._inbox) > INBOX_MAX:  # a leader far behind: start over from Postgres
            self._inbox.clear()
            self._synced = -1

    # --- reading Postgres -----------------------------------------------------------------------
    async def reload(self) -> None:
        """The whole book from Postgres. Events committed meanwhile wait in the inbox and are
        applied after it."""
        generation = self._generation
        orders: list[orders_pb2.Order] = []
        cursor = ""
        while True:
            page = await self.w.orders.ListOrders(
                orders_pb2.ListOrdersRequest(limit=PAGE, cursor=cursor, status=S.ORDER_STATUS_OPEN),
                timeout=10.0,
            )
            orders.extend(page.orders)
            cursor = page.next_cursor
            if not cursor:
                break
        self.book.load(orders)
        self._refetch.clear()
        self._synced, self._synced_at = generation, time.monotonic()
        self.reloads += 1
        log.info(f"{self.role} book loaded", extra={"open": len(self.book)})

    def _apply_inbox(self) -> None:
        inbox, self._inbox = self._inbox, []
        for oid, seq, opened in inbox:
            if not opened:
                self.book.note(oid, seq)  # it left open (if the book had it)
            elif oid not in self.book:
                self._refetch.add(oid)  # opened elsewhere: read it (Postgres decides if still open)

    async def _fetch(self) -> None:
        ids = list(self._refetch)
        for i in range(0, len(ids), FETCH_CHUNK):
            chunk = ids[i : i + FETCH_CHUNK]
            found = await self.w.orders.GetOrders(orders_pb2.GetOrdersRequest(order_ids=chunk), timeout=10.0)
            for order in found.orders:
                self.book.add(order)  # only if still open and of a kept type
            self._refetch.difference_update(chunk)
