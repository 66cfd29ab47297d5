"""Long-lived bidirectional streams from the worker to the router, the executor and persistence.

A unary call per order costs a call set-up on both sides; a stream costs one per worker. Requests
are written as orders ask; a reader hands each response to the request it names (by key). If the
stream breaks (the peer restarted), every request waiting on it gets `LinkBroken` and may ask
again: the executor resumes what it stored (never a second swap), a quote is simply asked anew.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

import grpc

from common.errors import status_code
from common.stream_link import LinkBroken, StreamLink
from orderengine.v1 import (
    executor_pb2,
    executor_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)

log = logging.getLogger(__name__)

__all__ = ["EventLink", "ExecutorLink", "LinkBroken", "QuoteFailed", "RouterLink"]

Stage = executor_pb2.ExecutionUpdate.Stage
_END = (Stage.STAGE_CONFIRMED, Stage.STAGE_FAILED)


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

    async def append_all(self, events: Sequence[orders_pb2.NewEvent]) -> list[orders_pb2.AppendResult]:
        """The events' results (each its code and, when stored, the event), the events written in one
        message (one order's consecutive events are stored together); LinkBroken if the stream broke."""
        return await self.first_all([(f"{event.order_id}:{event.seq}", event) for event in events])
