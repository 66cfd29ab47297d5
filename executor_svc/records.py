"""The executor's persistence calls in batches: every order in flight shares one call per flush.

Storing the signed transaction before its first send is the rule that keeps a swap from being sent
twice; reading the stored order is how the executor trusts no caller's numbers. Each is one
persistence round trip per order when made alone. Here each caller still waits for its own
member's result (nothing is sent before its record is committed), but the round trip is shared:
while one batch is on the wire the next accumulates (common.batching.MicroBatcher).
"""

from __future__ import annotations

import grpc

from common.batching import MicroBatcher
from common.errors import status_code
from orderengine.v1 import orders_pb2, orders_pb2_grpc

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
    """RecordExecution's rules, many executions per RecordExecutions call."""

    def __init__(self, stub: orders_pb2_grpc.OrdersAsyncStub, linger_s: float = 0.0) -> None:
        self._stub = stub
        self._batcher: MicroBatcher[orders_pb2.Execution, orders_pb2.Execution] = MicroBatcher(
            "recorder", self._flush, linger_s=linger_s
        )

    async def record(self, execution: orders_pb2.Execution) -> orders_pb2.Execution:
        """Stores one execution; raises RecordRefused."""
        return await self._batcher.submit(execution)

    async def stop(self) -> None:
        await self._batcher.stop()

    async def _flush(self, batch: list[orders_pb2.Execution]) -> list[orders_pb2.Execution | BaseException]:
        try:
            response = await self._stub.RecordExecutions(
                orders_pb2.RecordExecutionsRequest(executions=batch),
                timeout=PERSISTENCE_TIMEOUT_S,
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as exc:
            raise RecordRefused(exc.code(), exc.details() or "") from None
        results: list[orders_pb2.Execution | BaseException] = []
        for result in response.results:
            if result.code == 0:
                results.append(result.execution)
            else:
                code = status_code(result.code)
                results.append(
                    RecordRefused(code, result.message, result.live if result.HasField("live") else None)
                )
        return results


class OrderReader:
    """GetOrder for many orders per GetOrders call. Raises grpc.aio.AioRpcError as GetOrder would
    (NOT_FOUND for an unknown order, the call's own code when it failed)."""

    def __init__(self, stub: orders_pb2_grpc.OrdersAsyncStub, linger_s: float = 0.0) -> None:
        self._stub = stub
        self._batcher: MicroBatcher[str, orders_pb2.Order] = MicroBatcher(
            "order-reader", self._flush, linger_s=linger_s
        )

    async def get(self, order_id: str) -> orders_pb2.Order:
        return await self._batcher.submit(order_id)

    async def stop(self) -> None:
        await self._batcher.stop()

    async def _flush(self, batch: list[str]) -> list[orders_pb2.Order | BaseException]:
        response = await self._stub.GetOrders(
            orders_pb2.GetOrdersRequest(order_ids=batch), timeout=PERSISTENCE_TIMEOUT_S, wait_for_ready=True
        )
        found = {order.order_id: order for order in response.orders}
        return [found.get(oid) or _not_found(oid) for oid in batch]


def _not_found(order_id: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), "order_id: order not found"
    )
