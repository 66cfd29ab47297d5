"""Never `failed` while a swap may land (issue 10, part 2).

A lagging status node makes a landed swap invisible for longer than the worker's attempts last. The
order must not be failed (persistence refuses `failed` while an execution is live), must not get a
second swap (expiry is proven only at `finalized`, with `minContextSlot`), and must end `confirmed`
with the amounts that landed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from solders.hash import Hash
from solders.signature import Signature

from orderengine.v1 import orders_pb2, orders_pb2_grpc
from tests.engine import Engine, engine
from tests.worker.test_driver import NAMES, sim_faults, submit, wait_terminal
from worker.consumer import Worker

LAG_SLOTS = 1_000_000  # the status node sees nothing new until the test lets it catch up


@pytest.fixture
async def lagging(make_settings) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        RETRY_BASE_MS="40",
        RETRY_MAX_MS="200",
        SIM_SLOT_MS="20",
        CONFIRM_POLL_MS="20",
        REBROADCAST_MS="200",
        MAX_ATTEMPTS="3",
    )
    async with engine(settings) as e:
        yield e


async def swaps_of(eng: Engine, order_id: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            eng.sim.url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "simSwaps",
                "params": [{"memoPrefix": f"oe:{order_id}"}],
            },
        )
    result: list[dict[str, object]] = r.json()["result"]
    return result


async def test_a_swap_seen_late_by_a_lagging_node_ends_confirmed_never_failed(lagging: Engine) -> None:
    eng = lagging
    from common.grpc_client import open_channel

    channel = open_channel(eng.settings.persistence_addr)
    orders = orders_pb2_grpc.OrdersStub(channel)
    worker = Worker(eng.settings)
    await worker.start()
    try:
        await sim_faults(eng, statusLagSlots=LAG_SLOTS)
        oid = await submit(eng, orders)
        # The status node shows nothing new until every attempt has been tried and the worker
        # would have failed the order; then it catches up and the landed swap becomes visible.
        async with asyncio.timeout(60):
            while (await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=oid))).attempts < 3:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the last attempt's failure reaches the worker: settling, not failing
        mid = await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=oid, with_events=True))
        assert mid.status not in (orders_pb2.ORDER_STATUS_FAILED, orders_pb2.ORDER_STATUS_CONFIRMED)
        await sim_faults(eng, statusLagSlots=0)
        order = await wait_terminal(orders, oid, timeout=60)
        names = [NAMES[e.status] for e in order.events]
        assert names[-1] == "confirmed", names
        assert "failed" not in names
        assert [e.seq for e in order.events] == list(range(1, len(order.events) + 1))
        # the swap became visible only after every attempt had been tried
        assert order.attempts == 3, names
        swaps = await swaps_of(eng, oid)
        assert len(swaps) == 1, swaps  # exactly one swap landed: no second one was signed and sent
        confirmed = json.loads(order.events[-1].data_json)
        assert confirmed["txHash"] == order.tx_hash
        assert int(confirmed["amountOutRaw"]) == order.amount_out > 0
    finally:
        await worker.stop(grace_s=2)
        await channel.close()


async def test_persistence_refuses_failed_while_an_execution_is_live(lagging: Engine) -> None:
    eng = lagging
    from common.grpc_client import open_channel

    channel = open_channel(eng.settings.persistence_addr)
    orders = orders_pb2_grpc.OrdersStub(channel)
    try:
        oid = await submit(eng, orders)  # queued, but no worker runs: the order stays pending
        stored = orders_pb2.Execution(
            order_id=oid,
            attempt=1,
            signature=str(Signature.from_bytes(bytes(range(64)))),
            signed_tx=b"\x01" * 64,
            last_valid_block_height=10**6,
            blockhash=str(Hash.new_unique()),
            state="signed",
        )
        await orders.RecordExecution(stored)
        response = await orders.AppendEvents(
            orders_pb2.AppendEventsRequest(
                events=[
                    orders_pb2.NewEvent(
                        order_id=oid, seq=2, status=orders_pb2.ORDER_STATUS_FAILED, data_json='{"reason":"x"}'
                    )
                ]
            )
        )
        (result,) = response.results
        assert result.code != 0 and "live execution" in result.message
        order = await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=oid))
        assert order.status == orders_pb2.ORDER_STATUS_PENDING  # nothing changed
        # once the execution is provably expired, failing is allowed
        await orders.RecordExecution(orders_pb2.Execution(**{**_fields(stored), "state": "expired"}))
        response = await orders.AppendEvents(
            orders_pb2.AppendEventsRequest(
                events=[
                    orders_pb2.NewEvent(
                        order_id=oid, seq=2, status=orders_pb2.ORDER_STATUS_FAILED, data_json='{"reason":"x"}'
                    )
                ]
            )
        )
        assert response.results[0].code == 0, response.results[0].message
    finally:
        await channel.close()


def _fields(execution: orders_pb2.Execution) -> dict[str, object]:
    return {f.name: v for f, v in execution.ListFields()}


async def test_the_dead_letter_path_hands_a_live_order_to_the_reconciler(lagging: Engine) -> None:
    """A job dead-lettered while its swap may still land is not failed: the reconciler follows the
    swap and the order ends confirmed with what landed."""
    eng = lagging
    from common.grpc_client import open_channel

    channel = open_channel(eng.settings.persistence_addr)
    orders = orders_pb2_grpc.OrdersStub(channel)
    first = Worker(eng.settings)
    await first.start()
    second: Worker | None = None
    try:
        await sim_faults(eng, statusLagSlots=LAG_SLOTS)
        oid = await submit(eng, orders)
        async with asyncio.timeout(30):  # its swap is sent (and lands, unseen by the lagging node)
            while (await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=oid))).status not in (
                orders_pb2.ORDER_STATUS_SUBMITTED,
            ):
                await asyncio.sleep(0.05)
        await first.stop(grace_s=0)  # its driver dies; the order is left unfinished
        second = Worker(eng.settings)
        await second.start()
        await second.dead_letter("0-1", oid, "delivered too often (test)")
        order = await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=oid))
        assert order.status != orders_pb2.ORDER_STATUS_FAILED
        handed = await second.redis.hgetall(second.keys.reconcile)
        assert oid.encode() in handed
        await sim_faults(eng, statusLagSlots=0)
        order = await wait_terminal(orders, oid, timeout=60)
        names = [NAMES[e.status] for e in order.events]
        assert names[-1] == "confirmed" and "failed" not in names, names
        assert len(await swaps_of(eng, oid)) == 1
        async with asyncio.timeout(10):  # the hand-over is cleared once settled
            while oid.encode() in await second.redis.hgetall(second.keys.reconcile):
                await asyncio.sleep(0.1)
    finally:
        if second is not None:
            await second.stop(grace_s=1)
        await channel.close()
