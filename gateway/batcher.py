"""New orders in micro-batches: concurrent POST /api/orders/execute and WebSocket `execute` requests
share one CreateOrders batch (one statement and one commit in persistence), sent on the gateway's
long-lived CreateOrderStream (no call set-up per batch), and one pipelined XADD.

The batching is common.batching.MicroBatcher's: a batch waits at most CREATE_BATCH_MS to fill up to
CREATE_BATCH_MAX orders, and while batches are on the wire the next ones accumulate. Each caller gets
its own member's result only after the batch is committed and its new orders are queued, so a 202
still means "stored and queued". A batch that fails as a whole (persistence unreachable, the
deadline passed) fails each of its callers with that status; a member refused on its own (a reused
idempotency key, invalid input) fails only its caller. A caller that went away before its batch left
is not created; once a batch has left, it is committed and queued whoever still waits for it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import grpc
import redis.asyncio as aioredis

from common import jobs
from common.batching import MicroBatcher
from common.errors import status_code
from common.stream_link import LinkBroken, StreamLink
from orderengine.v1 import orders_pb2, orders_pb2_grpc

log = logging.getLogger(__name__)

ENQUEUE_ATTEMPTS = 3


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
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """`orders`: a stub on a channel for long-lived streams (common.grpc_client.
        open_stream_channel), and `metadata` the stream's credentials."""
        self._batch_ids = itertools.count()
        self._link: StreamLink[
            orders_pb2.CreateOrdersRequest,
            orders_pb2.CreateOrdersResponse,
            orders_pb2.CreateOrderBatches,
            orders_pb2.CreateOrdersResponses,
        ] = StreamLink(
            "create-orders",
            lambda: orders.CreateOrderStream(
                metadata=metadata, wait_for_ready=True
            ),  # deadline-exempt: long-lived; each batch waits timeout_s at most
            lambda batches: orders_pb2.CreateOrderBatches(batches=batches),
            lambda message: message.responses,
            lambda response: response.batch_id,
        )
        self.redis = redis
        self.keys = keys
        self.timeout_s = timeout_s
        self._batcher: MicroBatcher[orders_pb2.CreateOrderRequest, orders_pb2.CreateOrderResult] = (
            MicroBatcher("create-orders", self._flush, max_batch=max_size, linger_s=max_wait_s)
        )

    async def create(self, request: orders_pb2.CreateOrderRequest) -> orders_pb2.CreateOrderResult:
        """Creates the order within the next batch; returns its member's result (code 0 = OK) once
        the batch is committed and its new orders are queued. Raises BatchFailed when the batch
        failed as a whole."""
        return await self._batcher.submit(request)

    async def _flush(
        self, requests: list[orders_pb2.CreateOrderRequest]
    ) -> list[orders_pb2.CreateOrderResult]:
        try:
            return await self._create_and_queue(requests)
        except BatchFailed:
            raise
        except Exception:  # noqa: BLE001 - every member gets the same generic failure
            log.exception("creating a batch of orders failed")
            raise BatchFailed(None) from None

    async def _create_and_queue(
        self, requests: list[orders_pb2.CreateOrderRequest]
    ) -> list[orders_pb2.CreateOrderResult]:
        batch_id = str(next(self._batch_ids))
        request = orders_pb2.CreateOrdersRequest(orders=requests, batch_id=batch_id)
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._link.first(batch_id, request)
        except LinkBroken as exc:
            # Not retried: a batch that may have been committed is answered UNAVAILABLE, and its
            # callers retry with their idempotency keys (as after a unary call that broke).
            raise BatchFailed(_status(exc.code, "the persistence stream broke")) from None
        except TimeoutError:
            raise BatchFailed(_status(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")) from None
        if response.code:
            raise BatchFailed(_status(status_code(response.code), response.message))
        results = list(response.results)
        if len(results) != len(requests):
            log.error("CreateOrders answered %d results for %d orders", len(results), len(requests))
            raise BatchFailed(None)
        await self._enqueue(
            [
                (result.order.order_id, request.spec.SerializeToString())
                for request, result in zip(requests, results, strict=True)
                if result.code == 0 and result.created
            ]
        )
        return results

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
        """Stops the flushers and the stream (the lifespan's end, once the server has finished its
        requests)."""
        await self._batcher.stop()
        await self._link.close()


def _status(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)
