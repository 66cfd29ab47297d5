"""Client-side balancing: a channel opened by common.grpc_client spreads calls over every replica of a
service. Real router and executor processes (two of each, port 0 picked free), real calls, counted by
each process's own Prometheus exporter."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from common.grpc_client import channel_options, open_channel, service_config, target
from common.healthcheck import health_check, serving
from common.markets import load_markets
from common.settings import REPO_ROOT, Settings
from common.stack import free_port
from orderengine.v1 import router_pb2, router_pb2_grpc
from simchain.server import start as start_sim


def test_host_port_is_dialled_through_dns() -> None:
    assert target("router:50052") == "dns:///router:50052"
    assert target(" 127.0.0.1:50052 ") == "dns:///127.0.0.1:50052"
    assert target("[::1]:50052") == "dns:///[::1]:50052"


@pytest.mark.parametrize(
    "address",
    [
        "dns:///router:50052",
        "dns://10.0.0.2:53/router:50052",
        "ipv4:10.0.0.1:1,10.0.0.2:2",
        "unix:/run/r.sock",
    ],
)
def test_a_target_with_a_resolver_is_kept(address: str) -> None:
    assert target(address) == address


def test_round_robin_and_periodic_resolution_are_configured() -> None:
    assert service_config()["loadBalancingConfig"] == [{"round_robin": {}}]
    options = dict(channel_options())
    assert json.loads(options["grpc.service_config"]) == service_config()
    assert options["grpc.service_config_disable_resolution"] == 1
    assert 0 < options["grpc.dns_min_time_between_resolutions_ms"] <= 30_000


@dataclass
class Replica:
    name: str
    port: int
    metrics_port: int
    popen: subprocess.Popen[bytes]

    def handled(self, service: str, method: str) -> float:
        """Calls this process answered for `service`/`method` (any status code)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if (
                    s.name == "orderengine_grpc_server_handled_total"
                    and s.labels.get("grpc_service") == service
                    and s.labels.get("grpc_method") == method
                ):
                    total += s.value
        return total


@contextlib.contextmanager
def replicas(kind: str, module: str, count: int, env: dict[str, str], cwd: Path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    try:
        for i in range(count):
            port, metrics_port = free_port(), free_port()
            child_env = {
                **os.environ,
                **env,
                f"{kind.upper()}_ADDR": f"127.0.0.1:{port}",
                f"{kind.upper()}_METRICS_PORT": str(metrics_port),
                "METRICS_HOST": "127.0.0.1",
                "PYTHONPATH": str(REPO_ROOT),
            }
            with (cwd / f"{kind}-{i}.log").open("wb") as log:
                popen = subprocess.Popen(
                    [sys.executable, "-m", module], cwd=cwd, env=child_env, stdout=log, stderr=log
                )
            started.append(Replica(f"{kind}-{i}", port, metrics_port, popen))
        yield started
    finally:
        for r in started:
            if r.popen.poll() is None:
                r.popen.send_signal(signal.SIGTERM)
        for r in started:
            try:
                r.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                r.popen.kill()
                r.popen.wait()


async def wait_serving(replica: Replica, cwd: Path, timeout_s: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await serving(f"127.0.0.1:{replica.port}", timeout=1):
        if replica.popen.poll() is not None or loop.time() > deadline:
            log = (cwd / f"{replica.name}.log").read_text()[-2000:]
            pytest.fail(f"{replica.name} did not start serving: {log}")
        await asyncio.sleep(0.1)


def list_target(group: list[Replica]) -> str:
    """A static list of the replicas: gRPC's ipv4 resolver, balanced by the same round_robin policy
    that balances the addresses a DNS name resolves to."""
    return "ipv4:" + ",".join(f"127.0.0.1:{r.port}" for r in group)


@pytest.fixture
async def chain_env(make_settings, tmp_path: Path) -> AsyncIterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    settings: Settings = make_settings(SIM_HOST="127.0.0.1", SIM_PORT="0")
    sim = await start_sim(settings, seed=7)
    try:
        yield {
            "CHAIN": "sim",
            "SOLANA_RPC_URL": sim.url,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "REDIS_PREFIX": settings.redis_prefix,
            "LOG_LEVEL": "warning",
            "GRPC_GRACE_S": "1",
        }
    finally:
        await sim.stop()


CALLS = 24


async def test_every_router_and_executor_replica_takes_calls(
    chain_env: dict[str, str], tmp_path: Path
) -> None:
    markets = load_markets(REPO_ROOT / "markets" / "sim.json")
    sol, usdc = markets.token("SOL"), markets.token("USDC")
    assert sol is not None and usdc is not None
    quote = router_pb2.QuoteRequest(
        input_mint=sol.mint, output_mint=usdc.mint, amount_in=10**9, slippage_bps=100
    )
    with (
        replicas("router", "router_svc", 2, chain_env, tmp_path) as routers,
        replicas("executor", "executor_svc", 2, chain_env, tmp_path) as executors,
    ):
        for r in [*routers, *executors]:
            await wait_serving(r, tmp_path)

        async with open_channel(list_target(routers)) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            # One after the other: a new channel connects to every replica at once, but the calls
            # issued before the second connection is up can only go to the first.
            for _ in range(CALLS):
                await stub.Quote(quote, timeout=10)
        counts = [r.handled("orderengine.v1.Router", "Quote") for r in routers]
        assert sum(counts) == CALLS
        assert all(c >= CALLS // 4 for c in counts), counts

        # The executor's calls come from one long-lived channel per worker: any call shows the
        # balancing, and the health service is the one every replica answers without an order.
        before = [r.handled("grpc.health.v1.Health", "Check") for r in executors]
        async with open_channel(list_target(executors)) as channel:
            check = health_check(channel)
            for _ in range(CALLS):
                await check(health_pb2.HealthCheckRequest(), timeout=10)
        gained = [
            r.handled("grpc.health.v1.Health", "Check") - b for r, b in zip(executors, before, strict=True)
        ]
        assert sum(gained) == CALLS
        assert all(g >= CALLS // 4 for g in gained), gained


async def test_a_stopped_replica_is_left_out(chain_env: dict[str, str], tmp_path: Path) -> None:
    """After one router stops (SIGTERM: it drains and exits), every call still succeeds, on the
    other replica."""
    markets = load_markets(REPO_ROOT / "markets" / "sim.json")
    sol, usdc = markets.token("SOL"), markets.token("USDC")
    assert sol is not None and usdc is not None
    quote = router_pb2.QuoteRequest(
        input_mint=sol.mint, output_mint=usdc.mint, amount_in=10**9, slippage_bps=50
    )
    with replicas("router", "router_svc", 2, chain_env, tmp_path) as routers:
        for r in routers:
            await wait_serving(r, tmp_path)
        async with open_channel(list_target(routers)) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            for _ in range(4):
                await stub.Quote(quote, timeout=10)
            assert all(r.handled("orderengine.v1.Router", "Quote") > 0 for r in routers)

            gone, left = routers
            gone.popen.send_signal(signal.SIGTERM)
            assert gone.popen.wait(timeout=15) == 0
            before = left.handled("orderengine.v1.Router", "Quote")
            for _ in range(CALLS):
                try:
                    await stub.Quote(quote, timeout=10, wait_for_ready=True)
                except grpc.aio.AioRpcError as exc:  # pragma: no cover - the assertion message
                    pytest.fail(f"a call failed after one replica stopped: {exc.code()} {exc.details()}")
            assert left.handled("orderengine.v1.Router", "Quote") - before == CALLS
