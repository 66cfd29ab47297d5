"""Exact-out end to end, through the processes `make run` starts: an order with `amountOut` (HTTP,
and a quote with amountOut executed by its quoteId) is routed on the venue needing the least input,
swapped with the programs' exact-out instructions, and confirms having delivered EXACTLY the asked
amount while spending no more than its route's max-in; the chain's own record of the swap, the
confirmed event, the order and Postgres all agree."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from common.stack import Stack
from tests.stackutil import running_stack
from tests.test_e2e import LIFECYCLE, follow

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e-exact-out-logs")) as s:
        yield s


async def chain_swaps(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"http://127.0.0.1:{stack.settings.sim_port}",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "simSwaps",
                "params": [{"memoPrefix": f"oe:{order_id}"}],
            },
        )
    result: list[dict[str, Any]] = r.json()["result"]
    return result


def stored(stack: Stack, order_id: str) -> tuple[int, int, int, int]:
    with psycopg.connect(stack.settings.database_url) as conn:
        row = conn.execute(
            "SELECT amount_in, exact_amount_out, amount_out, amount_in_spent FROM orders WHERE id = %s",
            (order_id,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


async def check_exact(stack: Stack, client: httpx.AsyncClient, order_id: str, want: int) -> dict[str, Any]:
    events = (await follow(stack, [order_id]))[order_id]
    assert [e["status"] for e in events] == LIFECYCLE, events
    route = events[1]["data"]["route"]
    assert route["exactOut"] is True and int(route["amountOutRaw"]) == want
    max_in = int(route["maxAmountInRaw"])
    confirmed = events[-1]["data"]
    spent = int(confirmed["amountInRaw"])
    assert int(confirmed["amountOutRaw"]) == want  # exactly what was asked
    assert 0 < spent <= max_in
    # what the route was quoted to need, give or take what the pool moved since its snapshot (a DLMM
    # pair's variable fee decays with time, another order's swap may land first): never above max-in
    quoted = sum(int(leg["amountInRaw"]) for leg in route["legs"])
    assert abs(spent - quoted) * 10_000 <= quoted * 100
    (swap,) = await chain_swaps(stack, order_id)
    assert int(swap["amountOut"]) == want and swap["signature"] == confirmed["txHash"]
    order = (await client.get(f"/api/orders/{order_id}")).json()
    assert order["status"] == "confirmed" and order["exactOut"] is True
    assert order["targetAmountOutRaw"] == order["amountOutRaw"] == str(want)
    assert order["amountInRaw"] == order["amountInSpentRaw"] == str(spent)
    assert stored(stack, order_id) == (0, want, want, spent)
    return route


async def test_an_exact_out_order_delivers_exactly_the_asked_amount(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        r = await client.post(
            "/api/orders/execute",
            json={"tokenIn": "SOL", "tokenOut": "USDC", "amountOut": "12.345678", "slippageBps": 100},
        )
        assert r.status_code == 202, r.text
        route = await check_exact(stack, client, r.json()["orderId"], 12_345_678)
        for leg in route["legs"]:
            assert int(leg["maxAmountInRaw"]) == -(-int(leg["amountInRaw"]) * 10_100 // 10_000)

        r = await client.post(
            "/api/orders/execute", json={"tokenIn": "USDC", "tokenOut": "SOL", "amountOut": "0.5"}
        )
        assert r.status_code == 202, r.text
        await check_exact(stack, client, r.json()["orderId"], 500_000_000)


async def test_an_exact_out_quote_executes_exactly_its_route(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        r = await client.post("/api/quotes", json={"tokenIn": "USDC", "tokenOut": "SOL", "amountOut": "0.25"})
        assert r.status_code == 201, r.text
        quote = r.json()
        executed = await client.post("/api/orders/execute", json={"quoteId": quote["quoteId"]})
        assert executed.status_code == 202, executed.text
        route = await check_exact(stack, client, executed.json()["orderId"], 250_000_000)
        assert route["legs"] == quote["route"]["legs"] and route["maxAmountInRaw"] == quote["maxAmountInRaw"]
