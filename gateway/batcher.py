"""New orders in micro-batches: concurrent POST /api/orders/execute and WebSocket `execute` requests
share one CreateOrders call (one statement and one commit in persistence) and one pipelined XADD.

A batch leaves after at most CREATE_BATCH_MS or once it holds CREATE_BATCH_MAX orders. Each caller
gets its own member's result only after the batch is committed and its new orders are queued, so a
202 still means "stored and queued". A batch that fails as a whole (persistence unreachable, the
deadline passed) fails each of its callers with that status; a member refused on its own (a reused
idempotency key, invalid input) fails only its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
import redis.asyncio as aioredis

from common import jobs
from orderengine.v1 import orders_pb2, orders_pb2_grpc

log = logging.getLogger(__name__)

ENQUEUE_ATTEMPTS = 3

_Member = tuple[orders_pb2.CreateOrderRequest, "asyncio.Future[orders_pb2.CreateOrderResult]"]


class BatchFailed(Exception):
    """The batch failed as a whole: `error` is its CreateOrders call's status (None: an internal
    error, logged here)."""

    def __init__(self, error: grpc.aio.AioRpcError | None) -> None:
        super().__init__(error.code().name if error is not None else "internal error")
        self.error = error


class OrderBatcher:
    def __init__(
        self,
        orders: orders_pb2_grpc.OrdersAsyncStub,
        redis: aioredis.Redis,
        keys: jobs.Keys,
        *,
        max_wait_s: float,
        max_size: int,
        timeout_s: float,
    ) -> None:
        self.orders = orders
        self.redis = redis
        self.keys = keys
        self.max_wait_s = max_wait_s
        self.max_size = max_size
        self.timeout_s = timeout_s
        self._pending: list[_Member] = []
        self._timer: asyncio.Handle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def create(self, request: orders_pb2.CreateOrderRequest) -> orders_pb2.CreateOrderResult:
        """Creates the order within the next batch; returns its member's result (code 0 = OK) once
        the batch is committed and its new orders are queued. Raises BatchFailed when the batch's
        call failed as a whole. A caller that stops waiting does not stop its order: a batch that
        has left is committed and queued whoever still waits for it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[orders_pb2.CreateOrderResult] = loop.create_future()
        self._pending.append((request, future))
        if len(self._pending) >= self.max_size:
            self._flush()
        elif self._timer is None:
            if self.max_wait_s > 0:
                self._timer = loop.call_later(self.max_wait_s, self._flush)
            else:  # what arrives in this event-loop turn
                self._timer = loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        task = asyncio.create_task(self._send(batch), name="create-orders")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Member]) -> None:
        try:
            response = await self.orders.CreateOrders(
                orders_pb2.CreateOrdersRequest(orders=[request for request, _ in batch]),
                timeout=self.timeout_s,
            )
            results = list(response.results)
            if len(results) != len(batch):
                raise RuntimeError(f"CreateOrders answered {len(results)} results for {len(batch)} orders")
            new = [
                (result.order.order_id, request.spec.SerializeToString())
                for (request, _), result in zip(batch, results, strict=True)
                if result.code == 0 and result.created
            ]
            await self._enqueue(new)
        except grpc.aio.AioRpcError as exc:
            _fail(batch, BatchFailed(exc))
            return
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception:
            log.exception("creating a batch of orders failed")
            _fail(batch, BatchFailed(None))
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _enqueue(self, new: list[tuple[str, bytes]]) -> None:
        """One pipelined XADD for the batch's new orders, retried; if Redis stays away they are
        committed anyway and the worker's recovery scan queues them."""
        if not new:
            return
        for attempt in range(ENQUEUE_ATTEMPTS):
            try:
                await jobs.enqueue_many(self.redis, self.keys, new)
                return
            except aioredis.RedisError:
                if attempt == ENQUEUE_ATTEMPTS - 1:
                    log.warning(
                        "could not queue orders; left for recovery",
                        extra={"orders": len(new), "order_id": new[0][0]},
                    )
                else:
                    await asyncio.sleep(0.05 * (attempt + 1))

    async def close(self) -> None:
        """Sends what is collected and waits for every batch in flight (the lifespan's end)."""
        self._flush()
        while self._sending:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._sending)


def _fail(batch: list[_Member], exc: BatchFailed) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
