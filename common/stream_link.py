"""A long-lived bidirectional gRPC stream shared by every caller of a process (`StreamLink`).

A unary call per batch costs a call set-up on both sides; a stream costs one per process. Requests
are written as callers ask (everything queued while the previous write was on its way leaves in one
message); a reader hands each response to the request it names (by key). If the stream breaks (the
peer restarted), every request waiting on it gets `LinkBroken` and may ask again. The worker's links
to the router, the executor and persistence, and the executor's to persistence, are StreamLinks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import grpc

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Out = TypeVar("Out")
In = TypeVar("In")


class LinkBroken(Exception):
    """The stream ended or failed while the request was in flight; ask again."""

    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self.code = code


# How a stream broken by its peer's death may end: gRPC reports a process killed mid-stream as
# UNAVAILABLE, or as INTERNAL (the connection reset under a stream: RST_STREAM) or UNKNOWN (stream
# removed). To a caller all three are the same, the peer went away: UNAVAILABLE, ask again.
_PEER_GONE = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


def _broken_code(code: grpc.StatusCode) -> grpc.StatusCode:
    return grpc.StatusCode.UNAVAILABLE if code in _PEER_GONE else code


@dataclass(eq=False)
class _Open(Generic[Req, Out, In]):
    """One open stream: its call, the requests waiting to be written, and its two tasks."""

    call: grpc.aio.StreamStreamCall[Out, In]
    outbox: list[Req] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class StreamLink(Generic[Req, Resp, Out, In]):
    """One stream shared by every caller. Requests written meanwhile leave together in one message
    (`pack`); each message read may carry many responses (`unpack`), routed to callers by key."""

    def __init__(
        self,
        name: str,
        open_call: Callable[[], grpc.aio.StreamStreamCall[Out, In]],
        pack: Callable[[list[Req]], Out],
        unpack: Callable[[In], Iterable[Resp]],
        response_key: Callable[[Resp], str],
    ) -> None:
        self.name = name
        self._open_call = open_call
        self._pack = pack
        self._unpack = unpack
        self._response_key = response_key
        self._waiting: dict[str, asyncio.Queue[Resp | LinkBroken]] = {}
        self._stream: _Open[Req, Out, In] | None = None
        self._opening = asyncio.Lock()
        self.streams_opened = 0
        self.messages_written = 0
        self.requests_written = 0

    async def responses(self, key: str, request: Req) -> AsyncIterator[Resp]:
        """Sends `request` and yields the responses that carry `key` until the caller stops.
        Raises LinkBroken if the stream breaks first. One request per key at a time."""
        queue: asyncio.Queue[Resp | LinkBroken] = asyncio.Queue()
        self._waiting[key] = queue
        try:
            stream = await self._open()
            stream.outbox.append(request)
            stream.wake.set()
            while True:
                item = await queue.get()
                if isinstance(item, LinkBroken):
                    raise item
                yield item
        finally:
            if self._waiting.get(key) is queue:
                del self._waiting[key]

    async def first(self, key: str, request: Req) -> Resp:
        """Sends `request` and returns its first response (a request answered once)."""
        (response,) = await self.first_all([(key, request)])
        return response

    async def first_all(self, requests: Sequence[tuple[str, Req]]) -> list[Resp]:
        """Sends the (key, request) pairs in one message, in this order, and returns each one's
        first response. Raises LinkBroken if the stream breaks before every answer came."""
        queues: list[tuple[str, asyncio.Queue[Resp | LinkBroken]]] = [
            (key, asyncio.Queue()) for key, _ in requests
        ]
        for key, queue in queues:
            self._waiting[key] = queue
        try:
            stream = await self._open()
            stream.outbox.extend(request for _, request in requests)
            stream.wake.set()
            answers: list[Resp] = []
            for _, queue in queues:
                item = await queue.get()
                if isinstance(item, LinkBroken):
                    raise item
                answers.append(item)
            return answers
        finally:
            for key, queue in queues:
                if self._waiting.get(key) is queue:
                    del self._waiting[key]

    async def _open(self) -> _Open[Req, Out, In]:
        async with self._opening:
            if self._stream is None:
                stream: _Open[Req, Out, In] = _Open(self._open_call())
                stream.tasks = [
                    asyncio.create_task(self._write(stream), name=f"{self.name}-link-writer"),
                    asyncio.create_task(self._read(stream), name=f"{self.name}-link-reader"),
                ]
                self._stream = stream
                self.streams_opened += 1
            return self._stream

    async def _write(self, stream: _Open[Req, Out, In]) -> None:
        """The stream's only writer (grpc.aio allows one write in flight per call): everything
        queued while the previous write was on its way leaves in the next message."""
        try:
            while True:
                await stream.wake.wait()
                stream.wake.clear()
                batch, stream.outbox = stream.outbox, []
                if batch:
                    await stream.call.write(self._pack(batch))
                    self.messages_written += 1
                    self.requests_written += len(batch)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            log.warning(f"{self.name} stream write failed", extra={"error": type(exc).__name__})
            code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else grpc.StatusCode.UNAVAILABLE
            self._broken(stream, _broken_code(code))

    async def _read(self, stream: _Open[Req, Out, In]) -> None:
        code = grpc.StatusCode.UNAVAILABLE
        try:
            async for message in stream.call:
                for response in self._unpack(message):
                    queue = self._waiting.get(self._response_key(response))
                    if queue is not None:
                        queue.put_nowait(response)
        except grpc.aio.AioRpcError as exc:
            code = _broken_code(exc.code())
            log.warning(
                f"{self.name} stream broke; requests in flight ask again", extra={"grpc_code": code.name}
            )
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self._broken(stream, code)

    def _broken(
        self, stream: _Open[Req, Out, In], code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    ) -> None:
        if self._stream is not stream:
            return
        self._stream = None
        stream.call.cancel()
        for task in stream.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for queue in self._waiting.values():
            queue.put_nowait(LinkBroken(code))

    async def close(self) -> None:
        stream = self._stream
        if stream is None:
            return
        self._stream = None
        with contextlib.suppress(Exception):
            await stream.call.done_writing()
        stream.call.cancel()
        for task in stream.tasks:
            task.cancel()
        for task in stream.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
