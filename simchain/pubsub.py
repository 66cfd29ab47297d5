"""`signatureSubscribe` over WebSocket, as a Solana node's pubsub endpoint offers it.

A client subscribes to a signature at a commitment and gets one `signatureNotification` once the
transaction reaches it (its error, or null); the subscription then ends by itself, as on a real
node. Here a landed transaction is `confirmed` at once (the tip is the confirmed slot) and
`finalized` FINALIZATION_DEPTH slots later; a status lag fault (`simSetFaults statusLagSlots`)
delays notifications exactly as it delays getSignatureStatuses. A subscription to a signature that
is already at its commitment is answered at once, after the subscription's own response.

`logsSubscribe [{"mentions": [address]}, {commitment}]` follows every transaction that names the
address among its accounts (one subscription for all of a wallet's transactions, as a real node
offers it): a `logsNotification` (its signature, error and logs) for each once it reaches the
commitment, for as long as the subscription lasts.

The WebSocket is served on the node's HTTP port (ws://host:port/); JSON-RPC 2.0 requests, one per
message: `signatureSubscribe [signature, {commitment}]` and `logsSubscribe` → subscription id,
`signatureUnsubscribe [id]` and `logsUnsubscribe [id]` → bool. Anything else is a JSON-RPC error
naming what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from solders.pubkey import Pubkey

from simchain.ledger import FINALIZATION_DEPTH, Ledger, TxRecord

log = logging.getLogger(__name__)

# How deep under the (status-lagged) tip a landed transaction must be for each commitment.
_DEPTH: Final = {"processed": 0, "confirmed": 0, "finalized": FINALIZATION_DEPTH}
_COMMITMENT_ALIASES: Final = {
    "recent": "processed",
    "single": "confirmed",
    "max": "finalized",
    "root": "finalized",
}
MAX_SUBSCRIPTIONS_PER_SOCKET: Final = 100_000
MAX_MESSAGE_BYTES: Final = 64 * 1024
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602

Deliver = Callable[[bytes], None]


@dataclass(slots=True, eq=False)
class _Sub:
    id: int
    signature: str
    depth: int
    deliver: Deliver
    owner: object


@dataclass(slots=True, eq=False)
class _LogsSub:
    id: int
    mentions: Pubkey
    depth: int
    deliver: Deliver
    owner: object


class SignatureSubscriptions:
    """Who waits for which signature (or for the logs of which address), and the notifications
    once a transaction gets to their commitment."""

    def __init__(self, ledger: Ledger, lag_slots: Callable[[], int]) -> None:
        self._ledger = ledger
        self._lag_slots = lag_slots
        self._next_id = 0
        self._by_signature: dict[str, list[_Sub]] = {}
        self._by_id: dict[int, _Sub] = {}
        self._landed: set[str] = set()  # waited-for signatures that landed but are not deep enough yet
        self._logs: dict[int, _LogsSub] = {}
        self._logs_waiting: list[tuple[TxRecord, _LogsSub]] = []  # landed, not deep enough yet
        ledger.observers.append(self._observe)

    def __len__(self) -> int:
        return len(self._by_id) + len(self._logs)

    def subscribe_logs(self, mentions: Pubkey, commitment: str, deliver: Deliver, owner: object) -> int:
        self._next_id += 1
        self._logs[self._next_id] = _LogsSub(self._next_id, mentions, _DEPTH[commitment], deliver, owner)
        return self._next_id

    def unsubscribe_logs(self, sub_id: int, owner: object) -> bool:
        sub = self._logs.get(sub_id)
        if sub is None or sub.owner is not owner:
            return False
        del self._logs[sub_id]
        return True

    def _logs_landed(self, rec: TxRecord) -> None:
        for sub in self._logs.values():
            if sub.mentions in rec.keys:
                self._logs_waiting.append((rec, sub))
        self._logs_deliver()

    def _logs_deliver(self) -> None:
        """Notifies the logs subscribers whose transactions reached their commitment."""
        if not self._logs_waiting:
            return
        tip = max(self._ledger.slot - self._lag_slots(), 0)
        waiting = []
        for rec, sub in self._logs_waiting:
            if sub.id not in self._logs:
                continue  # unsubscribed meanwhile
            if rec.slot <= tip and tip - rec.slot >= sub.depth:
                sub.deliver(_logs_notification(sub.id, tip, rec))
            else:
                waiting.append((rec, sub))
        self._logs_waiting = waiting

    def subscribe(self, signature: str, commitment: str, deliver: Deliver, owner: object) -> int:
        self._next_id += 1
        sub = _Sub(self._next_id, signature, _DEPTH[commitment], deliver, owner)
        self._by_id[sub.id] = sub
        self._by_signature.setdefault(signature, []).append(sub)
        return sub.id

    def unsubscribe(self, sub_id: int, owner: object) -> bool:
        sub = self._by_id.get(sub_id)
        if sub is None or sub.owner is not owner:
            return False
        self._remove(sub)
        return True

    def drop(self, owner: object) -> None:
        """Every subscription of a closed socket."""
        for sub in [s for s in self._by_id.values() if s.owner is owner]:
            self._remove(sub)
        for logs in [s for s in self._logs.values() if s.owner is owner]:
            del self._logs[logs.id]

    def check(self, signature: str) -> None:
        """Notifies the subscribers of `signature` whose commitment its transaction has reached."""
        subs = self._by_signature.get(signature)
        if not subs:
            self._landed.discard(signature)
            return
        rec = self._ledger.history_by_str.get(signature)
        if rec is None:
            return
        tip = max(self._ledger.slot - self._lag_slots(), 0)
        if rec.slot > tip:
            self._landed.add(signature)
            return
        depth = tip - rec.slot
        for sub in [s for s in subs if depth >= s.depth]:
            self._remove(sub)
            sub.deliver(_notification(sub.id, tip, rec))
        if signature in self._by_signature:
            self._landed.add(signature)
        else:
            self._landed.discard(signature)

    def _observe(self, rec: TxRecord | None) -> None:
        if rec is not None:
            if rec.signature_str in self._by_signature:
                self.check(rec.signature_str)
            if self._logs:
                self._logs_landed(rec)
            return
        for signature in list(self._landed):  # the tip moved: deeper now
            self.check(signature)
        self._logs_deliver()

    def _remove(self, sub: _Sub) -> None:
        self._by_id.pop(sub.id, None)
        subs = self._by_signature.get(sub.signature)
        if subs is not None:
            with contextlib.suppress(ValueError):
                subs.remove(sub)
            if not subs:
                del self._by_signature[sub.signature]
                self._landed.discard(sub.signature)


def _notification(sub_id: int, slot: int, rec: TxRecord) -> bytes:
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "method": "signatureNotification",
            "params": {
                "result": {"context": {"slot": slot}, "value": {"err": rec.err}},
                "subscription": sub_id,
            },
        }
    )


def _logs_notification(sub_id: int, slot: int, rec: TxRecord) -> bytes:
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "method": "logsNotification",
            "params": {
                "result": {
                    "context": {"slot": slot},
                    "value": {"signature": rec.signature_str, "err": rec.err, "logs": rec.logs},
                },
                "subscription": sub_id,
            },
        }
    )


def _error(code: int, message: str, id_: Any = None) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id_})


class PubsubSocket:
    """One WebSocket client: requests in, responses and notifications out in order."""

    def __init__(self, subs: SignatureSubscriptions, valid_signature: Callable[[str], bool]) -> None:
        self._subs = subs
        self._valid_signature = valid_signature
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._mine = 0

    async def serve(
        self, receive: Callable[[], Any], send: Callable[[MutableMapping[str, Any]], Any]
    ) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        writer = asyncio.create_task(self._write(send))
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message["type"] != "websocket.receive":
                    continue
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                if len(data) > MAX_MESSAGE_BYTES:
                    self._out.put_nowait(_error(INVALID_REQUEST, "message too large"))
                    continue
                self.handle(data)
                if writer.done():
                    return  # the client stopped reading
        finally:
            self._subs.drop(self)
            self._out.put_nowait(None)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _write(self, send: Callable[[MutableMapping[str, Any]], Any]) -> None:
        while True:
            item = await self._out.get()
            if item is None:
                return
            await send({"type": "websocket.send", "text": item.decode()})

    def handle(self, data: str | bytes) -> None:
        try:
            request = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._out.put_nowait(_error(PARSE_ERROR, "Parse error"))
            return
        if not isinstance(request, dict) or request.get("jsonrpc") != "2.0":
            self._out.put_nowait(_error(INVALID_REQUEST, "Invalid request"))
            return
        id_ = request.get("id")
        if id_ is not None and (isinstance(id_, bool) or not isinstance(id_, (int, str))):
            self._out.put_nowait(_error(INVALID_REQUEST, "Invalid request: id"))
            return
        method, params = request.get("method"), request.get("params")
        if method == "signatureSubscribe":
            self._subscribe(id_, params)
        elif method == "logsSubscribe":
            self._subscribe_logs(id_, params)
        elif method in ("signatureUnsubscribe", "logsUnsubscribe"):
            if not isinstance(params, list) or len(params) != 1 or not _is_uint(params[0]):
                self._out.put_nowait(
                    _error(INVALID_PARAMS, "Invalid params: expected [subscription id]", id_)
                )
                return
            if method == "signatureUnsubscribe":
                gone = self._subs.unsubscribe(params[0], self)
            else:
                gone = self._subs.unsubscribe_logs(params[0], self)
            if gone:
                self._mine -= 1
            self._out.put_nowait(orjson.dumps({"jsonrpc": "2.0", "result": gone, "id": id_}))
        else:
            self._out.put_nowait(_error(METHOD_NOT_FOUND, "Method not found", id_))

    def _commitment(self, id_: Any, config: Any) -> str | None:
        """The config's commitment (default finalized, as a node's), or None once refused."""
        if not isinstance(config, dict):
            self._out.put_nowait(_error(INVALID_PARAMS, "Invalid params: config must be an object", id_))
            return None
        commitment = config.get("commitment", "finalized")
        commitment = _COMMITMENT_ALIASES.get(commitment, commitment)
        if commitment not in _DEPTH:
            self._out.put_nowait(_error(INVALID_PARAMS, f"Invalid params: commitment {commitment!r}", id_))
            return None
        if self._mine >= MAX_SUBSCRIPTIONS_PER_SOCKET:
            self._out.put_nowait(_error(INVALID_REQUEST, "too many subscriptions on this socket", id_))
            return None
        return str(commitment)

    def _subscribe_logs(self, id_: Any, params: Any) -> None:
        if not isinstance(params, list) or not 1 <= len(params) <= 2:
            self._out.put_nowait(_error(INVALID_PARAMS, "Invalid params: expected [filter, config?]", id_))
            return
        found = params[0]
        mentions = found.get("mentions") if isinstance(found, dict) and len(found) == 1 else None
        if not isinstance(mentions, list) or len(mentions) != 1 or not isinstance(mentions[0], str):
            # "all" and "allWithVotes" would push every transaction of the node: not offered here
            self._out.put_nowait(
                _error(INVALID_PARAMS, 'Invalid params: filter must be {"mentions": [one address]}', id_)
            )
            return
        try:
            address = Pubkey.from_string(mentions[0])
        except ValueError:
            self._out.put_nowait(_error(INVALID_PARAMS, "Invalid params: mentions: not an address", id_))
            return
        commitment = self._commitment(id_, params[1] if len(params) == 2 and params[1] is not None else {})
        if commitment is None:
            return
        sub_id = self._subs.subscribe_logs(address, commitment, self._out.put_nowait, self)
        self._mine += 1
        self._out.put_nowait(orjson.dumps({"jsonrpc": "2.0", "result": sub_id, "id": id_}))

    def _subscribe(self, id_: Any, params: Any) -> None:
        if not isinstance(params, list) or not 1 <= len(params) <= 2:
            self._out.put_nowait(_error(INVALID_PARAMS, "Invalid params: expected [signature, config?]", id_))
            return
        signature = params[0]
        if not isinstance(signature, str) or not self._valid_signature(signature):
            self._out.put_nowait(_error(INVALID_PARAMS, "Invalid params: signature", id_))
            return
        config = params[1] if len(params) == 2 and params[1] is not None else {}
        if isinstance(config, dict) and config.get("enableReceivedNotification"):
            self._out.put_nowait(
                _error(INVALID_PARAMS, "Invalid params: enableReceivedNotification is not offered here", id_)
            )
            return
        commitment = self._commitment(id_, config)
        if commitment is None:
            return
        sub_id = self._subs.subscribe(signature, commitment, self._notify, self)
        self._mine += 1
        self._out.put_nowait(orjson.dumps({"jsonrpc": "2.0", "result": sub_id, "id": id_}))
        self._subs.check(signature)  # already there: the notification follows the response

    def _notify(self, message: bytes) -> None:
        self._mine -= 1
        self._out.put_nowait(message)


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
