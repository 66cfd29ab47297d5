"""The typed async servicer of `orderengine.v1.Orders`: validate, store, publish, answer.

Domain errors (common.errors) are raised and mapped to status codes by the shared interceptor.
A database that cannot be reached answers UNAVAILABLE, which callers may retry.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import grpc
import psycopg
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from common import lifecycle
from common.batching import MicroBatcher
from common.errors import (
    LIVE_EXECUTION_KEY,
    Aborted,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from common.log import order_id_var
from common.streams import multiplex
from orderengine.v1 import orders_pb2, orders_pb2_grpc, types_pb2
from persistence_svc import store, validation
from persistence_svc.models import (
    AppendOutcome,
    EventInput,
    EventRow,
    ExecutionInput,
    ExecutionRow,
    NewOrder,
    OrderRow,
    compact_json,
    from_us,
    to_us,
)
from persistence_svc.publisher import EventPublisher

log = logging.getLogger(__name__)

EVENTS = Counter(
    "orderengine_persistence_events_total",
    "Order events committed, by status: orders entering each status (pending = orders created).",
    ["status"],
)
_EVENTS = {s: EVENTS.labels(s) for s in lifecycle.STATUSES}
CREATE_BATCHES = Counter(
    "orderengine_persistence_create_batches_total",
    "Batches of new orders stored (CreateOrders calls and CreateOrderStream batches): one statement each.",
)


def _count(events: list[EventRow]) -> None:
    for event in events:
        child = _EVENTS.get(event.status)
        (child if child is not None else EVENTS.labels(event.status)).inc()


SERVICE_NAME = orders_pb2.DESCRIPTOR.services_by_name["Orders"].full_name
LIST_DEFAULT, LIST_MAX = 50, 200
UNFINISHED_DEFAULT, UNFINISHED_MAX = 100, 1000
PURGE_INTERVAL_S = 600.0
MAX_BATCH = 10_000
MAX_CREATE_BATCH = 1000
_INT4_MAX = 2**31 - 1
_MAX_US = to_us(datetime(9999, 1, 1, tzinfo=UTC))


MAX_EXECUTIONS_PER_CALL = 1000
_ORDER_TYPES = {name: value for value, name in validation.ORDER_TYPES.items()}


def _record_result(outcome: ExecutionRow | Exception) -> orders_pb2.RecordExecutionResult:
    """One member's RecordExecutions result: the row, or the code RecordExecution would answer."""
    if isinstance(outcome, store.LiveExecution):
        return orders_pb2.RecordExecutionResult(
            code=grpc.StatusCode.FAILED_PRECONDITION.value[0],
            message=f"signature: execution {outcome.live.signature} is {outcome.live.state}; resume it",
            live=execution_message(outcome.live),
        )
    if isinstance(outcome, DomainError):
        return orders_pb2.RecordExecutionResult(code=outcome.code.value[0], message=outcome.client_message())
    if isinstance(outcome, (psycopg.OperationalError, PoolTimeout)):
        return orders_pb2.RecordExecutionResult(
            code=grpc.StatusCode.UNAVAILABLE.value[0], message="database unavailable"
        )
    if isinstance(outcome, Exception):
        log.error("recording an execution failed", extra={"error": type(outcome).__name__})
        return orders_pb2.RecordExecutionResult(
            code=grpc.StatusCode.INTERNAL.value[0], message="internal error"
        )
    return orders_pb2.RecordExecutionResult(execution=execution_message(outcome))


def _streamed_error(exc: Exception, what: str) -> tuple[int, str]:
    """The (code, message) a member of a stream answers with for an exception: a DomainError's own
    (what the unary call would have raised), anything else INTERNAL, logged."""
    if isinstance(exc, DomainError):
        return _code(exc.code), exc.client_message()
    log.error(f"a streamed {what} failed", extra={"error": type(exc).__name__})
    return _code(grpc.StatusCode.INTERNAL), "internal error"


def _chains(events: Iterable[orders_pb2.NewEvent]) -> list[list[orders_pb2.NewEvent]]:
    """A message's events as chains: runs of one order's events with consecutive seqs (a worker
    appends an order's `routing` and `building` together). Any other event is a chain of its own."""
    chains: list[list[orders_pb2.NewEvent]] = []
    for event in events:
        last = chains[-1][-1] if chains else None
        if last is not None and last.order_id == event.order_id and event.seq == last.seq + 1:
            chains[-1].append(event)
        else:
            chains.append([event])
    return chains


def _fill_result(result: orders_pb2.AppendResult, outcome: AppendOutcome) -> None:
    result.code = _code(outcome.code)
    result.message = outcome.message
    if outcome.event is not None:
        result.event.CopyFrom(event_message(outcome.event))


@asynccontextmanager
async def _database() -> AsyncIterator[None]:
    """Database outages become UNAVAILABLE (retryable), without the driver's text."""
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as exc:
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        raise Unavailable("database unavailable") from None


# --- rows → messages --------------------------------------------------------------------------


def order_message(order: OrderRow, events: list[EventRow] | None = None) -> orders_pb2.Order:
    s = order.spec
    return orders_pb2.Order(
        order_id=str(order.order_id),
        spec=orders_pb2.OrderSpec(
            input_mint=s.input_mint,
            output_mint=s.output_mint,
            amount_in=s.amount_in,
            slippage_bps=s.slippage_bps,
            input_decimals=s.input_decimals,
            output_decimals=s.output_decimals,
            input_symbol=s.input_symbol,
            output_symbol=s.output_symbol,
            quoted_route=types_pb2.Route.FromString(s.quoted_route) if s.quoted_route else None,
            quote_id=s.quote_id,
            max_price_impact_bps=s.max_price_impact_bps,
            order_type=_ORDER_TYPES[s.order_type],
            trigger_price=s.trigger_price,
            expires_at_us=s.expires_at_us,
            amount_out=s.amount_out,
            min_liquidity=s.min_liquidity,
            max_price=s.max_price,
        ),
        status=lifecycle.to_proto(order.status),
        attempts=order.attempts,
        route_json=order.route_json,
        route=types_pb2.Route.FromString(order.route_proto) if order.route_proto else None,
        amount_out=order.amount_out,
        amount_in=order.amount_in_spent,
        cost=types_pb2.TradeCost.FromString(order.cost) if order.cost else None,
        tx_hash=order.tx_hash,
        dex=order.dex,
        executed_price=order.executed_price,
        failure_reason=order.failure_reason,
        created_at_us=to_us(order.created_at),
        updated_at_us=to_us(order.updated_at),
        last_seq=order.last_seq,
        events=[event_message(e) for e in events or ()],
    )


def event_message(event: EventRow) -> orders_pb2.OrderEvent:
    return orders_pb2.OrderEvent(
        order_id=str(event.order_id),
        seq=event.seq,
        status=lifecycle.to_proto(event.status),
        data_json=event.data_json,
        at_us=to_us(event.at),
    )


def execution_message(execution: ExecutionRow) -> orders_pb2.Execution:
    return orders_pb2.Execution(
        order_id=str(execution.order_id),
        attempt=execution.attempt,
        signature=execution.signature,
        signed_tx=execution.signed_tx,
        last_valid_block_height=execution.last_valid_block_height,
        blockhash=execution.blockhash,
        state=execution.state,
        created_at_us=to_us(execution.created_at),
        updated_at_us=to_us(execution.updated_at),
    )


class OrdersServicer(orders_pb2_grpc.OrdersServicer):
    def __init__(self, pool: AsyncConnectionPool, publisher: EventPublisher) -> None:
        self.pool = pool
        self.publisher = publisher
        self._next_purge = 0.0
        # AppendEventStream's group commit: events that arrive while a commit is under way (from
        # any stream) go together in the next one; two commits at most at a time.
        # an item is a chain: one order's consecutive events of one message, kept in one batch
        self._appender: MicroBatcher[list[EventInput], list[AppendOutcome]] = MicroBatcher(
            "append-stream", self._append_chains, max_batch=MAX_CREATE_BATCH, flushers=2
        )
        # the same for the executor's streams: reads, and stored executions
        self._reader: MicroBatcher[uuid.UUID, orders_pb2.Order | None] = MicroBatcher(
            "read-stream", self._read_orders, max_batch=MAX_EXECUTIONS_PER_CALL, flushers=2
        )
        self._recorder: MicroBatcher[ExecutionInput, ExecutionRow | Exception] = MicroBatcher(
            "record-stream", self._record_batch, max_batch=MAX_EXECUTIONS_PER_CALL, flushers=2
        )

    async def CreateOrder(
        self,
        request: orders_pb2.CreateOrderRequest,
        context: grpc.aio.ServicerContext[orders_pb2.CreateOrderRequest, orders_pb2.CreateOrderResponse],
    ) -> orders_pb2.CreateOrderResponse:
        new = validation.parse_create_order(request, uuid.uuid4())
        order_id_var.set(str(new.order_id))
        async with _database():
            (outcome,) = await store.create_orders(self.pool, [new])
            await self._purge_keys_when_due()
        if isinstance(outcome, DomainError):
            raise outcome
        if outcome.first_event is not None:
            _count([outcome.first_event])
            await self.publisher.publish([outcome.first_event])
        return orders_pb2.CreateOrderResponse(order=order_message(outcome.order), created=outcome.created)

    async def CreateOrders(
        self,
        request: orders_pb2.CreateOrdersRequest,
        context: grpc.aio.ServicerContext[orders_pb2.CreateOrdersRequest, orders_pb2.CreateOrdersResponse],
    ) -> orders_pb2.CreateOrdersResponse:
        """CreateOrder for a batch: one statement and one commit for the batch (store.create_orders),
        then one publish of every new order's first event. Each member gets the code and message
        CreateOrder would have given it; one member's failure is that member's alone."""
        return await self._create_batch(request)

    async def CreateOrderStream(
        self,
        request_iterator: AsyncIterator[orders_pb2.CreateOrderBatches],
        context: grpc.aio.ServicerContext[orders_pb2.CreateOrderBatches, orders_pb2.CreateOrdersResponses],
    ) -> AsyncIterator[orders_pb2.CreateOrdersResponses]:
        """CreateOrders on a stream: each batch as CreateOrders would take it, answered by batch_id."""

        async def groups() -> AsyncIterator[list[orders_pb2.CreateOrdersRequest]]:
            async for message in request_iterator:
                yield list(message.batches)

        async for ready in multiplex(groups(), self._create_streamed):
            yield orders_pb2.CreateOrdersResponses(responses=ready)

    async def _create_streamed(
        self, request: orders_pb2.CreateOrdersRequest, emit: Callable[[orders_pb2.CreateOrdersResponse], None]
    ) -> None:
        try:
            response = await self._create_batch(request)
        except Exception as exc:  # noqa: BLE001 - the caller gets an answer whatever happened
            code, message = _streamed_error(exc, "create")
            response = orders_pb2.CreateOrdersResponse(code=code, message=message)
        response.batch_id = request.batch_id
        emit(response)

    async def _create_batch(self, request: orders_pb2.CreateOrdersRequest) -> orders_pb2.CreateOrdersResponse:
        if len(request.orders) > MAX_CREATE_BATCH:
            raise InvalidArgument(f"must hold at most {MAX_CREATE_BATCH} orders", field="orders")
        CREATE_BATCHES.inc()
        results = [orders_pb2.CreateOrderResult() for _ in request.orders]
        valid: list[tuple[int, NewOrder]] = []
        for index, raw in enumerate(request.orders):
            try:
                valid.append((index, validation.parse_create_order(raw, uuid.uuid4())))
            except DomainError as exc:
                results[index].code = _code(exc.code)
                results[index].message = exc.client_message()
        async with _database():
            outcomes = await store.create_orders(self.pool, [new for _, new in valid])
            await self._purge_keys_when_due()
        first_events: list[EventRow] = []
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            result = results[index]
            if isinstance(outcome, DomainError):
                result.code = _code(outcome.code)
                result.message = outcome.client_message()
                continue
            result.order.CopyFrom(order_message(outcome.order))
            result.created = outcome.created
            if outcome.first_event is not None:
                first_events.append(outcome.first_event)
        if first_events:
            _count(first_events)
            await self.publisher.publish(first_events)
        return orders_pb2.CreateOrdersResponse(results=results)

    async def _purge_keys_when_due(self) -> None:
        """Expired idempotency keys already count as absent; deleting them is housekeeping done
        lazily, at most once per PURGE_INTERVAL_S per process."""
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL_S
        try:
            purged = await store.purge_expired_keys(self.pool)
        except psycopg.Error:
            log.warning("purging expired idempotency keys failed", exc_info=True)
            return
        if purged:
            log.info("purged expired idempotency keys", extra={"count": purged})

    async def AppendEvent(
        self,
        request: orders_pb2.NewEvent,
        context: grpc.aio.ServicerContext[orders_pb2.NewEvent, orders_pb2.OrderEvent],
    ) -> orders_pb2.OrderEvent:
        event = validation.parse_new_event(request)
        order_id_var.set(str(event.order_id))
        async with _database():
            (outcome,) = await store.append_events(self.pool, [event])
        if outcome.code != grpc.StatusCode.OK or outcome.event is None:
            raise _StatusError(outcome.code, outcome.message)
        if outcome.new:
            _count([outcome.event])
            await self.publisher.publish([outcome.event], [outcome.resting])
        return event_message(outcome.event)

    async def AppendEvents(
        self,
        request: orders_pb2.AppendEventsRequest,
        context: grpc.aio.ServicerContext[orders_pb2.AppendEventsRequest, orders_pb2.AppendEventsResponse],
    ) -> orders_pb2.AppendEventsResponse:
        if len(request.events) > MAX_BATCH:
            raise InvalidArgument(f"must hold at most {MAX_BATCH} events", field="events")
        results = [orders_pb2.AppendResult(order_id=e.order_id, seq=e.seq) for e in request.events]
        valid: list[tuple[int, EventInput]] = []
        for index, raw in enumerate(request.events):
            try:
                valid.append((index, validation.parse_new_event(raw, f"events[{index}].")))
            except DomainError as exc:
                results[index].code = _code(exc.code)
                results[index].message = exc.client_message()
        outcomes = await self._append_and_publish([event for _, event in valid])
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            _fill_result(results[index], outcome)
        return orders_pb2.AppendEventsResponse(results=results)

    async def _append_and_publish(self, events: list[EventInput]) -> list[AppendOutcome]:
        """Commits the events (one statement, one commit), then publishes the new ones."""
        async with _database():
            outcomes = await store.append_events(self.pool, events)
        new = [o for o in outcomes if o.event is not None and o.new]
        new_events = [o.event for o in new if o.event is not None]
        _count(new_events)
        await self.publisher.publish(new_events, [o.resting for o in new])
        return outcomes

    async def AppendEventStream(
        self,
        request_iterator: AsyncIterator[orders_pb2.AppendEventsRequest],
        context: grpc.aio.ServicerContext[orders_pb2.AppendEventsRequest, orders_pb2.AppendEventsResponse],
    ) -> AsyncIterator[orders_pb2.AppendEventsResponse]:
        """AppendEvents on a stream: every event of every message goes to the shared group commit
        (`self._appender`), and the results ready together leave in one message."""

        async def groups() -> AsyncIterator[list[list[orders_pb2.NewEvent]]]:
            async for batch in request_iterator:
                yield _chains(batch.events)

        async for ready in multiplex(groups(), self._append_streamed):
            yield orders_pb2.AppendEventsResponse(results=ready)

    async def _append_chains(self, chains: list[list[EventInput]]) -> list[list[AppendOutcome]]:
        """The appender's flush: every chain's events in one batch, each chain's outcomes apart."""
        outcomes = iter(await self._append_and_publish([e for chain in chains for e in chain]))
        return [[next(outcomes) for _ in chain] for chain in chains]

    async def _append_streamed(
        self, raws: list[orders_pb2.NewEvent], emit: Callable[[orders_pb2.AppendResult], None]
    ) -> None:
        """One chain of a message: one order's events in seq order, stored in one batch (and in the
        common case one statement). A member that is not valid ends the chain there: it and the
        members after it are answered with its error, and nothing after it is stored."""
        results = [orders_pb2.AppendResult(order_id=raw.order_id, seq=raw.seq) for raw in raws]
        chain: list[EventInput] = []
        try:
            for raw in raws:
                chain.append(validation.parse_new_event(raw, "events[]."))
        except Exception as exc:  # noqa: BLE001 - the caller gets a result whatever happened
            code, message = _streamed_error(exc, "append")
            for result in results[len(chain) :]:
                result.code, result.message = code, message
        try:
            outcomes = await self._appender.submit(chain) if chain else []
            for result, outcome in zip(results[: len(chain)], outcomes, strict=True):
                _fill_result(result, outcome)
        except Exception as exc:  # noqa: BLE001 - the caller gets a result whatever happened
            code, message = _streamed_error(exc, "append")
            for result in results[: len(chain)]:
                result.code, result.message = code, message
        for result in results:
            emit(result)

    async def GetOrderStream(
        self,
        request_iterator: AsyncIterator[orders_pb2.GetOrdersRequest],
        context: grpc.aio.ServicerContext[orders_pb2.GetOrdersRequest, orders_pb2.GetOrdersResponse],
    ) -> AsyncIterator[orders_pb2.GetOrdersResponse]:
        """GetOrders on a stream: ids from every message share one read per batch."""

        async def groups() -> AsyncIterator[list[str]]:
            async for batch in request_iterator:
                yield list(batch.order_ids)

        async for ready in multiplex(groups(), self._read_streamed):
            response = orders_pb2.GetOrdersResponse()
            for item in ready:
                if isinstance(item, orders_pb2.Order):
                    response.orders.append(item)
                elif item[0] == "missing":
                    response.missing.append(item[1])
                else:
                    response.unavailable.append(item[1])
            yield response

    async def _read_streamed(
        self, raw_id: str, emit: Callable[[orders_pb2.Order | tuple[str, str]], None]
    ) -> None:
        """Emits the order, ("missing", id) or ("unavailable", id): a read that failed is never
        answered as missing (the executor would take the order for unknown, not retry)."""
        try:
            order_id = validation.parse_uuid(raw_id, "order_ids[]")
        except DomainError:
            emit(("missing", raw_id))  # no order has such an id
            return
        try:
            order = await self._reader.submit(order_id)
        except Exception as exc:  # noqa: BLE001 - the caller gets an answer whatever happened
            if not isinstance(exc, DomainError):
                log.error("a streamed read failed", extra={"error": type(exc).__name__})
            emit(("unavailable", raw_id))
            return
        emit(order if order is not None else ("missing", raw_id))

    async def _read_orders(self, ids: list[uuid.UUID]) -> list[orders_pb2.Order | None]:
        async with _database():
            found = {o.order_id: order_message(o) for o in await store.get_orders(self.pool, ids)}
        return [found.get(oid) for oid in ids]

    async def RecordExecutionStream(
        self,
        request_iterator: AsyncIterator[orders_pb2.RecordExecutionsRequest],
        context: grpc.aio.ServicerContext[
            orders_pb2.RecordExecutionsRequest, orders_pb2.RecordExecutionsResponse
        ],
    ) -> AsyncIterator[orders_pb2.RecordExecutionsResponse]:
        """RecordExecutions on a stream: executions from every message share one statement per batch."""

        async def groups() -> AsyncIterator[list[tuple[str, orders_pb2.Execution]]]:
            async for batch in request_iterator:
                if len(batch.keys) != len(batch.executions):
                    raise InvalidArgument("must hold one key per execution", field="keys")
                yield list(zip(batch.keys, batch.executions, strict=True))

        async for ready in multiplex(groups(), self._record_streamed):
            yield orders_pb2.RecordExecutionsResponse(results=ready)

    async def _record_streamed(
        self,
        keyed: tuple[str, orders_pb2.Execution],
        emit: Callable[[orders_pb2.RecordExecutionResult], None],
    ) -> None:
        key, message = keyed
        outcome: ExecutionRow | Exception
        try:
            outcome = await self._recorder.submit(validation.parse_execution(message))
        except Exception as exc:  # noqa: BLE001 - each member's own result, as RecordExecutions gives
            outcome = exc
        result = _record_result(outcome)
        result.key = key
        emit(result)

    async def _record_batch(self, executions: list[ExecutionInput]) -> list[ExecutionRow | Exception]:
        async with _database():
            return await store.record_executions(self.pool, executions)

    async def close(self) -> None:
        await self._appender.stop()
        await self._reader.stop()
        await self._recorder.stop()

    async def CancelOrder(
        self,
        request: orders_pb2.CancelOrderRequest,
        context: grpc.aio.ServicerContext[orders_pb2.CancelOrderRequest, orders_pb2.Order],
    ) -> orders_pb2.Order:
        """`cancelled` as the open order's next event: the (order, seq) key and the transition
        check decide a race with a trigger or an expiry (whoever appends that seq first wins; the
        loser re-reads the order and is told its status)."""
        order_id = validation.parse_uuid(request.order_id, "order_id")
        owner = validation.parse_owner(request.owner)
        for _ in range(3):
            async with _database():
                order, _ = await store.get_order(self.pool, order_id, False, owner)
            if order.status != lifecycle.OPEN:
                raise FailedPrecondition(
                    f"the order is {order.status}; only an open order can be cancelled", field="order_id"
                )
            data = {"reason": "cancelled by its owner"}
            event = EventInput(order_id, order.last_seq + 1, lifecycle.CANCELLED, data, compact_json(data))
            async with _database():
                (outcome,) = await store.append_events(self.pool, [event])
            if outcome.code == grpc.StatusCode.OK and outcome.event is not None:
                if outcome.new:
                    _count([outcome.event])
                    await self.publisher.publish([outcome.event], [outcome.resting])
                async with _database():
                    order, _ = await store.get_order(self.pool, order_id, False, owner)
                return order_message(order)
            if outcome.code not in (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION):
                raise FailedPrecondition(outcome.message, field="order_id")
        raise Aborted("the order changed concurrently; retry")

    async def GetOrder(
        self,
        request: orders_pb2.GetOrderRequest,
        context: grpc.aio.ServicerContext[orders_pb2.GetOrderRequest, orders_pb2.Order],
    ) -> orders_pb2.Order:
        order_id = validation.parse_uuid(request.order_id, "order_id")
        async with _database():
            order, events = await store.get_order(
                self.pool, order_id, request.with_events, validation.parse_owner(request.owner)
            )
        return order_message(order, events)

    async def GetOrders(
        self,
        request: orders_pb2.GetOrdersRequest,
        context: grpc.aio.ServicerContext[orders_pb2.GetOrdersRequest, orders_pb2.GetOrdersResponse],
    ) -> orders_pb2.GetOrdersResponse:
        if len(request.order_ids) > MAX_EXECUTIONS_PER_CALL:
            raise InvalidArgument(f"at most {MAX_EXECUTIONS_PER_CALL} per call", field="order_ids")
        ids = [validation.parse_uuid(oid, f"order_ids[{i}]") for i, oid in enumerate(request.order_ids)]
        async with _database():
            orders = await store.get_orders(self.pool, ids)
        return orders_pb2.GetOrdersResponse(orders=[order_message(o) for o in orders])

    async def ListOrders(
        self,
        request: orders_pb2.ListOrdersRequest,
        context: grpc.aio.ServicerContext[orders_pb2.ListOrdersRequest, orders_pb2.ListOrdersResponse],
    ) -> orders_pb2.ListOrdersResponse:
        limit = validation.page_limit(request.limit, LIST_DEFAULT, LIST_MAX)
        status = None
        if request.status != orders_pb2.ORDER_STATUS_UNSPECIFIED:
            status = validation.parse_status(request.status, "status")
        async with _database():
            orders, next_cursor = await store.list_orders(
                self.pool, limit, request.cursor, status, validation.parse_owner(request.owner)
            )
        return orders_pb2.ListOrdersResponse(
            orders=[order_message(o) for o in orders], next_cursor=next_cursor
        )

    async def ListEvents(
        self,
        request: orders_pb2.ListEventsRequest,
        context: grpc.aio.ServicerContext[orders_pb2.ListEventsRequest, orders_pb2.ListEventsResponse],
    ) -> orders_pb2.ListEventsResponse:
        order_id = validation.parse_uuid(request.order_id, "order_id")
        async with _database():
            events = await store.list_events(self.pool, order_id, min(request.after_seq, _INT4_MAX))
        return orders_pb2.ListEventsResponse(events=[event_message(e) for e in events])

    async def RecordExecution(
        self,
        request: orders_pb2.Execution,
        context: grpc.aio.ServicerContext[orders_pb2.Execution, orders_pb2.Execution],
    ) -> orders_pb2.Execution:
        execution = validation.parse_execution(request)
        order_id_var.set(str(execution.order_id))
        async with _database():
            try:
                stored = await store.record_execution(self.pool, execution)
            except store.LiveExecution as exc:
                # The caller resumes the live execution instead: it travels in the trailers.
                context.set_trailing_metadata(
                    ((LIVE_EXECUTION_KEY, execution_message(exc.live).SerializeToString()),)
                )
                raise FailedPrecondition(
                    f"execution {exc.live.signature} of this order is {exc.live.state}; resume it",
                    field="signature",
                ) from None
        return execution_message(stored)

    async def RecordExecutions(
        self,
        request: orders_pb2.RecordExecutionsRequest,
        context: grpc.aio.ServicerContext[
            orders_pb2.RecordExecutionsRequest, orders_pb2.RecordExecutionsResponse
        ],
    ) -> orders_pb2.RecordExecutionsResponse:
        """RecordExecution for a batch: one call for many orders; each member is decided on its own
        (concurrently on the pool), and one member's refusal is that member's alone."""
        if len(request.executions) > MAX_EXECUTIONS_PER_CALL:
            raise InvalidArgument(f"at most {MAX_EXECUTIONS_PER_CALL} per call", field="executions")
        results: list[orders_pb2.RecordExecutionResult | None] = [None] * len(request.executions)
        valid: list[tuple[int, ExecutionInput]] = []
        for i, message in enumerate(request.executions):
            try:
                valid.append((i, validation.parse_execution(message)))
            except DomainError as exc:
                results[i] = orders_pb2.RecordExecutionResult(
                    code=exc.code.value[0], message=exc.client_message()
                )
        async with _database():
            outcomes = await store.record_executions(self.pool, [e for _, e in valid])
        for (i, _), outcome in zip(valid, outcomes, strict=True):
            results[i] = _record_result(outcome)
        return orders_pb2.RecordExecutionsResponse(results=[r for r in results if r is not None])

    async def ListExecutions(
        self,
        request: orders_pb2.ListExecutionsRequest,
        context: grpc.aio.ServicerContext[
            orders_pb2.ListExecutionsRequest, orders_pb2.ListExecutionsResponse
        ],
    ) -> orders_pb2.ListExecutionsResponse:
        order_id = validation.parse_uuid(request.order_id, "order_id")
        async with _database():
            executions = await store.list_executions(self.pool, order_id)
        return orders_pb2.ListExecutionsResponse(executions=[execution_message(e) for e in executions])

    async def ListUnfinishedOrders(
        self,
        request: orders_pb2.ListUnfinishedOrdersRequest,
        context: grpc.aio.ServicerContext[
            orders_pb2.ListUnfinishedOrdersRequest, orders_pb2.ListOrdersResponse
        ],
    ) -> orders_pb2.ListOrdersResponse:
        limit = validation.page_limit(request.limit, UNFINISHED_DEFAULT, UNFINISHED_MAX)
        if request.older_than_us < 0:
            raise InvalidArgument("must not be negative", field="older_than_us")
        older_than = from_us(min(request.older_than_us, _MAX_US)) if request.older_than_us else None
        async with _database():
            orders = await store.list_unfinished(self.pool, limit, older_than)
        return orders_pb2.ListOrdersResponse(orders=[order_message(o) for o in orders])


class _StatusError(DomainError):
    """A per-event outcome raised as the status code of a unary AppendEvent."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _code(code: grpc.StatusCode) -> int:
    value: int = code.value[0]
    return value
