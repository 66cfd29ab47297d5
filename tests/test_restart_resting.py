"""Open orders survive a restart of every process (issue 11, DESIGN.md promises 1 and 2).

The engine is started as a user starts it (`python -m common.stack`, what `make run` runs). 100
resting orders are placed over HTTP — 50 stops selling SOL and 50 limits buying SOL, all waiting for
SOL to fall — and rest `open`. Then EVERY child (gateway, worker, router, executor, persistence,
simulated chain) is SIGKILLed at once, and the supervisor alone brings them back; the new worker
knows the orders only from Postgres. Another trader's market sells then move the pool through every
threshold. Every order must trigger exactly once (one trigger event, right after `open`), land
exactly one swap on the chain (its own ledger, memo oe:<order_id>:<attempt>), and be confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from solders.keypair import Keypair

from tests.stackutil import SupervisedEngine, supervised_engine

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

CHILDREN = ("simchain", "persistence", "router", "executor", "worker", "gateway")
PER_SIDE = 50
OPEN_EVENTS = ["pending", "open", "routing", "routing", "building", "submitted", "confirmed"]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[SupervisedEngine]:
    env = {
        "PRIVATE_KEY": str(Keypair()),  # one wallet across executor restarts, as in production
        "SIM_SLOT_MS": "50",
        "POOL_REFRESH_MS": "50",
        "TRIGGER_INTERVAL_MS": "100",  # the trigger loop's lease then lasts 3 s
        "CLAIM_IDLE_MS": "1500",
        "ORDER_LOCK_TTL_MS": "3000",
        "RECOVER_AFTER_MS": "3000",
        "RECOVER_INTERVAL_MS": "1000",
        "RETRY_BASE_MS": "100",
        "RETRY_MAX_MS": "1000",
        "CONFIRM_POLL_MS": "20",
        "GRPC_GRACE_S": "1",
        "WORKER_GRACE_S": "1",
        "SUPERVISOR_BACKOFF_MS": "100",
        "SUPERVISOR_BACKOFF_MAX_MS": "1000",
        "SUPERVISOR_GRACE_S": "5",
    }
    with supervised_engine(tmp_path / "logs", **env) as e:
        yield e


def decimal(raw: int, decimals: int) -> str:
    return f"{raw // 10**decimals}.{raw % 10**decimals:0{decimals}d}"


async def price(client: httpx.AsyncClient, token_in: str, token_out: str) -> int:
    r = await client.post("/api/quotes", json={"tokenIn": token_in, "tokenOut": token_out, "amount": "1"})
    assert r.status_code == 201, r.text
    return int(r.json()["route"]["amountOutRaw"])


async def statuses(client: httpx.AsyncClient, order_ids: list[str]) -> dict[str, dict]:  # type: ignore[type-arg]
    sem = asyncio.Semaphore(20)

    async def one(oid: str) -> tuple[str, dict]:  # type: ignore[type-arg]
        async with sem:
            return oid, (await client.get(f"/api/orders/{oid}")).json()

    return dict(await asyncio.gather(*(one(o) for o in order_ids)))


async def wait_for(
    client: httpx.AsyncClient, order_ids: list[str], wanted: set[str], timeout: float
) -> dict[str, dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        found = await statuses(client, order_ids)
        if all(o["status"] in wanted for o in found.values()) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def sell_sol(client: httpx.AsyncClient, sol: str) -> None:
    """Another trader's market order: SOL falls."""
    r = await client.post(
        "/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": sol, "slippageBps": 500}
    )
    assert r.status_code == 202, r.text
    oid = r.json()["orderId"]
    (done,) = (await wait_for(client, [oid], {"confirmed", "failed"}, 20)).values()
    assert done["status"] == "confirmed", done


async def wait_serving(engine: SupervisedEngine, client: httpx.AsyncClient, old: dict[str, int]) -> None:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        now = engine.children()
        if set(now) == set(CHILDREN) and all(now[n] != old[n] for n in CHILDREN):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/healthz")).status_code == 200:
                    return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the engine did not come back; see {engine.log_path}")


async def test_a_hundred_open_orders_survive_kill_9_of_every_process_and_each_triggers_once(
    engine: SupervisedEngine,
) -> None:
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=engine.url, timeout=10) as client:
        sol_usdc = await price(client, "SOL", "USDC")
        usdc_sol = await price(client, "USDC", "SOL")
        stops = [
            {
                "tokenIn": "SOL",
                "tokenOut": "USDC",
                "amount": "0.05",
                "type": "stop",
                "stopPrice": decimal(sol_usdc * 997 // 1000 - i, 6),
                "slippageBps": 300,
                "expiresInS": 600,
            }
            for i in range(PER_SIDE)
        ]
        limits = [
            {
                "tokenIn": "USDC",
                "tokenOut": "SOL",
                "amount": "5",
                "type": "limit",
                "limitPrice": decimal(usdc_sol * 1003 // 1000 + i, 9),
                "expiresInS": 600,
            }
            for i in range(PER_SIDE)
        ]
        placed = await asyncio.gather(*(client.post("/api/orders/execute", json=b) for b in stops + limits))
        assert all(r.status_code == 202 for r in placed), [r.text for r in placed if r.status_code != 202]
        order_ids = [r.json()["orderId"] for r in placed]
        opened = await wait_for(client, order_ids, {"open"}, 20)
        assert Counter(o["status"] for o in opened.values()) == {"open": 2 * PER_SIDE}

        # kill -9 every process at once; the supervisor, and nothing else, brings them back
        before = engine.children()
        assert set(before) == set(CHILDREN), before
        for pid in before.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await wait_serving(engine, client, before)
        await asyncio.sleep(1.0)  # passes of the new trigger loop over the unmoved market
        after = await statuses(client, order_ids)
        assert Counter(o["status"] for o in after.values()) == {"open": 2 * PER_SIDE}  # none lost or fired

        moves = 0  # another trader sells SOL until every stop and every limit is crossed
        while (
            await price(client, "SOL", "USDC") >= sol_usdc * 997 // 1000 - PER_SIDE
            or await price(client, "USDC", "SOL") <= (usdc_sol * 1003 // 1000 + PER_SIDE) * 1002 // 1000
        ):
            await sell_sol(client, "2000")
            moves += 1
            assert moves < 15, "the market did not move through the thresholds"
        final = await wait_for(client, order_ids, {"confirmed", "failed"}, 30)
        async with httpx.AsyncClient(timeout=10) as chain:
            r = await chain.post(
                f"http://127.0.0.1:{engine.env['SIM_PORT']}",
                json={"jsonrpc": "2.0", "id": 1, "method": "simSwaps", "params": [{"memoPrefix": "oe:"}]},
            )
    swaps = Counter(s["memo"].split(":")[1] for s in r.json()["result"])

    supervisor = engine.log_lines()
    killed = {e["child"] for e in supervisor if e.get("signal") == "SIGKILL"}
    restarted = {e["child"] for e in supervisor if e["msg"] == "process restarted"}
    assert killed == restarted == set(CHILDREN), (killed, restarted)
    not_confirmed = {o: d["status"] for o, d in final.items() if d["status"] != "confirmed"}
    assert not not_confirmed, list(not_confirmed.items())[:5]
    assert all(swaps[o] == 1 for o in order_ids), {o: swaps[o] for o in order_ids if swaps[o] != 1}
    for oid, order in final.items():
        assert order["txHash"] and [e["status"] for e in order["events"]] == OPEN_EVENTS, (
            oid,
            order["events"],
        )
        triggers = [e["seq"] for e in order["events"] if "trigger" in e["data"]]
        assert triggers == [3], (oid, order["events"])  # exactly one trigger, right after `open`
    with psycopg.connect(engine.env["DATABASE_URL"]) as conn:  # and Postgres holds exactly that
        rows = conn.execute(
            "SELECT order_id::text, count(*) FILTER (WHERE data ? 'trigger'), "
            "count(*) FILTER (WHERE status = 'open') FROM order_events "
            "WHERE order_id = ANY(%s::uuid[]) GROUP BY order_id",
            (order_ids,),
        ).fetchall()
    assert sorted(rows) == sorted((o, 1, 1) for o in order_ids)
    took = time.monotonic() - started
    print(f"\nrestart-resting: {len(order_ids)} orders, {moves} market moves, {took:.1f} s")
