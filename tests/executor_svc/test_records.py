"""The executor's records on its persistence stream (executor_svc/records.py), against a real
persistence service: records nothing waits for leave together, the others at once."""

from __future__ import annotations

import asyncio

from executor_svc.records import ExecutionRecorder
from orderengine.v1 import orders_pb2, orders_pb2_grpc
from tests.persistence_svc.conftest import service, stub  # noqa: F401 - the fixtures
from tests.persistence_svc.test_servicer import create, execution


async def test_records_made_soon_leave_together_and_others_at_once(
    stub: orders_pb2_grpc.OrdersStub,  # noqa: F811 - the fixture
) -> None:
    recorder = ExecutionRecorder(stub, (), soon_s=0.3)  # type: ignore[arg-type]

    async def landed(records: list[orders_pb2.Execution], soon: bool) -> list[orders_pb2.Execution]:
        made = []
        for record in records:
            moved = orders_pb2.Execution()
            moved.CopyFrom(record)
            moved.state = "landed"
            moved.ClearField("created_at_us")
            moved.ClearField("updated_at_us")
            made.append(asyncio.ensure_future((recorder.record_soon if soon else recorder.record)(moved)))
            await asyncio.sleep(0.02)  # each made a little after the one before
        return list(await asyncio.gather(*made))

    try:
        signed = [await recorder.record(execution((await create(stub)).order_id)) for _ in range(6)]
        together = await landed(signed[:3], soon=True)
        assert [r.state for r in together] == ["landed"] * 3
        assert len({r.updated_at_us for r in together}) == 1  # one statement: one commit time
        alone = await landed(signed[3:], soon=False)
        assert [r.state for r in alone] == ["landed"] * 3
        assert len({r.updated_at_us for r in alone}) == 3  # each left when it was made
    finally:
        await recorder.stop()
