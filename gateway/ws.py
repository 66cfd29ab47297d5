"""WS /api/orders/ws: follow many orders on one socket, replay by seq, submit orders.

One writer task per socket is the only sender. Live events from the hub and catch-up requests
share one bounded queue, so history and live messages are merged in seq order with no gap and no
duplicate: the writer remembers the last seq sent per order, drops anything at or below it, and
reads history from persistence whenever a gap appears.

Liveness and limits (all settings): the server sends {"type":"ping"} after WS_PING_INTERVAL_S without
another message (clients answer {"action":"pong"}); a socket with no client message for
WS_IDLE_TIMEOUT_S and no subscription to an unfinished order is closed with 4000; a consumer more than
WS_QUEUE_SIZE messages behind is closed with 4008 (it resubscribes with afterSeq and misses nothing),
and one that takes no message for WS_SEND_TIMEOUT_S is dropped (its socket cannot even take a close
frame). Memory per socket is bounded by the queue and the transport's write buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import grpc
import orjson
from prometheus_client import Counter, Gauge
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from common import lifecycle
from gateway.app import EdgeState, grpc_to_api, submit_order
from gateway.hub import Subscriber
from gateway.validation import ApiError, check_idempotency_key, is_order_id, parse_order_request
from gateway.views import event_json
from orderengine.v1 import orders_pb2

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024
MAX_SUBSCRIPTIONS = 200
MESSAGES_PER_SECOND = 50
CLOSE_IDLE = 4000
CLOSE_SLOW_CONSUMER = 4008

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
        settings = state.settings
        self.sub = Subscriber(settings.ws_queue_size)
        self.ping_interval_s = settings.ws_ping_interval_s
        self.idle_timeout_s = settings.ws_idle_timeout_s
        self.send_timeout_s = settings.ws_send_timeout_s
        self.last_seq: dict[str, int] = {}
        self.finished: set[str] = set()  # subscribed orders whose terminal event was delivered
        self.closed = False
        self.tokens = float(MESSAGES_PER_SECOND)
        self.refilled = time.monotonic()
        self.last_activity = self.refilled  # last client message, or last subscription that ended

    async def send(self, message: dict[str, Any]) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            text = orjson.dumps(message).decode()
            try:
                async with asyncio.timeout(self.send_timeout_s):
                    await self.ws.send_text(text)
            except TimeoutError:
                raise SendTimeout() from None

    def idle_deadline(self) -> float | None:
        """When this socket becomes idle (monotonic time), or None while it follows an unfinished order."""
        if len(self.finished) < len(self.last_seq):
            return None
        return self.last_activity + self.idle_timeout_s

    async def send_error(
        self, code: str, message: str, field: str | None = None, order_id: str | None = None
    ) -> None:
        doc: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if field:
            doc["field"] = field
        if order_id:
            doc["orderId"] = order_id
        await self.send(doc)

    # --- subscription -------------------------------------------------------------------------
    async def subscribe(self, order_id: str, after_seq: int) -> None:
        if order_id in self.last_seq:
            # resubscribe: lower the watermark if the client asks to replay more
            self.last_seq[order_id] = min(self.last_seq[order_id], after_seq)
        else:
            if len(self.last_seq) >= MAX_SUBSCRIPTIONS:
                await self.send_error(
                    "too_many_subscriptions",
                    f"at most {MAX_SUBSCRIPTIONS} orders per socket",
                    order_id=order_id,
                )
                return
            self.last_seq[order_id] = after_seq
            self.state.hub.add(order_id, self.sub)  # live first, so nothing falls between history and live
        self.sub.offer({"type": "_catchup", "orderId": order_id, "_ack": True})

    def unsubscribe(self, order_id: str) -> None:
        if self.last_seq.pop(order_id, None) is not None:
            self.state.hub.remove(order_id, self.sub)
            self.finished.discard(order_id)
            self.last_activity = time.monotonic()

    async def catch_up(self, order_id: str, announce: bool) -> None:
        try:
            order = await self.state.orders.GetOrder(
                orders_pb2.GetOrderRequest(order_id=order_id, with_events=True), timeout=5.0
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                self.unsubscribe(order_id)
                await self.send_error("unknown_order", "no such order", "orderId", order_id)
            else:
                err = grpc_to_api(exc)
                await self.send_error(err.code, err.message, order_id=order_id)
            return
        if announce:
            await self.send({"type": "subscribed", "orderId": order_id, "lastSeq": order.last_seq})
        for event in order.events:
            await self.deliver(event_json(event))

    async def deliver(self, message: dict[str, Any]) -> None:
        order_id = message.get("orderId")
        if not isinstance(order_id, str) or order_id not in self.last_seq:
            return
        seq = message.get("seq")
        if not isinstance(seq, int):
            return
        last = self.last_seq[order_id]
        if seq <= last:
            return
        if seq > last + 1:
            await self.catch_up(order_id, announce=False)  # fills the gap, then this one is a duplicate
            return
        self.last_seq[order_id] = seq
        if message.get("status") in lifecycle.TERMINAL and order_id not in self.finished:
            self.finished.add(order_id)
            self.last_activity = time.monotonic()
        await self.send(message)

    # --- the two loops ------------------------------------------------------------------------
    async def writer(self) -> None:
        while True:
            try:
                message = await asyncio.wait_for(self.sub.queue.get(), timeout=self.ping_interval_s)
            except TimeoutError:
                await self.send({"type": "ping"})
                continue
            if self.sub.overflowed:
                WS_CLOSED.labels("slow_consumer").inc()
                await self.ws.close(
                    code=CLOSE_SLOW_CONSUMER, reason="slow consumer: resubscribe with afterSeq"
                )
                return
            kind = message.get("type")
            if kind == "_catchup":
                await self.catch_up(message["orderId"], announce=bool(message.get("_ack")))
            elif kind == "status":
                await self.deliver(message)

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
        elif action == "pong":
            return
        else:
            await self.send_error(
                "unknown_action", "action must be subscribe, unsubscribe or execute", "action"
            )

    async def execute(self, msg: dict[str, Any]) -> None:
        body = {k: v for k, v in msg.items() if k not in ("action", "idempotencyKey")}
        try:
            key_raw = msg.get("idempotencyKey")
            if key_raw is not None and not isinstance(key_raw, str):
                raise ApiError(
                    422, "invalid_idempotency_key", "idempotencyKey must be a string", "idempotencyKey"
                )
            key = check_idempotency_key(key_raw)
            req = parse_order_request(body, self.state.markets, self.state.settings.default_slippage_bps)
            order_id, _ = await submit_order(self.state, req, key)
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
        await self.subscribe(order_id, 0)


async def order_socket(ws: WebSocket) -> None:
    state: EdgeState = ws.app.state.edge
    await ws.accept()
    conn = Connection(ws, state)
    writer = asyncio.create_task(conn.writer(), name="ws-writer")
    WS_CONNECTIONS.inc()
    try:
        first = ws.query_params.get("orderId")
        if first is not None:
            after_raw = ws.query_params.get("afterSeq", "0")
            if not is_order_id(first):
                await conn.send_error("invalid_order_id", "orderId must be an order id (UUID)", "orderId")
            elif not (after_raw.isascii() and after_raw.isdigit() and len(after_raw) <= 10):
                await conn.send_error("invalid_after_seq", "afterSeq must be an integer ≥ 0", "afterSeq")
            else:
                await conn.subscribe(first, int(after_raw))
        receiver = asyncio.create_task(ws.receive_text(), name="ws-receive")
        while True:
            deadline = conn.idle_deadline()
            timeout = conn.idle_timeout_s if deadline is None else max(0.0, deadline - time.monotonic())
            done, _ = await asyncio.wait(
                {receiver, writer}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if writer in done:
                if isinstance(writer.exception(), SendTimeout):
                    WS_CLOSED.labels("send_timeout").inc()
                break
            if not done:
                deadline = conn.idle_deadline()
                if deadline is not None and time.monotonic() >= deadline:
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await writer
                    WS_CLOSED.labels("idle").inc()
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(conn.send_timeout_s):
                            await ws.close(
                                code=CLOSE_IDLE, reason=f"idle: no message for {conn.idle_timeout_s:g} s"
                            )
                    break
                continue
            try:
                text = receiver.result()
            except (WebSocketDisconnect, RuntimeError, KeyError):
                break
            try:
                await conn.handle(text)
            except SendTimeout:
                WS_CLOSED.labels("send_timeout").inc()
                break
            receiver = asyncio.create_task(ws.receive_text(), name="ws-receive")
    finally:
        WS_CONNECTIONS.dec()
        for order_id in list(conn.last_seq):
            conn.unsubscribe(order_id)
        for task in (writer,):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if "receiver" in locals():
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver
