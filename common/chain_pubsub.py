"""Pushed confirmations on the node's WebSocket (`SignatureFeed`).

The executor watches a transaction's signature before it sends the transaction, so the node tells
it when the transaction reaches the commitment instead of being asked every poll interval. One
WebSocket per process carries every subscription. With the wallet's address (`mentions`), one
`logsSubscribe` for all the wallet's transactions is taken when the socket opens, and a watch is
only noted here: no message per transaction but its notification. Without it, or where the node
refuses that subscription, each watch is a `signatureSubscribe` of its own (two messages more per
transaction: the request and its acknowledgement). Push is an accelerator, never the only
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


class SubscriptionRefused(FeedUnavailable):
    """The node answered a subscription request with an error."""


class Watch:
    """One subscription: `wait` returns the pushed status once the node sends it."""

    __slots__ = ("_feed", "signature", "sub_id", "shared", "_ack", "_status", "broken")

    def __init__(self, feed: SignatureFeed, signature: str) -> None:
        self._feed = feed
        self.signature = signature
        self.sub_id: int | None = None
        self.shared = False  # on the wallet's logs subscription, not a subscription of its own
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

    def __init__(self, url: str, commitment: str, mentions: str = "") -> None:
        self.url = url
        self.commitment = commitment
        self.mentions = mentions  # the wallet's address: one logs subscription for all its transactions
        self._logs_sub: int | None = None  # that subscription's id on the open socket
        self._logs_refused = False  # the node refused it: a subscription per signature instead
        self._watched: dict[str, Watch] = {}  # signature → watch, on the logs subscription
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
        """Watches `signature` at the feed's commitment; returns once the node acknowledged a
        subscription that covers it (the wallet's, taken when the socket opened, or this
        signature's own), so a transaction sent afterwards cannot land unnoticed. Raises
        FeedUnavailable."""
        ws = await self._connect()
        watch = Watch(self, signature)
        if self._logs_sub is not None:
            watch.shared = True
            watch._acked(self._logs_sub)
            previous = self._watched.get(signature)
            if previous is not None:  # watched twice (a resend): the older watch hears nothing more
                previous._break(FeedUnavailable("watched again"))
            self._watched[signature] = watch
            return watch
        params = [signature, {"commitment": self.commitment}]
        try:
            await self._subscribe(ws, watch, "signatureSubscribe", params)
        except FeedUnavailable:
            raise
        except (TimeoutError, websockets.WebSocketException, OSError) as exc:
            watch._break(FeedUnavailable(type(exc).__name__))
            raise FeedUnavailable(f"signatureSubscribe: {type(exc).__name__}") from None
        return watch

    async def _subscribe(self, ws: ClientConnection, watch: Watch, method: str, params: list[Any]) -> int:
        """Asks the node for a subscription for `watch`; returns its id once acknowledged. Raises
        FeedUnavailable (refused), TimeoutError (no answer) or the socket's own error."""
        request_id = next(self._ids)
        self._pending[request_id] = watch
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        try:
            await ws.send(orjson.dumps(request).decode())
            return await asyncio.wait_for(asyncio.shield(watch._ack), ACK_TIMEOUT_S)
        except BaseException:
            self._pending.pop(request_id, None)
            raise

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
            self._reader = asyncio.create_task(self._read(ws), name="signature-feed-reader")
            if self.mentions and not self._logs_refused:
                await self._subscribe_logs(ws)  # before any watch can use the socket
                if self._reader.done():
                    self._failed_at = time.monotonic() - RETRY_AFTER_S + 1.0
                    raise FeedUnavailable("the node's WebSocket closed")
            self._ws = ws
            log.info(
                "pushed confirmations on",
                extra={"url": self.url, "per": "wallet" if self._logs_sub is not None else "signature"},
            )
            return ws

    async def _subscribe_logs(self, ws: ClientConnection) -> None:
        """The wallet's logs subscription on a new socket; a node that refuses it (or does not
        answer in time) leaves the feed on a subscription per signature."""
        watch = Watch(self, "")
        params = [{"mentions": [self.mentions]}, {"commitment": self.commitment}]
        try:
            self._logs_sub = await self._subscribe(ws, watch, "logsSubscribe", params)
        except (FeedUnavailable, TimeoutError, websockets.WebSocketException, OSError) as exc:
            self._subs.pop(watch.sub_id or -1, None)
            self._logs_refused = isinstance(exc, SubscriptionRefused)
            log.warning(
                "no logs subscription for the wallet; one subscription per transaction",
                extra={"error": str(exc)[:200] or type(exc).__name__},
            )
            return
        self._subs.pop(self._logs_sub, None)  # notifications of it are read by signature

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
            for watch in [*self._pending.values(), *self._subs.values(), *self._watched.values()]:
                watch._break(error)
            self._pending.clear()
            self._subs.clear()
            self._watched.clear()
            self._logs_sub = None

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
        if message.get("method") == "logsNotification":
            self._on_logs(message.get("params"))
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
            watch._break(SubscriptionRefused(f"subscription refused: {str(text)[:200]}"))

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

    def _on_logs(self, params: Any) -> None:
        """A transaction of the wallet reached the commitment: the watch of its signature, if any,
        hears its outcome (others, such as the airdrop that funded the wallet, are not watched)."""
        params = params if isinstance(params, dict) else {}
        result = params.get("result")
        context = result.get("context") if isinstance(result, dict) else None
        value = result.get("value") if isinstance(result, dict) else None
        slot = context.get("slot") if isinstance(context, dict) else None
        signature = value.get("signature") if isinstance(value, dict) else None
        if (
            self._logs_sub is None
            or params.get("subscription") != self._logs_sub
            or not isinstance(value, dict)
            or not isinstance(signature, str)
            or "err" not in value
            or not isinstance(slot, int)
            or isinstance(slot, bool)
            or slot < 0
        ):
            self._ignore("malformed logsNotification")
            watch = self._watched.pop(signature, None) if isinstance(signature, str) else None
            if watch is not None:
                watch._break(FeedUnavailable("malformed notification"))
            return
        watch = self._watched.pop(signature, None)
        if watch is None:
            return
        self.pushed += 1
        watch._pushed(SignatureStatus(slot, None, value["err"], self.commitment))

    def _ignore(self, what: str) -> None:
        self.ignored += 1
        log.warning("ignored a message from the node's WebSocket", extra={"reason": what})

    def _forget(self, watch: Watch) -> None:
        if watch.shared:
            if self._watched.get(watch.signature) is watch:
                del self._watched[watch.signature]
            return
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
