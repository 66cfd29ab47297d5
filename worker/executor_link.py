"""One long-lived ExecuteStream per worker, carrying every order's execution requests and updates.

A unary-stream `Execute` call per order costs a call set-up on both sides; the stream costs one per
worker. Requests are written as orders ask; the reader hands each update to the order it names. If
the stream breaks (the executor restarted), every order waiting on it gets `LinkBroken` and asks
again for the same attempt — the executor resumes what it stored, never signs a second swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import grpc

from orderengine.v1 import executor_pb2, executor_pb2_grpc

log = logging.getLogger(__name__)

Stage = executor_pb2.ExecutionUpdate.Stage
_END = (Stage.STAGE_CONFIRMED, Stage.STAGE_FAILED)
_Call = grpc.aio.StreamStreamCall[executor_pb2.ExecuteRequest, executor_pb2.ExecutionUpdate]


class LinkBroken(Exception):
    """The stream ended or failed while the request was in flight; ask again (same attempt)."""

    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self.code = code


class ExecutorLink:
    def __init__(self, stub: executor_pb2_grpc.ExecutorAsyncStub) -> None:
        self._stub = stub
        self._waiting: dict[str, asyncio.Queue[executor_pb2.ExecutionUpdate | LinkBroken]] = {}
        self._call: (
            grpc.aio.StreamStreamCall[executor_pb2.ExecuteRequest, executor_pb2.ExecutionUpdate] | None
        ) = None
        self._reader: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()
        self.streams_opened = 0

    async def execute(
        self, request: executor_pb2.ExecuteRequest
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        """Sends one request and yields its updates up to its CONFIRMED or FAILED one.
        Raises LinkBroken if the stream breaks first. One request per order at a time."""
        queue: asyncio.Queue[executor_pb2.ExecutionUpdate | LinkBroken] = asyncio.Queue()
        self._waiting[request.order_id] = queue
        try:
            call = await self._open()
            try:
                await call.write(request)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
                self._broken(call)
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else grpc.StatusCode.UNAVAILABLE
                raise LinkBroken(code) from None
            while True:
                item = await queue.get()
                if isinstance(item, LinkBroken):
                    raise item
                if item.attempt != request.attempt and item.attempt:
                    continue  # a late update of an earlier request of this order
                yield item
                if item.stage in _END:
                    return
        finally:
            if self._waiting.get(request.order_id) is queue:
                del self._waiting[request.order_id]

    async def _open(self) -> _Call:
        async with self._opening:
            if self._call is None:
                # Long-lived by design: no deadline on the stream itself; each order's wait is
                # bounded by the driver (EXECUTE_TIMEOUT_S).
                call = self._stub.ExecuteStream(wait_for_ready=True)  # deadline-exempt: long-lived stream
                self._call = call
                self._reader = asyncio.create_task(self._read(call), name="executor-link")
                self.streams_opened += 1
            return self._call

    async def _read(self, call: _Call) -> None:
        code = grpc.StatusCode.UNAVAILABLE
        try:
            async for update in call:
                queue = self._waiting.get(update.order_id)
                if queue is not None:
                    queue.put_nowait(update)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            log.warning("executor stream broke; orders in flight ask again", extra={"grpc_code": code.name})
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self._broken(call, code)

    def _broken(self, call: _Call, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
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
