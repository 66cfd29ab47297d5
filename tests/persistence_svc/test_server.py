"""The process: `python -m persistence_svc` serves, reports health, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.grpc_client import open_channel
from orderengine.v1 import orders_pb2 as S
from orderengine.v1.orders_pb2_grpc import OrdersStub
from tests.conftest import REDIS_URL, REPO
from tests.persistence_svc.conftest import make_spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_serving(addr: str, proc: subprocess.Popen[bytes]) -> None:
    channel = open_channel(addr)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                reply = await health.Check(
                    health_pb2.HealthCheckRequest(service="orderengine.v1.Orders"), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("persistence_svc did not become healthy")
    finally:
        await channel.close()


async def test_process_serves_and_stops_on_sigterm(database_url: str, redis_prefix: str) -> None:
    addr = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": redis_prefix,
        "PERSISTENCE_ADDR": addr,
        "DB_POOL_SIZE": "2",
        "GRPC_GRACE_S": "2",
        "LOG_LEVEL": "info",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "persistence_svc"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_serving(addr, proc)
        channel = open_channel(addr)
        try:
            created = await OrdersStub(channel).CreateOrder(S.CreateOrderRequest(spec=make_spec()), timeout=5)
            assert created.created
        finally:
            await channel.close()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=10)
        assert proc.returncode == 0, stderr.decode()
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    logs = [json.loads(line) for line in stdout.decode().splitlines()]
    assert all(entry["service"] == "persistence" for entry in logs)
    assert [e["msg"] for e in logs][-2:] == ["shutting down", "stopped"]
    assert stderr == b""
