"""Chaos through the supervisor: the engine started as a user starts it (`python -m common.stack`, what
`make run` runs), 200 orders submitted over HTTP at 20/s while every one of its processes — the
gateway and the simulated chain included — is SIGKILLed at random moments and brought back by the
SUPERVISOR alone, and Redis (this test's own redis-server) is killed once and restarted empty.
Clients retry on connection errors with the same Idempotency-Key while the gateway is down. Then
every accepted order must end confirmed or failed (DESIGN.md promise 1), at most one swap may land
per order (promise 2; the chain keeps its ledger across its restarts, so this stays checkable), a
failed order moved no money, every order's events are gapless and legal, and the engine still
serves a new order.

Timing knobs are small so recovery happens within the test: a job pending on a dead consumer is
reclaimed after 1.5 s, an unfinished order without a live job is re-queued after 3 s, slots last
50 ms (a blockhash expires in ~7.5 s), restarts back off from 100 ms to at most 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from solders.keypair import Keypair

from common import lifecycle
from common.stack import free_port
from tests.stackutil import SupervisedEngine, supervised_engine

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

ORDERS = 200
RATE_PER_S = 20.0
KILL_EVERY_S = (0.3, 1.2)
VICTIMS = ("simchain", "persistence", "router", "executor", "worker", "gateway")
SUBMIT_TIMEOUT_S = 45.0  # one order's retries while the gateway, or what it needs, is down
DRAIN_TIMEOUT_S = 60.0
TERMINAL = ("confirmed", "failed")


@dataclass
class RedisServer:
    port: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def engine(own_redis: RedisServer, tmp_path: Path) -> Iterator[SupervisedEngine]:
    env = {
        "REDIS_URL": own_redis.url,
        "PRIVATE_KEY": str(Keypair()),  # one wallet across executor restarts, as in production
        "LOG_LEVEL": "info",
        "SIM_SLOT_MS": "50",
        "SIM_LATENCY_MS": "10",  # each order spends longer in flight, where the kills hurt
        "CLAIM_IDLE_MS": "1500",
        "ORDER_LOCK_TTL_MS": "3000",
        "RECOVER_AFTER_MS": "3000",
        "RECOVER_INTERVAL_MS": "1000",
        "MAX_DELIVERIES": "10",
        "RETRY_BASE_MS": "100",
        "RETRY_MAX_MS": "1000",
        "OUTBOX_RELAY_AGE_MS": "1000",
        "OUTBOX_RELAY_INTERVAL_MS": "500",
        "CONFIRM_POLL_MS": "20",
        "REBROADCAST_MS": "500",
        "GRPC_GRACE_S": "1",
        "WORKER_GRACE_S": "1",
        "WORKER_CONCURRENCY": "50",
        "SUPERVISOR_BACKOFF_MS": "100",
        "SUPERVISOR_BACKOFF_MAX_MS": "1000",
        "SUPERVISOR_STABLE_S": "5",
        "SUPERVISOR_GRACE_S": "5",
    }
    with supervised_engine(tmp_path / "logs", **env) as e:
        yield e


@dataclass
class Figures:
    accepted: int = 0
    refused: int = 0
    retried: int = 0  # submissions that met a connection error (gateway down) and were retried
    kills: int = 0  # SIGKILLs of the engine's processes (Redis not counted)
    failed_landed: int = 0
    lost: int = 0
    doubled: int = 0
    confirmed: int = 0
    failed: int = 0
    seconds: float = 0.0


BODIES = [
    {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.25", "slippageBps": 300},
    {"tokenIn": "USDC", "tokenOut": "SOL", "amount": "40", "slippageBps": 300},
    {"tokenIn": "SOL", "tokenOut": "USDT", "amount": "0.1", "slippageBps": 300},
]


async def submit(client: httpx.AsyncClient, n: int, accepted: dict[str, str], figures: Figures) -> None:
    """POSTs one order; retries with the same Idempotency-Key while the engine is unavailable."""
    key = f"chaos-{uuid.uuid4()}"
    deadline = time.monotonic() + SUBMIT_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            r = await client.post(
                "/api/orders/execute", json=BODIES[n % len(BODIES)], headers={"Idempotency-Key": key}
            )
        except httpx.TransportError:  # the gateway is down (or died mid-request): same key again
            figures.retried += 1
            await asyncio.sleep(0.2)
            continue
        if r.status_code == 202:
            accepted[r.json()["orderId"]] = key
            return
        assert r.status_code == 503, r.text  # nothing but overload/unavailability is acceptable
        await asyncio.sleep(0.2)
    figures.refused += 1


async def chaos_monkey(
    engine: SupervisedEngine,
    own_redis: RedisServer,
    stop: asyncio.Event,
    figures: Figures,
    rng: random.Random,
    redis_at: float,
) -> None:
    started = time.monotonic()
    redis_done = False
    victims: list[str] = []
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(*KILL_EVERY_S))
        if stop.is_set():
            return
        if not redis_done and time.monotonic() - started >= redis_at:
            redis_done = True
            own_redis.kill()  # everything in it is gone: streams, groups, locks
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            own_redis.start()  # empty
            continue
        if not victims:  # every victim once per round, in a random order
            victims = rng.sample(VICTIMS, len(VICTIMS))
        victim = victims.pop()
        pid = engine.children().get(victim)
        if pid is None:
            continue  # between its death and its restart: the supervisor is on it
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # and nothing else: bringing it back is the supervisor's job
            figures.kills += 1


async def wait_serving(engine: SupervisedEngine, client: httpx.AsyncClient) -> None:
    """Until every process runs again and the gateway answers /healthz."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if set(engine.children()) == set(VICTIMS):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/healthz")).status_code == 200:
                    return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the engine did not come back; see {engine.log_path}")


async def wait_all_terminal(client: httpx.AsyncClient, order_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Polls GET /api/orders/{id} until every order is confirmed or failed (or the time is up)."""
    final: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    sem = asyncio.Semaphore(20)

    async def one(order_id: str) -> None:
        async with sem:
            with contextlib.suppress(httpx.TransportError):
                r = await client.get(f"/api/orders/{order_id}")
                if r.status_code == 200 and r.json()["status"] in TERMINAL:
                    final[order_id] = r.json()

    while time.monotonic() < deadline:
        await asyncio.gather(*(one(o) for o in order_ids if o not in final))
        if len(final) == len(order_ids):
            break
        await asyncio.sleep(0.5)
    return final


async def test_supervisor_keeps_the_engine_whole_under_kill_9(
    engine: SupervisedEngine, own_redis: RedisServer
) -> None:
    rng = random.Random()
    figures = Figures()
    accepted: dict[str, str] = {}
    started = time.monotonic()
    stop = asyncio.Event()
    submit_s = ORDERS / RATE_PER_S
    monkey = asyncio.create_task(
        chaos_monkey(engine, own_redis, stop, figures, rng, redis_at=rng.uniform(0.3, 0.6) * submit_s)
    )
    async with httpx.AsyncClient(base_url=engine.url, timeout=10) as client:
        submitting = []
        for n in range(ORDERS):
            submitting.append(asyncio.create_task(submit(client, n, accepted, figures)))
            await asyncio.sleep(1 / RATE_PER_S)
        await asyncio.gather(*submitting)
        stop.set()
        await monkey
        await wait_serving(engine, client)  # everything restarted by the supervisor
        final = await wait_all_terminal(client, list(accepted))  # every accepted order must end

        # and the engine still serves: a new order goes all the way
        after: dict[str, str] = {}
        await submit(client, 0, after, figures)
        (new_order,) = after
        confirmed_after = await wait_all_terminal(client, [new_order])
    figures.seconds = time.monotonic() - started
    figures.accepted = len(accepted)
    figures.lost = len(accepted) - len(final)
    figures.confirmed = sum(1 for o in final.values() if o["status"] == "confirmed")
    figures.failed = sum(1 for o in final.values() if o["status"] == "failed")

    # at most one landed swap per order (the chain's own ledger, memo oe:<order_id>:<attempt>)
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"http://127.0.0.1:{engine.env['SIM_PORT']}",
            json={"jsonrpc": "2.0", "id": 1, "method": "simSwaps", "params": [{"memoPrefix": "oe:"}]},
        )
    swaps = r.json()["result"]
    per_order = Counter(s["memo"].split(":")[1] for s in swaps)
    figures.doubled = sum(1 for n in per_order.values() if n > 1)
    landed = {s["memo"].split(":")[1]: s["signature"] for s in swaps}
    figures.failed_landed = sum(
        1 for o, order in final.items() if order["status"] == "failed" and o in landed
    )
    supervisor = engine.log_lines()
    killed = Counter(e["child"] for e in supervisor if e.get("signal") == "SIGKILL")
    restarted = Counter(e["child"] for e in supervisor if e["msg"] == "process restarted")
    print(
        f"\nchaos: accepted={figures.accepted} refused={figures.refused} retried={figures.retried} "
        f"kills={figures.kills} lost={figures.lost} doubled={figures.doubled} "
        f"confirmed={figures.confirmed} failed={figures.failed} failed_landed={figures.failed_landed} "
        f"seconds={figures.seconds:.1f}\nchaos: killed {dict(killed)}; restarted {dict(restarted)}"
    )
    reasons = Counter(o["failureReason"] for o in final.values() if o["status"] == "failed")
    if reasons:
        print("chaos: failure reasons:", dict(reasons))
        for order in [o for o in final.values() if o["status"] == "failed"][:3]:
            print(
                "chaos: failed order",
                order["orderId"],
                [
                    (e["status"], {k: v for k, v in e["data"].items() if k in ("error", "reason", "retryOf")})
                    for e in order["events"]
                ],
            )

    # the supervisor, and nothing else, brought back every process the test killed
    assert sum(killed.values()) == figures.kills and set(killed) <= set(VICTIMS)
    assert all(restarted[name] >= n for name, n in killed.items()), (killed, restarted)
    missing = sorted(set(accepted) - set(final))
    assert figures.lost == 0, f"not terminal: {missing[:10]}"
    assert figures.doubled == 0, [o for o, n in per_order.items() if n > 1]
    assert confirmed_after[new_order]["status"] == "confirmed", confirmed_after
    for order_id, order in final.items():
        if order["status"] == "confirmed":  # the swap it reports is the one that landed
            assert landed.get(order_id) == order["txHash"], order_id
        else:  # a failed order moved no money
            assert order_id not in landed, (order_id, order["failureReason"])

    # every order's events: seq 1..n, legal transitions, ending in the order's status
    with psycopg.connect(engine.env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT o.id::text, o.status, array_agg(e.seq ORDER BY e.seq), "
            "array_agg(e.status ORDER BY e.seq) "
            "FROM orders o JOIN order_events e ON e.order_id = o.id GROUP BY o.id, o.status"
        ).fetchall()
    assert {r[0] for r in rows} >= set(accepted)
    for order_id, status, seqs, statuses in rows:
        assert list(seqs) == list(range(1, len(seqs) + 1)), (order_id, seqs)
        assert statuses[0] == "pending" and statuses[-1] == status, (order_id, statuses)
        for a, b in zip(statuses, statuses[1:], strict=False):
            assert lifecycle.is_legal(a, b), (order_id, statuses)
