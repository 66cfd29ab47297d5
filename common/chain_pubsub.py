"""Pushed confirmations: `signatureSubscribe` on the node's WebSocket (`SignatureFeed`).

The executor subscribes to a transaction's signature before it sends the transaction, so the node
tells it when the transaction reaches the commitment instead of being asked every poll interval.
One WebSocket per process carries every subscription. Push is an accelerator, never the only
source of truth: a node without a WebSocket, a socket that breaks or a notification that never
comes leaves the caller on its status polls (`executor_svc.sender`), which also decide expiry.

Everything the node sends is checked: a response or notification of an unexpected shape is ignored
(and counted in the log), never trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from common.chain import SignatureStatus

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
ACK_TIMEOUT_S = 2.0
RETRY_AFTER_S = 5.0  # after a failed connect, push is not tried again for this long
MAX_MESSAGE_BYTES = 1 << 20


class FeedUnavailable(Exception):
    """No subscription could be made (no socket, refused, no answer): poll instead."""


class Watch:
    """One subscription: `wait` returns the pushed status once the node sends it."""

    __slots__ = ("_feed", "signature", "sub_id", "_ack", "_status", "broken")

    def __init__(self, feed: SignatureFeed, signature: str) -> None:
        self._feed = feed
        self.signature = signature
        self.sub_id: int | None = None
        loop = asyncio.get_running_loop()
        self._ack: asyncio.Future[int] = loop.create_future()
        self._status: asyncio.Future[SignatureStatus] = loop.create_future()
        self.broken = False  # the socket went away: nothing will be pushed any more

    async def wait(self, timeout_s: float) -> SignatureStatus | None:
        """The pushed status, or None if none came within `timeout_s` (or the feed broke)."""
        if self.broken and not self._status.done():
            return None
        with contextlib.suppress(TimeoutError, FeedUnavailable):
            return await asyncio.wait_for(asyncio.shield(self._status), timeout_s)
        return None

    def close(self) -> None:
        """Forgets the subscription (unsubscribing if the node still holds it)."""
        self._feed._forget(self)

    # called by the feed's reader
    def _acked(self, sub_id: int) -> None:
        self.sub_id = sub_id
        if not self._ack.done():
            self._ack.set_result(sub_id)

    def _pushed(self, status: SignatureStatus) -> None:
        if not self._status.done():
            self._status.set_result(status)

    def _break(self, error: BaseException) -> None:
        self.broken = True
        if not self._ack.done():
            self._ack.set_exception(error)
            self._ack.exception()  # retrieved: the subscriber may have stopped waiting for it
        if not self._status.done():
            self._status.set_exception(error)
            self._status.exception()  # retrieved: a watch nobody waits on is not an error


class SignatureFeed:
    """One WebSocket to the node's pubsub endpoint, shared by every transaction in flight."""

    def __init__(self, url: str, commitment: str) -> None:
        self.url = url
        self.commitment = commitment
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._failed_at = float("-inf")
        self._ids = itertools.count(1)
        self._pending: dict[int, Watch] = {}  # request id → watch awaiting its subscription id
        self._subs: dict[int, Watch] = {}  # subscription id → watch
        self.pushed = 0
        self.ignored = 0

    async def watch(self, signature: str) -> Watch:
        """Subscribes to `signature` at the feed's commitment; returns once the node acknowledged
        it, so a transaction sent afterwards cannot land unnoticed. Raises FeedUnavailable."""
        ws = await self._connect()
        watch = Watch(self, signature)
        request_id = next(self._ids)
        self._pending[request_id] = watch
        request = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "signatureSubscribe",
            "params": [signature, {"commitment": self.commitment}],
        }
        try:
            await ws.send(orjson.dumps(request).decode())
            await asyncio.wait_for(asyncio.shield(watch._ack), ACK_TIMEOUT_S)
        except FeedUnavailable:
            raise
        except (TimeoutError, websockets.WebSocketException, OSError) as exc:
            self._pending.pop(request_id, None)
            watch._break(FeedUnavailable(type(exc).__name__))
            raise FeedUnavailable(f"signatureSubscribe: {type(exc).__name__}") from None
        return watch

    async def close(self) -> None:
        ws, reader = self._ws, self._reader
        self._ws = self._reader = None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _connect(self) -> ClientConnection:
        if self._ws is not None:
            return self._ws
        async with self._connecting:
            if self._ws is not None:
                return self._ws
            if time.monotonic() - self._failed_at < RETRY_AFTER_S:
                raise FeedUnavailable("the node's WebSocket was unreachable a moment ago")
            try:
                ws = await websockets.connect(
                    self.url,
                    open_timeout=CONNECT_TIMEOUT_S,
                    max_size=MAX_MESSAGE_BYTES,
                    compression=None,
                    ping_interval=20,
                    ping_timeout=20,
                )
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                self._failed_at = time.monotonic()
                log.warning(
                    "pushed confirmations unavailable; polling",
                    extra={"url": self.url, "error": type(exc).__name__},
                )
                raise FeedUnavailable(type(exc).__name__) from None
            self._ws = ws
            self._reader = asyncio.create_task(self._read(ws), name="signature-feed-reader")
            log.info("pushed confirmations on", extra={"url": self.url})
            return ws

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._on_message(raw)
        except websockets.WebSocketException as exc:
            log.warning("signature feed closed; polling meanwhile", extra={"error": type(exc).__name__})
        finally:
            if self._ws is ws:
                self._ws = None
                self._failed_at = time.monotonic() - RETRY_AFTER_S + 1.0  # reconnect after a second
            error = FeedUnavailable("the node's WebSocket closed")
            for watch in [*self._pending.values(), *self._subs.values()]:
                watch._break(error)
            self._pending.clear()
            self._subs.clear()

    def _on_message(self, raw: str | bytes) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            self._ignore("not a JSON object")
            return
        if message.get("method") == "signatureNotification":
            self._on_notification(message.get("params"))
            return
        request_id = message.get("id")
        watch = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        if watch is None:
            if "error" not in message and not isinstance(message.get("result"), bool):
                self._ignore("a response to no request")  # an unsubscribe's true/false is expected
            return
        sub_id = message.get("result")
        if isinstance(sub_id, int) and not isinstance(sub_id, bool) and sub_id >= 0:
            self._subs[sub_id] = watch
            watch._acked(sub_id)
        else:
            error = message.get("error")
            text = error.get("message") if isinstance(error, dict) else None
            watch._break(FeedUnavailable(f"signatureSubscribe refused: {str(text)[:200]}"))

    def _on_notification(self, params: Any) -> None:
        if not isinstance(params, dict):
            self._ignore("notification without params")
            return
        sub_id = params.get("subscription")
        result = params.get("result")
        watch = self._subs.pop(sub_id, None) if isinstance(sub_id, int) else None
        if watch is None:
            return  # unsubscribed meanwhile
        context = result.get("context") if isinstance(result, dict) else None
        value = result.get("value") if isinstance(result, dict) else None
        slot = context.get("slot") if isinstance(context, dict) else None
        if not isinstance(value, dict) or "err" not in value or not isinstance(slot, int) or slot < 0:
            self._ignore("malformed signatureNotification")
            watch._break(FeedUnavailable("malformed notification"))
            return
        self.pushed += 1
        watch._pushed(SignatureStatus(slot, None, value["err"], self.commitment))

    def _ignore(self, what: str) -> None:
        self.ignored += 1
        log.warning("ignored a message from the node's WebSocket", extra={"reason": what})

    def _forget(self, watch: Watch) -> None:
        sub_id = watch.sub_id
        if sub_id is None or self._subs.get(sub_id) is not watch:
            return
        del self._subs[sub_id]
        ws = self._ws
        if ws is not None:
            request = {
                "jsonrpc": "2.0",
                "id": next(self._ids),
                "method": "signatureUnsubscribe",
                "params": [sub_id],
            }
            task = asyncio.ensure_future(ws.send(orjson.dumps(request).decode()))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
