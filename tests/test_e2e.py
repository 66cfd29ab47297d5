"""End to end: all processes as subprocesses (as `make run` starts them), orders over HTTP,
followed over WebSocket, stored in Postgres."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import psycopg
import pytest
import websockets

from common.amounts import format_amount
from common.b58 import b58decode
from common.stack import Stack
from tests.stackutil import running_stack

pytestmark = pytest.mark.e2e

LIFECYCLE = ["pending", "routing", "building", "submitted", "confirmed"]
NATIVE = "So11111111111111111111111111111111111111112"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e-logs")) as s:
        yield s


def ws_url(stack: Stack) -> str:
    return stack.url.replace("http://", "ws://") + "/api/orders/ws"


async def follow(stack: Stack, order_ids: list[str], timeout: float = 30.0) -> dict[str, list[dict]]:
    """Subscribes to every order on one socket and collects messages until each is terminal."""
    seen: dict[str, list[dict]] = {oid: [] for oid in order_ids}
    async with websockets.connect(ws_url(stack)) as ws:
        for oid in order_ids:
            await ws.send(json.dumps({"action": "subscribe", "orderId": oid, "afterSeq": 0}))
        done: set[str] = set()
        async with asyncio.timeout(timeout):
            while len(done) < len(order_ids):
                msg = json.loads(await ws.recv())
                if msg["type"] != "status":
                    continue
                seen[msg["orderId"]].append(msg)
                if msg["status"] in ("confirmed", "failed"):
                    done.add(msg["orderId"])
    return seen


async def test_twenty_concurrent_orders_confirm_with_gapless_events(stack: Stack) -> None:
    bodies = [
        {"tokenIn": "SOL", "tokenOut": "USDC", "amount": f"{1 + i % 5}.{i:02d}", "slippageBps": 100}
        if i % 2 == 0
        else {"tokenIn": "USDC", "tokenOut": "SOL", "amount": str(100 + i), "slippageBps": 100}
        for i in range(20)
    ]
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        responses = await asyncio.gather(*(client.post("/api/orders/execute", json=b) for b in bodies))
        for r in responses:
            assert r.status_code == 202, r.text
            doc = r.json()
            assert doc["status"] == "pending"
            assert doc["wsUrl"] == f"/api/orders/ws?orderId={doc['orderId']}"
        order_ids = [r.json()["orderId"] for r in responses]
        seen = await follow(stack, order_ids)
        for oid in order_ids:
            events = seen[oid]
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), events
            assert [e["status"] for e in events] == LIFECYCLE, events
            routing = events[1]["data"]
            assert {q["venue"] for q in routing["quotes"]} == {"raydium_cpmm", "meteora_dlmm"}
            assert routing["route"]["legs"]
            confirmed = events[-1]["data"]
            assert confirmed["txHash"] == events[3]["data"]["signature"]
            assert confirmed["dex"] in ("raydium_cpmm", "meteora_dlmm", "split")
            assert int(confirmed["amountOutRaw"]) >= int(routing["route"]["minAmountOutRaw"])
            order = (await client.get(f"/api/orders/{oid}")).json()
            assert order["status"] == "confirmed"
            assert order["txHash"] == confirmed["txHash"]
            assert order["amountOutRaw"] == confirmed["amountOutRaw"]
            assert [e["seq"] for e in order["events"]] == [1, 2, 3, 4, 5]
    with psycopg.connect(stack.settings.database_url) as conn:
        rows = conn.execute(
            "SELECT order_id, array_agg(status ORDER BY seq), array_agg(seq ORDER BY seq) "
            "FROM order_events WHERE order_id = ANY(%s::uuid[]) GROUP BY order_id",
            (order_ids,),
        ).fetchall()
    assert len(rows) == 20
    for _oid, statuses, seqs in rows:
        assert list(statuses) == LIFECYCLE
        assert list(seqs) == [1, 2, 3, 4, 5]


async def test_ws_execute_and_replay_after_reconnect(stack: Stack) -> None:
    async with websockets.connect(ws_url(stack)) as ws:
        await ws.send(
            json.dumps({"action": "execute", "tokenIn": "SOL", "tokenOut": "USDT", "amount": "0.5"})
        )
        accepted = json.loads(await ws.recv())
        assert accepted["type"] == "accepted"
        order_id = accepted["orderId"]
        first: list[dict] = []
        async with asyncio.timeout(20):
            while len(first) < 2:
                msg = json.loads(await ws.recv())
                if msg["type"] == "status":
                    first.append(msg)
    # reconnect with the last seq seen: the rest arrives, nothing twice
    rest = await follow_after(stack, order_id, first[-1]["seq"])
    statuses = [m["status"] for m in first + rest]
    assert statuses == LIFECYCLE
    assert [m["seq"] for m in first + rest] == [1, 2, 3, 4, 5]


async def follow_after(stack: Stack, order_id: str, after: int) -> list[dict]:
    out: list[dict] = []
    async with websockets.connect(f"{ws_url(stack)}?orderId={order_id}&afterSeq={after}") as ws:
        async with asyncio.timeout(20):
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "status":
                    out.append(msg)
                    if msg["status"] in ("confirmed", "failed"):
                        return out


async def test_bad_input_stores_nothing_and_queues_nothing(stack: Stack) -> None:
    import redis.asyncio as aioredis

    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        before = (await client.get("/api/orders", params={"limit": 200})).json()["orders"]
        bad = [
            (b"{", 400, None),
            (b"[]", 400, None),
            (json.dumps({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0"}).encode(), 422, "amount"),
            (json.dumps({"tokenIn": "XYZ", "tokenOut": "USDC", "amount": "1"}).encode(), 422, "tokenIn"),
            (json.dumps({"tokenIn": "SOL", "tokenOut": "SOL", "amount": "1"}).encode(), 422, "tokenOut"),
            (
                json.dumps(
                    {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 9000}
                ).encode(),
                422,
                "slippageBps",
            ),
            (b"x" * 20000, 413, None),
        ]
        for body, status, field in bad:
            resp = await client.post(
                "/api/orders/execute", content=body, headers={"content-type": "application/json"}
            )
            assert resp.status_code == status, (body[:50], resp.text)
            err = resp.json()["error"]
            assert err["code"] and err["message"]
            assert err.get("field") == field
        after = (await client.get("/api/orders", params={"limit": 200})).json()["orders"]
    assert len(after) == len(before)
    redis = aioredis.Redis.from_url(stack.settings.redis_url)
    try:
        stream_entries = await redis.xlen(f"{stack.settings.redis_prefix}:orders")
    finally:
        await redis.aclose()
    assert stream_entries == 0  # everything accepted earlier was acknowledged; nothing bad was queued


async def test_ws_bad_messages_keep_the_socket_open(stack: Stack) -> None:
    async with websockets.connect(ws_url(stack)) as ws:
        for raw, code in [
            ("not json", "invalid_json"),
            (json.dumps({"action": "dance"}), "unknown_action"),
            (
                json.dumps({"action": "subscribe", "orderId": "00000000-0000-4000-8000-000000000000"}),
                "unknown_order",
            ),
            (json.dumps({"action": "subscribe", "orderId": "nope"}), "invalid_order_id"),
            (
                json.dumps({"action": "execute", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "-1"}),
                "invalid_amount",
            ),
        ]:
            await ws.send(raw)
            async with asyncio.timeout(5):
                while True:
                    msg = json.loads(await ws.recv())
                    if msg["type"] == "error":
                        break
            assert msg["code"] == code
        await ws.send(
            json.dumps({"action": "execute", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.1"})
        )
        async with asyncio.timeout(5):
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "accepted":
                    break


async def test_history_pagination_and_page(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        page = (await client.get("/api/orders", params={"limit": 5})).json()
        assert len(page["orders"]) == 5 and page["nextCursor"]
        nxt = (await client.get("/api/orders", params={"limit": 5, "cursor": page["nextCursor"]})).json()
        ids = [o["orderId"] for o in page["orders"]] + [o["orderId"] for o in nxt["orders"]]
        assert len(set(ids)) == len(ids)
        created = [o["createdAt"] for o in page["orders"] + nxt["orders"]]
        assert created == sorted(created, reverse=True)
        confirmed = (await client.get("/api/orders", params={"status": "confirmed", "limit": 200})).json()
        assert all(o["status"] == "confirmed" for o in confirmed["orders"])
        assert (await client.get("/api/orders", params={"status": "bogus"})).status_code == 422
        assert (await client.get("/api/orders", params={"limit": "0"})).status_code == 422
        assert (await client.get("/api/orders", params={"cursor": "garbage"})).status_code == 422
        assert (await client.get("/api/orders/not-a-uuid")).status_code == 404
        assert (await client.get("/api/orders/00000000-0000-4000-8000-000000000000")).status_code == 404
        home = await client.get("/")
        assert home.status_code == 200 and "Execute order" in home.text
        markets = (await client.get("/api/markets")).json()
        assert {t["symbol"] for t in markets["tokens"]} >= {"SOL", "USDC"}
        health = await client.get("/healthz")
        assert health.status_code == 200


async def test_a_quote_executes_exactly_its_route(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        r = await client.post("/api/quotes", json={"tokenIn": "USDC", "tokenOut": "SOL", "amount": "150"})
        assert r.status_code == 201, r.text
        quote = r.json()
        executed = await client.post("/api/orders/execute", json={"quoteId": quote["quoteId"]})
        assert executed.status_code == 202, executed.text
        order_id = executed.json()["orderId"]
        events = (await follow(stack, [order_id]))[order_id]
        assert [e["status"] for e in events] == LIFECYCLE, events
        routing = events[1]["data"]
        assert routing["quoteId"] == quote["quoteId"]
        assert routing["route"]["legs"] == quote["route"]["legs"]
        assert int(events[-1]["data"]["amountOutRaw"]) >= int(quote["minAmountOutRaw"])
        order = (await client.get(f"/api/orders/{order_id}")).json()
        assert order["status"] == "confirmed" and order["quoteId"] == quote["quoteId"]


async def test_a_limit_order_rests_triggers_and_lands_at_its_limit_and_one_is_cancelled(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        quote = (
            await client.post("/api/quotes", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"})
        ).json()
        raw = int(quote["amountOutRaw"]) * 99 // 100  # 1 % under the market: reachable
        below = f"{raw // 10**6}.{raw % 10**6:06d}"
        placed = await client.post(
            "/api/orders/execute",
            json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "type": "limit", "limitPrice": below},
        )
        resting = await client.post(
            "/api/orders/execute",
            json={
                "tokenIn": "SOL",
                "tokenOut": "USDC",
                "amount": "1",
                "type": "limit",
                "limitPrice": "100000",
            },
        )
        assert placed.status_code == resting.status_code == 202, (placed.text, resting.text)
        order_id, resting_id = placed.json()["orderId"], resting.json()["orderId"]
        events = (await follow(stack, [order_id]))[order_id]
        assert [e["status"] for e in events] == ["pending", "open", "routing", *LIFECYCLE[1:]], events
        assert events[1]["data"]["limitPrice"] == below and events[2]["data"]["trigger"]["type"] == "limit"
        floor = int(events[1]["data"]["limitPriceRaw"])  # per whole SOL, and the order is 1 SOL
        assert int(events[-1]["data"]["amountOutRaw"]) >= floor
        assert int(events[3]["data"]["route"]["minAmountOutRaw"]) >= floor

        async with asyncio.timeout(10):  # the worker opens it; nothing triggers it at 100,000 USDC
            while (await client.get(f"/api/orders/{resting_id}")).json()["status"] != "open":
                await asyncio.sleep(0.05)
        cancelled = await client.post(f"/api/orders/{resting_id}/cancel", json={})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        refused = await client.post(f"/api/orders/{order_id}/cancel", json={})
        assert refused.status_code == 409 and "confirmed" in refused.json()["error"]["message"]


async def test_a_confirmed_order_carries_exactly_what_its_swap_cost(stack: Stack) -> None:
    """The confirmed event and the order show the swap's network fee, priority fee, rent and the
    wallet's balance change per mint, each exactly the chain's number: meta.fee split by the
    signatures and the compute budget the transaction carried, the wallet's USDC up by the amount
    out, its SOL down by the amount in plus the fees and the rent (getTransaction's balances)."""
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.5", "slippageBps": 100}
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        r = await client.post("/api/orders/execute", json=body)
        assert r.status_code == 202, r.text
        order_id = r.json()["orderId"]
        events = (await follow(stack, [order_id]))[order_id]
        assert [e["status"] for e in events] == LIFECYCLE, events
        confirmed = events[-1]["data"]
        costs = confirmed["costs"]
        order = (await client.get(f"/api/orders/{order_id}")).json()
        assert order["costs"] == costs
    rpc_url = f"http://127.0.0.1:{stack.env['SIM_PORT']}"
    async with httpx.AsyncClient(timeout=10) as chain:
        r = await chain.post(
            rpc_url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "getTransaction",
                "params": [
                    confirmed["txHash"],
                    {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"},
                ],
            },
        )
    tx = r.json()["result"]
    meta, message = tx["meta"], tx["transaction"]["message"]
    keys = message["accountKeys"]
    wallet = keys[0]
    signatures = len(tx["transaction"]["signatures"])
    budget = {}
    for ix in message["instructions"]:
        if keys[ix["programIdIndex"]] == "ComputeBudget111111111111111111111111111111":
            data = b58decode(ix["data"])
            budget[data[0]] = int.from_bytes(data[1:], "little")
    limit, price = budget[2], budget[3]
    assert costs["networkFeeRaw"] == str(5_000 * signatures)
    assert costs["priorityFeeRaw"] == str(-(-price * limit // 1_000_000))
    assert int(costs["networkFeeRaw"]) + int(costs["priorityFeeRaw"]) == meta["fee"]
    # the wallet's token accounts (owner = wallet in the token balances): USDC up by the amount
    # out; SOL (its lamports and wSOL accounts) down by the amount in, the fees and the rent
    balances = meta["preTokenBalances"] + meta["postTokenBalances"]
    usdc = next(t["mint"] for t in balances if t["owner"] == wallet and t["mint"] != NATIVE)
    wsol_accounts = {t["accountIndex"] for t in balances if t["owner"] == wallet and t["mint"] == NATIVE}

    def token(balances: list[dict], mint: str) -> int:
        return sum(
            int(t["uiTokenAmount"]["amount"]) for t in balances if t["owner"] == wallet and t["mint"] == mint
        )

    usdc_change = token(meta["postTokenBalances"], usdc) - token(meta["preTokenBalances"], usdc)
    sol_change = sum(meta["postBalances"][i] - meta["preBalances"][i] for i in {0, *wsol_accounts})
    changes = {c["mint"]: c for c in costs["balanceChanges"]}
    assert changes[usdc]["changeRaw"] == str(usdc_change) == confirmed["amountOutRaw"]
    assert changes[usdc]["symbol"] == "USDC"
    assert changes[NATIVE]["changeRaw"] == str(sol_change)
    fees = int(costs["networkFeeRaw"]) + int(costs["priorityFeeRaw"]) + int(costs["rentRaw"])
    assert -sol_change == 500_000_000 + fees
    assert changes[NATIVE]["change"] == "-" + format_amount(500_000_000 + fees, 9)
