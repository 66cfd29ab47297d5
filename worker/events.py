"""Batched event appends: every order in flight shares one AppendEvents call per flush.

Each order has at most one append outstanding (its events are sequential), so a batch holds at most
one event per order. While one batch is on the wire the next accumulates; with `flushers`
concurrent calls the throughput is many events per round trip and commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import grpc

from common.errors import RETRYABLE_CODES
from orderengine.v1 import orders_pb2, orders_pb2_grpc

log = logging.getLogger(__name__)


class AppendRejected(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


_CODES = {c.value[0]: c for c in grpc.StatusCode}


class EventWriter:
    def __init__(
        self,
        stub: orders_pb2_grpc.OrdersAsyncStub,
        max_batch: int = 500,
        flushers: int = 2,
        retry_for_s: float = 120.0,
    ) -> None:
        self._stub = stub
        self._queue: asyncio.Queue[tuple[orders_pb2.NewEvent, asyncio.Future[orders_pb2.OrderEvent]]] = (
            asyncio.Queue()
        )
        self._max_batch = max_batch
        self._flushers = flushers
        self._retry_for_s = retry_for_s
        self._tasks: list[asyncio.Task[None]] = []
        self.batches = 0
        self.events = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"event-writer-{i}") for i in range(self._flushers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def append(self, event: orders_pb2.NewEvent) -> orders_pb2.OrderEvent:
        """Appends one event; retries transient failures (appends are idempotent by seq) until
        `retry_for_s` has passed. Raises AppendRejected for a refused event."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for_s
        delay = 0.05
        while True:
            future: asyncio.Future[orders_pb2.OrderEvent] = loop.create_future()
            await self._queue.put((event, future))
            try:
                return await future
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE_CODES or loop.time() > deadline:
                    raise
                log.warning("event append failed; retrying", extra={"grpc_code": exc.code().name})
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            request = orders_pb2.AppendEventsRequest(events=[ev for ev, _ in batch])
            try:
                response = await self._stub.AppendEvents(request, timeout=10.0, wait_for_ready=True)
            except grpc.aio.AioRpcError as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.cancel()
                raise
            self.batches += 1
            self.events += len(batch)
            for (_, future), result in zip(batch, response.results, strict=False):
                if future.done():
                    continue
                if result.code == 0:
                    future.set_result(result.event)
                else:
                    code = _CODES.get(result.code, grpc.StatusCode.UNKNOWN)
                    future.set_exception(AppendRejected(code, result.message))
            for _, future in batch[len(response.results) :]:
                if not future.done():
                    future.set_exception(AppendRejected(grpc.StatusCode.INTERNAL, "no result for event"))
