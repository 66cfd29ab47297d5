"""A driver that finds its order mid-execution (building) resumes that attempt from the stored typed
route (Order.route, a types.Route), without quoting again."""

from __future__ import annotations

import json
import uuid

import redis.asyncio as aioredis

from common import jobs
from common.grpc_client import open_channel
from gateway.views import route_json
from orderengine.v1 import orders_pb2, orders_pb2_grpc, router_pb2, router_pb2_grpc
from tests.engine import Engine
from tests.worker.test_driver import NAMES, eng, spec_of, wait_terminal
from worker.consumer import Worker

__all__ = ["eng"]  # fixtures


async def test_resumes_from_the_stored_typed_route(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    spec = spec_of(eng, "SOL", "USDC", 10**9)
    created = await orders.CreateOrder(orders_pb2.CreateOrderRequest(spec=spec, order_id=str(uuid.uuid4())))
    order_id = created.order.order_id
    channel = open_channel(eng.settings.router_addr)
    try:
        quote = await router_pb2_grpc.RouterStub(channel).Quote(
            router_pb2.QuoteRequest(
                request_id=f"{order_id}:1",
                input_mint=spec.input_mint,
                output_mint=spec.output_mint,
                amount_in=spec.amount_in,
                slippage_bps=spec.slippage_bps,
                order_id=order_id,
            )
        )
    finally:
        await channel.close()
    # A previous driver routed the order and began building, then died. The display JSON is
    # deliberately not the route: only the typed route can be resumed from.
    routing = {"quotes": [], "route": route_json(quote.route, spec.output_decimals)}
    appended = await orders.AppendEvents(
        orders_pb2.AppendEventsRequest(
            events=[
                orders_pb2.NewEvent(
                    order_id=order_id,
                    seq=2,
                    status=orders_pb2.ORDER_STATUS_ROUTING,
                    data_json=json.dumps({"attempt": 1, **routing}),
                    update=orders_pb2.OrderUpdate(attempts=1, route_json='{"route":null}', route=quote.route),
                ),
                orders_pb2.NewEvent(order_id=order_id, seq=3, status=orders_pb2.ORDER_STATUS_BUILDING),
            ]
        )
    )
    assert [r.code for r in appended.results] == [0, 0]
    redis = aioredis.Redis.from_url(eng.settings.redis_url)
    try:  # a recovery-style job (no spec): the worker reads the order, route included
        await jobs.enqueue(redis, jobs.Keys(eng.settings.redis_prefix), order_id)
    finally:
        await redis.aclose()
    order = await wait_terminal(orders, order_id)
    assert [NAMES[e.status] for e in order.events] == [
        "pending",
        "routing",
        "building",
        "submitted",
        "confirmed",
    ]
    assert order.attempts == 1 and order.route == quote.route
    assert order.amount_out >= quote.route.min_amount_out
