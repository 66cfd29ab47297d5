"""Execute-by-quote and the price-impact guard, driven by the real worker through the real router,
executor, persistence and simulated chain.

A quoted order runs exactly its quoted route with its min-outs (the router is not asked again, on
any attempt); a routed order whose route moves a pool further than its max price impact fails with
the reason and sends nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from common import jobs
from common.grpc_client import open_channel
from orderengine.v1 import orders_pb2, orders_pb2_grpc, router_pb2, router_pb2_grpc, types_pb2
from tests.engine import Engine
from tests.worker.test_driver import NAMES, eng, spec_of, wait_terminal  # noqa: F401
from worker.consumer import Worker

__all__ = ["eng"]


@pytest.fixture
async def router(eng: Engine) -> AsyncIterator[router_pb2_grpc.RouterAsyncStub]:  # noqa: F811
    channel = open_channel(eng.settings.router_addr)
    yield router_pb2_grpc.RouterStub(channel)
    await channel.close()


def router_quotes() -> float:
    return sum(
        REGISTRY.get_sample_value("orderengine_router_quotes_total", {"outcome": o}) or 0.0
        for o in ("ok", "invalid", "not_found", "no_route", "unavailable", "error")
    )


async def place(
    eng: Engine, orders: orders_pb2_grpc.OrdersAsyncStub, spec: orders_pb2.OrderSpec, with_spec: bool
) -> str:  # noqa: F811
    """Creates the order and queues its job (with the spec, as the gateway does, or without it, as a
    recovery re-queue does: the worker then reads the order back)."""
    resp = await orders.CreateOrder(
        orders_pb2.CreateOrderRequest(order_id=str(uuid.uuid4()), spec=spec), timeout=5
    )
    redis = aioredis.Redis.from_url(eng.settings.redis_url)
    try:
        blob = spec.SerializeToString() if with_spec else b""
        await jobs.enqueue(redis, jobs.Keys(eng.settings.redis_prefix), resp.order.order_id, blob)
    finally:
        await redis.aclose()
    return resp.order.order_id


async def quote(
    router: router_pb2_grpc.RouterAsyncStub, spec: orders_pb2.OrderSpec
) -> router_pb2.QuoteResponse:
    return await router.Quote(
        router_pb2.QuoteRequest(
            input_mint=spec.input_mint,
            output_mint=spec.output_mint,
            amount_in=spec.amount_in,
            slippage_bps=spec.slippage_bps,
        ),
        timeout=5,
    )


@pytest.mark.parametrize("with_spec", [True, False])
async def test_a_quoted_order_lands_exactly_its_quoted_route(
    eng: Engine,  # noqa: F811
    worker: Worker,  # noqa: F811
    orders: orders_pb2_grpc.OrdersAsyncStub,  # noqa: F811
    router: router_pb2_grpc.RouterAsyncStub,
    with_spec: bool,
) -> None:
    base = spec_of(eng, "SOL", "USDC", 2 * 10**9)
    quoted = (await quote(router, base)).route
    asked = router_quotes()
    oid = await place(
        eng, orders, spec_of(eng, "SOL", "USDC", 2 * 10**9, quoted_route=quoted, quote_id="q-7"), with_spec
    )
    order = await wait_terminal(orders, oid)
    assert [NAMES[e.status] for e in order.events] == [
        "pending",
        "routing",
        "building",
        "submitted",
        "confirmed",
    ]
    routing = json.loads(order.events[1].data_json)
    assert routing["quoteId"] == "q-7" and routing["quotes"] == []
    legs = [(leg["pool"], leg["amountInRaw"], leg["minAmountOutRaw"]) for leg in routing["route"]["legs"]]
    assert legs == [(leg.pool, str(leg.amount_in), str(leg.min_amount_out)) for leg in quoted.legs]
    assert order.route == quoted  # the stored typed route is the quote's, byte for byte
    assert order.amount_out >= quoted.min_amount_out
    assert router_quotes() == asked  # the worker did not route it


async def test_a_quoted_min_out_the_pool_cannot_pay_fails_without_rerouting(
    eng: Engine,  # noqa: F811
    worker: Worker,  # noqa: F811
    orders: orders_pb2_grpc.OrdersAsyncStub,  # noqa: F811
    router: router_pb2_grpc.RouterAsyncStub,
) -> None:
    base = spec_of(eng, "SOL", "USDC", 10**9)
    route = (await quote(router, base)).route
    greedy = types_pb2.Route()
    greedy.CopyFrom(route)
    for leg in greedy.legs:  # twice the quote: the program's slippage check refuses it
        leg.amount_out *= 2
        leg.min_amount_out = leg.amount_out
    greedy.amount_out = sum(leg.amount_out for leg in greedy.legs)
    greedy.min_amount_out = sum(leg.min_amount_out for leg in greedy.legs)
    asked = router_quotes()
    oid = await place(
        eng, orders, spec_of(eng, "SOL", "USDC", 10**9, quoted_route=greedy, quote_id="q-greedy"), True
    )
    order = await wait_terminal(orders, oid, timeout=30)
    assert NAMES[order.status] == "failed" and order.failure_reason
    routings = [json.loads(e.data_json) for e in order.events if e.status == orders_pb2.ORDER_STATUS_ROUTING]
    assert routings and all(r["quoteId"] == "q-greedy" for r in routings)
    assert {r["route"]["minAmountOutRaw"] for r in routings} == {str(greedy.min_amount_out)}
    assert router_quotes() == asked


async def test_the_price_impact_guard_fails_a_route_that_moves_the_pool_too_far(
    eng: Engine,  # noqa: F811
    worker: Worker,  # noqa: F811
    orders: orders_pb2_grpc.OrdersAsyncStub,  # noqa: F811
    router: router_pb2_grpc.RouterAsyncStub,
) -> None:
    amount = 500 * 10**9
    impact = (await quote(router, spec_of(eng, "SOL", "USDC", amount))).route.price_impact_bps
    assert impact > 1
    oid = await place(eng, orders, spec_of(eng, "SOL", "USDC", amount, max_price_impact_bps=impact - 1), True)
    order = await wait_terminal(orders, oid)
    assert [NAMES[e.status] for e in order.events] == ["pending", "routing", "failed"]
    assert "maxPriceImpactBps" in order.failure_reason and str(impact - 1) in order.failure_reason
    assert not order.tx_hash
    # the same order with room for its impact goes through
    ok = await place(eng, orders, spec_of(eng, "SOL", "USDC", 10**9, max_price_impact_bps=impact), True)
    assert NAMES[(await wait_terminal(orders, ok)).status] == "confirmed"
