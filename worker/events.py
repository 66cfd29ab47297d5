"""Batched event appends: every order in flight shares one AppendEvents call per flush.

Each order has at most one append outstanding (its events are sequential), so a batch holds at most
one event per order. While one batch is on the wire the next accumulates; with `flushers`
concurrent calls the throughput is many events per round trip and commit.
"""

from __future__ import annotations

import asyncio
import logging
import random

import grpc

from common.batching import MicroBatcher
from common.errors import RETRYABLE_CODES, status_code
from orderengine.v1 import orders_pb2, orders_pb2_grpc

log = logging.getLogger(__name__)


class AppendRejected(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class EventWriter:
    def __init__(
        self,
        stub: orders_pb2_grpc.OrdersAsyncStub,
        max_batch: int = 500,
        flushers: int = 2,
        retry_for_s: float = 120.0,
        linger_s: float = 0.0,
    ) -> None:
        self._stub = stub
        self._batcher: MicroBatcher[orders_pb2.NewEvent, orders_pb2.OrderEvent] = MicroBatcher(
            "event-writer", self._flush, max_batch=max_batch, flushers=flushers, linger_s=linger_s
        )
        self._retry_for_s = retry_for_s

    @property
    def batches(self) -> int:
        return self._batcher.flushes

    @property
    def events(self) -> int:
        return self._batcher.items

    def start(self) -> None:
        self._batcher.start()

    async def stop(self) -> None:
        await self._batcher.stop()

    async def append(self, event: orders_pb2.NewEvent) -> orders_pb2.OrderEvent:
        """Appends one event; retries transient failures (appends are idempotent by seq) until
        `retry_for_s` has passed. Raises AppendRejected for a refused event."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for_s
        delay = 0.05
        while True:
            try:
                return await self._batcher.submit(event)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE_CODES or loop.time() > deadline:
                    raise
                log.warning("event append failed; retrying", extra={"grpc_code": exc.code().name})
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)

    async def _flush(self, batch: list[orders_pb2.NewEvent]) -> list[orders_pb2.OrderEvent | BaseException]:
        request = orders_pb2.AppendEventsRequest(events=batch)
        response = await self._stub.AppendEvents(request, timeout=10.0, wait_for_ready=True)
        results: list[orders_pb2.OrderEvent | BaseException] = []
        for result in response.results:
            if result.code == 0:
                results.append(result.event)
            else:
                code = status_code(result.code)
                results.append(AppendRejected(code, result.message))
        return results
