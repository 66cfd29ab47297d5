"""Long-lived bidirectional streams from the worker to the router and the executor.

A unary call per order costs a call set-up on both sides; a stream costs one per worker. Requests
are written as orders ask; a reader hands each response to the request it names (by key). If the
stream breaks (the peer restarted), every request waiting on it gets `LinkBroken` and may ask
again: the executor resumes what it stored (never a second swap), a quote is simply asked anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

import grpc

from orderengine.v1 import executor_pb2, executor_pb2_grpc, router_pb2, router_pb2_grpc

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")

Stage = executor_pb2.ExecutionUpdate.Stage
_END = (Stage.STAGE_CONFIRMED, Stage.STAGE_FAILED)


class LinkBroken(Exception):
    """The stream ended or failed while the request was in flight; ask again."""

    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self.code = code


class StreamLink(Generic[Req, Resp]):
    """One stream shared by every caller; responses routed to callers by key."""

    def __init__(
        self,
        name: str,
        open_call: Callable[[], grpc.aio.StreamStreamCall[Req, Resp]],
        response_key: Callable[[Resp], str],
    ) -> None:
        self.name = name
        self._open_call = open_call
        self._response_key = response_key
        self._waiting: dict[str, asyncio.Queue[Resp | LinkBroken]] = {}
        self._call: grpc.aio.StreamStreamCall[Req, Resp] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()
        self._writing = asyncio.Lock()
        self.streams_opened = 0

    async def responses(self, key: str, request: Req) -> AsyncIterator[Resp]:
        """Writes `request` and yields the responses that carry `key` until the caller stops.
        Raises LinkBroken if the stream breaks first. One request per key at a time."""
        queue: asyncio.Queue[Resp | LinkBroken] = asyncio.Queue()
        self._waiting[key] = queue
        try:
            call = await self._open()
            try:
                # grpc.aio allows one write in flight per call: writers take turns
                async with self._writing:
                    await call.write(request)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
                log.warning(f"{self.name} stream write failed", extra={"error": type(exc).__name__})
                self._broken(call)
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else grpc.StatusCode.UNAVAILABLE
                raise LinkBroken(code) from None
            while True:
                item = await queue.get()
                if isinstance(item, LinkBroken):
                    raise item
                yield item
        finally:
            if self._waiting.get(key) is queue:
                del self._waiting[key]

    async def _open(self) -> grpc.aio.StreamStreamCall[Req, Resp]:
        async with self._opening:
            if self._call is None:
                call = self._open_call()
                self._call = call
                self._reader = asyncio.create_task(self._read(call), name=f"{self.name}-link")
                self.streams_opened += 1
            return self._call

    async def _read(self, call: grpc.aio.StreamStreamCall[Req, Resp]) -> None:
        code = grpc.StatusCode.UNAVAILABLE
        try:
            async for response in call:
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
            self._broken(call, code)

    def _broken(
        self, call: grpc.aio.StreamStreamCall[Req, Resp], code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    ) -> None:
        if self._call is not call:
            return
        self._call = None
        call.cancel()
        for queue in self._waiting.values():
            queue.put_nowait(LinkBroken(code))

    async def close(self) -> None:
        call, reader = self._call, self._reader
        if call is not None:
            with contextlib.suppress(Exception):
                await call.done_writing()
            call.cancel()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


class ExecutorLink(StreamLink[executor_pb2.ExecuteRequest, executor_pb2.ExecutionUpdate]):
    """Executor.ExecuteStream: every order's execution requests and updates on one stream."""

    def __init__(
        self, stub: executor_pb2_grpc.ExecutorAsyncStub, metadata: tuple[tuple[str, str], ...]
    ) -> None:
        # Long-lived by design: no deadline on the stream itself; each order's wait is bounded by
        # the driver (EXECUTE_TIMEOUT_S).
        super().__init__(
            "executor",
            lambda: stub.ExecuteStream(metadata=metadata, wait_for_ready=True),  # deadline-exempt: long-lived
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


_CODES = {c.value[0]: c for c in grpc.StatusCode}


class RouterLink(StreamLink[router_pb2.QuoteRequest, router_pb2.QuoteStreamResponse]):
    """Router.QuoteStream: every order's quotes on one stream (the router quotes them from the same
    per-slot pool snapshot)."""

    def __init__(self, stub: router_pb2_grpc.RouterAsyncStub, metadata: tuple[tuple[str, str], ...]) -> None:
        super().__init__(
            "router",
            lambda: stub.QuoteStream(metadata=metadata, wait_for_ready=True),  # deadline-exempt: long-lived
            lambda response: response.request_id,
        )

    async def quote(self, request: router_pb2.QuoteRequest) -> router_pb2.QuoteResponse:
        """The quote, or QuoteFailed with the status code Quote would have returned."""
        async for response in self.responses(request.request_id, request):
            if response.error_code:
                code = _CODES.get(response.error_code, grpc.StatusCode.UNKNOWN)
                raise QuoteFailed(code, response.error_message)
            return response.response
        raise LinkBroken(grpc.StatusCode.UNAVAILABLE)  # pragma: no cover - responses() never ends
