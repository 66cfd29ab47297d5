"""Execute-by-quote orders in persistence: the quoted route, the quote id and the price-impact bound
are stored with the order (CreateOrder and CreateOrders alike) and read back typed; a quoted route
that does not spend the order's amount, or has a leg without a min-out, is refused naming the field
and stores nothing."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import grpc

from orderengine.v1 import orders_pb2, types_pb2
from tests.persistence_svc.conftest import make_spec
from tests.persistence_svc.test_servicer import count, expect_error

if TYPE_CHECKING:
    from orderengine.v1.orders_pb2_grpc import OrdersAsyncStub

S = orders_pb2
POOL_A = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
POOL_B = "BGm1tav58oGcsQJehL9WXBFXF7D27vZsKefj4xJKD5Y"


def quoted_route(amount_in: int = 1_500_000_000, min_b: int = 99_000_000) -> types_pb2.Route:
    legs = [
        types_pb2.RouteLeg(
            venue="raydium_cpmm",
            pool=POOL_A,
            amount_in=amount_in - 500_000_000,
            amount_out=150_000_000,
            min_amount_out=148_500_000,
            price_impact_bps=12,
        ),
        types_pb2.RouteLeg(
            venue="meteora_dlmm",
            pool=POOL_B,
            amount_in=500_000_000,
            amount_out=100_000_000,
            min_amount_out=min_b,
            price_impact_bps=30,
        ),
    ]
    return types_pb2.Route(
        legs=legs,
        amount_out=sum(leg.amount_out for leg in legs),
        min_amount_out=sum(leg.min_amount_out for leg in legs),
        price_impact_bps=30,
    )


def quoted(route: types_pb2.Route | None = None, quote_id: str = "q-1") -> S.CreateOrderRequest:
    spec = make_spec(quoted_route=route or quoted_route(), quote_id=quote_id, max_price_impact_bps=250)
    return S.CreateOrderRequest(spec=spec, order_id=str(uuid.uuid4()))


async def test_quoted_route_and_impact_bound_are_stored_and_read_back(stub: OrdersAsyncStub) -> None:
    one = await stub.CreateOrder(quoted(quote_id="q-one"), timeout=5)
    batch = await stub.CreateOrders(
        S.CreateOrdersRequest(orders=[quoted(quote_id="q-two"), S.CreateOrderRequest(spec=make_spec())]),
        timeout=5,
    )
    assert [r.code for r in batch.results] == [0, 0]
    for order_id, quote_id in ((one.order.order_id, "q-one"), (batch.results[0].order.order_id, "q-two")):
        stored = await stub.GetOrder(S.GetOrderRequest(order_id=order_id), timeout=5)
        assert stored.spec.quoted_route == quoted_route()
        assert stored.spec.quote_id == quote_id and stored.spec.max_price_impact_bps == 250
        assert not stored.HasField("route")  # the order is not routed until the worker says so
    plain = await stub.GetOrder(S.GetOrderRequest(order_id=batch.results[1].order.order_id), timeout=5)
    assert not plain.spec.HasField("quoted_route") and plain.spec.quote_id == ""
    assert plain.spec.max_price_impact_bps == 0


async def test_a_repeat_with_the_same_id_is_the_same_quoted_order(stub: OrdersAsyncStub) -> None:
    request = quoted()
    first = await stub.CreateOrder(request, timeout=5)
    again = await stub.CreateOrder(request, timeout=5)
    assert first.created and not again.created and again.order.order_id == first.order.order_id
    other = S.CreateOrderRequest()
    other.CopyFrom(request)
    other.spec.quoted_route.legs[1].min_amount_out = 1
    other.spec.quoted_route.min_amount_out = 148_500_001
    await expect_error(stub.CreateOrder(other, timeout=5), grpc.StatusCode.ALREADY_EXISTS)


async def test_bad_quoted_routes_are_refused_naming_the_field(
    stub: OrdersAsyncStub, database_url: str
) -> None:
    short = quoted(quoted_route(amount_in=1_000_000_000))  # spends less than the order's amount
    no_floor = quoted(quoted_route(min_b=0))
    no_route = S.CreateOrderRequest(spec=make_spec(quote_id="q-x"), order_id=str(uuid.uuid4()))
    too_far = S.CreateOrderRequest(spec=make_spec(max_price_impact_bps=10_001), order_id=str(uuid.uuid4()))
    for request, field in (
        (short, "spec.quoted_route"),
        (no_floor, "spec.quoted_route"),
        (no_route, "spec.quoted_route"),
        (too_far, "spec.max_price_impact_bps"),
    ):
        details = await expect_error(stub.CreateOrder(request, timeout=5), grpc.StatusCode.INVALID_ARGUMENT)
        assert field in details
    assert count(database_url, "SELECT count(*) FROM orders") == 0
