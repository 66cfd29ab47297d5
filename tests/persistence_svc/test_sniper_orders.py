"""Sniper orders in persistence: the type, minimum liquidity (input base units) and price bound
(input base units per whole output token) are stored exactly, through CreateOrder and the
CreateOrders batch alike; bad fields are refused naming the field, and nothing is stored; an open
sniper order is cancelled like any resting order."""

from __future__ import annotations

import time
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


def sniper_spec(min_liquidity: int = 50 * 10**9, max_price: int = 0) -> S.OrderSpec:
    expires = int(time.time() * 1_000_000) + HOUR_US
    return make_spec(
        order_type=S.ORDER_TYPE_SNIPER,
        min_liquidity=min_liquidity,
        max_price=max_price,
        expires_at_us=expires,
    )


async def test_sniper_fields_are_stored_exactly(stub: OrdersAsyncStub) -> None:
    single = await stub.CreateOrder(S.CreateOrderRequest(spec=sniper_spec(10**19 + 3, 10**19 + 9)), timeout=5)
    batch = await stub.CreateOrders(
        S.CreateOrdersRequest(orders=[S.CreateOrderRequest(spec=sniper_spec(7, 0))]), timeout=5
    )
    assert batch.results[0].code == OK
    first = await stub.GetOrder(S.GetOrderRequest(order_id=single.order.order_id), timeout=5)
    second = await stub.GetOrder(S.GetOrderRequest(order_id=batch.results[0].order.order_id), timeout=5)
    assert first.spec.order_type == S.ORDER_TYPE_SNIPER
    assert (first.spec.min_liquidity, first.spec.max_price, first.spec.trigger_price) == (
        10**19 + 3,
        10**19 + 9,
        0,
    )
    assert (second.spec.min_liquidity, second.spec.max_price) == (7, 0)
    await stub.AppendEvent(S.NewEvent(order_id=first.order_id, seq=2, status=S.ORDER_STATUS_OPEN), timeout=5)
    cancelled = await stub.CancelOrder(S.CancelOrderRequest(order_id=first.order_id), timeout=5)
    assert cancelled.status == S.ORDER_STATUS_CANCELLED


async def test_bad_sniper_fields_are_refused_naming_the_field(
    stub: OrdersAsyncStub, database_url: str
) -> None:
    future = int(time.time() * 1_000_000) + HOUR_US
    cases = [
        (make_spec(order_type=S.ORDER_TYPE_SNIPER, expires_at_us=future), "spec.min_liquidity"),
        (make_spec(order_type=S.ORDER_TYPE_SNIPER, min_liquidity=5), "spec.expires_at_us"),
        (
            make_spec(order_type=S.ORDER_TYPE_SNIPER, min_liquidity=5, trigger_price=9, expires_at_us=future),
            "spec.trigger_price",
        ),
        (make_spec(min_liquidity=5), "spec.min_liquidity"),
        (make_spec(max_price=5), "spec.max_price"),
        (
            make_spec(order_type=S.ORDER_TYPE_LIMIT, trigger_price=5, max_price=5, expires_at_us=future),
            "spec.max_price",
        ),
    ]
    for spec, field in cases:
        details = await expect_error(
            stub.CreateOrder(S.CreateOrderRequest(spec=spec), timeout=5), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert field in details, (details, field)
    assert count(database_url, "SELECT count(*) FROM orders") == 0
