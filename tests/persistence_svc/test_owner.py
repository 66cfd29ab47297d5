"""Orders and idempotency keys belong to their owner (the gateway's id of an API key)."""

from __future__ import annotations

import grpc
import pytest

from orderengine.v1 import orders_pb2, orders_pb2_grpc
from tests.persistence_svc.conftest import make_spec

ALICE = "a" * 32
BOB = "b" * 32


async def create(
    stub: orders_pb2_grpc.OrdersStub, owner: str, key: str = "", amount: int = 1_000_000_000
) -> orders_pb2.CreateOrderResponse:
    request = orders_pb2.CreateOrderRequest(
        spec=make_spec(amount), owner=owner, idempotency_key=key, request_hash=f"h{amount}" if key else ""
    )
    response: orders_pb2.CreateOrderResponse = await stub.CreateOrder(request, timeout=5)
    return response


async def test_an_owner_sees_only_its_own_orders(stub: orders_pb2_grpc.OrdersStub) -> None:
    mine = (await create(stub, ALICE)).order.order_id
    theirs = (await create(stub, BOB)).order.order_id
    unowned = (await create(stub, "")).order.order_id

    got = await stub.GetOrder(orders_pb2.GetOrderRequest(order_id=mine, owner=ALICE), timeout=5)
    assert got.order_id == mine
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetOrder(
            orders_pb2.GetOrderRequest(order_id=theirs, owner=ALICE, with_events=True), timeout=5
        )
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetOrder(orders_pb2.GetOrderRequest(order_id=unowned, owner=ALICE), timeout=5)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND

    listed = await stub.ListOrders(orders_pb2.ListOrdersRequest(owner=ALICE), timeout=5)
    assert [o.order_id for o in listed.orders] == [mine]
    everyone = await stub.ListOrders(orders_pb2.ListOrdersRequest(), timeout=5)  # internal callers
    assert {o.order_id for o in everyone.orders} == {mine, theirs, unowned}
    # without an owner, the worker and executor read any order
    assert (await stub.GetOrder(orders_pb2.GetOrderRequest(order_id=theirs), timeout=5)).order_id == theirs


async def test_idempotency_keys_are_per_owner(stub: orders_pb2_grpc.OrdersStub) -> None:
    first = await create(stub, ALICE, key="k-1", amount=1_000_000_000)
    again = await create(stub, ALICE, key="k-1", amount=1_000_000_000)
    assert again.created is False and again.order.order_id == first.order.order_id
    # the same key by another owner is another order, even with another body
    other = await create(stub, BOB, key="k-1", amount=2_000_000_000)
    assert other.created is True and other.order.order_id != first.order.order_id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(stub, ALICE, key="k-1", amount=3_000_000_000)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize("owner", ["x" * 65, "has space", "nul\x00"])
async def test_a_malformed_owner_is_refused(stub: orders_pb2_grpc.OrdersStub, owner: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(stub, owner)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "owner" in (refused.value.details() or "")
    listed = await stub.ListOrders(orders_pb2.ListOrdersRequest(), timeout=5)
    assert list(listed.orders) == []
