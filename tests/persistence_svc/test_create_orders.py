"""CreateOrders on the real persistence server: one call, one statement and one commit for a batch,
each member with its own result, exactly what CreateOrder gives for that member alone; and the
typed route (types.Route) stored and read back."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import grpc
import psycopg
import pytest
from prometheus_client import REGISTRY

from orderengine.v1 import orders_pb2, types_pb2
from tests.persistence_svc.conftest import make_spec
from tests.persistence_svc.test_servicer import count, create, event, expect_error

if TYPE_CHECKING:
    from orderengine.v1.orders_pb2_grpc import OrdersAsyncStub

S = orders_pb2
OK = grpc.StatusCode.OK.value[0]
ROUTING, BUILDING = S.ORDER_STATUS_ROUTING, S.ORDER_STATUS_BUILDING
POOL_A = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
POOL_B = "BGm1tav58oGcsQJehL9WXBFXF7D27vZsKefj4xJKD5Y"


def member(key: str = "", body: str = "", **spec: Any) -> S.CreateOrderRequest:
    return S.CreateOrderRequest(
        spec=make_spec(**spec),
        idempotency_key=key,
        request_hash=body if key else "",
        order_id=str(uuid.uuid4()),
    )


def code_of(result: S.CreateOrderResult) -> grpc.StatusCode:
    return next(c for c in grpc.StatusCode if c.value[0] == result.code)


# --- batch semantics ------------------------------------------------------------------------------


async def test_mixed_batch_gives_each_member_its_own_result(stub: OrdersAsyncStub, database_url: str) -> None:
    earlier = await stub.CreateOrder(member("seen", "body-a"))
    invalid = member(slippage_bps=0)
    batch = [
        member(),  # 0: new, no key
        member("fresh", "body-f"),  # 1: new, with a key
        member("seen", "body-a"),  # 2: the earlier order's key, same body
        member("seen", "body-b", amount_in=7),  # 3: the earlier order's key, another body
        invalid,  # 4: invalid
        member("fresh", "body-f"),  # 5: member 1's key in the same batch, same body
        member("fresh", "body-x", amount_in=9),  # 6: member 1's key in the same batch, another body
    ]
    response = await stub.CreateOrders(S.CreateOrdersRequest(orders=batch))
    r = response.results
    assert len(r) == len(batch)
    assert [res.code for res in r] == [
        OK,
        OK,
        OK,
        grpc.StatusCode.ALREADY_EXISTS.value[0],
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        OK,
        grpc.StatusCode.ALREADY_EXISTS.value[0],
    ]
    assert [res.created for res in r] == [True, True, False, False, False, False, False]
    assert r[0].order.order_id == batch[0].order_id and r[0].order.status == S.ORDER_STATUS_PENDING
    assert r[0].order.last_seq == 1 and r[0].order.spec == batch[0].spec
    assert r[2].order.order_id == earlier.order.order_id
    assert r[5].order.order_id == r[1].order.order_id == batch[1].order_id
    # the errors are the ones CreateOrder gives for the same member alone
    for index, request in ((3, batch[3]), (4, invalid), (6, batch[6])):
        details = await expect_error(stub.CreateOrder(request), code_of(r[index]))
        assert r[index].message == details
    assert r[4].message == "spec.slippage_bps: must be between 1 and 5000"
    # stored: the earlier order and the two new ones, each with its event 1 and outbox row
    assert count(database_url, "SELECT count(*) FROM orders") == 3
    assert count(database_url, "SELECT count(*) FROM order_events") == 3
    assert count(database_url, "SELECT count(*) FROM idempotency_keys") == 2
    got = await stub.GetOrder(S.GetOrderRequest(order_id=r[1].order.order_id, with_events=True))
    assert [(e.seq, e.status) for e in got.events] == [(1, S.ORDER_STATUS_PENDING)]
    assert got.created_at_us == r[1].order.created_at_us


async def test_fifty_duplicates_in_one_batch_are_one_order(stub: OrdersAsyncStub, database_url: str) -> None:
    batch = [member("dup-50", "same") for _ in range(50)]
    response = await stub.CreateOrders(S.CreateOrdersRequest(orders=batch))
    assert all(res.code == OK for res in response.results)
    assert sum(res.created for res in response.results) == 1 and response.results[0].created
    assert {res.order.order_id for res in response.results} == {batch[0].order_id}
    assert count(database_url, "SELECT count(*) FROM orders") == 1
    assert count(database_url, "SELECT count(*) FROM order_events") == 1


async def test_concurrent_batches_with_shared_keys_create_one_order_per_key(
    stub: OrdersAsyncStub, database_url: str
) -> None:
    keys = [f"k{i}" for i in range(10)]

    def batch(shift: int) -> S.CreateOrdersRequest:
        order = keys[shift:] + keys[:shift]  # the same keys, in another order per batch
        return S.CreateOrdersRequest(orders=[member(k, f"body-{k}") for k in order])

    responses = await asyncio.gather(*(stub.CreateOrders(batch(i)) for i in range(10)))
    results = [res for response in responses for res in response.results]
    assert all(res.code == OK for res in results)
    assert sum(res.created for res in results) == len(keys)
    by_key: dict[str, set[str]] = {}
    for response, shift in zip(responses, range(10), strict=True):
        for res, key in zip(response.results, keys[shift:] + keys[:shift], strict=True):
            by_key.setdefault(key, set()).add(res.order.order_id)
    assert all(len(ids) == 1 for ids in by_key.values())
    assert count(database_url, "SELECT count(*) FROM orders") == len(keys)


async def test_a_batch_is_one_transaction(stub: OrdersAsyncStub, database_url: str) -> None:
    batch = [member(f"c{i}", "b") if i % 2 else member() for i in range(100)]
    response = await stub.CreateOrders(S.CreateOrdersRequest(orders=batch))
    assert all(res.created for res in response.results)
    # rows written by one transaction share its id (xmin): orders, keys, events and outbox rows
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            """SELECT count(DISTINCT xmin::text) FROM (
                   SELECT xmin FROM orders UNION ALL SELECT xmin FROM idempotency_keys
                   UNION ALL SELECT xmin FROM order_events UNION ALL SELECT xmin FROM event_outbox) t"""
        ).fetchone()
    assert row == (1,)
    assert count(database_url, "SELECT count(*) FROM orders") == 100


async def test_expired_key_is_claimed_again_in_a_batch(stub: OrdersAsyncStub, database_url: str) -> None:
    first = await stub.CreateOrder(member("old", "a"))
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    response = await stub.CreateOrders(S.CreateOrdersRequest(orders=[member("old", "b"), member("old", "b")]))
    fresh, repeat = response.results
    assert fresh.created and fresh.order.order_id != first.order.order_id
    assert not repeat.created and repeat.order.order_id == fresh.order.order_id


async def test_a_taken_order_id_is_decided_as_create_order_decides(
    stub: OrdersAsyncStub, database_url: str
) -> None:
    taken = await create(stub, spec=make_spec(amount_in=11), order_id=str(uuid.uuid4()))
    same = S.CreateOrderRequest(spec=make_spec(amount_in=11), order_id=taken.order_id)
    other = S.CreateOrderRequest(spec=make_spec(amount_in=12), order_id=taken.order_id)
    keyed = S.CreateOrderRequest(
        spec=make_spec(amount_in=13), order_id=taken.order_id, idempotency_key="taken", request_hash="h"
    )
    response = await stub.CreateOrders(S.CreateOrdersRequest(orders=[same, other, keyed, member()]))
    r = response.results
    assert r[0].code == OK and not r[0].created and r[0].order.order_id == taken.order_id
    assert code_of(r[1]) == grpc.StatusCode.ALREADY_EXISTS
    assert r[1].message == "order_id already used for a different order"
    assert code_of(r[2]) == grpc.StatusCode.ALREADY_EXISTS
    assert r[3].code == OK and r[3].created
    # the refused member left no claim behind: its key is free for a new order
    again = await stub.CreateOrder(member("taken", "h"))
    assert again.created


async def test_owners_keep_their_own_keys_in_a_batch(stub: OrdersAsyncStub) -> None:
    a = member("shared", "h")
    a.owner = "owner-a"
    b = member("shared", "h")
    b.owner = "owner-b"
    a_again = member("shared", "h")
    a_again.owner = "owner-a"
    r = (await stub.CreateOrders(S.CreateOrdersRequest(orders=[a, b, a_again]))).results
    assert r[0].created and r[1].created and not r[2].created
    assert r[0].order.order_id != r[1].order.order_id
    assert r[2].order.order_id == r[0].order.order_id
    seen = await stub.GetOrder(S.GetOrderRequest(order_id=r[1].order.order_id, owner="owner-b"))
    assert seen.order_id == r[1].order.order_id
    await expect_error(
        stub.GetOrder(S.GetOrderRequest(order_id=r[1].order.order_id, owner="owner-a")),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_create_orders_limits_and_empty_batch(stub: OrdersAsyncStub) -> None:
    assert len((await stub.CreateOrders(S.CreateOrdersRequest())).results) == 0
    details = await expect_error(
        stub.CreateOrders(S.CreateOrdersRequest(orders=[member() for _ in range(1001)])),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert details.startswith("orders:")


async def test_one_call_per_batch_on_the_server(stub: OrdersAsyncStub) -> None:
    def handled() -> float:
        value = REGISTRY.get_sample_value(
            "orderengine_grpc_server_handled_total",
            {"grpc_service": "orderengine.v1.Orders", "grpc_method": "CreateOrders", "grpc_code": "OK"},
        )
        return value or 0.0

    before = handled()
    await stub.CreateOrders(S.CreateOrdersRequest(orders=[member() for _ in range(20)]))
    assert handled() - before == 1


# --- the typed route ------------------------------------------------------------------------------


def route(split: bool = False) -> types_pb2.Route:
    legs = [
        types_pb2.RouteLeg(
            venue="raydium_cpmm", pool=POOL_A, amount_in=1_000, amount_out=900, min_amount_out=891
        )
    ]
    if split:
        legs.append(
            types_pb2.RouteLeg(
                venue="meteora_dlmm", pool=POOL_B, amount_in=500, amount_out=450, min_amount_out=445
            )
        )
    return types_pb2.Route(
        legs=legs,
        amount_out=sum(x.amount_out for x in legs),
        min_amount_out=sum(x.min_amount_out for x in legs),
    )


async def test_route_round_trips_typed(stub: OrdersAsyncStub) -> None:
    order = await create(stub)
    assert not order.HasField("route")
    display = '{"route":{"dex":"split"}}'
    await stub.AppendEvent(
        event(order.order_id, 2, ROUTING, attempts=1, route=route(split=True), route_json=display)
    )
    got = await stub.GetOrder(S.GetOrderRequest(order_id=order.order_id))
    assert got.route == route(split=True)
    assert got.route_json == display  # the display form beside it, for the API
    # a later event that does not set the route keeps it
    await stub.AppendEvent(event(order.order_id, 3, BUILDING))
    listed = await stub.ListUnfinishedOrders(S.ListUnfinishedOrdersRequest())
    assert [o.route for o in listed.orders if o.order_id == order.order_id] == [route(split=True)]


async def test_route_in_a_batch_of_events(stub: OrdersAsyncStub) -> None:
    """Both append paths: the one-statement path (one event per order) and the checked path
    (several events for one order)."""
    a, b = await create(stub), await create(stub)
    fast = await stub.AppendEvents(
        S.AppendEventsRequest(
            events=[
                event(a.order_id, 2, ROUTING, attempts=1, route=route()),
                event(b.order_id, 2, ROUTING, attempts=1, route=route(split=True)),
            ]
        )
    )
    assert all(res.code == OK for res in fast.results)
    checked = await stub.AppendEvents(
        S.AppendEventsRequest(
            events=[
                event(a.order_id, 3, BUILDING),
                event(a.order_id, 4, S.ORDER_STATUS_FAILED, failure_reason="x"),
                event(b.order_id, 3, BUILDING),
            ]
        )
    )
    assert all(res.code == OK for res in checked.results)
    got_a = await stub.GetOrder(S.GetOrderRequest(order_id=a.order_id))
    got_b = await stub.GetOrder(S.GetOrderRequest(order_id=b.order_id))
    assert (got_a.route, got_b.route) == (route(), route(split=True))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.ClearField("legs"), "update.route.legs"),
        (lambda r: setattr(r.legs[0], "venue", "Bad Venue"), "update.route.legs[0].venue"),
        (lambda r: setattr(r.legs[0], "pool", "not-a-key"), "update.route.legs[0].pool"),
        (lambda r: setattr(r.legs[0], "amount_in", 0), "update.route.legs[0].amount_in"),
        (lambda r: setattr(r.legs[0], "min_amount_out", 901), "update.route.legs[0].min_amount_out"),
        (lambda r: setattr(r, "amount_out", 1), "update.route.amount_out"),
        (lambda r: setattr(r, "min_amount_out", 1), "update.route.min_amount_out"),
    ],
)
async def test_invalid_route_is_refused_naming_the_field(
    stub: OrdersAsyncStub, change: Any, field: str
) -> None:
    order = await create(stub)
    bad = route()
    change(bad)
    details = await expect_error(
        stub.AppendEvent(event(order.order_id, 2, ROUTING, attempts=1, route=bad)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert details.startswith(f"{field}:")
    got = await stub.GetOrder(S.GetOrderRequest(order_id=order.order_id))
    assert got.last_seq == 1 and not got.HasField("route")
