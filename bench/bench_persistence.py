"""Persistence benchmark: starts `python -m persistence_svc` against a scratch database and prints
CreateOrder/s and AppendEvents throughput (events/s) for batches of 1, 10 and 100 events, with the
CPU per operation of the service process and of its Postgres backends (from /proc).

    python -m bench.bench_persistence                      # 2000 orders, 8 calls in flight
    python -m bench.bench_persistence --orders 5000 --concurrency 16 --events 30000

The Postgres server and Redis come from DATABASE_URL / REDIS_URL (the database name is replaced by
a scratch one, dropped at the end). Each in-flight AppendEvents call carries at most one event per
order, as the gateway's batched writer does; events cycle routing → building → submitted → routing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import psycopg
from grpc_health.v1 import health_pb2
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.cpu import TICK_S, PostgresProbe, cpu_ticks
from common.grpc_client import open_channel
from common.healthcheck import health_check
from common.settings import REPO_ROOT, load_settings
from orderengine.v1 import orders_pb2 as S
from orderengine.v1.orders_pb2_grpc import OrdersStub

SOL = "So11111111111111111111111111111111111111112"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
CYCLE = (S.ORDER_STATUS_ROUTING, S.ORDER_STATUS_BUILDING, S.ORDER_STATUS_SUBMITTED)
ROUTING_DATA = json.dumps(
    {
        "attempt": 1,
        "quotes": [
            {
                "venue": "raydium_cpmm",
                "pool": "7JuwJuNU88gurFnyWeiyGKbFmExMWcmRZntn9imEzdny",
                "amountOut": "150.123456",
                "amountOutRaw": "150123456",
                "feeRaw": "3750000",
                "priceImpactBps": 3,
            },
            {
                "venue": "meteora_dlmm",
                "pool": "5rCf1DM8LjKTw4YqhnoLcngyZYeNnQqztScTogYHAS6",
                "amountOut": "150.101010",
                "amountOutRaw": "150101010",
                "feeRaw": "1500000",
                "priceImpactBps": 2,
            },
        ],
        "route": {
            "legs": [
                {
                    "venue": "raydium_cpmm",
                    "pool": "7JuwJuNU88gurFnyWeiyGKbFmExMWcmRZntn9imEzdny",
                    "amountInRaw": "1000000000",
                    "amountOutRaw": "150123456",
                }
            ],
            "amountOutRaw": "150123456",
            "minAmountOutRaw": "148622221",
        },
    }
)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]
        if ordered
        else float("nan")
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_serving(addr: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    channel = open_channel(addr)
    try:
        check = health_check(channel)
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"persistence_svc exited with code {proc.returncode}")
            try:
                reply = await check(
                    health_pb2.HealthCheckRequest(service="orderengine.v1.Orders"), timeout=1.0
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() > deadline:
                raise SystemExit("persistence_svc did not become healthy")
            await asyncio.sleep(0.1)
    finally:
        await channel.close()


async def timed_calls(
    per_worker: list[list[Any]], call: Callable[[Any], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Runs each worker's prepared requests in order, the workers concurrently; returns (seconds,
    per-call latencies in ms). Requests are built beforehand so the client spends little CPU."""
    latencies: list[float] = []

    async def worker(requests: list[Any]) -> None:
        for request in requests:
            t0 = time.perf_counter()
            await call(request)
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker(r) for r in per_worker))
    return time.perf_counter() - started, latencies


class CpuMeter:
    """CPU of the service process and of the scratch database's Postgres backends, from /proc."""

    def __init__(self, pid: int, database_url: str) -> None:
        self.pid = pid
        self.probe = PostgresProbe(database_url)
        self.probe.open()
        self.start = self._read()

    def _read(self) -> tuple[int, int]:
        return cpu_ticks(self.pid) or 0, sum(self.probe.backend_ticks().values())

    def reset(self) -> None:
        self.start = self._read()

    def per_op(self, count: int) -> str:
        """CPU per operation of the service and of its Postgres backends since the last reset."""
        svc, pg = self._read()
        tick_ms = 1000 * TICK_S
        return (
            f"CPU/op: service {(svc - self.start[0]) * tick_ms / count:.3f} ms, "
            f"postgres {(pg - self.start[1]) * tick_ms / count:.3f} ms"
        )


def summary(label: str, count: int, unit: str, seconds: float, latencies: list[float], note: str) -> str:
    return (
        f"{label:<18} {count / seconds:9.0f} {unit:<9}  p50 {statistics.median(latencies):6.2f} ms  "
        f"p99 {pct(latencies, 99):6.2f} ms   ({note})"
    )


def append_batches(
    owned: list[str], next_seq: dict[str, int], batch_size: int, n_batches: int
) -> list[S.AppendEventsRequest]:
    """One worker's batches: `batch_size` distinct orders of its own per batch, each at its next
    seq, cycling routing → building → submitted → routing (a legal loop)."""
    batches = []
    cursor = 0
    for _ in range(n_batches):
        events = []
        for k in range(batch_size):
            oid = owned[(cursor + k) % len(owned)]
            seq = next_seq[oid]
            status = CYCLE[(seq - 2) % 3]
            data = ROUTING_DATA if status == S.ORDER_STATUS_ROUTING else ""
            events.append(S.NewEvent(order_id=oid, seq=seq, status=status, data_json=data))
            next_seq[oid] = seq + 1
        cursor = (cursor + batch_size) % len(owned)
        batches.append(S.AppendEventsRequest(events=events))
    return batches


async def bench(addr: str, orders: int, concurrency: int, events: int, meter: CpuMeter) -> list[str]:
    lines: list[str] = []
    channel = open_channel(addr)
    stub = OrdersStub(channel)
    try:
        spec = S.OrderSpec(
            input_mint=SOL,
            output_mint=USDC,
            amount_in=1_000_000_000,
            slippage_bps=50,
            input_decimals=9,
            output_decimals=6,
            input_symbol="SOL",
            output_symbol="USDC",
        )
        ids = [str(uuid.uuid4()) for _ in range(orders)]

        async def list_orders(request: S.ListOrdersRequest) -> None:
            await stub.ListOrders(request, timeout=30)

        await timed_calls([[S.ListOrdersRequest(limit=1)] * 50] * concurrency, list_orders)  # warm-up

        async def create(request: S.CreateOrderRequest) -> None:
            await stub.CreateOrder(request, timeout=30)

        creates = [
            [S.CreateOrderRequest(spec=spec, order_id=oid) for oid in ids[w::concurrency]]
            for w in range(concurrency)
        ]
        meter.reset()
        seconds, latencies = await timed_calls(creates, create)
        cpu = meter.per_op(orders)
        lines.append(
            summary(
                "CreateOrder",
                orders,
                "orders/s",
                seconds,
                latencies,
                f"{orders} calls, {concurrency} in flight; {cpu}",
            )
        )

        async def append(request: S.AppendEventsRequest) -> None:
            response = await stub.AppendEvents(request, timeout=30)
            bad = [r for r in response.results if r.code != 0]
            if bad:
                raise SystemExit(f"append refused: {bad[0].code} {bad[0].message}")

        next_seq = dict.fromkeys(ids, 2)
        owned = [ids[w::concurrency] for w in range(concurrency)]  # no two workers share an order
        for batch_size in (1, 10, 100):
            label = f"AppendEvents x{batch_size}"
            if batch_size > min(len(o) for o in owned):
                lines.append(f"{label:<18} skipped: needs {batch_size * concurrency} orders")
                continue
            per_worker_events = (events // 4 if batch_size == 1 else events) // concurrency
            n_batches = max(1, per_worker_events // batch_size)
            work = [append_batches(owned[w], next_seq, batch_size, n_batches) for w in range(concurrency)]
            meter.reset()
            seconds, latencies = await timed_calls(work, append)
            total = n_batches * batch_size * concurrency
            cpu = meter.per_op(total)
            lines.append(
                summary(
                    label,
                    total,
                    "events/s",
                    seconds,
                    latencies,
                    f"{n_batches * concurrency} calls, {total} events, {concurrency} in flight; {cpu}",
                )
            )
    finally:
        await channel.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--events", type=int, default=20000, help="events per batch size (a quarter for x1)")
    parser.add_argument("--pool-size", type=int, default=8)
    args = parser.parse_args()

    settings = load_settings()
    scratch = f"oe_bench_{uuid.uuid4().hex[:10]}"
    database_url = urlsplit(settings.database_url)._replace(path=f"/{scratch}").geturl()
    admin_url = make_conninfo(settings.database_url, dbname="postgres")
    addr = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PERSISTENCE_ADDR": addr,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": f"oebench:{scratch}",
        "DB_POOL_SIZE": str(args.pool_size),
        "LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen([sys.executable, "-m", "persistence_svc"], cwd=REPO_ROOT, env=env)
    try:
        asyncio.run(wait_serving(addr, proc))
        meter = CpuMeter(proc.pid, database_url)
        try:
            lines = asyncio.run(bench(addr, args.orders, args.concurrency, args.events, meter))
        finally:
            meter.probe.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
    print(f"persistence_svc benchmark ({os.cpu_count()} CPUs, pool {args.pool_size}, one service process)")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
