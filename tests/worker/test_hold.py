"""The worker holds an attempt's `submitted` event a little for the swap's outcome (SUBMITTED_HOLD_MS):
a swap that lands within the hold has its `submitted` and `confirmed` events appended together (one
commit, one publish); one that takes longer has `submitted` on record when the hold ends, before
any outcome; an attempt that ends otherwise has it on record before anything that follows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import psycopg
import pytest

from common.grpc_client import open_channel
from orderengine.v1 import executor_pb2, orders_pb2, orders_pb2_grpc
from tests.engine import Engine, engine
from tests.worker.test_driver import NAMES, confirmed_through, sim_faults, submit, wait_terminal
from tests.worker.test_settle import LAG_SLOTS
from worker.consumer import Worker


@pytest.fixture(params=["2000", "50", "0"], ids=["hold-2s", "hold-50ms", "no-hold"])
async def eng(make_settings, request) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        SIM_SLOT_MS="20", CONFIRM_POLL_MS="20", RETRY_BASE_MS="40", SUBMITTED_HOLD_MS=request.param
    )
    async with engine(settings) as e:
        yield e


async def commits(eng: Engine, order_id: str) -> list[tuple[str, str]]:
    """The order's events as (status, the transaction that stored it)."""
    async with await psycopg.AsyncConnection.connect(eng.settings.database_url) as conn:
        cursor = await conn.execute(
            "SELECT status, xmin::text FROM order_events WHERE order_id = %s ORDER BY seq", (order_id,)
        )
        return [(status, xid) for status, xid in await cursor.fetchall()]


async def test_a_swap_that_lands_within_the_hold_is_submitted_and_confirmed_in_one_commit(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    hold_ms = eng.settings.submitted_hold_ms
    order_ids = [await submit(eng, orders, amount=10**8 * (i + 1)) for i in range(3)]
    for order_id in order_ids:
        order = await wait_terminal(orders, order_id)
        names = [NAMES[e.status] for e in order.events]
        assert names == ["pending", "routing", "building", "submitted", "confirmed"], names
        submitted = json.loads(order.events[3].data_json)
        assert submitted["signature"] == order.tx_hash and submitted["lastValidBlockHeight"] > 0
        stored = await commits(eng, order_id)
        assert stored[2][1] != stored[3][1]  # the hand-over and the send: two commits
        if hold_ms >= 2000:  # the simulated chain lands a swap within milliseconds
            assert stored[3][1] == stored[4][1], stored
        elif hold_ms == 0:  # nothing held: the send is on record before its outcome is known
            assert stored[3][1] != stored[4][1], stored


async def test_a_swap_slower_than_the_hold_is_submitted_before_it_lands(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    if eng.settings.submitted_hold_ms >= 2000:
        pytest.skip("the hold outlasts what this test waits for")
    await sim_faults(eng, statusLagSlots=LAG_SLOTS)  # the swap lands, but no node says so yet
    try:
        order_id = await submit(eng, orders)
        async with asyncio.timeout(10):
            while True:
                order = await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id))
                if order.status == orders_pb2.ORDER_STATUS_SUBMITTED:
                    break
                assert order.status != orders_pb2.ORDER_STATUS_CONFIRMED
                await asyncio.sleep(0.01)
        assert order.tx_hash
    finally:
        await sim_faults(eng, statusLagSlots=0)
    order = await wait_terminal(orders, order_id, timeout=30)
    assert NAMES[order.status] == "confirmed"
    stored = await commits(eng, order_id)
    assert [status for status, _ in stored][-2:] == ["submitted", "confirmed"]
    assert stored[-2][1] != stored[-1][1]


async def test_an_attempt_that_ends_otherwise_has_its_send_on_record_first(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    """The executor reports a send, then a retryable failure (here: its landing withheld and a failure
    said instead): the held `submitted` is appended before the next attempt's events, and the next
    attempt finds the landed swap instead of making a second one."""
    original = worker.executor_link.execute
    withheld: list[str] = []

    async def failing_after_the_send(
        request: executor_pb2.ExecuteRequest,
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        async for update in original(request):
            if update.stage == executor_pb2.ExecutionUpdate.STAGE_CONFIRMED and not withheld:
                withheld.append(update.signature)
                yield executor_pb2.ExecutionUpdate(
                    order_id=update.order_id,
                    attempt=update.attempt,
                    stage=executor_pb2.ExecutionUpdate.STAGE_FAILED,
                    signature=update.signature,
                    reason="RPC unavailable while confirming: test",
                    retryable=True,
                )
                return
            yield update

    order, events = await confirmed_through(eng, worker, orders, failing_after_the_send)
    names = [name for name, _ in events]
    assert names[:5] == ["pending", "routing", "building", "submitted", "routing"], names
    assert events[3][1]["signature"] == withheld[0] == order.tx_hash
    assert events[4][1]["retryOf"].startswith("RPC unavailable while confirming"), events[4]


@pytest.fixture
async def eng_300ms(make_settings) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    settings = make_settings(SIM_SLOT_MS="20", CONFIRM_POLL_MS="20", SUBMITTED_HOLD_MS="300")
    async with engine(settings) as e:
        yield e


async def test_the_hold_is_skipped_while_swaps_land_slower_than_it(eng_300ms: Engine) -> None:
    """Where swaps take longer to land than the hold (a real cluster, a busy engine), holding would
    only delay `submitted`: it is appended at once until swaps land within the hold again."""
    eng = eng_300ms
    channel = open_channel(eng.settings.persistence_addr)
    orders = orders_pb2_grpc.OrdersStub(channel)
    worker = Worker(eng.settings)
    await worker.start()

    async def one_commit(order_id: str) -> bool:
        """Whether the order's `submitted` and `confirmed` were stored together."""
        order = await wait_terminal(orders, order_id)
        assert NAMES[order.status] == "confirmed"
        stored = await commits(eng, order_id)
        assert [status for status, _ in stored][-2:] == ["submitted", "confirmed"], stored
        return stored[-2][1] == stored[-1][1]

    try:
        assert await one_commit(await submit(eng, orders))  # lands within milliseconds: held
        await sim_faults(eng, statusLagSlots=LAG_SLOTS)
        try:
            slow = await submit(eng, orders)
            async with asyncio.timeout(10):
                while (await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=slow))).tx_hash == "":
                    await asyncio.sleep(0.01)  # `submitted` on record: the hold ended
            await asyncio.sleep(2.0)  # seen landed only 2 s after its send
        finally:
            await sim_faults(eng, statusLagSlots=0)
        assert not await one_commit(slow)
        assert worker.landing_s > 0.3
        # Swaps land within milliseconds again: the first ones are not held (the average says
        # otherwise), and within a few orders the average is back within the hold.
        fast = [await one_commit(await submit(eng, orders)) for _ in range(8)]
        assert fast[0] is False and True in fast, fast
        assert worker.landing_s <= 0.3
    finally:
        await worker.stop(grace_s=2)
        await channel.close()
