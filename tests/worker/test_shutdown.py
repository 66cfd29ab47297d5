"""Graceful shutdown of the worker process: SIGTERM mid-order → health NOT_SERVING, no new job taken,
the order in flight left unacknowledged (its grace is too short to finish) and finished by a second
worker. The services run in-process; the two workers are real processes (`python -m worker`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.grpc_client import open_channel
from common.settings import REPO_ROOT
from common.stack import free_port
from orderengine.v1 import orders_pb2, orders_pb2_grpc
from tests.engine import Engine, engine
from tests.worker.test_driver import NAMES, submit, wait_terminal

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def eng(make_settings) -> AsyncIterator[Engine]:  # type: ignore[no-untyped-def]
    async with engine(make_settings(SIM_SLOT_MS="40")) as e:
        yield e


class WorkerProcess:
    def __init__(self, eng: Engine, log: Path, name: str) -> None:
        self.health_addr = f"127.0.0.1:{free_port()}"
        s = eng.settings
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            "REDIS_URL": s.redis_url,
            "REDIS_PREFIX": s.redis_prefix,
            "PERSISTENCE_ADDR": s.persistence_addr,
            "ROUTER_ADDR": s.router_addr,
            "EXECUTOR_ADDR": s.executor_addr,
            "WORKER_NAME": name,
            "WORKER_HEALTH_ADDR": self.health_addr,
            "WORKER_GRACE_S": "1",
            "CLAIM_IDLE_MS": "1000",
            "RETRY_BASE_MS": "50",
            "LOG_LEVEL": "debug",  # per-order lines before the last are DEBUG
        }
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "worker"],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def health(self) -> int | None:
        try:
            async with grpc.aio.insecure_channel(self.health_addr) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                r = await stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                return int(r.status)
        except grpc.aio.AioRpcError:
            return None

    async def until_serving(self) -> None:
        async with asyncio.timeout(20):
            while await self.health() != SERVING:
                assert self.popen.poll() is None, self.log.read_text()
                await asyncio.sleep(0.05)

    def orders_seen(self) -> set[str]:
        seen = set()
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                seen.add(json.loads(line).get("order_id"))
        return seen - {None}

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


async def sim_faults(eng: Engine, **faults: float) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(
            eng.sim.url, json={"jsonrpc": "2.0", "id": 1, "method": "simSetFaults", "params": [faults]}
        )


async def test_sigterm_mid_order_hands_it_to_another_worker(eng: Engine, tmp_path: Path) -> None:
    channel = open_channel(eng.settings.persistence_addr)
    orders = orders_pb2_grpc.OrdersStub(channel)
    first = WorkerProcess(eng, tmp_path / "first.log", "first")
    second = None
    try:
        await first.until_serving()
        await sim_faults(eng, dropRate=1.0)  # sent, never lands: the order stays in flight
        oid = await submit(eng, orders)
        async with asyncio.timeout(10):
            while (
                await orders.GetOrder(orders_pb2.GetOrderRequest(order_id=oid))
            ).status != orders_pb2.ORDER_STATUS_SUBMITTED:
                await asyncio.sleep(0.02)

        first.popen.send_signal(signal.SIGTERM)
        seen: list[int | None] = []
        async with asyncio.timeout(5):  # draining (WORKER_GRACE_S): not serving, then gone
            while first.popen.poll() is None:
                seen.append(await first.health())
                await asyncio.sleep(0.02)
        assert NOT_SERVING in seen, seen
        assert SERVING not in seen[seen.index(NOT_SERVING) :], seen
        assert first.popen.returncode == 0, first.log.read_text()[-2000:]
        later = await submit(eng, orders)  # queued after the first stopped taking jobs

        await sim_faults(eng, dropRate=0.0)
        second = WorkerProcess(eng, tmp_path / "second.log", "second")
        await second.until_serving()
        order = await wait_terminal(orders, oid, timeout=20)
        assert NAMES[order.status] == "confirmed", [(NAMES[e.status], e.data_json) for e in order.events]
        assert [e.seq for e in order.events] == list(range(1, len(order.events) + 1))
        assert NAMES[(await wait_terminal(orders, later, timeout=20)).status] == "confirmed"
        async with httpx.AsyncClient() as client:
            swaps = (
                await client.post(
                    eng.sim.url,
                    json={
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "simSwaps",
                        "params": [{"memoPrefix": f"oe:{oid}:"}],
                    },
                )
            ).json()
        assert len(swaps["result"]) == 1  # resumed, not sent anew
        assert oid in first.orders_seen() and oid in second.orders_seen()
        assert later not in first.orders_seen()
        assert "worker stopping" in first.log.read_text()
    finally:
        first.kill()
        if second is not None:
            second.popen.send_signal(signal.SIGTERM)
            second.popen.wait(10)
        await channel.close()
