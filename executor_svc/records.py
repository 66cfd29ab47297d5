"""Execution records in batches: every order in flight shares one RecordExecutions call per flush.

Storing the signed transaction before its first send is the rule that keeps a swap from being sent
twice; it is also one persistence round trip per transaction. The recorder keeps the rule (each
caller waits for its own member's result before it sends) and shares the round trip: while one
batch is on the wire the next accumulates, so under load many executions travel per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from orderengine.v1 import orders_pb2, orders_pb2_grpc

log = logging.getLogger(__name__)

_CODES = {c.value[0]: c for c in grpc.StatusCode}
PERSISTENCE_TIMEOUT_S = 5.0


class RecordRefused(Exception):
    """Persistence refused this member (or the whole call failed): `code` says why; `live` is the
    execution of the order that is live, for a FAILED_PRECONDITION refusal of a new one."""

    def __init__(self, code: grpc.StatusCode, message: str, live: orders_pb2.Execution | None = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.live = live


class ExecutionRecorder:
    def __init__(
        self, stub: orders_pb2_grpc.OrdersAsyncStub, max_batch: int = 500, flushers: int = 2
    ) -> None:
        self._stub = stub
        self._queue: asyncio.Queue[tuple[orders_pb2.Execution, asyncio.Future[orders_pb2.Execution]]] = (
            asyncio.Queue()
        )
        self._max_batch = max_batch
        self._flushers = flushers
        self._tasks: list[asyncio.Task[None]] = []
        self.calls = 0

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(), name=f"recorder-{i}") for i in range(self._flushers)
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def record(self, execution: orders_pb2.Execution) -> orders_pb2.Execution:
        """Stores one execution (RecordExecution's rules); raises RecordRefused."""
        self.start()
        future: asyncio.Future[orders_pb2.Execution] = asyncio.get_running_loop().create_future()
        await self._queue.put((execution, future))
        return await future

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            request = orders_pb2.RecordExecutionsRequest(executions=[e for e, _ in batch])
            try:
                response = await self._stub.RecordExecutions(
                    request, timeout=PERSISTENCE_TIMEOUT_S, wait_for_ready=True
                )
            except grpc.aio.AioRpcError as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(RecordRefused(exc.code(), exc.details() or ""))
                continue
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.cancel()
                raise
            self.calls += 1
            for (_, future), result in zip(batch, response.results, strict=False):
                if future.done():
                    continue
                if result.code == 0:
                    future.set_result(result.execution)
                else:
                    code = _CODES.get(result.code, grpc.StatusCode.UNKNOWN)
                    live = result.live if result.HasField("live") else None
                    future.set_exception(RecordRefused(code, result.message, live))
            for _, future in batch[len(response.results) :]:
                if not future.done():
                    future.set_exception(RecordRefused(grpc.StatusCode.INTERNAL, "no result for execution"))
