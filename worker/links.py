"""Long-lived bidirectional streams from the worker to the router, the executor and persistence.

A unary call per order costs a call set-up on both sides; a stream costs one per worker. Requests
are written as orders ask; a reader hands each response to the request it names (by key). If the
stream breaks (the peer restarted), every request waiting on it gets `LinkBroken` and may ask
again: the executor resumes what it stored (never a second swap), a quote is simply asked anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import grpc

from common.errors import status_code
from orderengine.v1 import (
    executor_pb2,
    executor_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Out = TypeVar("Out")
In = TypeVar("In")

Stage = executor_pb2.ExecutionUpdate.Stage
_END = (Stage.STAGE_CONFIRMED, Stage.STAGE_FAILED)


class LinkBroken(Exception):
    """The stream ended or failed while the request was in flight; ask again."""

    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self.code = code


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
            self._broken(stream, code)

    async def _read(self, stream: _Open[Req, Out, In]) -> None:
        code = grpc.StatusCode.UNAVAILABLE
        try:
            async for message in stream.call:
                for response in self._unpack(message):
                    queue = self._waiting.get(self._response_key(response))
                    if queue is not None:
                        queue.put_nowait(response)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
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


class ExecutorLink(
    StreamLink[
        executor_pb2.ExecuteRequest,
        executor_pb2.ExecutionUpdate,
        executor_pb2.ExecuteBatch,
        executor_pb2.ExecutionUpdateBatch,
    ]
):
    """Executor.ExecuteBatches: every order's execution requests and updates on one stream."""

    def __init__(
        self, stub: executor_pb2_grpc.ExecutorAsyncStub, metadata: tuple[tuple[str, str], ...]
    ) -> None:
        # Long-lived by design: no deadline on the stream itself; each order's wait is bounded by
        # the driver (EXECUTE_TIMEOUT_S).
        super().__init__(
            "executor",
            lambda: stub.ExecuteBatches(
                metadata=metadata, wait_for_ready=True
            ),  # deadline-exempt: long-lived
            lambda requests: executor_pb2.ExecuteBatch(requests=requests),
            lambda message: message.updates,
            lambda update: update.order_id,
        )

    async def execute(
        self, request: executor_pb2.ExecuteRequest
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        """The request's updates up to its CONFIRMED or FAILED one (one request per order at a time)."""
        async for update in self.responses(request.order_id, request):
            if update.attempt and update.attempt != request.attempt:
                continue  # a late update of an earlier request of this order
            yield update
            if update.stage in _END:
                return


class QuoteFailed(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class RouterLink(
    StreamLink[
        router_pb2.QuoteRequest,
        router_pb2.QuoteStreamResponse,
        router_pb2.QuoteBatch,
        router_pb2.QuoteResponseBatch,
    ]
):
    """Router.QuoteBatches: every order's quotes on one stream (the router quotes them from the same
    per-slot pool snapshot)."""

    def __init__(self, stub: router_pb2_grpc.RouterAsyncStub, metadata: tuple[tuple[str, str], ...]) -> None:
        super().__init__(
            "router",
            lambda: stub.QuoteBatches(metadata=metadata, wait_for_ready=True),  # deadline-exempt: long-lived
            lambda requests: router_pb2.QuoteBatch(requests=requests),
            lambda message: message.responses,
            lambda response: response.request_id,
        )

    async def quote(self, request: router_pb2.QuoteRequest) -> router_pb2.QuoteResponse:
        """The quote, or QuoteFailed with the status code Quote would have returned."""
        async for response in self.responses(request.request_id, request):
            if response.error_code:
                code = status_code(response.error_code)
                raise QuoteFailed(code, response.error_message)
            return response.response
        raise LinkBroken(grpc.StatusCode.UNAVAILABLE)  # pragma: no cover - responses() never ends


class EventLink(
    StreamLink[
        orders_pb2.NewEvent,
        orders_pb2.AppendResult,
        orders_pb2.AppendEventsRequest,
        orders_pb2.AppendEventsResponse,
    ]
):
    """Orders.AppendEventStream: every order's event appends on one stream; persistence commits
    what arrives together (group commit) and answers each event by (order id, seq)."""

    def __init__(self, stub: orders_pb2_grpc.OrdersAsyncStub, metadata: tuple[tuple[str, str], ...]) -> None:
        super().__init__(
            "persistence",
            lambda: stub.AppendEventStream(
                metadata=metadata, wait_for_ready=True
            ),  # deadline-exempt: long-lived
            lambda events: orders_pb2.AppendEventsRequest(events=events),
            lambda message: message.results,
            lambda result: f"{result.order_id}:{result.seq}",
        )

    async def append(self, event: orders_pb2.NewEvent) -> orders_pb2.AppendResult:
        """The event's result (its code and, when stored, the event); LinkBroken if the stream broke."""
        async for result in self.responses(f"{event.order_id}:{event.seq}", event):
            return result
        raise LinkBroken(grpc.StatusCode.UNAVAILABLE)  # pragma: no cover - responses() never ends
