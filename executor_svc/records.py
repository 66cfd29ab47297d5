"""The executor's persistence traffic on two long-lived streams (Orders.RecordExecutionStream and
Orders.GetOrderStream): no call set-up per batch.

Storing the signed transaction before its first send is the rule that keeps a swap from being sent
twice; reading the stored order is how the executor trusts no caller's numbers. Each caller waits
for its own member's result (nothing is sent before its record is committed); requests written
while the previous message was on its way leave together, and persistence stores (or reads)
whatever arrived during its previous statement together. A broken stream or a transient result is
asked again: recording is idempotent (an upsert by signature), reading has no effect.
"""

from __future__ import annotations

import asyncio
import itertools

import grpc

from common.errors import status_code
from common.stream_link import LinkBroken, StreamLink
from orderengine.v1 import orders_pb2, orders_pb2_grpc

PERSISTENCE_TIMEOUT_S = 5.0
ATTEMPTS = 3
# A record nothing waits for (a landed transaction's state: bookkeeping, see `record_soon`) leaves
# with the others made within this long: one message and one commit for all of them.
SOON_S = 0.05
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

Metadata = tuple[tuple[str, str], ...]


class RecordRefused(Exception):
    """Persistence refused this member (or the whole call failed): `code` says why; `live` is the
    execution of the order that is live, for a FAILED_PRECONDITION refusal of a new one."""

    def __init__(self, code: grpc.StatusCode, message: str, live: orders_pb2.Execution | None = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.live = live


class ExecutionRecorder:
    """RecordExecution's rules, many executions per message on one stream."""

    def __init__(
        self, stub: orders_pb2_grpc.OrdersAsyncStub, metadata: Metadata, soon_s: float = SOON_S
    ) -> None:
        self._keys = itertools.count()
        self._soon_s = soon_s
        self._soon: asyncio.Future[None] | None = None  # the next departure of `record_soon`'s records
        self._link: StreamLink[
            tuple[str, orders_pb2.Execution],
            orders_pb2.RecordExecutionResult,
            orders_pb2.RecordExecutionsRequest,
            orders_pb2.RecordExecutionsResponse,
        ] = StreamLink(
            "record-executions",
            lambda: stub.RecordExecutionStream(
                metadata=metadata, wait_for_ready=True
            ),  # deadline-exempt: long-lived; each record waits PERSISTENCE_TIMEOUT_S at most
            lambda keyed: orders_pb2.RecordExecutionsRequest(
                keys=[k for k, _ in keyed], executions=[e for _, e in keyed]
            ),
            lambda message: message.results,
            lambda result: result.key,
        )

    async def record(self, execution: orders_pb2.Execution) -> orders_pb2.Execution:
        """Stores one execution; raises RecordRefused."""
        code, message = grpc.StatusCode.UNAVAILABLE, ""
        for _ in range(ATTEMPTS):
            key = str(next(self._keys))
            try:
                async with asyncio.timeout(PERSISTENCE_TIMEOUT_S):
                    result = await self._link.first(key, (key, execution))
            except LinkBroken as exc:
                code, message = exc.code, "the persistence stream broke"
                continue
            except TimeoutError:
                code, message = grpc.StatusCode.DEADLINE_EXCEEDED, "no answer from persistence"
                continue
            if result.code == 0:
                return result.execution
            code, message = status_code(result.code), result.message
            if code not in _TRANSIENT:
                raise RecordRefused(code, message, result.live if result.HasField("live") else None)
        raise RecordRefused(code, message)

    async def record_soon(self, execution: orders_pb2.Execution) -> orders_pb2.Execution:
        """`record` for a record nothing waits for: it leaves with every other such record made
        within `soon_s` (one message, stored with one statement and one commit) instead of alone."""
        if self._soon is None:
            loop = asyncio.get_running_loop()
            self._soon = departure = loop.create_future()
            loop.call_later(self._soon_s, self._depart, departure)
        await asyncio.shield(self._soon)
        return await self.record(execution)

    def _depart(self, departure: asyncio.Future[None]) -> None:
        if self._soon is departure:
            self._soon = None
        if not departure.done():
            departure.set_result(None)

    async def stop(self) -> None:
        if self._soon is not None:
            self._depart(self._soon)  # whatever waits leaves now
        await self._link.close()


class OrderReader:
    """GetOrder for many orders per message on one stream. Raises grpc.aio.AioRpcError as GetOrder
    would (NOT_FOUND for an unknown order, UNAVAILABLE when persistence cannot answer)."""

    def __init__(self, stub: orders_pb2_grpc.OrdersAsyncStub, metadata: Metadata) -> None:
        self._link: StreamLink[
            str,
            orders_pb2.Order | tuple[str, str],
            orders_pb2.GetOrdersRequest,
            orders_pb2.GetOrdersResponse,
        ] = StreamLink(
            "read-orders",
            lambda: stub.GetOrderStream(
                metadata=metadata, wait_for_ready=True
            ),  # deadline-exempt: long-lived; each read waits PERSISTENCE_TIMEOUT_S at most
            lambda ids: orders_pb2.GetOrdersRequest(order_ids=ids),
            _read_answers,
            lambda item: item.order_id if isinstance(item, orders_pb2.Order) else item[1],
        )
        self._reading: dict[str, asyncio.Future[orders_pb2.Order]] = {}

    async def get(self, order_id: str) -> orders_pb2.Order:
        """The stored order; concurrent reads of one order share one request."""
        future = self._reading.get(order_id)
        if future is None:
            future = asyncio.ensure_future(self._read(order_id))
            self._reading[order_id] = future
            future.add_done_callback(lambda _: self._reading.pop(order_id, None))
        return await asyncio.shield(future)

    async def _read(self, order_id: str) -> orders_pb2.Order:
        for attempt in range(ATTEMPTS):
            try:
                async with asyncio.timeout(PERSISTENCE_TIMEOUT_S):
                    item = await self._link.first(order_id, order_id)
            except (LinkBroken, TimeoutError):
                item = ("unavailable", order_id)
            if isinstance(item, orders_pb2.Order):
                return item
            if item[0] == "missing":
                raise _error(grpc.StatusCode.NOT_FOUND, "order_id: order not found")
            if attempt + 1 == ATTEMPTS:
                raise _error(grpc.StatusCode.UNAVAILABLE, "cannot read the order")
            await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def stop(self) -> None:
        await self._link.close()


def _read_answers(message: orders_pb2.GetOrdersResponse) -> list[orders_pb2.Order | tuple[str, str]]:
    """A GetOrderStream message's answers: orders, ("missing", id) and ("unavailable", id)."""
    return [
        *message.orders,
        *(("missing", i) for i in message.missing),
        *(("unavailable", i) for i in message.unavailable),
    ]


def _error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)
