"""Resting orders end to end through the processes `make run` starts (gateway, worker, router,
executor, persistence, simulated chain), over HTTP and WebSocket: a limit order triggers when
another trader's swap moves the pool across its price and lands at or above its limit; a stop
triggers on a fall while a cancelled twin never does; a limit that never triggers expires; an
expired quote is refused. (A limit at 1 % under the market, a cancel, and execute-by-quote are in
tests/test_e2e.py; the restart of every process with 100 open orders in tests/test_restart_resting.py.)

Knobs are small so the market moves within the test: 50 ms slots, pools re-read every 50 ms, a
trigger pass every 100 ms, quotes valid 1 s."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from common.stack import Stack
from tests.stackutil import running_stack
from tests.test_e2e import LIFECYCLE, follow

pytestmark = pytest.mark.e2e

QUOTE_TTL_S = 1


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("e2e-resting-logs"),
        SIM_SLOT_MS="50",
        POOL_REFRESH_MS="50",
        TRIGGER_INTERVAL_MS="100",
        QUOTE_TTL_S=str(QUOTE_TTL_S),
        RETRY_BASE_MS="50",
    ) as s:
        yield s


def decimal(raw: int, decimals: int) -> str:
    return f"{raw // 10**decimals}.{raw % 10**decimals:0{decimals}d}"


async def price(client: httpx.AsyncClient, token_in: str, token_out: str) -> int:
    """What the trigger loop compares with: the best route's output for one whole input token."""
    r = await client.post("/api/quotes", json={"tokenIn": token_in, "tokenOut": token_out, "amount": "1"})
    assert r.status_code == 201, r.text
    return int(r.json()["route"]["amountOutRaw"])


async def another_trader_sells_sol(stack: Stack, client: httpx.AsyncClient, sol: str) -> None:
    """A market order of someone else's: SOL gets cheaper in USDC (and USDC dearer in SOL); the
    stack's pools are deep, so a move of a few tenths of a percent takes thousands of SOL."""
    r = await client.post(
        "/api/orders/execute",
        json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": sol, "slippageBps": 500},
    )
    assert r.status_code == 202, r.text
    oid = r.json()["orderId"]
    events = (await follow(stack, [oid]))[oid]
    assert events[-1]["status"] == "confirmed", events[-1].get("data")


async def wait_status(client: httpx.AsyncClient, order_id: str, status: str, timeout: float = 15) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            order = (await client.get(f"/api/orders/{order_id}")).json()
            if order["status"] == status:
                return order
            assert order["status"] in ("pending", "open"), order
            await asyncio.sleep(0.05)


async def landed_swaps(stack: Stack) -> dict[str, int]:
    """Order id → swaps landed on the chain for it (the chain's ledger, memo oe:<order_id>:<attempt>)."""
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"http://127.0.0.1:{stack.settings.sim_port}",
            json={"jsonrpc": "2.0", "id": 1, "method": "simSwaps", "params": [{"memoPrefix": "oe:"}]},
        )
    counts: dict[str, int] = {}
    for swap in r.json()["result"]:
        oid = swap["memo"].split(":")[1]
        counts[oid] = counts.get(oid, 0) + 1
    return counts


async def test_a_limit_triggers_when_another_traders_swap_moves_the_pool_across_it(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        # buy SOL with 150 USDC, for at least 0.5 % more SOL per USDC than the market gives now
        limit = await price(client, "USDC", "SOL") * 1005 // 1000
        placed = await client.post(
            "/api/orders/execute",
            json={
                "tokenIn": "USDC",
                "tokenOut": "SOL",
                "amount": "150",
                "type": "limit",
                "limitPrice": decimal(limit, 9),
                "expiresInS": 600,
            },
        )
        assert placed.status_code == 202, placed.text
        order_id = placed.json()["orderId"]
        await wait_status(client, order_id, "open")
        await asyncio.sleep(1.0)  # ten passes over an unmoved market: it rests
        assert (await client.get(f"/api/orders/{order_id}")).json()["status"] == "open"
        moves = 0
        while await price(client, "USDC", "SOL") < limit * 1002 // 1000:
            await another_trader_sells_sol(stack, client, "2000")
            moves += 1
            assert moves < 20, "the market did not move across the limit"
        events = (await follow(stack, [order_id]))[order_id]
    statuses = [e["status"] for e in events]
    assert statuses == ["pending", "open", "routing", *LIFECYCLE[1:]], events
    assert events[1]["data"]["limitPriceRaw"] == str(limit)
    trigger = events[2]["data"]["trigger"]
    assert trigger["type"] == "limit"
    floor = -(-limit * 150 * 10**6 // 10**6)  # 150 USDC at the limit, in lamports (rounded up)
    assert int(events[3]["data"]["route"]["minAmountOutRaw"]) >= floor  # the chain was told the limit
    assert int(events[-1]["data"]["amountOutRaw"]) >= floor  # and it landed at or above it
    assert (await landed_swaps(stack)).get(order_id) == 1


async def test_a_stop_triggers_on_a_fall_and_its_cancelled_twin_never_does(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        stop = await price(client, "SOL", "USDC") * 995 // 1000
        body = {
            "tokenIn": "SOL",
            "tokenOut": "USDC",
            "amount": "0.2",
            "type": "stop",
            "stopPrice": decimal(stop, 6),
            "slippageBps": 300,
            "expiresInS": 600,
        }
        first, twin = [await client.post("/api/orders/execute", json=body) for _ in range(2)]
        assert first.status_code == twin.status_code == 202, (first.text, twin.text)
        order_id, twin_id = first.json()["orderId"], twin.json()["orderId"]
        await wait_status(client, order_id, "open")
        await wait_status(client, twin_id, "open")
        cancelled = await client.post(f"/api/orders/{twin_id}/cancel", json={})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
        assert (await client.get(f"/api/orders/{order_id}")).json()["status"] == "open"
        moves = 0
        while await price(client, "SOL", "USDC") > stop:  # the price falls through the stop
            await another_trader_sells_sol(stack, client, "1000")
            moves += 1
            assert moves < 20, "the market did not fall through the stop"
        events = (await follow(stack, [order_id]))[order_id]
        assert [e["status"] for e in events] == ["pending", "open", "routing", *LIFECYCLE[1:]], events
        trigger = events[2]["data"]["trigger"]
        assert trigger["type"] == "stop" and Decimal(trigger["marketPrice"]) * 10**6 <= stop
        await asyncio.sleep(0.5)  # five more passes below the stop: the cancelled twin stays so
        twin_order = (await client.get(f"/api/orders/{twin_id}")).json()
    assert [e["status"] for e in twin_order["events"]] == ["pending", "open", "cancelled"]
    swaps = await landed_swaps(stack)
    assert swaps.get(order_id) == 1 and twin_id not in swaps


async def test_a_limit_that_never_triggers_expires(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        placed = await client.post(
            "/api/orders/execute",
            json={
                "tokenIn": "SOL",
                "tokenOut": "USDC",
                "amount": "1",
                "type": "limit",
                "limitPrice": "100000",
                "expiresInS": 1,
            },
        )
        assert placed.status_code == 202, placed.text
        order_id = placed.json()["orderId"]
        await wait_status(client, order_id, "open")
        order = await wait_status(client, order_id, "expired", timeout=10)
    assert [e["status"] for e in order["events"]] == ["pending", "open", "expired"]
    assert "expired" in order["events"][-1]["data"]["reason"]
    assert order_id not in await landed_swaps(stack)


async def test_an_expired_quote_is_refused_and_stores_nothing(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        r = await client.post("/api/quotes", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.5"})
        assert r.status_code == 201, r.text
        quote = r.json()
        before = len((await client.get("/api/orders", params={"limit": 200})).json()["orders"])
        await asyncio.sleep(QUOTE_TTL_S + 0.3)
        refused = await client.post("/api/orders/execute", json={"quoteId": quote["quoteId"]})
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "quote_expired" and error["field"] == "quoteId"
        after = len((await client.get("/api/orders", params={"limit": 200})).json()["orders"])
        assert after == before
        fresh = (
            await client.post("/api/quotes", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.5"})
        ).json()
        executed = await client.post("/api/orders/execute", json={"quoteId": fresh["quoteId"]})
        assert executed.status_code == 202, executed.text  # a fresh quote within its time executes
