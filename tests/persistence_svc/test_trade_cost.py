"""What a confirmed swap cost (migration 0010): OrderUpdate.cost set with the confirmed event is
stored on the order and read back exactly (AppendEvent and AppendEvents' checked path alike); a bad
cost is refused naming the field and nothing of the event is stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from orderengine.v1 import orders_pb2, types_pb2
from tests.persistence_svc.conftest import make_spec
from tests.persistence_svc.test_servicer import count, expect_error

if TYPE_CHECKING:
    from orderengine.v1.orders_pb2_grpc import OrdersAsyncStub

S = orders_pb2
SOL = "So11111111111111111111111111111111111111112"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


def cost(**overrides: object) -> types_pb2.TradeCost:
    fields: dict[str, object] = {
        "network_fee": 5_000,
        "priority_fee": 1_234,
        "rent": 2_039_280,
        "balance_changes": [
            types_pb2.BalanceChange(mint=SOL, change=-1_002_045_514),
            types_pb2.BalanceChange(mint=USDC, change=150_123_456),
        ],
    }
    fields.update(overrides)
    return types_pb2.TradeCost(**fields)  # type: ignore[arg-type]


async def _to_submitted(stub: OrdersAsyncStub) -> str:
    order = (await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec()), timeout=5)).order
    for seq, status in (
        (2, S.ORDER_STATUS_ROUTING),
        (3, S.ORDER_STATUS_BUILDING),
        (4, S.ORDER_STATUS_SUBMITTED),
    ):
        await stub.AppendEvent(S.NewEvent(order_id=order.order_id, seq=seq, status=status), timeout=5)
    return order.order_id


def confirmed(order_id: str, trade_cost: types_pb2.TradeCost) -> S.NewEvent:
    return S.NewEvent(
        order_id=order_id,
        seq=5,
        status=S.ORDER_STATUS_CONFIRMED,
        data_json="{}",
        update=S.OrderUpdate(amount_out=150_123_456, amount_in=10**9, tx_hash="5" * 64, cost=trade_cost),
    )


async def test_the_cost_is_stored_with_the_confirmation(stub: OrdersAsyncStub) -> None:
    one, two = await _to_submitted(stub), await _to_submitted(stub)
    before = await stub.GetOrder(S.GetOrderRequest(order_id=one), timeout=5)
    assert not before.HasField("cost")  # unset before confirmation
    await stub.AppendEvent(confirmed(one, cost()), timeout=5)
    # the checked path: several events of one order in one batch
    other = cost(priority_fee=0, rent=0, balance_changes=[types_pb2.BalanceChange(mint=SOL, change=-5_000)])
    extra = S.NewEvent(order_id=two, seq=6, status=S.ORDER_STATUS_CONFIRMED)  # a conflict, refused
    results = await stub.AppendEvents(S.AppendEventsRequest(events=[confirmed(two, other), extra]), timeout=5)
    assert results.results[0].code == 0, results.results[0].message
    for order_id, want in ((one, cost()), (two, other)):
        done = await stub.GetOrder(S.GetOrderRequest(order_id=order_id), timeout=5)
        assert done.cost == want
        assert done.amount_out == 150_123_456


async def test_a_bad_cost_is_refused_naming_the_field(stub: OrdersAsyncStub, database_url: str) -> None:
    order_id = await _to_submitted(stub)
    repeated = cost(
        balance_changes=[
            types_pb2.BalanceChange(mint=SOL, change=-1),
            types_pb2.BalanceChange(mint=SOL, change=2),
        ]
    )
    for bad, field in (
        (
            cost(balance_changes=[types_pb2.BalanceChange(mint="not-a-mint", change=1)]),
            "balance_changes[0].mint",
        ),
        (cost(balance_changes=[types_pb2.BalanceChange(mint=USDC, change=0)]), "balance_changes[0].change"),
        (repeated, "balance_changes[1].mint"),
        (
            cost(balance_changes=[types_pb2.BalanceChange(mint=SOL, change=-1)] * 17),
            "update.cost.balance_changes",
        ),
    ):
        details = await expect_error(
            stub.AppendEvent(confirmed(order_id, bad), timeout=5), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert field in details, (field, details)
    assert count(database_url, "SELECT count(*) FROM order_events WHERE status = 'confirmed'") == 0
    assert count(database_url, "SELECT count(*) FROM orders WHERE cost IS NOT NULL") == 0
