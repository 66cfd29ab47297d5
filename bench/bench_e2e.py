"""End-to-end benchmark: submit N orders at a chosen rate, follow each over WebSocket, and print
throughput and latency percentiles (accept latency = POST → 202; submit-to-confirmed = POST sent →
`confirmed` received on the socket).

    python -m bench.bench_e2e --orders 1000 --rate 200            # starts its own stack
    python -m bench.bench_e2e --url http://127.0.0.1:3000 ...      # against a running engine
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import websockets

SUBS_PER_SOCKET = 150


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class Follower:
    """A WebSocket that follows up to SUBS_PER_SOCKET orders at once."""

    def __init__(self, url: str, done: dict[str, float], statuses: dict[str, str]) -> None:
        self.url = url
        self.done = done
        self.statuses = statuses
        self.active = 0
        self.ws: websockets.ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await websockets.connect(self.url, max_queue=None)
        self.task = asyncio.create_task(self.reader())

    async def subscribe(self, order_id: str) -> None:
        assert self.ws is not None
        self.active += 1
        await self.ws.send(json.dumps({"action": "subscribe", "orderId": order_id, "afterSeq": 0}))

    async def reader(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            msg = json.loads(raw)
            if msg.get("type") == "status" and msg["status"] in ("confirmed", "failed"):
                oid = msg["orderId"]
                if oid not in self.done:
                    self.done[oid] = time.perf_counter()
                    self.statuses[oid] = msg["status"]
                    self.active -= 1
                    await self.ws.send(json.dumps({"action": "unsubscribe", "orderId": oid}))


async def run_bench(url: str, orders: int, rate: float, pair: tuple[str, str, str]) -> dict[str, float]:
    ws_url = url.replace("http://", "ws://") + "/api/orders/ws"
    done: dict[str, float] = {}
    statuses: dict[str, str] = {}
    sent_at: dict[str, float] = {}
    accept_ms: list[float] = []
    rejected = 0
    followers = [
        Follower(ws_url, done, statuses) for _ in range(max(1, min(64, orders // SUBS_PER_SOCKET + 2)))
    ]
    for f in followers:
        await f.open()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def submit(i: int) -> None:
            nonlocal rejected
            body = {"tokenIn": pair[0], "tokenOut": pair[1], "amount": pair[2], "slippageBps": 100}
            t0 = time.perf_counter()
            try:
                r = await client.post("/api/orders/execute", json=body)
            except httpx.HTTPError:
                rejected += 1
                return
            t1 = time.perf_counter()
            if r.status_code != 202:
                rejected += 1
                return
            oid = r.json()["orderId"]
            sent_at[oid] = t0
            accept_ms.append((t1 - t0) * 1000)
            follower = min(followers, key=lambda f: f.active)
            await follower.subscribe(oid)

        started = time.perf_counter()
        tasks = []
        for i in range(orders):
            target = started + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(submit(i)))
        await asyncio.gather(*tasks)
        submit_done = time.perf_counter()
        deadline = time.perf_counter() + 120
        while len(done) < len(sent_at) and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
        finished = max(done.values()) if done else time.perf_counter()
    for f in followers:
        if f.ws is not None:
            await f.ws.close()
    e2e_ms = [(done[o] - sent_at[o]) * 1000 for o in sent_at if o in done]
    confirmed = sum(1 for s in statuses.values() if s == "confirmed")
    return {
        "orders": orders,
        "accepted": len(sent_at),
        "rejected": rejected,
        "confirmed": confirmed,
        "failed": sum(1 for s in statuses.values() if s == "failed"),
        "unfinished": len(sent_at) - len(done),
        "offered_rate": rate,
        "submit_rate": len(sent_at) / (submit_done - started),
        "throughput": len(done) / (finished - started) if done else 0.0,
        "accept_p50": pct(accept_ms, 50),
        "accept_p95": pct(accept_ms, 95),
        "accept_p99": pct(accept_ms, 99),
        "e2e_p50": pct(e2e_ms, 50),
        "e2e_p95": pct(e2e_ms, 95),
        "e2e_p99": pct(e2e_ms, 99),
        "e2e_mean": statistics.fmean(e2e_ms) if e2e_ms else float("nan"),
    }


def report(r: dict[str, float]) -> None:
    print(
        f"orders: {r['orders']}  accepted: {r['accepted']}  rejected: {r['rejected']}  "
        f"confirmed: {r['confirmed']}  failed: {r['failed']}  unfinished: {r['unfinished']}"
    )
    print(
        f"offered rate: {r['offered_rate']:.0f}/s  submitted: {r['submit_rate']:.1f}/s  "
        f"end-to-end throughput: {r['throughput']:.1f} orders/s"
    )
    print(
        f"accept latency ms             p50 {r['accept_p50']:8.2f}  p95 {r['accept_p95']:8.2f}  "
        f"p99 {r['accept_p99']:8.2f}"
    )
    print(
        f"submit-to-confirmed latency ms p50 {r['e2e_p50']:8.2f}  p95 {r['e2e_p95']:8.2f}  "
        f"p99 {r['e2e_p99']:8.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="orders per second offered")
    parser.add_argument("--url", default="", help="a running engine; default: start one")
    parser.add_argument("--pair", default="SOL,USDC,0.5", help="tokenIn,tokenOut,amount")
    parser.add_argument("--concurrency", default="64", help="WORKER_CONCURRENCY of the started stack")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the started stack (repeatable), e.g. --env CONFIRM_POLL_MS=10",
    )
    args = parser.parse_args()
    parts = str(args.pair).split(",")
    if len(parts) != 3:
        parser.error(f"--pair expects tokenIn,tokenOut,amount, got {args.pair!r}")
    pair = (parts[0], parts[1], parts[2])
    if args.url:
        report(asyncio.run(run_bench(args.url, args.orders, args.rate, pair)))
        return
    from tests.stackutil import running_stack

    log_dir = Path(tempfile.mkdtemp(prefix="oe-bench-"))
    extra = {
        "WORKER_CONCURRENCY": args.concurrency,
        "LOG_LEVEL": "warning",
        "QUEUE_MAX_DEPTH": str(max(20000, args.orders * 2)),
        "WORKER_NAME": f"bench-{uuid.uuid4().hex[:6]}",
    }
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env expects KEY=VALUE, got {item!r}")
        extra[key] = value
    with running_stack(log_dir, **extra) as stack:
        print(f"stack up at {stack.url} (logs in {log_dir})", flush=True)
        report(asyncio.run(run_bench(stack.url, args.orders, args.rate, pair)))


if __name__ == "__main__":
    main()
