"""Exact-out at the edge, on a real gateway with the real router, persistence and Redis (no worker:
tests/test_e2e_exact_out.py runs the whole path): `amountOut` (a decimal of tokenOut) instead of
`amount` stores an exact-out order (amount_in 0, the target in base units) over HTTP and WebSocket; a
quote with amountOut answers the input it needs and its max-in, and executing it stores that
exact-out route; amount with amountOut, neither, a bad amountOut, or amountOut on a limit order is a
422 naming the field and stores nothing; the per-order cap of the input token holds against the
route's max-in."""

from __future__ import annotations

import asyncio
import json

import psycopg
import websockets

from orderengine.v1 import types_pb2
from tests.gateway.edgeutil import ORDER, body_of, edge_and_client

EXACT = {k: v for k, v in ORDER.items() if k != "amount"}


def stored(database_url: str, order_id: str) -> tuple[int, int | None, bytes | None]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT amount_in, exact_amount_out, quoted_route FROM orders WHERE id = %s", (order_id,)
        ).fetchone()
    assert row is not None
    return int(row[0]), None if row[1] is None else int(row[1]), None if row[2] is None else bytes(row[2])


async def test_an_exact_out_order_and_quote_are_stored_as_asked(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, router=True) as (edge, client):
        r = await client.post("/api/orders/execute", json={**EXACT, "amountOut": "12.5"})
        assert r.status_code == 202, r.text
        order_id = r.json()["orderId"]
        assert stored(edge.settings.database_url, order_id) == (0, 12_500_000, None)
        shown = (await client.get(f"/api/orders/{order_id}")).json()
        assert shown["exactOut"] is True and shown["targetAmountOutRaw"] == "12500000"
        assert shown["targetAmountOut"] == "12.5" and shown["amountIn"] is None  # nothing spent yet

        q = await client.post("/api/quotes", json={**EXACT, "amountOut": "15", "slippageBps": 100})
        assert q.status_code == 201, q.text
        quote = q.json()
        assert quote["exactOut"] is True and quote["amountOutRaw"] == quote["minAmountOutRaw"] == "15000000"
        needed = {qq["venue"]: int(qq.get("amountInRaw", 0)) for qq in quote["quotes"]}
        assert quote["route"]["exactOut"] is True
        legs = quote["route"]["legs"]
        assert sum(int(leg["amountOutRaw"]) for leg in legs) == 15_000_000
        amount_in = sum(int(leg["amountInRaw"]) for leg in legs)
        assert int(quote["amountInRaw"]) == amount_in > 0
        assert int(quote["maxAmountInRaw"]) == sum(
            -(-int(leg["amountInRaw"]) * 10_100 // 10_000) for leg in legs
        )
        assert len(legs) > 1 or amount_in == min(v for v in needed.values() if v)

        executed = await client.post("/api/orders/execute", json={"quoteId": quote["quoteId"]})
        assert executed.status_code == 202, executed.text
        amount_in_col, target, raw = stored(edge.settings.database_url, executed.json()["orderId"])
        assert (amount_in_col, target) == (0, 15_000_000) and raw is not None
        route = types_pb2.Route.FromString(raw)
        assert route.exact_out and route.amount_out == 15_000_000
        assert route.max_amount_in == int(quote["maxAmountInRaw"])

        async with websockets.connect(edge.ws_url) as ws:
            await ws.send(json.dumps({"action": "execute", **EXACT, "amountOut": "0.25"}))
            accepted = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert accepted["type"] == "accepted", accepted
            assert stored(edge.settings.database_url, accepted["orderId"])[:2] == (0, 250_000)
            await ws.send(json.dumps({"action": "execute", **body_of(amountOut="1")}))
            err = json.loads(await asyncio.wait_for(ws.recv(), 5))
            while err["type"] != "error":  # the accepted order's subscription and events come first
                err = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert err["field"] == "amountOut"
        assert edge.orders_stored() == 3


async def test_bad_exact_out_input_is_refused_naming_the_field(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, router=True) as (edge, client):
        cases = [
            (body_of(amountOut="1"), "amountOut", "conflicting_fields"),
            (EXACT, "amount", "missing_field"),
            ({**EXACT, "amountOut": "0"}, "amountOut", "invalid_amount"),
            ({**EXACT, "amountOut": "-3"}, "amountOut", "invalid_amount"),
            ({**EXACT, "amountOut": "1.0000001"}, "amountOut", "invalid_amount"),  # USDC has 6 decimals
            ({**EXACT, "amountOut": True}, "amountOut", "invalid_amount"),
            ({**EXACT, "amountOut": "1", "type": "limit", "limitPrice": "150"}, "amountOut", "unsupported"),
        ]
        for body, field, code in cases:
            for path in ("/api/orders/execute", "/api/quotes"):
                if path == "/api/quotes" and "type" in body:
                    continue
                r = await client.post(path, json=body)
                assert r.status_code == 422, (body, r.text)
                assert r.json()["error"]["field"] == field and r.json()["error"]["code"] == code, r.text
        assert edge.orders_stored() == 0 and await edge.jobs_queued() == 0


async def test_the_per_order_cap_holds_against_the_max_in(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, router=True, MAX_ORDER_AMOUNT="SOL=1") as (edge, client):
        ok = await client.post("/api/orders/execute", json={**EXACT, "amountOut": "10"})
        assert ok.status_code == 202, ok.text  # ~0.07 SOL
        over = await client.post("/api/orders/execute", json={**EXACT, "amountOut": "400"})  # ~2.7 SOL
        assert over.status_code == 422 and over.json()["error"]["code"] == "amount_too_large", over.text
        quote = await client.post("/api/quotes", json={**EXACT, "amountOut": "400"})
        assert quote.status_code == 422 and quote.json()["error"]["code"] == "amount_too_large"
        assert edge.orders_stored() == 1
