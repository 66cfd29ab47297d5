"""Per-order feeds for the WebSocket: every event serialized once and shared by every socket that
follows the order, one catch-up read per order however many sockets join it, and a small cache of
recent orders' events fed by the same Redis stream that carries the live ones.

A feed holds its order's events as one contiguous run of seqs (`first` … `last`); live events from
the hub extend it and are handed, as the same ASGI message object, to every live subscription. A
new subscription is served from that run at once when it covers the subscriber's `afterSeq` (and
then receives live events from the next seq on: the two happen in one step of the event loop, so no
event can fall between them). Otherwise it waits for the feed's single read of the order's history
(GetOrder with events), which every subscription that arrives meanwhile shares. A read that fails
is retried with backoff for `retry_budget_s`; then every subscription that needed it ends with an
error message naming the order and the last seq it delivered (`catchup_failed`), so its client can
resubscribe — a subscription never just goes quiet. An event that arrives beyond a gap (a lost
publish, a resynchronised Redis subscription) waits in the feed while the same single read fills
the gap; nothing after the gap is delivered before it.

Feeds without subscriptions stay cached, least recently used first out, up to `cache_orders`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

import grpc
import orjson
from prometheus_client import Counter

from common import lifecycle
from gateway.views import event_json
from gateway.wsproto import text_frame
from orderengine.v1 import orders_pb2, orders_pb2_grpc

log = logging.getLogger(__name__)

CATCHUP_READS = Counter(
    "orderengine_gateway_catchup_reads_total",
    "History reads for WebSocket catch-up (one per order, shared by its subscribers), by outcome.",
    ["outcome"],
)
FRAME = "orderengine.frame"  # key of an event's prebuilt frame in its ASGI message (ignored by ASGI)
MAX_PENDING = 1000  # events held beyond a gap while it is filled; more ends the feed's subscriptions
MAX_FILL_READS = 5  # reads in a row that still leave a gap end the feed's subscriptions
READ_TIMEOUT_S = 5.0  # one attempt; the whole retry loop is bounded by retry_budget_s
# Codes that say the read itself was wrong: retrying cannot help.
_FINAL_CODES = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)


class Event:
    """One status event of an order: its seq, whether it ends the order, and the ASGI message that
    sends it (`{"type": "websocket.send", "text": …}`), built once and shared by every socket —
    with the WebSocket frame that carries it (`FRAME`), for sockets that can take it as it is
    (gateway/wsproto.py)."""

    __slots__ = ("seq", "terminal", "message")

    def __init__(self, seq: int, terminal: bool, text: str) -> None:
        self.seq = seq
        self.terminal = terminal
        self.message: dict[str, Any] = {"type": "websocket.send", "text": text, FRAME: text_frame(text)}

    @classmethod
    def from_doc(cls, doc: dict[str, Any], text: str) -> Event | None:
        """An event from a status message (already parsed, with its text); None if it is not one."""
        seq = doc.get("seq")
        if doc.get("type") != "status" or not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            return None
        return cls(seq, doc.get("status") in lifecycle.TERMINAL, text)


def text_message(doc: dict[str, Any]) -> dict[str, Any]:
    """The ASGI message that sends `doc` as JSON text."""
    return {"type": "websocket.send", "text": orjson.dumps(doc).decode()}


class Sink(Protocol):
    """What a feed needs of a socket."""

    def push(self, message: dict[str, Any]) -> None:
        """Queues an ASGI send message (never blocks; a full queue is the socket's problem)."""

    def push_catchup(self, messages: list[dict[str, Any]]) -> None:
        """Queues a subscription's catch-up: past events, shared with the feed, so they count
        against the socket's memory only as references and not against its slow-consumer limit."""

    def subscription_ended(self, sub: Subscription) -> None:
        """The feed ended `sub` (its client was sent an error): forget it."""


class Subscription:
    """One socket following one order: `last_seq` is the last seq queued to it."""

    __slots__ = ("order_id", "sink", "last_seq", "live", "finished", "ended")

    def __init__(self, order_id: str, sink: Sink, after_seq: int) -> None:
        self.order_id = order_id
        self.sink = sink
        self.last_seq = after_seq
        self.live = False  # served its catch-up; receives live events
        self.finished = False  # its order's terminal event was queued to it
        self.ended = False  # unsubscribed, or ended by the feed


class ReadFailed(Exception):
    """The history could not be read within the retry budget."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownOrder(Exception):
    pass


Reader = Callable[[str], Awaitable[list[Event]]]


def grpc_reader(stub: orders_pb2_grpc.OrdersAsyncStub) -> Reader:
    """Reads an order's whole history through `Orders.GetOrder` (raises grpc.aio.AioRpcError)."""

    async def read(order_id: str) -> list[Event]:
        order = await stub.GetOrder(
            orders_pb2.GetOrderRequest(order_id=order_id, with_events=True),
            timeout=READ_TIMEOUT_S,
            wait_for_ready=True,
        )
        events = []
        for e in order.events:
            doc = event_json(e)
            events.append(Event(e.seq, doc["status"] in lifecycle.TERMINAL, orjson.dumps(doc).decode()))
        return events

    return read


class OrderFeed:
    __slots__ = ("order_id", "events", "first", "pending", "live", "waiting", "loader", "stale")

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        self.events: list[Event] = []  # contiguous: events[i].seq == first + i
        self.first = 0
        self.pending: dict[int, Event] = {}  # beyond a gap, until a read fills it
        self.live: dict[Subscription, None] = {}  # insertion-ordered set
        self.waiting: list[Subscription] = []
        self.loader: asyncio.Task[None] | None = None
        self.stale = False  # the run may miss events (Redis subscription was lost): read first

    @property
    def last(self) -> int:
        return self.first + len(self.events) - 1 if self.events else 0

    @property
    def idle(self) -> bool:
        return not self.live and not self.waiting

    def serves(self, after_seq: int) -> bool:
        return bool(self.events) and not self.stale and not self.pending and after_seq >= self.first - 1


class Feeds:
    """Every feed of one gateway process. All methods run on the event loop; none blocks."""

    def __init__(self, read: Reader, cache_orders: int, retry_budget_s: float) -> None:
        self._read = read
        self.cache_orders = cache_orders
        self.retry_budget_s = retry_budget_s
        self._feeds: dict[str, OrderFeed] = {}
        self._idle: OrderedDict[str, None] = OrderedDict()  # idle feeds, least recently used first
        self.reads = 0  # history reads started (for tests and the bench)
        # (order, owner) pairs known to match (API_KEYS: a key follows only its own orders), and the
        # checks in flight: one read per pair, however many of the key's sockets join the order
        self._owned: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._owner_checks: dict[tuple[str, str], asyncio.Task[bool]] = {}

    def __len__(self) -> int:
        return len(self._feeds)

    # --- from the hub -----------------------------------------------------------------------------

    def on_event(self, order_id: str, event: Event) -> None:
        """A live event from Redis."""
        feed = self._feeds.get(order_id)
        if feed is None:
            feed = self._feeds[order_id] = OrderFeed(order_id)
            self._touch_idle(feed)
        elif order_id in self._idle:
            self._idle.move_to_end(order_id)
        last = feed.last
        if event.seq <= last or event.seq in feed.pending:
            return  # a repeat (outbox relay, or already read)
        if not feed.events and feed.loader is None:
            feed.events, feed.first = [event], event.seq  # anchored here; older seqs need a read
            self._fan_out(feed, event)
            return
        if feed.events and event.seq == last + 1:
            feed.events.append(event)
            self._fan_out(feed, event)
            self._drain_pending(feed)
            return
        if feed.idle and feed.loader is None:
            feed.events, feed.first, feed.pending = [event], event.seq, {}  # nobody waits: re-anchor
            return
        feed.pending[event.seq] = event
        if len(feed.pending) > MAX_PENDING:
            self._fail(feed, "too many events arrived beyond a gap that could not be filled", everyone=True)
            return
        self._ensure_loader(feed)

    def resync(self) -> None:
        """The Redis subscription was lost and is back: events published meanwhile never come.
        Idle feeds are forgotten; every followed feed is read again (each by one read)."""
        for order_id in list(self._idle):
            self._drop(order_id)
        for feed in list(self._feeds.values()):
            feed.stale = True
            self._ensure_loader(feed)

    # --- from the sockets -------------------------------------------------------------------------

    def subscribe(self, order_id: str, sink: Sink, after_seq: int) -> Subscription:
        sub = Subscription(order_id, sink, after_seq)
        feed = self._feeds.get(order_id)
        if feed is None:
            feed = self._feeds[order_id] = OrderFeed(order_id)
        self._idle.pop(order_id, None)
        if feed.serves(after_seq):
            sink.push(self._ack(feed))
            self._go_live(feed, sub)
        else:
            feed.waiting.append(sub)
            self._ensure_loader(feed)
        return sub

    async def owned(self, order_id: str, owner: str, check: Callable[[], Coroutine[Any, Any, bool]]) -> bool:
        """Whether `owner` owns the order, by `check()` (True/False; raises what it cannot tell),
        run once for every caller asking about the same pair at the same time; a yes is kept."""
        key = (order_id, owner)
        if key in self._owned:
            self._owned.move_to_end(key)
            return True
        task = self._owner_checks.get(key)
        if task is None:
            task = self._owner_checks[key] = asyncio.create_task(check(), name="ws-owner-check")
            task.add_done_callback(lambda done: self._owner_checked(key, done))
        return await asyncio.shield(task)

    def _owner_checked(self, key: tuple[str, str], task: asyncio.Task[bool]) -> None:
        self._owner_checks.pop(key, None)
        if not task.cancelled() and task.exception() is None and task.result():
            self._owned[key] = None
            while len(self._owned) > max(1000, 10 * self.cache_orders):
                self._owned.popitem(last=False)

    def unsubscribe(self, sub: Subscription) -> None:
        if sub.ended:
            return
        sub.ended = True
        feed = self._feeds.get(sub.order_id)
        if feed is None:
            return
        if sub in feed.live:
            del feed.live[sub]
        elif sub in feed.waiting:
            feed.waiting.remove(sub)
        if feed.idle:
            self._touch_idle(feed)

    async def aclose(self) -> None:
        loaders = [f.loader for f in self._feeds.values() if f.loader is not None]
        for task in loaders:
            task.cancel()
        for task in loaders:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- internals --------------------------------------------------------------------------------

    def _ack(self, feed: OrderFeed) -> dict[str, Any]:
        return text_message({"type": "subscribed", "orderId": feed.order_id, "lastSeq": feed.last})

    def _go_live(self, feed: OrderFeed, sub: Subscription) -> None:
        sub.live = True
        feed.live[sub] = None
        self._advance(feed, sub)

    def _advance(self, feed: OrderFeed, sub: Subscription) -> None:
        """Queues to `sub` every event of the run after its last seq."""
        i = max(0, sub.last_seq + 1 - feed.first)
        backlog = feed.events[i:]
        if not backlog:
            return
        sub.sink.push_catchup([event.message for event in backlog])
        if backlog[-1].terminal:
            sub.finished = True
        sub.last_seq = backlog[-1].seq

    def _fan_out(self, feed: OrderFeed, event: Event) -> None:
        """The hot path: one new event at the end of the run, to every live subscription."""
        seq = event.seq
        before = seq - 1
        message = event.message
        for sub in feed.live:
            if sub.last_seq == before:
                sub.last_seq = seq
                sub.sink.push(message)
                if event.terminal:
                    sub.finished = True
            elif sub.last_seq < before:
                self._advance(feed, sub)

    def _drain_pending(self, feed: OrderFeed) -> None:
        while feed.pending:
            nxt = feed.pending.pop(feed.last + 1, None)
            if nxt is None:
                self._ensure_loader(feed)  # still a gap: the read fills it
                return
            feed.events.append(nxt)
            self._fan_out(feed, nxt)

    def _ensure_loader(self, feed: OrderFeed) -> None:
        if feed.loader is None:
            feed.loader = asyncio.create_task(self._load(feed), name="ws-catchup")

    async def _load(self, feed: OrderFeed) -> None:
        try:
            for _ in range(MAX_FILL_READS):
                try:
                    history = await self._read_with_retry(feed.order_id)
                except UnknownOrder:
                    CATCHUP_READS.labels("not_found").inc()
                    self._end_all(feed, "unknown_order", "no such order", field="orderId")
                    return
                except ReadFailed as exc:
                    CATCHUP_READS.labels("failed").inc()
                    self._fail(feed, exc.reason, everyone=bool(feed.pending) or feed.stale)
                    return
                CATCHUP_READS.labels("ok").inc()
                self._merge(feed, history)
                if not feed.pending and (feed.events or not feed.waiting):
                    return  # else: still a gap (it was committed after the read began): read again
            CATCHUP_READS.labels("gap").inc()
            self._fail(feed, "a gap in the order's events could not be filled", everyone=True)
        finally:
            feed.loader = None
            if self._feeds.get(feed.order_id) is feed and feed.idle:
                self._touch_idle(feed)

    async def _read_with_retry(self, order_id: str) -> list[Event]:
        deadline = time.monotonic() + self.retry_budget_s
        delay = 0.05
        attempt = 0
        while True:
            attempt += 1
            self.reads += 1
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(0.05, min(READ_TIMEOUT_S, remaining))):
                    return await self._read(order_id)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise UnknownOrder() from None
                if exc.code() in _FINAL_CODES:
                    raise ReadFailed(f"the order's events could not be read ({exc.code().name})") from None
                reason = exc.code().name
            except TimeoutError:
                reason = "DEADLINE_EXCEEDED"
            remaining = deadline - time.monotonic()
            log.warning(
                "catch-up read failed",
                extra={"order_id": order_id, "attempt": attempt, "grpc_code": reason},
            )
            if remaining <= 0:
                raise ReadFailed(
                    f"the order's events could not be read ({reason}, {attempt} attempts)"
                ) from None
            await asyncio.sleep(min(remaining, delay * (0.5 + random.random())))
            delay = min(delay * 2, 1.0)

    def _merge(self, feed: OrderFeed, history: list[Event]) -> None:
        """Joins a read's history (seq 1 …) with what arrived live meanwhile, then serves: live
        subscriptions get what they miss, waiting ones their ack, catch-up and live events."""
        known: dict[int, Event] = {e.seq: e for e in history}
        for event in feed.events:
            known.setdefault(event.seq, event)
        for seq, event in feed.pending.items():
            known.setdefault(seq, event)
        run: list[Event] = []
        seq = 1
        while seq in known:
            run.append(known.pop(seq))
            seq += 1
        if run:
            feed.events, feed.first = run, 1
            feed.pending = {s: e for s, e in known.items() if s > seq}
            feed.stale = False
        else:
            feed.pending = known  # the order exists but its seq 1 is missing: not possible, read again
        for sub in list(feed.live):
            self._advance(feed, sub)
        if feed.events:
            waiting, feed.waiting = feed.waiting, []
            ack = self._ack(feed)
            for sub in waiting:
                if not sub.ended:
                    sub.sink.push(ack)
                    self._go_live(feed, sub)

    def _end(self, sub: Subscription, doc: dict[str, Any]) -> None:
        if sub.ended:
            return
        sub.ended = True
        sub.sink.push(text_message(doc))
        sub.sink.subscription_ended(sub)

    def _end_all(self, feed: OrderFeed, code: str, message: str, field: str | None = None) -> None:
        for sub in [*feed.waiting, *feed.live]:
            doc: dict[str, Any] = {"type": "error", "code": code, "message": message, "orderId": sub.order_id}
            if field:
                doc["field"] = field
            self._end(sub, doc)
        feed.waiting.clear()
        feed.live.clear()
        self._drop(feed.order_id)

    def _fail(self, feed: OrderFeed, reason: str, everyone: bool) -> None:
        """Ends the subscriptions the failed read left without their events: the waiting ones, and
        (`everyone`) the live ones too when the run has a gap they cannot pass."""
        victims = [*feed.waiting, *(feed.live if everyone else ())]
        log.warning(
            "catch-up failed; subscriptions ended",
            extra={"order_id": feed.order_id, "subscriptions": len(victims), "reason": reason},
        )
        for sub in victims:
            self._end(
                sub,
                {
                    "type": "error",
                    "code": "catchup_failed",
                    "message": f"{reason}; resubscribe with afterSeq",
                    "orderId": sub.order_id,
                    "afterSeq": sub.last_seq,
                },
            )
        feed.waiting.clear()
        if everyone:
            feed.live.clear()
            self._drop(feed.order_id)

    def _touch_idle(self, feed: OrderFeed) -> None:
        if feed.loader is not None or not feed.idle:
            return
        self._idle[feed.order_id] = None
        self._idle.move_to_end(feed.order_id)
        while len(self._idle) > self.cache_orders:
            oldest, _ = self._idle.popitem(last=False)
            self._feeds.pop(oldest, None)

    def _drop(self, order_id: str) -> None:
        self._idle.pop(order_id, None)
        feed = self._feeds.pop(order_id, None)
        if feed is not None and feed.loader is not None and feed.loader is not asyncio.current_task():
            feed.loader.cancel()
