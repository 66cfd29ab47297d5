"""The executor's `landed` record is bookkeeping, not a condition of the outcome's report: a swap that
landed is reported (and its order confirmed) while the record is still being stored, and the record
is stored all the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from orderengine.v1 import orders_pb2, orders_pb2_grpc
from tests.engine import Engine, engine
from tests.worker.test_driver import sim_faults, submit, wait_terminal
from tests.worker.test_settle import LAG_SLOTS
from worker.consumer import Worker


@pytest.fixture
async def eng(make_settings) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    settings = make_settings(SIM_SLOT_MS="20", CONFIRM_POLL_MS="20", DB_LOCK_TIMEOUT_MS="20000")
    async with engine(settings) as e:
        yield e


async def test_a_landed_swap_is_reported_while_its_record_waits(
    eng: Engine, worker: Worker, orders: orders_pb2_grpc.OrdersStub
) -> None:
    await sim_faults(eng, statusLagSlots=LAG_SLOTS)  # the swap lands, but no node says so yet
    async with await psycopg.AsyncConnection.connect(eng.settings.database_url) as locker:
        try:
            order_id = await submit(eng, orders)
            async with asyncio.timeout(10):
                while not await (
                    await locker.execute("SELECT 1 FROM executions WHERE order_id = %s", (order_id,))
                ).fetchone():
                    await asyncio.sleep(0.01)
            # Hold the execution's row: storing `landed` waits for this transaction to end.
            await locker.execute("SELECT state FROM executions WHERE order_id = %s FOR UPDATE", (order_id,))
        finally:
            await sim_faults(eng, statusLagSlots=0)
        order = await wait_terminal(orders, order_id, timeout=10)
        assert order.status == orders_pb2.ORDER_STATUS_CONFIRMED
        states = await (
            await locker.execute("SELECT state FROM executions WHERE order_id = %s", (order_id,))
        ).fetchall()
        assert states == [("signed",)]  # its record still waits for the row
        await locker.rollback()
    async with asyncio.timeout(10):
        async with await psycopg.AsyncConnection.connect(eng.settings.database_url, autocommit=True) as conn:
            while True:
                cursor = await conn.execute("SELECT state FROM executions WHERE order_id = %s", (order_id,))
                if await cursor.fetchall() == [("landed",)]:
                    break
                await asyncio.sleep(0.05)
