"""Sniper orders end to end through the processes `make run` starts (gateway, worker, router,
executor, persistence, simulated chain), over HTTP and WebSocket: sniper orders are placed for
pairs with no pool (NEW has none at genesis), rest `open`, and only the one whose pool appears — made
through the Raydium CPMM program's own `initialize` by the simulated chain's admin call
`simCreatePool` — with enough liquidity of its input and a price within its bound fires, ahead of
everything, and confirms; a pool below the order's minimum liquidity, or above its maximum price,
leaves its order open.

It also measures how soon the sniper's swap is submitted once its pool can trade: the CPMM program
opens a pool one second after the creating block at the earliest (`open_time`, as on chain), so
the figure that counts is from the first slot whose clock reaches `open_time`; both that and the
time from the creating transaction are printed (`pytest -s`). Slots are the real 400 ms."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from common.markets import load_markets
from common.stack import Stack
from tests.stackutil import running_stack
from tests.test_e2e import LIFECYCLE, follow

pytestmark = pytest.mark.e2e

SOL, NEW6 = 10**9, 10**6
CLOCK = "SysvarC1ock11111111111111111111111111111111"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e-sniper-logs"), SNIPER_INTERVAL_MS="50") as s:
        yield s


def mint(stack: Stack, symbol: str) -> str:
    token = load_markets(stack.settings.markets_path).token(symbol)
    assert token is not None
    return token.mint


async def sim(stack: Stack, method: str, params: list[Any]) -> Any:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"http://127.0.0.1:{stack.settings.sim_port}",
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        )
    body = r.json()
    assert "result" in body, body
    return body["result"]


async def create_pool(stack: Stack, a: str, b: str, amount_a: int, amount_b: int) -> dict[str, Any]:
    params = {"venue": "raydium_cpmm", "mintA": mint(stack, a), "mintB": mint(stack, b)}
    return await sim(stack, "simCreatePool", [{**params, "amountA": amount_a, "amountB": amount_b}])  # type: ignore[no-any-return]


async def place(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    r = await client.post("/api/orders/execute", json={"type": "sniper", "expiresInS": 600, **body})
    assert r.status_code == 202, r.text
    return str(r.json()["orderId"])


async def status(client: httpx.AsyncClient, order_id: str) -> str:
    return str((await client.get(f"/api/orders/{order_id}")).json()["status"])


async def wait_open(client: httpx.AsyncClient, order_id: str) -> None:
    async with asyncio.timeout(10):
        while await status(client, order_id) != "open":
            await asyncio.sleep(0.05)


async def opening(stack: Stack, open_time: int) -> tuple[float, int]:
    """Wall time and slot at which the chain's clock first reaches `open_time` (polled every 10 ms)."""
    async with asyncio.timeout(10):
        while True:
            info = await sim(stack, "getAccountInfo", [CLOCK, {"encoding": "base64"}])
            data = base64.b64decode(info["value"]["data"][0])
            slot, ts = int.from_bytes(data[0:8], "little"), int.from_bytes(data[32:40], "little", signed=True)
            if ts >= open_time:
                return time.time(), slot
            await asyncio.sleep(0.01)


def at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


async def test_a_sniper_fires_only_on_a_pool_with_its_liquidity_and_price(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        # no pool trades NEW: each order rests open
        shallow = await place(
            client, {"tokenIn": "SOL", "tokenOut": "NEW", "amount": "1", "minLiquidity": "100"}
        )
        dear = await place(
            client,
            {"tokenIn": "USDC", "tokenOut": "NEW", "amount": "10", "minLiquidity": "100", "maxPrice": "0.5"},
        )
        sniper = await place(
            client,
            {"tokenIn": "USDT", "tokenOut": "NEW", "amount": "25", "minLiquidity": "1000", "maxPrice": "1.2",
             "slippageBps": 300},
        )  # fmt: skip
        for oid in (shallow, dear, sniper):
            await wait_open(client, oid)
        order = (await client.get(f"/api/orders/{sniper}")).json()
        assert (order["type"], order["minLiquidityRaw"], order["maxPriceRaw"]) == (
            "sniper",
            "1000000000",
            "1200000",
        )
        await asyncio.sleep(1.0)  # twenty scans over no pool at all
        assert [await status(client, oid) for oid in (shallow, dear, sniper)] == ["open"] * 3

        # a SOL/NEW pool holding 10 SOL (< 100): too shallow; a USDC/NEW pool at 1 USDC per NEW (> 0.5)
        await create_pool(stack, "SOL", "NEW", 10 * SOL, 2_000 * NEW6)
        dear_pool = await create_pool(stack, "USDC", "NEW", 5_000 * NEW6, 5_000 * NEW6)
        await opening(stack, int(dear_pool["openTime"]))
        await asyncio.sleep(1.0)  # both pools trade now, and have been scanned many times
        assert [await status(client, oid) for oid in (shallow, dear)] == ["open"] * 2

        # a USDT/NEW pool: 10,000 USDT and 12,000 NEW (0.83 USDT per NEW, under 1.2): it fires
        made = await create_pool(stack, "USDT", "NEW", 10_000 * NEW6, 12_000 * NEW6)
        created_at = time.time()
        open_at, open_slot = await opening(stack, int(made["openTime"]))
        events = (await follow(stack, [sniper]))[sniper]
        assert [await status(client, oid) for oid in (shallow, dear)] == ["open"] * 2
        for oid in (shallow, dear):
            assert (await client.post(f"/api/orders/{oid}/cancel", json={})).json()["status"] == "cancelled"

    statuses = [e["status"] for e in events]
    assert statuses == ["pending", "open", "routing", *LIFECYCLE[1:]], events
    assert events[1]["data"]["type"] == "sniper"
    trigger = events[2]["data"]["trigger"]
    assert (trigger["type"], trigger["pool"], trigger["venue"]) == ("sniper", made["pool"], "raydium_cpmm")
    floor = -(-25 * NEW6 * NEW6 // 1_200_000)  # 25 USDT at 1.2 USDT per NEW, in NEW base units
    assert int(trigger["minAmountOut"].replace(".", "")) == floor
    route = events[3]["data"]["route"]
    assert [leg["pool"] for leg in route["legs"]] == [made["pool"]]
    assert int(route["minAmountOutRaw"]) >= floor  # the chain enforces maxPrice
    assert int(events[-1]["data"]["amountOutRaw"]) >= floor
    submitted = next(e for e in events if e["status"] == "submitted")
    swaps = [s for s in await sim(stack, "simSwaps", [{"memoPrefix": f"oe:{sniper}"}])]
    assert len(swaps) == 1
    from_open_ms = (at(submitted) - open_at) * 1000
    from_create_ms = (at(submitted) - created_at) * 1000
    steps = ", ".join(f"{e['status']} +{(at(e) - open_at) * 1000:.0f} ms" for e in events[2:])
    print(
        f"\nsniper ({steps}): pool created in slot {made['slot']}, open from slot {open_slot} (open_time "
        f"{made['openTime']}), swap landed in slot {swaps[0]['slot']}; submitted {from_open_ms:.0f} ms after "
        f"the pool could trade, {from_create_ms:.0f} ms after the creating transaction"
    )
    assert swaps[0]["slot"] - open_slot <= 2
