"""The worker driving orders through the real router, executor, persistence and simulated chain."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from common import jobs
from common.markets import load_markets
from orderengine.v1 import executor_pb2, orders_pb2, orders_pb2_grpc
from tests.engine import Engine, engine
from worker.consumer import Worker, _hint

TERMINAL = {orders_pb2.ORDER_STATUS_CONFIRMED, orders_pb2.ORDER_STATUS_FAILED}
NAMES = {1: "pending", 2: "routing", 3: "building", 4: "submitted", 5: "confirmed", 6: "failed"}


@pytest.fixture
async def eng(make_settings) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        RETRY_BASE_MS="40", RETRY_MAX_MS="200", CLAIM_IDLE_MS="1000", MAX_DELIVERIES="2", SIM_SLOT_MS="20"
    )
    async with engine(settings) as e:
        yield e


async def sim_faults(eng: Engine, **faults: float) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            eng.sim.url, json={"jsonrpc": "2.0", "id": 1, "method": "simSetFaults", "params": [faults]}
        )
        assert "error" not in r.json(), r.text


def spec_of(
    eng: Engine, token_in: str, token_out: str, amount: int, slippage_bps: int = 100, **fields: object
) -> orders_pb2.OrderSpec:
    """An order of `amount` base units of `token_in` (a market order, unless `fields` say)."""
    markets = load_markets(eng.settings.markets_path)
    tin, tout = markets.token(token_in), markets.token(token_out)
    assert tin and tout
    return orders_pb2.OrderSpec(
        input_mint=tin.mint,
        output_mint=tout.mint,
        amount_in=amount,
        slippage_bps=slippage_bps,
        input_decimals=tin.decimals,
        output_decimals=tout.decimals,
        input_symbol=tin.symbol,
        output_symbol=tout.symbol,
        **fields,  # type: ignore[arg-type]
    )


async def submit(
    eng: Engine,
    orders: orders_pb2_grpc.OrdersStub,
    token_in: str = "SOL",
    token_out: str = "USDC",
    amount: int = 10**9,
) -> str:
    spec = spec_of(eng, token_in, token_out, amount)
    resp = await orders.CreateOrder(orders_pb2.CreateOrderRequest(order_id=str(uuid.uuid4()), spec=spec))
    redis = aioredis.Redis.from_url(eng.settings.redis_url)
    try:
        await jobs.enqueue(redis, jobs.Keys(eng.settings.redis_prefix), resp.order.order_id)
    finally:
        await redis.aclose()
    return resp.order.order_id


async def wait_terminal(
    orders: orders_pb2_grpc.OrdersStub, order_id: str, timeout: float = 20
) -> orders_pb2.Order:
    order = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                order = await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id, with_events=True))
                if order.status in TERMINAL:
                    return order
                await asyncio.sleep(0.05)
    except TimeoutError:
        events = [(NAMES[e.status], e.data_json) for e in order.events] if order else None
        raise AssertionError(f"order {order_id} not terminal after {timeout} s: {events}") from None


async def confirmed_through(
    eng: Engine,
    worker: Worker,
    orders: orders_pb2_grpc.OrdersStub,
    execute: Callable[[executor_pb2.ExecuteRequest], AsyncIterator[executor_pb2.ExecutionUpdate]],
) -> tuple[orders_pb2.Order, list[tuple[str, Any]]]:
    """Submits an order with the worker's executor calls going through `execute` (a wrapper of the
    real link's); returns the confirmed order and its events as (status name, data)."""
    worker.executor_link.execute = execute  # type: ignore[method-assign]
    order = await wait_terminal(orders, await submit(eng, orders), timeout=30)
    events = [(NAMES[e.status], json.loads(e.data_json)) for e in order.events]
    assert NAMES[order.status] == "confirmed", events
    return order, events


async def test_orders_confirm(eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub) -> None:
    ids = await asyncio.gather(
        *(submit(eng, orders, amount=10**8 * (i + 1)) for i in range(5)),
        submit(eng, orders, "USDC", "SOL", 25 * 10**6),
    )
    for oid in ids:
        order = await wait_terminal(orders, oid)
        assert [NAMES[e.status] for e in order.events] == [
            "pending",
            "routing",
            "building",
            "submitted",
            "confirmed",
        ]
        assert order.tx_hash and order.amount_out > 0 and order.attempts == 1
        routing = json.loads(order.events[1].data_json)
        assert routing["attempt"] == 1 and routing["route"]["legs"]
        assert order.amount_out >= int(routing["route"]["minAmountOutRaw"])
    redis = aioredis.Redis.from_url(eng.settings.redis_url)
    try:
        assert await redis.xlen(jobs.Keys(eng.settings.redis_prefix).stream) == 0  # all acknowledged
    finally:
        await redis.aclose()


async def test_a_delivery_whose_lock_is_held_elsewhere_is_acknowledged_untouched(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    keys = jobs.Keys(eng.settings.redis_prefix)
    redis = aioredis.Redis.from_url(eng.settings.redis_url)
    try:
        order_id = str(uuid.uuid4())
        await redis.set(keys.lock(order_id), "another-worker:1-0", px=60_000)  # driven elsewhere
        spec = spec_of(eng, "SOL", "USDC", 10**8)
        await orders.CreateOrder(orders_pb2.CreateOrderRequest(order_id=order_id, spec=spec))
        await jobs.enqueue(redis, keys, order_id, spec.SerializeToString())
        async with asyncio.timeout(10):  # acknowledged as a duplicate
            while await redis.xlen(keys.stream):
                await asyncio.sleep(0.02)
    finally:
        await redis.aclose()
    order = await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id, with_events=True))
    assert [NAMES[e.status] for e in order.events] == ["pending"]  # nothing appended, nothing run
    assert not worker.inflight


def test_a_jobs_hint_is_the_order_as_its_enqueuer_stored_it_or_nothing() -> None:
    oid = str(uuid.uuid4())
    spec = orders_pb2.OrderSpec(input_mint="a", output_mint="b", amount_in=5)
    stored = orders_pb2.Order(order_id=oid, spec=spec, status=orders_pb2.ORDER_STATUS_ROUTING, last_seq=3)
    assert _hint(oid, {b"order_id": oid.encode(), b"order": stored.SerializeToString()}) == stored
    # a new order's spec: the order as created
    assert _hint(oid, {b"order_id": oid.encode(), b"spec": spec.SerializeToString()}) == orders_pb2.Order(
        order_id=oid, spec=spec, status=orders_pb2.ORDER_STATUS_PENDING, last_seq=1
    )
    # no hint, another order's, one with no seq, or bytes that are no Order: read the order instead
    assert _hint(oid, {b"order_id": oid.encode()}) is None
    other = orders_pb2.Order(order_id=str(uuid.uuid4()), spec=spec, last_seq=3)
    assert _hint(oid, {b"order": other.SerializeToString()}) is None
    assert _hint(oid, {b"order": orders_pb2.Order(order_id=oid, spec=spec).SerializeToString()}) is None
    assert _hint(oid, {b"order": b"\xff\xff not a message"}) is None


async def test_a_stale_hint_is_refused_at_the_first_append_and_the_order_read_instead(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    """A hint behind the stored order (here: a seq it no longer has) costs one refused append: the
    order is read and driven from what is stored, once."""
    keys = jobs.Keys(eng.settings.redis_prefix)
    spec = spec_of(eng, "SOL", "USDC", 10**8)
    oid = str(uuid.uuid4())
    await orders.CreateOrder(orders_pb2.CreateOrderRequest(order_id=oid, spec=spec))
    stale = orders_pb2.Order(order_id=oid, spec=spec, status=orders_pb2.ORDER_STATUS_ROUTING, last_seq=4)
    redis = aioredis.Redis.from_url(eng.settings.redis_url)
    try:
        await jobs.enqueue_many(redis, keys, [(oid, stale.SerializeToString())], hint=jobs.ORDER_FIELD)
    finally:
        await redis.aclose()
    order = await wait_terminal(orders, oid)
    names = [NAMES[e.status] for e in order.events]
    assert names == ["pending", "routing", "building", "submitted", "confirmed"]
    assert [e.seq for e in order.events] == [1, 2, 3, 4, 5] and order.attempts == 1


async def test_transient_failures_retry_with_backoff_then_fail(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    await sim_faults(eng, failRate=1.0)  # every sendTransaction answered 429
    oid = await submit(eng, orders)
    order = await wait_terminal(orders, oid, timeout=30)
    names = [NAMES[e.status] for e in order.events]
    assert names[0] == "pending" and names[-1] == "failed"
    routings = [json.loads(e.data_json) for e in order.events if e.status == orders_pb2.ORDER_STATUS_ROUTING]
    assert [r["attempt"] for r in routings] == [1, 2, 3]
    assert "retryOf" not in routings[0] and routings[1]["retryOf"] and routings[2]["retryOf"]
    assert order.attempts == 3
    assert order.failure_reason
    assert [e.seq for e in order.events] == list(range(1, len(order.events) + 1))
    # backoff: each retry starts no sooner than half the capped exponential delay after the failure
    routing_at = [e.at_us for e in order.events if e.status == orders_pb2.ORDER_STATUS_ROUTING]
    assert routing_at[1] - routing_at[0] >= 20_000
    assert routing_at[2] - routing_at[1] >= 40_000


async def test_recovers_after_faults_clear(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    await sim_faults(eng, failRate=1.0)
    oid = await submit(eng, orders)
    await asyncio.sleep(0.05)
    await sim_faults(eng, failRate=0.0)
    order = await wait_terminal(orders, oid, timeout=30)
    assert NAMES[order.status] == "confirmed"


async def test_job_for_a_finished_order_is_acknowledged_without_effect(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    oid = await submit(eng, orders)
    order = await wait_terminal(orders, oid)
    redis = aioredis.Redis.from_url(eng.settings.redis_url)
    keys = jobs.Keys(eng.settings.redis_prefix)
    try:
        await jobs.enqueue(redis, keys, oid)
        async with asyncio.timeout(10):
            while await redis.xlen(keys.stream):
                await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    again = await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=oid, with_events=True))
    assert len(again.events) == len(order.events)


async def test_poisoned_job_goes_to_dead_letters(eng: Engine, worker: Worker) -> None:
    redis = aioredis.Redis.from_url(eng.settings.redis_url)
    keys = jobs.Keys(eng.settings.redis_prefix)
    try:
        ghost = str(uuid.uuid4())
        await jobs.enqueue(redis, keys, ghost)
        await redis.xadd(keys.stream, {"garbage": "1"})
        async with asyncio.timeout(10):
            while await redis.xlen(keys.dead) < 2:
                await asyncio.sleep(0.05)
        dead = await redis.xrange(keys.dead)
        reasons = {fields[b"reason"].decode() for _, fields in dead}
        assert "unknown order" in reasons and "job has no order id" in reasons
        assert await redis.xlen(keys.stream) == 0
    finally:
        await redis.aclose()


async def test_a_job_delivered_too_often_is_dead_lettered_and_its_order_failed(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    """A job that keeps dying with its consumers (delivered MAX_DELIVERIES times, never acknowledged)
    is not retried for ever: it goes to the dead-letter stream and its order fails with the reason."""
    redis = aioredis.Redis.from_url(eng.settings.redis_url)
    keys = jobs.Keys(eng.settings.redis_prefix)
    try:
        await worker.stop(grace_s=0)  # nobody takes the job while the test plays the dying consumers
        oid = await submit(eng, orders)
        entry = None
        for n in range(eng.settings.max_deliveries):  # each delivery to a consumer that then dies
            if n == 0:
                ((_, [(entry, _fields)]),) = await redis.xreadgroup(
                    jobs.GROUP, "doomed-0", {keys.stream: ">"}
                )
            else:
                await redis.xclaim(keys.stream, jobs.GROUP, f"doomed-{n}", 0, [entry])
        live = Worker(eng.settings)
        await live.start()
        try:
            order = await wait_terminal(orders, oid, timeout=10)
        finally:
            await live.stop(grace_s=1)
        assert NAMES[order.status] == "failed"
        assert order.failure_reason.startswith("dead-lettered: delivered")
        ((_, dead),) = await redis.xrange(keys.dead)
        assert dead[b"order_id"].decode() == oid and b"delivered" in dead[b"reason"]
        assert await redis.xlen(keys.stream) == 0
    finally:
        await redis.aclose()


async def test_a_price_move_beyond_the_bound_is_retried_with_a_fresh_quote_and_confirms(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    """Between the order's quote and its swap another trader sells a lot of SOL into the routed pool:
    the swap fails the program's min-out check (a retryable "price moved", nothing swapped), the
    worker quotes again and the next attempt confirms at the new price."""
    from solana.rpc.async_api import AsyncClient
    from solders.keypair import Keypair
    from solders.pubkey import Pubkey

    from tests.simchain.helpers import trade

    trader = Keypair()
    moved: list[int] = []
    original = worker.executor_link.execute

    async def execute_after_a_move(
        request: executor_pb2.ExecuteRequest,
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        if not moved and not request.settle_only:
            moved.append(request.attempt)
            async with AsyncClient(eng.sim.url) as client:
                await client.request_airdrop(trader.pubkey(), 100 * 10**9)
                for leg in request.route.legs:  # moves either pool's price ~4 %: beyond the 1 % bound
                    # CPMM: 50,000 SOL deep; DLMM: ~166 SOL per 2-bps bin below the active one
                    sol = 1_000 if leg.venue == "raydium_cpmm" else 12_500
                    await trade(client, trader, leg.venue, Pubkey.from_string(leg.pool), "SOL", sol * 10**9)
        async for update in original(request):
            yield update

    order, events = await confirmed_through(eng, worker, orders, execute_after_a_move)
    assert moved == [1] and order.attempts == 2
    routing = [data for name, data in events if name == "routing"]
    assert [r["attempt"] for r in routing] == [1, 2]
    assert routing[1]["retryOf"].startswith("price moved: slippage exceeded on "), routing[1]
    # the retry was quoted afresh: the moved pool now pays less than the first route's bound
    (first_leg,) = routing[0]["route"]["legs"]
    (requoted,) = [q for q in routing[1]["quotes"] if q["pool"] == first_leg["pool"]]
    assert int(requoted["amountOutRaw"]) < int(first_leg["minAmountOutRaw"])
