"""Resting orders in persistence: a limit or stop order keeps its type, integer trigger price and
expiry; it goes pending → open and leaves open once — by routing (the trigger), cancelled or expired —
and CancelOrder racing a trigger has exactly one winner. Recovery (ListUnfinishedOrders) leaves open
orders to the trigger loop."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import TYPE_CHECKING

import grpc

from orderengine.v1 import orders_pb2
from tests.persistence_svc.conftest import make_spec
from tests.persistence_svc.test_servicer import count, expect_error

if TYPE_CHECKING:
    from orderengine.v1.orders_pb2_grpc import OrdersAsyncStub

S = orders_pb2
OK = grpc.StatusCode.OK.value[0]
HOUR_US = 3_600_000_000


def limit_spec(price: int = 151_250_000, order_type: int = S.ORDER_TYPE_LIMIT) -> S.OrderSpec:
    expires = int(time.time() * 1_000_000) + HOUR_US
    return make_spec(order_type=order_type, trigger_price=price, expires_at_us=expires)


async def open_order(stub: OrdersAsyncStub, spec: S.OrderSpec | None = None) -> S.Order:
    created = await stub.CreateOrder(S.CreateOrderRequest(spec=spec or limit_spec()), timeout=5)
    oid = created.order.order_id
    await stub.AppendEvent(S.NewEvent(order_id=oid, seq=2, status=S.ORDER_STATUS_OPEN), timeout=5)
    return await stub.GetOrder(S.GetOrderRequest(order_id=oid), timeout=5)


async def test_type_trigger_price_and_expiry_are_stored_exactly(stub: OrdersAsyncStub) -> None:
    spec = limit_spec(price=10**19 + 7, order_type=S.ORDER_TYPE_STOP)
    batch = await stub.CreateOrders(
        S.CreateOrdersRequest(orders=[S.CreateOrderRequest(spec=spec)]), timeout=5
    )
    assert batch.results[0].code == OK
    stored = await stub.GetOrder(S.GetOrderRequest(order_id=batch.results[0].order.order_id), timeout=5)
    assert stored.spec.order_type == S.ORDER_TYPE_STOP
    assert stored.spec.trigger_price == 10**19 + 7  # an integer beyond float precision, exact
    assert stored.spec.expires_at_us == spec.expires_at_us
    market = await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec()), timeout=5)
    read = await stub.GetOrder(S.GetOrderRequest(order_id=market.order.order_id), timeout=5)
    assert read.spec.order_type == S.ORDER_TYPE_MARKET and read.spec.trigger_price == 0


async def test_bad_resting_fields_are_refused_naming_the_field(
    stub: OrdersAsyncStub, database_url: str
) -> None:
    future = int(time.time() * 1_000_000) + HOUR_US
    cases = [
        (make_spec(order_type=S.ORDER_TYPE_LIMIT, expires_at_us=future), "spec.trigger_price"),
        (make_spec(order_type=S.ORDER_TYPE_LIMIT, trigger_price=5), "spec.expires_at_us"),
        (make_spec(trigger_price=5), "spec.trigger_price"),
        (make_spec(expires_at_us=future), "spec.expires_at_us"),
        (
            make_spec(order_type=S.ORDER_TYPE_STOP, trigger_price=0, expires_at_us=future),
            "spec.trigger_price",
        ),
        (make_spec(order_type=7), "spec.order_type"),
    ]
    for spec, field in cases:
        details = await expect_error(
            stub.CreateOrder(S.CreateOrderRequest(spec=spec), timeout=5), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert field in details, (details, field)
    assert count(database_url, "SELECT count(*) FROM orders") == 0


async def test_open_leaves_once_by_cancel_and_a_cancel_is_owned(stub: OrdersAsyncStub) -> None:
    order = await open_order(stub)
    assert order.status == S.ORDER_STATUS_OPEN
    unfinished = await stub.ListUnfinishedOrders(S.ListUnfinishedOrdersRequest(limit=10), timeout=5)
    assert order.order_id not in {o.order_id for o in unfinished.orders}  # recovery leaves it alone
    await expect_error(
        stub.CancelOrder(S.CancelOrderRequest(order_id=order.order_id, owner="someone-else"), timeout=5),
        grpc.StatusCode.NOT_FOUND,
    )
    cancelled = await stub.CancelOrder(S.CancelOrderRequest(order_id=order.order_id), timeout=5)
    assert cancelled.status == S.ORDER_STATUS_CANCELLED and cancelled.last_seq == 3
    details = await expect_error(
        stub.CancelOrder(S.CancelOrderRequest(order_id=order.order_id), timeout=5),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "cancelled" in details
    for late in (S.ORDER_STATUS_ROUTING, S.ORDER_STATUS_EXPIRED, S.ORDER_STATUS_OPEN):
        await expect_error(
            stub.AppendEvent(S.NewEvent(order_id=order.order_id, seq=4, status=late), timeout=5),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
    events = (
        await stub.GetOrder(S.GetOrderRequest(order_id=order.order_id, with_events=True), timeout=5)
    ).events
    assert [e.status for e in events] == [
        S.ORDER_STATUS_PENDING,
        S.ORDER_STATUS_OPEN,
        S.ORDER_STATUS_CANCELLED,
    ]
    assert json.loads(events[-1].data_json)["reason"]


async def test_a_cancel_racing_a_trigger_has_exactly_one_winner(stub: OrdersAsyncStub) -> None:
    orders = [await open_order(stub) for _ in range(20)]

    async def trigger(order: S.Order) -> bool:
        try:
            await stub.AppendEvent(
                S.NewEvent(order_id=order.order_id, seq=order.last_seq + 1, status=S.ORDER_STATUS_ROUTING),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION)
            return False
        return True

    async def cancel(order: S.Order) -> bool:
        try:
            await stub.CancelOrder(S.CancelOrderRequest(order_id=order.order_id), timeout=5)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.details()
            return False
        return True

    outcomes = await asyncio.gather(*(asyncio.gather(trigger(o), cancel(o)) for o in orders))
    for order, (triggered, cancelled) in zip(orders, outcomes, strict=True):
        assert triggered != cancelled, order.order_id  # exactly one winner
        final = await stub.GetOrder(S.GetOrderRequest(order_id=order.order_id, with_events=True), timeout=5)
        expected = S.ORDER_STATUS_ROUTING if triggered else S.ORDER_STATUS_CANCELLED
        assert final.status == expected and len(final.events) == 3


async def test_an_order_id_is_a_uuid_for_cancel(stub: OrdersAsyncStub) -> None:
    await expect_error(
        stub.CancelOrder(S.CancelOrderRequest(order_id="nope"), timeout=5), grpc.StatusCode.INVALID_ARGUMENT
    )
    await expect_error(
        stub.CancelOrder(S.CancelOrderRequest(order_id=str(uuid.uuid4())), timeout=5),
        grpc.StatusCode.NOT_FOUND,
    )
