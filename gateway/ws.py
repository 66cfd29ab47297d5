"""WS /api/orders/ws: follow many orders on one socket, replay by seq, submit orders.

Every message to the client goes through the socket's one writer task, in the order it was queued.
Events come from the order's feed (gateway/fanout.py): serialized once for every socket that follows
the order, catch-up first, then live, in seq order with no gap and no duplicate; a subscription that
cannot be served ends with an error naming the order (`unknown_order`, or `catchup_failed` with the
`afterSeq` to resubscribe from), never in silence. The writer sends everything queued in one go.

Liveness and limits (all settings): the server sends {"type":"ping"} after WS_PING_INTERVAL_S without
another message (clients answer {"action":"pong"}); a socket with no client message for
WS_IDLE_TIMEOUT_S and no subscription to an unfinished order is closed with 4000; a consumer more than
WS_QUEUE_SIZE messages behind is closed with 4008 (it resubscribes with afterSeq and misses nothing),
and one that takes no message for WS_SEND_TIMEOUT_S is dropped (its socket cannot even take a close
frame). The queue is allocated only while messages wait, and holds references to messages shared
with every other socket, so a socket's memory is bounded by it and the transport's write buffer.
Sockets per gateway and per client (WS_MAX_SOCKETS, WS_MAX_SOCKETS_PER_CLIENT; gateway/sockets.py)
and orders per socket (WS_MAX_SUBSCRIPTIONS) are limited; timed work runs on one ticker for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
import orjson
from prometheus_client import Counter, Gauge
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.app import RPC_TIMEOUT_S, EdgeState, grpc_to_api, order_request, quote_answer, submit_order
from gateway.fanout import FRAME, Subscription, text_message
from gateway.guard import owner_of
from gateway.ratelimit import client_of
from gateway.validation import ApiError, check_idempotency_key, is_order_id
from gateway.wsproto import EXTENSION
from orderengine.v1 import orders_pb2

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024
MESSAGES_PER_SECOND = 50
CLOSE_IDLE = 4000
CLOSE_SLOW_CONSUMER = 4008
CLOSE_UNSUPPORTED_DATA = 1003
PING = text_message({"type": "ping"})

WS_CONNECTIONS = Gauge("orderengine_gateway_ws_connections", "WebSocket connections open.")
WS_CLOSED = Counter(
    "orderengine_gateway_ws_closed_by_server_total",
    "WebSockets the gateway closed, by reason (idle, slow_consumer, send_timeout).",
    ["reason"],
)


class SendTimeout(Exception):
    """The peer took no message for WS_SEND_TIMEOUT_S: it is dropped without a close frame."""


class Connection:
    def __init__(self, ws: WebSocket, state: EdgeState) -> None:
        self.ws = ws
        self.state = state
        self.feeds = state.hub.feeds
        settings = state.settings
        self.queue_size = settings.ws_queue_size
        self.max_subscriptions = settings.ws_max_subscriptions
        self.ping_interval_s = settings.ws_ping_interval_s
        self.idle_timeout_s = settings.ws_idle_timeout_s
        self.send_timeout_s = settings.ws_send_timeout_s
        self.subs: dict[str, Subscription] = {}
        self.out: deque[dict[str, Any]] | None = None  # messages waiting for the writer, when any
        self.credit = 0  # catch-up messages among them: beyond the slow-consumer limit
        self.wakeup: asyncio.Future[None] | None = None  # the idle writer waits on it
        self.close_request: tuple[int, str, str] | None = None  # (code, reason, metric label)
        self.writer_task: asyncio.Task[None] | None = None
        # writes an event's prebuilt frame at once, when the server offers it (gateway/wsproto.py)
        self.write_frame: Callable[[bytes], bool] | None = ws.scope.get("extensions", {}).get(EXTENSION)
        # a send begun by push() that must wait for the transport: (its coroutine, what it awaits)
        self.pending: tuple[Coroutine[Any, Any, None], Any] | None = None
        self.abort_task: asyncio.Task[None] | None = None
        self.closed = False
        self.tokens = float(MESSAGES_PER_SECOND)
        self.refilled = time.monotonic()
        self.last_activity = self.refilled  # last client message, or last subscription that ended
        self.last_sent = self.refilled
        self.sending_since = 0.0  # when the send in progress began; 0 = none
        self.following = False  # at the last tick: a subscription to an unfinished order

    # --- the outgoing queue (Sink of gateway.fanout) -------------------------------------------------
    def push(self, message: dict[str, Any]) -> None:
        """Sends or queues an ASGI send message; never blocks. A consumer WS_QUEUE_SIZE behind is
        closed.

        Fast path: when nothing is queued and the writer is idle, the send starts here, at once
        (a fan-out of one event to 5,000 sockets then costs no task switch per socket). It
        completes here unless the transport pushes back (a full write buffer); then the writer
        task finishes it, and everything after it waits in the queue, in order."""
        if self.close_request is not None or self.closed:
            return
        out = self.out
        wakeup = self.wakeup
        if out is None and self.pending is None and wakeup is not None and not wakeup.done():
            frame = message.get(FRAME)
            if frame is not None and self.write_frame is not None and self.write_frame(frame):
                self.last_sent = time.monotonic()
                return
            coro = self.ws.send(message)
            try:
                yielded = coro.send(None)
            except StopIteration:
                self.last_sent = time.monotonic()
                return
            except Exception:  # noqa: BLE001 - the peer is gone; the receive side ends the socket
                self.closed = True
                return
            self.pending = (coro, yielded)  # pushed back: the writer waits for the transport
            self.sending_since = time.monotonic()
            wakeup.set_result(None)
            return
        if out is None:
            out = self.out = deque()
        elif len(out) - self.credit >= self.queue_size:
            out.clear()
            self.credit = 0
            self.request_close(
                CLOSE_SLOW_CONSUMER, "slow consumer: resubscribe with afterSeq", "slow_consumer"
            )
            return
        out.append(message)
        wakeup = self.wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def push_catchup(self, messages: list[dict[str, Any]]) -> None:
        if self.close_request is not None or self.closed:
            return
        if self.out is None:
            self.out = deque(messages)
        else:
            self.out.extend(messages)
        self.credit += len(messages)
        wakeup = self.wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def subscription_ended(self, sub: Subscription) -> None:
        if self.subs.get(sub.order_id) is sub:
            del self.subs[sub.order_id]

    def request_close(self, code: int, reason: str, label: str) -> None:
        """The writer sends the close frame once what is before it in the queue went out."""
        if self.close_request is None:
            self.close_request = (code, reason, label)
            wakeup = self.wakeup
            if wakeup is not None and not wakeup.done():
                wakeup.set_result(None)

    async def send(self, message: dict[str, Any]) -> None:
        """Queues `message` (a JSON object) after everything already queued."""
        self.push(text_message(message))

    async def send_error(
        self, code: str, message: str, field: str | None = None, order_id: str | None = None
    ) -> None:
        doc: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if field:
            doc["field"] = field
        if order_id:
            doc["orderId"] = order_id
        await self.send(doc)

    # --- timed work, called by the gateway's one ticker (gateway/sockets.py) -----------------------
    def tick(self, now: float) -> None:
        if self.closed:
            return
        if self.sending_since and now - self.sending_since > self.send_timeout_s:
            # the peer takes nothing, not even a close frame: drop it
            WS_CLOSED.labels("send_timeout").inc()
            self.closed = True
            if self.writer_task is not None:
                self.writer_task.cancel()
            return
        following = any(not sub.finished for sub in self.subs.values())
        if self.following and not following:
            self.last_activity = now  # the last unfinished order just ended: idle from now
        self.following = following
        if not following and now - self.last_activity >= self.idle_timeout_s:
            self.request_close(CLOSE_IDLE, f"idle: no message for {self.idle_timeout_s:g} s", "idle")
        elif not self.out and now - self.last_sent >= self.ping_interval_s:
            self.push(PING)

    def writer_done(self, task: asyncio.Task[None]) -> None:
        """A writer that failed (not cancelled, not a lost peer) leaves no socket without a sender."""
        if task.cancelled() or self.closed:
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, (OSError, WebSocketDisconnect, RuntimeError)):
            log.error("websocket writer failed", exc_info=exc)
            self.closed = True
            self.abort_task = asyncio.create_task(self._abort(), name="ws-abort")

    async def _abort(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.send_timeout_s):
                await self.ws.close(code=1011, reason="internal error")

    # --- subscription -------------------------------------------------------------------------
    async def owns(self, order_id: str) -> bool:
        """With API_KEYS a key follows only its own orders: another key's is an unknown order."""
        owner = owner_of(self.ws.scope)
        if not owner:
            return True

        async def check() -> bool:
            try:
                await self.state.orders.GetOrder(
                    orders_pb2.GetOrderRequest(order_id=order_id, owner=owner), timeout=RPC_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return False
                raise
            return True

        try:
            owned = await self.feeds.owned(order_id, owner, check)  # one read per (order, key)
        except grpc.aio.AioRpcError as exc:
            err = grpc_to_api(exc)
            await self.send_error(err.code, err.message, order_id=order_id)
            return False
        if not owned:
            await self.send_error("unknown_order", "no such order", "orderId", order_id)
        return owned

    async def subscribe(self, order_id: str, after_seq: int, owned: bool = False) -> None:
        old = self.subs.get(order_id)
        if old is None and not owned and not await self.owns(order_id):
            return
        if old is not None:
            # resubscribe: lower the watermark if the client asks to replay more
            after_seq = min(old.last_seq, after_seq)
            self.feeds.unsubscribe(old)
        elif len(self.subs) >= self.max_subscriptions:
            await self.send_error(
                "too_many_subscriptions",
                f"at most {self.max_subscriptions} orders per socket: unsubscribe from finished "
                "orders, or follow more on another socket",
                order_id=order_id,
            )
            return
        self.subs[order_id] = self.feeds.subscribe(order_id, self, after_seq)

    def unsubscribe(self, order_id: str) -> None:
        sub = self.subs.pop(order_id, None)
        if sub is not None:
            self.feeds.unsubscribe(sub)
            self.last_activity = time.monotonic()

    # --- the writer ---------------------------------------------------------------------------
    async def writer(self) -> None:
        """The only sender: everything queued goes out back to back in one wake-up."""
        loop = asyncio.get_running_loop()
        send = self.ws.send
        while True:
            if self.pending is not None:
                coro, yielded = self.pending
                self.pending = None
                await _finish(coro, yielded)
                self.sending_since = 0.0
                self.last_sent = time.monotonic()
            out = self.out
            if self.close_request is not None:
                code, reason, label = self.close_request
                while out:  # what was queued before the close (never the slow consumer's backlog)
                    self.sending_since = time.monotonic()
                    await send(out.popleft())
                WS_CLOSED.labels(label).inc()
                async with asyncio.timeout(self.send_timeout_s):
                    await self.ws.close(code=code, reason=reason)
                return
            if not out:
                self.out = None  # a drained socket holds no queue
                self.wakeup = loop.create_future()
                await self.wakeup
                self.wakeup = None
                continue
            write_frame = self.write_frame
            while out and self.close_request is None:
                message = out.popleft()
                frame = message.get(FRAME)
                # an event's prebuilt frame goes out at once while the transport takes data; any
                # other message, or one the transport pushes back on, through ASGI (which waits)
                if frame is None or write_frame is None or not write_frame(frame):
                    self.sending_since = time.monotonic()  # the ticker drops a send stuck too long
                    await send(message)
                if self.credit:
                    self.credit -= 1
            self.sending_since = 0.0
            self.last_sent = time.monotonic()

    def allow_message(self) -> bool:
        now = time.monotonic()
        self.tokens = min(MESSAGES_PER_SECOND, self.tokens + (now - self.refilled) * MESSAGES_PER_SECOND)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def handle(self, text: str) -> None:
        self.last_activity = time.monotonic()
        if len(text) > MAX_MESSAGE_BYTES:
            await self.send_error("message_too_large", f"messages must be at most {MAX_MESSAGE_BYTES} bytes")
            return
        if not self.allow_message():
            await self.send_error("rate_limited", f"at most {MESSAGES_PER_SECOND} messages per second")
            return
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            await self.send_error("invalid_json", "messages must be JSON objects")
            return
        if not isinstance(msg, dict):
            await self.send_error("invalid_message", "messages must be JSON objects")
            return
        action = msg.get("action")
        if action == "subscribe":
            order_id = msg.get("orderId")
            after = msg.get("afterSeq", 0)
            if not isinstance(order_id, str) or not is_order_id(order_id):
                await self.send_error("invalid_order_id", "orderId must be an order id (UUID)", "orderId")
                return
            if isinstance(after, bool) or not isinstance(after, int) or after < 0:
                await self.send_error("invalid_after_seq", "afterSeq must be an integer ≥ 0", "afterSeq")
                return
            await self.subscribe(order_id, after)
        elif action == "unsubscribe":
            order_id = msg.get("orderId")
            if not isinstance(order_id, str):
                await self.send_error("invalid_order_id", "orderId is required", "orderId")
                return
            self.unsubscribe(order_id)
            await self.send({"type": "unsubscribed", "orderId": order_id})
        elif action == "execute":
            await self.execute(msg)
        elif action == "quote":
            await self.quote(msg)
        elif action == "cancel":
            await self.cancel(msg)
        elif action == "pong":
            return
        else:
            await self.send_error(
                "unknown_action",
                "action must be subscribe, unsubscribe, execute, quote or cancel",
                "action",
            )

    async def cancel(self, msg: dict[str, Any]) -> None:
        """`{"action":"cancel","orderId":…}`: as POST /api/orders/{id}/cancel; answered with
        `{"type":"cancelled","orderId":…}` (the `cancelled` status follows on a subscription) or an
        error naming orderId."""
        order_id = msg.get("orderId")
        if not isinstance(order_id, str) or not is_order_id(order_id):
            await self.send_error("invalid_order_id", "orderId must be an order id (UUID)", "orderId")
            return
        try:
            await self.state.orders.CancelOrder(
                orders_pb2.CancelOrderRequest(order_id=order_id, owner=owner_of(self.ws.scope)),
                timeout=RPC_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                await self.send_error("not_found", "no such order", "orderId", order_id)
            elif exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                detail = (exc.details() or "").split(": ", 1)[-1]
                await self.send_error("not_open", detail or "the order is not open", "orderId", order_id)
            else:
                err = grpc_to_api(exc)
                await self.send_error(err.code, err.message, err.field)
            return
        await self.send({"type": "cancelled", "orderId": order_id})

    async def quote(self, msg: dict[str, Any]) -> None:
        """`{"action":"quote", …same body as POST /api/quotes…}` → `{"type":"quote", …its answer…}`;
        execute it with `{"action":"execute","quoteId":…}`."""
        body = {k: v for k, v in msg.items() if k != "action"}
        try:
            buckets = self.ws.app.state.rate_buckets
            wait = buckets.take(client_of(self.ws.scope), time.monotonic()) if buckets is not None else 0.0
            if wait > 0:
                raise ApiError(
                    429, "rate_limited", f"too many requests; retry in {max(1, math.ceil(wait))} s"
                )
            answer = await quote_answer(self.state, body, owner_of(self.ws.scope))
        except ApiError as err:
            await self.send_error(err.code, err.message, err.field)
            return
        await self.send({"type": "quote", **answer})

    async def execute(self, msg: dict[str, Any]) -> None:
        body = {k: v for k, v in msg.items() if k not in ("action", "idempotencyKey")}
        try:
            key_raw = msg.get("idempotencyKey")
            if key_raw is not None and not isinstance(key_raw, str):
                raise ApiError(
                    422, "invalid_idempotency_key", "idempotencyKey must be a string", "idempotencyKey"
                )
            buckets = self.ws.app.state.rate_buckets  # the HTTP limit's buckets (gateway.app)
            wait = buckets.take(client_of(self.ws.scope), time.monotonic()) if buckets is not None else 0.0
            if wait > 0:
                raise ApiError(
                    429, "rate_limited", f"too many requests; retry in {max(1, math.ceil(wait))} s"
                )
            key = check_idempotency_key(key_raw)
            req = await order_request(self.state, body, owner_of(self.ws.scope))
            order_id, _ = await submit_order(self.state, req, key, owner_of(self.ws.scope))
        except ApiError as err:
            await self.send_error(err.code, err.message, err.field)
            return
        await self.send(
            {
                "type": "accepted",
                "orderId": order_id,
                "status": "pending",
                "wsUrl": f"/api/orders/ws?orderId={order_id}",
            }
        )
        await self.subscribe(order_id, 0, owned=True)


async def _finish(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
    """Drives to its end a coroutine that was started by hand (`coro.send(None)`) and suspended on
    `yielded` — what a Task would do had it started it: wait for the future, then resume."""
    try:
        while True:
            if isinstance(yielded, asyncio.Future):
                yielded._asyncio_future_blocking = False
                await asyncio.wait({yielded})
            else:
                await asyncio.sleep(0)  # a bare yield
            yielded = coro.send(None)
    except StopIteration:
        return
    except asyncio.CancelledError:
        coro.close()
        raise


async def order_socket(ws: WebSocket) -> None:
    state: EdgeState = ws.app.state.edge
    sockets = state.sockets
    client = client_of(ws.scope)
    refusal = sockets.refusal(client)
    if refusal is not None:
        await ws.accept()
        await ws.close(code=refusal[0], reason=refusal[1])
        return
    conn = Connection(ws, state)
    sockets.add(conn, client)
    WS_CONNECTIONS.inc()
    try:
        await ws.accept()
        writer = conn.writer_task = asyncio.create_task(conn.writer(), name="ws-writer")
        writer.add_done_callback(conn.writer_done)
        first = ws.query_params.get("orderId")
        if first is not None:
            after_raw = ws.query_params.get("afterSeq", "0")
            if not is_order_id(first):
                await conn.send_error("invalid_order_id", "orderId must be an order id (UUID)", "orderId")
            elif not (after_raw.isascii() and after_raw.isdigit() and len(after_raw) <= 10):
                await conn.send_error("invalid_after_seq", "afterSeq must be an integer ≥ 0", "afterSeq")
            else:
                await conn.subscribe(first, int(after_raw))
        # Receiving needs no task of its own: whatever ends the socket (the client's close, a close
        # frame from the writer, uvicorn's keepalive timeout) ends in a disconnect message here.
        while True:
            try:
                text = await ws.receive_text()
            except KeyError:  # a binary frame: this API speaks JSON text (RFC 6455: 1003)
                conn.request_close(CLOSE_UNSUPPORTED_DATA, "text frames only", "binary_frame")
                continue
            except (WebSocketDisconnect, RuntimeError):
                break
            await conn.handle(text)
    finally:
        conn.closed = True
        sockets.remove(conn)
        WS_CONNECTIONS.dec()
        for order_id in list(conn.subs):
            conn.unsubscribe(order_id)
        if conn.writer_task is not None:
            conn.writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await conn.writer_task
