"""Resting orders (limit, stop) through the real worker, trigger loop, router, executor, persistence
and simulated chain: a limit order triggers when the pool moves across its price (moved by another
trader's swap) and lands at or above its limit; a stop triggers on a fall; a limit that never
triggers expires; a cancelled order never triggers; open orders survive a worker restart and each
triggers once. The integer rules themselves are tested first."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from common import jobs
from common.grpc_client import open_channel
from orderengine.v1 import orders_pb2, orders_pb2_grpc, router_pb2, router_pb2_grpc, types_pb2
from tests.engine import Engine, engine
from tests.worker.test_driver import NAMES, TERMINAL
from tests.worker.test_driver import spec_of as market_spec
from worker.consumer import Worker
from worker.triggers import decide, limit_out, with_limit

S = orders_pb2
NAMES = {**NAMES, 7: "open", 8: "cancelled", 9: "expired"}
TERMINAL = {*TERMINAL, S.ORDER_STATUS_CANCELLED, S.ORDER_STATUS_EXPIRED}


# --- the integer rules ------------------------------------------------------------------------------


def test_limit_out_is_the_whole_amount_at_the_price_rounded_up() -> None:
    spec = S.OrderSpec(
        amount_in=1_500_000_000, input_decimals=9, output_decimals=6, trigger_price=151_250_001
    )
    assert limit_out(spec) == 226_875_002  # 1.5 × 151.250001 USDC = 226.8750015 → up
    spec.amount_in = 2 * 10**9
    assert limit_out(spec) == 302_500_002  # exact: not rounded


def test_with_limit_raises_every_leg_so_the_legs_pay_the_limit() -> None:
    legs = [
        types_pb2.RouteLeg(amount_in=7, amount_out=700, min_amount_out=693),
        types_pb2.RouteLeg(amount_in=3, amount_out=301, min_amount_out=297),
    ]
    route = types_pb2.Route(legs=legs, amount_out=1001, min_amount_out=990)
    raised = with_limit(route, 1000)
    assert raised.min_amount_out >= 1000 and raised.min_amount_out == sum(
        x.min_amount_out for x in raised.legs
    )
    assert all(x.min_amount_out <= x.amount_out for x in raised.legs)
    assert route.min_amount_out == 990  # the input is left as it was
    assert with_limit(route, 900) is route  # a floor below the slippage floor changes nothing
    with pytest.raises(ValueError):
        with_limit(route, 1002)


def test_decide_takes_prefixes_of_the_sorted_thresholds() -> None:
    def order(kind: orders_pb2.OrderType.ValueType, price: int) -> orders_pb2.Order:
        return S.Order(order_id=f"{kind}-{price}", spec=S.OrderSpec(order_type=kind, trigger_price=price))

    book = [order(S.ORDER_TYPE_LIMIT, p) for p in (150, 90, 100, 101)]
    book += [order(S.ORDER_TYPE_STOP, p) for p in (99, 100, 120, 80)]
    stops, limits = decide(book, 100)
    assert [o.spec.trigger_price for o in stops] == [120, 100]  # the market is at or below these
    assert [o.spec.trigger_price for o in limits] == [90, 100]  # the market reaches these


# --- through the engine ----------------------------------------------------------------------------


@pytest.fixture
async def eng(make_settings) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        RETRY_BASE_MS="40",
        RETRY_MAX_MS="200",
        SIM_SLOT_MS="20",
        TRIGGER_INTERVAL_MS="50",
        POOL_REFRESH_MS="20",
    )
    async with engine(settings) as e:
        yield e


@pytest.fixture
async def router(eng: Engine) -> AsyncIterator[router_pb2_grpc.RouterAsyncStub]:
    channel = open_channel(eng.settings.router_addr)
    yield router_pb2_grpc.RouterStub(channel)
    await channel.close()


def spec_of(
    eng: Engine, token_in: str, token_out: str, amount: int, **fields: object
) -> orders_pb2.OrderSpec:
    return market_spec(eng, token_in, token_out, amount, slippage_bps=300, **fields)


def resting(
    eng: Engine, kind: int, price: int, amount: int = 10**9, expires_in_s: float = 300
) -> orders_pb2.OrderSpec:
    expires = int((time.time() + expires_in_s) * 1_000_000)
    return spec_of(eng, "SOL", "USDC", amount, order_type=kind, trigger_price=price, expires_at_us=expires)


async def place(eng: Engine, orders: orders_pb2_grpc.OrdersAsyncStub, spec: orders_pb2.OrderSpec) -> str:
    created = await orders.CreateOrder(S.CreateOrderRequest(order_id=str(uuid.uuid4()), spec=spec), timeout=5)
    redis = aioredis.Redis.from_url(eng.settings.redis_url)
    try:
        await jobs.enqueue(
            redis, jobs.Keys(eng.settings.redis_prefix), created.order.order_id, spec.SerializeToString()
        )
    finally:
        await redis.aclose()
    return created.order.order_id


async def wait_terminal(
    orders: orders_pb2_grpc.OrdersAsyncStub, oid: str, timeout: float = 20
) -> orders_pb2.Order:
    try:
        async with asyncio.timeout(timeout):
            while True:
                order = await orders.GetOrder(S.GetOrderRequest(order_id=oid, with_events=True), timeout=5)
                if order.status in TERMINAL:
                    return order
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{oid}: {[(NAMES[e.status], e.data_json) for e in order.events]}") from None


async def wait_status(
    orders: orders_pb2_grpc.OrdersAsyncStub, oid: str, status: int, timeout: float = 10
) -> orders_pb2.Order:
    async with asyncio.timeout(timeout):
        while True:
            order = await orders.GetOrder(S.GetOrderRequest(order_id=oid, with_events=True), timeout=5)
            if order.status == status:
                return order
            assert order.status not in TERMINAL or status in TERMINAL, [NAMES[e.status] for e in order.events]
            await asyncio.sleep(0.05)


async def price(
    router: router_pb2_grpc.RouterAsyncStub, eng: Engine, token_in: str = "SOL", token_out: str = "USDC"
) -> int:
    """The market price the trigger loop sees: output base units for one whole input token."""
    spec = spec_of(eng, token_in, token_out, 1)
    r = await router.Quote(
        router_pb2.QuoteRequest(
            input_mint=spec.input_mint,
            output_mint=spec.output_mint,
            amount_in=10**spec.input_decimals,
            slippage_bps=1,
        ),
        timeout=5,
    )
    return r.route.amount_out


async def sell_sol(eng: Engine, orders: orders_pb2_grpc.OrdersAsyncStub, sol: int = 100) -> None:
    """Another trader sells SOL for USDC: SOL gets cheaper (and USDC dearer in SOL)."""
    oid = await place(eng, orders, spec_of(eng, "SOL", "USDC", sol * 10**9))
    done = await wait_terminal(orders, oid, timeout=20)
    assert NAMES[done.status] == "confirmed", [(NAMES[e.status], e.data_json) for e in done.events]


async def test_a_limit_triggers_when_another_swap_moves_the_pool_across_it(
    eng: Engine,
    worker: Worker,
    orders: orders_pb2_grpc.OrdersAsyncStub,
    router: router_pb2_grpc.RouterAsyncStub,
) -> None:
    # buy SOL with 150 USDC, for at least 0.5 % more SOL per USDC than the market gives now
    market = await price(router, eng, "USDC", "SOL")
    limit = market * 1005 // 1000
    expires = int((time.time() + 300) * 1_000_000)
    spec = spec_of(
        eng,
        "USDC",
        "SOL",
        150 * 10**6,
        order_type=S.ORDER_TYPE_LIMIT,
        trigger_price=limit,
        expires_at_us=expires,
    )
    oid = await place(eng, orders, spec)
    opened = await wait_status(orders, oid, S.ORDER_STATUS_OPEN)
    terms = json.loads(opened.events[1].data_json)
    assert terms["type"] == "limit" and terms["limitPriceRaw"] == str(limit) and terms["expiresAt"]
    await asyncio.sleep(0.5)  # ten passes of the loop: still open
    assert (await orders.GetOrder(S.GetOrderRequest(order_id=oid), timeout=5)).status == S.ORDER_STATUS_OPEN
    # the worker's reads of an order by id (a job without a usable hint reads its order first)
    read_by_worker: list[str] = []
    get_order = worker.orders.GetOrder

    def counting(request: orders_pb2.GetOrderRequest, **kwargs: object) -> object:
        read_by_worker.append(request.order_id)
        return get_order(request, **kwargs)  # type: ignore[arg-type]

    worker.orders.GetOrder = counting  # type: ignore[method-assign,assignment]
    try:
        while await price(router, eng, "USDC", "SOL") < limit * 1002 // 1000:
            await sell_sol(eng, orders)  # the pool moves across the limit
        done = await wait_terminal(orders, oid, timeout=20)
    finally:
        worker.orders.GetOrder = get_order  # type: ignore[method-assign]
    names = [NAMES[e.status] for e in done.events]
    assert names == ["pending", "open", "routing", "routing", "building", "submitted", "confirmed"], [
        (NAMES[e.status], e.data_json) for e in done.events
    ]
    # its job carried the order as stored after its trigger: driven without reading it back
    assert oid not in read_by_worker
    assert json.loads(done.events[2].data_json)["trigger"]["type"] == "limit"
    floor = limit_out(done.spec)
    assert done.amount_out >= floor  # landed at or above the limit
    assert done.route.min_amount_out >= floor  # and the chain was told so


async def test_a_stop_triggers_on_a_fall(
    eng: Engine,
    worker: Worker,
    orders: orders_pb2_grpc.OrdersAsyncStub,
    router: router_pb2_grpc.RouterAsyncStub,
) -> None:
    market = await price(router, eng)
    stop = market * 995 // 1000
    oid = await place(eng, orders, resting(eng, S.ORDER_TYPE_STOP, stop, amount=10**8))
    await wait_status(orders, oid, S.ORDER_STATUS_OPEN)
    await asyncio.sleep(0.3)
    assert (await orders.GetOrder(S.GetOrderRequest(order_id=oid), timeout=5)).status == S.ORDER_STATUS_OPEN
    while await price(router, eng) > stop:  # someone sells SOL: the price falls through the stop
        await sell_sol(eng, orders)
    done = await wait_terminal(orders, oid, timeout=20)
    assert NAMES[done.status] == "confirmed", [(NAMES[e.status], e.data_json) for e in done.events]
    assert json.loads(done.events[2].data_json)["trigger"]["type"] == "stop"
    # the loop's book learnt of the order from its `open` event, not from reading every open order
    assert worker.triggers.open.reloads == 1 and oid not in worker.triggers.book


async def test_a_limit_that_never_triggers_expires_and_a_cancelled_one_never_triggers(
    eng: Engine,
    worker: Worker,
    orders: orders_pb2_grpc.OrdersAsyncStub,
    router: router_pb2_grpc.RouterAsyncStub,
) -> None:
    market = await price(router, eng)
    short = await place(eng, orders, resting(eng, S.ORDER_TYPE_LIMIT, market * 2, expires_in_s=0.5))
    kept = await place(eng, orders, resting(eng, S.ORDER_TYPE_LIMIT, market * 2))
    await wait_status(orders, kept, S.ORDER_STATUS_OPEN)
    cancelled = await orders.CancelOrder(S.CancelOrderRequest(order_id=kept), timeout=5)
    assert cancelled.status == S.ORDER_STATUS_CANCELLED
    done = await wait_terminal(orders, short, timeout=10)
    assert [NAMES[e.status] for e in done.events] == ["pending", "open", "expired"]
    assert "expired" in json.loads(done.events[-1].data_json)["reason"]
    await asyncio.sleep(0.3)  # more passes: nothing follows a cancel
    final = await orders.GetOrder(S.GetOrderRequest(order_id=kept, with_events=True), timeout=5)
    assert [NAMES[e.status] for e in final.events] == ["pending", "open", "cancelled"]
    assert kept not in worker.triggers.book and short not in worker.triggers.book  # the events took them out


async def test_open_orders_survive_a_restart_and_each_triggers_once(
    eng: Engine, orders: orders_pb2_grpc.OrdersAsyncStub, router: router_pb2_grpc.RouterAsyncStub
) -> None:
    first = Worker(eng.settings)
    await first.start()
    market = await price(router, eng)
    stop = market * 993 // 1000
    ids = await asyncio.gather(
        *(place(eng, orders, resting(eng, S.ORDER_TYPE_STOP, stop - i, amount=10**6)) for i in range(100))
    )
    for oid in ids:
        await wait_status(orders, oid, S.ORDER_STATUS_OPEN)
    await first.stop(grace_s=1)  # the worker goes; its trigger loop with it

    second = Worker(eng.settings)  # a new worker knows only what Postgres holds
    await second.start()
    try:
        await asyncio.sleep(0.3)
        statuses = [(await orders.GetOrder(S.GetOrderRequest(order_id=o), timeout=5)).status for o in ids]
        assert set(statuses) == {S.ORDER_STATUS_OPEN}  # none lost, none triggered
        while await price(router, eng) > stop - 100:  # the market falls through every stop
            await sell_sol(eng, orders)
        for oid in ids:
            done = await wait_terminal(orders, oid, timeout=60)
            names = [NAMES[e.status] for e in done.events]
            assert names[:3] == ["pending", "open", "routing"] and names[-1] == "confirmed", names
            assert sum(1 for e in done.events if '"trigger"' in e.data_json) == 1  # triggered once
    finally:
        await second.stop(grace_s=1)


async def test_a_lost_event_subscription_reloads_the_book_from_postgres(make_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Redis (this test's own) dies and comes back empty; an order cancelled meanwhile published
    its event to no one (and the outbox relay is held off), so only a reload from Postgres — after
    the resubscription, or after the pass Redis interrupted — can take it out of the book. (Either
    alone suffices; with neither, this fails.)"""
    from common.stack import free_port
    from tests.test_chaos import RedisServer

    own = RedisServer(free_port(), tmp_path / "redis.log")
    own.start()
    try:
        settings = make_settings(
            REDIS_URL=own.url,
            SIM_SLOT_MS="20",
            TRIGGER_INTERVAL_MS="50",
            POOL_REFRESH_MS="20",
            OUTBOX_RELAY_AGE_MS="600000",
        )
        async with engine(settings) as eng:
            w = Worker(eng.settings)
            await w.start()
            channel = open_channel(eng.settings.persistence_addr)
            orders = orders_pb2_grpc.OrdersStub(channel)
            router_channel = open_channel(eng.settings.router_addr)
            try:
                market = await price(router_pb2_grpc.RouterStub(router_channel), eng)
                gone, kept = [
                    await place(eng, orders, resting(eng, S.ORDER_TYPE_LIMIT, market * 2)) for _ in range(2)
                ]
                async with asyncio.timeout(10):  # opened, and learnt from their `open` events
                    while gone not in w.triggers.book or kept not in w.triggers.book:
                        await asyncio.sleep(0.05)
                assert w.triggers.open.reloads == 1
                own.kill()
                cancelled = await orders.CancelOrder(S.CancelOrderRequest(order_id=gone), timeout=5)
                assert cancelled.status == S.ORDER_STATUS_CANCELLED  # committed; its publish went nowhere
                own.start()
                async with asyncio.timeout(15):
                    while gone in w.triggers.book:
                        await asyncio.sleep(0.05)
                assert w.triggers.open.reloads >= 2 and kept in w.triggers.book
            finally:
                await w.stop(grace_s=1)
                await channel.close()
                await router_channel.close()
    finally:
        own.kill()
