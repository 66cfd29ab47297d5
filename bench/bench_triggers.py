"""The trigger loop with a full book: 10,000 open limit orders on one pair (issue 11, "Speed").

    python -m bench.bench_triggers [--orders 10000] [--triggered 100] [--idle-s 10]   (make bench-triggers)

Starts its own stack (the processes `make run` starts, CHAIN=sim, 400 ms slots, a trigger pass per
slot), places the orders over HTTP — limits buying SOL with 1 USDC each, thresholds from 0.2 % above
the market upwards in steps of 0.001 % — and waits until the trigger loop's book holds them all
(the worker's `orderengine_trigger_open_orders`). Then it prints:

- one evaluation pass with the whole book and nothing due: the pass's own on-CPU time (the worker's
  `orderengine_trigger_pass_cpu_seconds`, mean over the idle window), and the worker process's whole
  CPU per pass from /proc (quote call, lease renewal and the rest of an idle worker included), and
  persistence's CPU per pass (the book is kept by events: no read of the open orders per pass);
- for comparison, what each pass cost before the book: one read of every open order (ListOrders,
  200 a page), its wall time and persistence's CPU for it;
- another trader's market sells then move the pool so that about --triggered orders cross: the
  CPU of each pass that triggered (from the worker's log), and per triggered order the latency
  trigger → submitted (its trigger event's time to its `submitted` event's time, both stamped by
  persistence) and market move → trigger (the sell's `confirmed` event to the trigger), p50/p99/max.

Targets: a pass <= 50 ms of CPU; trigger -> submitted p99 <= one slot (400 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from bench.cpu import TICK_S, cpu_ticks
from common.stack import Stack, free_port
from orderengine.v1 import orders_pb2, orders_pb2_grpc

STEP_PPM = 10  # thresholds 0.001 % apart
FIRST_PPM = 2000  # the lowest threshold 0.2 % above the market


def decimal(raw: int, decimals: int) -> str:
    return f"{raw // 10**decimals}.{raw % 10**decimals:0{decimals}d}"


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def price(client: httpx.AsyncClient) -> int:
    r = await client.post("/api/quotes", json={"tokenIn": "USDC", "tokenOut": "SOL", "amount": "1"})
    r.raise_for_status()
    return int(r.json()["route"]["amountOutRaw"])


async def place(client: httpx.AsyncClient, market: int, n: int, concurrency: int) -> list[str]:
    ids: list[str] = []
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        limit = market * (1_000_000 + FIRST_PPM + i * STEP_PPM) // 1_000_000
        body = {
            "tokenIn": "USDC",
            "tokenOut": "SOL",
            "amount": "1",
            "type": "limit",
            "limitPrice": decimal(limit, 9),
            "expiresInS": 3600,
        }
        async with sem:
            for _ in range(20):
                r = await client.post("/api/orders/execute", json=body)
                if r.status_code == 202:
                    ids.append(r.json()["orderId"])
                    return
                await asyncio.sleep(0.2)  # 503: overloaded, try again
            raise RuntimeError(r.text)

    await asyncio.gather(*(one(i) for i in range(n)))
    return ids


async def sell_sol(client: httpx.AsyncClient, sol: str) -> str:
    r = await client.post(
        "/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": sol, "slippageBps": 500}
    )
    r.raise_for_status()
    oid = str(r.json()["orderId"])
    async with asyncio.timeout(30):
        while (await client.get(f"/api/orders/{oid}")).json()["status"] not in ("confirmed", "failed"):
            await asyncio.sleep(0.05)
    return oid


def trigger_passes(log_path: Path) -> list[dict[str, Any]]:
    out = []
    for raw in log_path.read_bytes().splitlines():
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("msg") == "trigger pass":
            out.append(entry)
    return out


async def full_read(addr: str, persistence_pid: int) -> tuple[float, float, int]:
    """What a pass did before the book: every open order read from persistence."""
    from common.grpc_client import open_channel

    channel = open_channel(addr)
    stub = orders_pb2_grpc.OrdersStub(channel)
    try:
        ticks0, t0 = cpu_ticks(persistence_pid) or 0, time.perf_counter()
        n, cursor = 0, ""
        while True:
            page = await stub.ListOrders(
                orders_pb2.ListOrdersRequest(limit=200, cursor=cursor, status=orders_pb2.ORDER_STATUS_OPEN),
                timeout=30,
            )
            n += len(page.orders)
            cursor = page.next_cursor
            if not cursor:
                break
        wall = time.perf_counter() - t0
        cpu = ((cpu_ticks(persistence_pid) or 0) - ticks0) * TICK_S
        return wall, cpu, n
    finally:
        await channel.close()


def calls(text: str) -> dict[str, float]:
    """gRPC calls handled by a process, by method."""
    out: dict[str, float] = {}
    for m in re.finditer(r"^orderengine_grpc_server_handled_total\{([^}]*)\} ([0-9.e+-]+)$", text, re.M):
        method = re.search(r'grpc_method="([^"]+)"', m.group(1))
        if method:
            out[method.group(1)] = out.get(method.group(1), 0.0) + float(m.group(2))
    return out


async def run(stack: Stack, args: argparse.Namespace, metrics_url: str, persistence_url: str) -> None:
    pids = {name: proc.popen.pid for name, proc in stack.procs.items() if proc.popen is not None}
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        market = await price(client)
        t0 = time.perf_counter()
        ids = await place(client, market, args.orders, args.concurrency)
        placed_s = time.perf_counter() - t0
        async with asyncio.timeout(300):
            while (
                metric((await client.get(metrics_url)).text, "orderengine_trigger_open_orders") < args.orders
            ):
                await asyncio.sleep(0.5)
        print(
            f"{len(ids)} open limit orders (USDC->SOL) placed over HTTP in {placed_s:.1f} s "
            f"and held in the trigger loop's book",
            flush=True,
        )

        # the idle window: every pass evaluates the whole book, nothing is due
        await asyncio.sleep(2)
        before = (await client.get(metrics_url)).text
        calls0 = calls((await client.get(persistence_url)).text)
        w0, p0 = cpu_ticks(pids["worker"]) or 0, cpu_ticks(pids["persistence"]) or 0
        await asyncio.sleep(args.idle_s)
        after = (await client.get(metrics_url)).text
        w1, p1 = cpu_ticks(pids["worker"]) or 0, cpu_ticks(pids["persistence"]) or 0
        calls1 = calls((await client.get(persistence_url)).text)
        passes = metric(after, "orderengine_trigger_pass_cpu_seconds_count") - metric(
            before, "orderengine_trigger_pass_cpu_seconds_count"
        )
        own = metric(after, "orderengine_trigger_pass_cpu_seconds_sum") - metric(
            before, "orderengine_trigger_pass_cpu_seconds_sum"
        )
        passes = max(passes, 1)
        print(f"\nidle window {args.idle_s:g} s: {passes:.0f} passes over {args.orders} open orders")
        print(f"  pass's own work (book, thresholds)   {own / passes * 1000:8.3f} ms CPU per pass (mean)")
        worker_ms = (w1 - w0) * TICK_S / passes * 1000
        persistence_ms = (p1 - p0) * TICK_S / passes * 1000
        print(f"  worker process, all of it            {worker_ms:8.3f} ms CPU per pass")
        print(f"  persistence process                  {persistence_ms:8.3f} ms CPU per pass")
        made = {m: n - calls0.get(m, 0.0) for m, n in calls1.items() if n > calls0.get(m, 0.0)}
        print(
            "  persistence calls in the window: "
            + (", ".join(f"{m} {n:.0f}" for m, n in made.items()) or "none")
        )
        wall, cpu, n = await full_read(stack.settings.persistence_addr, pids["persistence"])
        print(
            f"  before the book, each pass read every open order: {n} orders in {wall * 1000:.0f} ms wall, "
            f"{cpu * 1000:.0f} ms of persistence CPU (plus the worker's decoding)"
        )

        # the market moves: about --triggered orders cross
        target = market * (1_000_000 + FIRST_PPM + args.triggered * STEP_PPM) // 1_000_000
        moved_at: dict[str, str] = {}
        logged = len(trigger_passes(stack.procs["worker"].log_path or Path("/dev/null")))
        burst0 = {name: cpu_ticks(pid) or 0 for name, pid in pids.items()}
        while await price(client) < target:
            sell = await sell_sol(client, args.sell)
            moved_at[sell] = ""
        async with asyncio.timeout(120):
            while True:
                with psycopg.connect(stack.settings.database_url) as conn:
                    (fired,) = conn.execute(
                        "SELECT count(*) FROM order_events WHERE seq = 3 AND data ? 'trigger'"
                    ).fetchone() or (0,)
                    (sent,) = conn.execute(
                        "SELECT count(DISTINCT e.order_id) FROM order_events e JOIN order_events t "
                        "ON t.order_id = e.order_id AND t.seq = 3 AND t.data ? 'trigger' "
                        "WHERE e.status IN ('submitted', 'failed')"
                    ).fetchone() or (0,)
                if fired and sent >= fired:
                    break
                await asyncio.sleep(0.5)
        burst = {name: ((cpu_ticks(pid) or 0) - burst0[name]) * TICK_S * 1000 for name, pid in pids.items()}
        await asyncio.sleep(1)
        with psycopg.connect(stack.settings.database_url) as conn:
            rows = conn.execute(
                "SELECT t.order_id, t.at, s.at FROM order_events t "
                "LEFT JOIN order_events s ON s.order_id = t.order_id AND s.status = 'submitted' "
                "WHERE t.seq = 3 AND t.data ? 'trigger'"
            ).fetchall()
            moves = conn.execute(
                "SELECT at FROM order_events WHERE status = 'confirmed' "
                "AND order_id = ANY(%s::uuid[]) ORDER BY at",
                (list(moved_at),),
            ).fetchall()
        latency = [(s - t).total_seconds() * 1000 for _, t, s in rows if s is not None]
        move_times = [m for (m,) in moves]
        wait = []
        for _, t, _s in rows:
            earlier = [m for m in move_times if m <= t]
            if earlier:
                wait.append((t - earlier[-1]).total_seconds() * 1000)
        passes_logged = trigger_passes(stack.procs["worker"].log_path or Path("/dev/null"))[logged:]
        firing = [p for p in passes_logged if p.get("triggered")]
        print(f"\nmarket moved by {len(moved_at)} sells of {args.sell} SOL: {len(rows)} orders triggered")
        print(
            "  CPU ms from the first sell to the last triggered order submitted (sells included): "
            + ", ".join(f"{name} {ms:.0f}" for name, ms in burst.items())
        )
        for p in firing:
            print(
                f"  pass: {p.get('triggered')} triggered of {p.get('open', 0) + p.get('decided', 0)} open, "
                f"{p.get('cpuMs')} ms CPU (own work)"
            )
        if latency:
            p50, p99 = statistics.median(latency), pct(latency, 0.99)
            print(
                f"  trigger -> submitted   p50 {p50:7.1f}  p99 {p99:7.1f}"
                f"  max {max(latency):7.1f} ms  ({len(latency)} orders; target p99 <= 400 ms)"
            )
        if wait:
            print(
                f"  market move -> trigger p50 {statistics.median(wait):7.1f}  p99 {pct(wait, 0.99):7.1f}"
                f"  max {max(wait):7.1f} ms  (pools re-read each slot, a pass each slot)"
            )
        with psycopg.connect(stack.settings.database_url) as conn:
            steps = conn.execute(
                "SELECT e.status, array_agg(EXTRACT(EPOCH FROM e.at - p.at) * 1000) FROM order_events e "
                "JOIN order_events p ON p.order_id = e.order_id AND p.seq = e.seq - 1 "
                "JOIN order_events t ON t.order_id = e.order_id AND t.seq = 3 AND t.data ? 'trigger' "
                "WHERE e.seq > 3 AND e.status IN ('routing', 'building', 'submitted') GROUP BY e.status"
            ).fetchall()
        for status, gaps in sorted(steps, key=lambda r: ["routing", "building", "submitted"].index(r[0])):
            ms = [float(g) for g in gaps]
            print(f"    ... -> {status:<10} p50 {statistics.median(ms):7.1f}  p99 {pct(ms, 0.99):7.1f} ms")
        not_sent = len(rows) - len(latency)
        if not_sent:
            print(f"  {not_sent} triggered orders never submitted (failed: price moved after the trigger)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--triggered", type=int, default=100, help="about how many the market move crosses")
    parser.add_argument("--idle-s", type=float, default=10.0, help="the idle window measured")
    parser.add_argument(
        "--sell",
        default="150",
        help="SOL per market sell that moves the pool (larger ones overshoot: 1000 crossed 300-560)",
    )
    parser.add_argument("--concurrency", type=int, default=64, help="HTTP requests in flight while placing")
    args = parser.parse_args()

    from tests.stackutil import running_stack

    metrics_port, persistence_port = free_port(), free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="oe-bench-triggers-"))
    with running_stack(
        log_dir,
        WORKER_METRICS_PORT=str(metrics_port),
        PERSISTENCE_METRICS_PORT=str(persistence_port),
        LOG_LEVEL="info",
    ) as stack:
        print(f"stack up at {stack.url} (logs in {log_dir})", flush=True)
        asyncio.run(
            run(
                stack,
                args,
                f"http://127.0.0.1:{metrics_port}/metrics",
                f"http://127.0.0.1:{persistence_port}/metrics",
            )
        )


if __name__ == "__main__":
    main()
