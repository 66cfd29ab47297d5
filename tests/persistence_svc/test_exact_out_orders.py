"""Exact-out orders in persistence (migration 0008): the target output is stored with amount_in 0
and read back (CreateOrder and CreateOrders alike), an exact-out quoted route is accepted only when
it delivers the target, the amount a confirmed swap spent is kept, and every bad shape is refused
naming the field, storing nothing."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import grpc
import psycopg
import pytest

from orderengine.v1 import orders_pb2, types_pb2
from tests.persistence_svc.conftest import make_spec
from tests.persistence_svc.test_quoted_orders import POOL_A
from tests.persistence_svc.test_servicer import count, expect_error

if TYPE_CHECKING:
    from orderengine.v1.orders_pb2_grpc import OrdersAsyncStub

S = orders_pb2
WANT = 150_000_000  # exactly 150 USDC


def exact_route(amount_out: int = WANT, max_in: int = 1_010_000_000) -> types_pb2.Route:
    leg = types_pb2.RouteLeg(
        venue="raydium_cpmm",
        pool=POOL_A,
        amount_in=1_000_000_000,
        amount_out=amount_out,
        min_amount_out=amount_out,
        exact_out=True,
        max_amount_in=max_in,
    )
    return types_pb2.Route(
        legs=[leg],
        amount_out=amount_out,
        min_amount_out=amount_out,
        exact_out=True,
        max_amount_in=max_in,
    )


def exact(**overrides: object) -> S.CreateOrderRequest:
    return S.CreateOrderRequest(
        spec=make_spec(amount_in=0, amount_out=WANT, **overrides), order_id=str(uuid.uuid4())
    )


async def test_the_target_is_stored_and_the_spent_amount_kept(stub: OrdersAsyncStub) -> None:
    one = await stub.CreateOrder(exact(), timeout=5)
    batch = await stub.CreateOrders(
        S.CreateOrdersRequest(orders=[exact(quoted_route=exact_route(), quote_id="q-eo")]), timeout=5
    )
    assert batch.results[0].code == 0, batch.results[0].message
    for order_id in (one.order.order_id, batch.results[0].order.order_id):
        stored = await stub.GetOrder(S.GetOrderRequest(order_id=order_id), timeout=5)
        assert (stored.spec.amount_in, stored.spec.amount_out) == (0, WANT)
        assert stored.amount_in == 0  # nothing spent yet
    quoted = await stub.GetOrder(S.GetOrderRequest(order_id=batch.results[0].order.order_id), timeout=5)
    assert quoted.spec.quoted_route == exact_route()
    # the worker's events: routed on the exact-out route, then confirmed with what was spent
    order_id = one.order.order_id
    route = exact_route()
    for seq, status, update in (
        (2, S.ORDER_STATUS_ROUTING, S.OrderUpdate(attempts=1, route=route)),
        (3, S.ORDER_STATUS_BUILDING, S.OrderUpdate()),
        (4, S.ORDER_STATUS_SUBMITTED, S.OrderUpdate(tx_hash="5" * 64)),
        (5, S.ORDER_STATUS_CONFIRMED, S.OrderUpdate(amount_out=WANT, amount_in=1_003_000_000)),
    ):
        await stub.AppendEvent(
            S.NewEvent(order_id=order_id, seq=seq, status=status, data_json="{}", update=update), timeout=5
        )
    done = await stub.GetOrder(S.GetOrderRequest(order_id=order_id), timeout=5)
    assert (done.amount_out, done.amount_in) == (WANT, 1_003_000_000)
    assert done.route == route and done.route.legs[0].max_amount_in == 1_010_000_000
    # an exact-in order's spent amount is kept the same way
    plain = await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec()), timeout=5)
    assert plain.order.spec.amount_out == 0 and plain.order.spec.amount_in == 1_500_000_000


async def test_bad_exact_out_orders_are_refused_naming_the_field(
    stub: OrdersAsyncStub, database_url: str
) -> None:
    both = S.CreateOrderRequest(spec=make_spec(amount_out=WANT), order_id=str(uuid.uuid4()))
    neither = S.CreateOrderRequest(spec=make_spec(amount_in=0), order_id=str(uuid.uuid4()))
    limit = exact(
        order_type=S.ORDER_TYPE_LIMIT, trigger_price=150_000_000, expires_at_us=4_102_444_800_000_000
    )
    wrong_target = exact(quoted_route=exact_route(amount_out=WANT - 1), quote_id="q-1")
    exact_in_route = types_pb2.Route()
    exact_in_route.CopyFrom(exact_route())
    exact_in_route.exact_out = False
    for leg in exact_in_route.legs:
        leg.exact_out = False
    not_exact = exact(quoted_route=exact_in_route, quote_id="q-2")
    below_quote = exact(quoted_route=exact_route(max_in=999_999_999), quote_id="q-3")
    for request, field in (
        (both, "spec.amount_out"),
        (neither, "spec.amount_in"),
        (limit, "spec.amount_out"),
        (wrong_target, "spec.quoted_route"),
        (not_exact, "spec.quoted_route"),
        (below_quote, "spec.quoted_route.legs[0].max_amount_in"),
    ):
        details = await expect_error(stub.CreateOrder(request, timeout=5), grpc.StatusCode.INVALID_ARGUMENT)
        assert field in details, (field, details)
    assert count(database_url, "SELECT count(*) FROM orders") == 0


def test_the_table_refuses_an_order_that_is_both_or_neither(database_url: str, stub: OrdersAsyncStub) -> None:
    del stub  # the service migrated the database
    insert = """INSERT INTO orders (id, input_mint, output_mint, amount_in, slippage_bps, input_decimals,
        output_decimals, input_symbol, output_symbol, status, created_at, updated_at, exact_amount_out)
        VALUES (%s, 'a', 'b', %s, 50, 9, 6, '', '', 'pending', now(), now(), %s)"""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for amount_in, target in ((5, 7), (0, None)):
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(insert, (uuid.uuid4(), amount_in, target))
        conn.execute(insert, (uuid.uuid4(), 0, 7))
