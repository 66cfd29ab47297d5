"""Sniper orders at the edge, on a real gateway, persistence and Redis (no worker): the type, the
minimum liquidity and the price bound are stored exactly as integers of tokenIn base units, with an
expiry (the maximum when none is given); every bad input is a 422 naming its field and stores
nothing; over the WebSocket the same rules hold."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import websockets

from tests.gateway.edgeutil import Edge, body_of, edge_and_client


def stored(edge: Edge, order_id: str) -> tuple[Any, ...]:
    with psycopg.connect(edge.settings.database_url) as conn:
        row = conn.execute(
            "SELECT order_type, min_liquidity, max_price, trigger_price, expires_at FROM orders "
            "WHERE id = %s",
            (order_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


async def test_sniper_orders_are_stored_exactly(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings) as (edge, client):
        before = time.time()
        # SOL → USDC: at least 50.5 SOL in the pool, at most 0.007 SOL per USDC
        r = await client.post(
            "/api/orders/execute", json=body_of(type="sniper", minLiquidity="50.5", maxPrice="0.007")
        )
        assert r.status_code == 202, r.text
        kind, min_liquidity, max_price, trigger, expires = stored(edge, r.json()["orderId"])
        assert (kind, int(min_liquidity), int(max_price), trigger) == (
            "sniper",
            50_500_000_000,
            7_000_000,
            None,
        )
        default = edge.settings.order_max_expiry_s
        assert before + default - 1 <= expires.timestamp() <= time.time() + default + 1
        view = (await client.get(f"/api/orders/{r.json()['orderId']}")).json()
        assert (view["type"], view["minLiquidity"], view["maxPriceRaw"]) == ("sniper", "50.5", "7000000")

        r = await client.post(
            "/api/orders/execute", json=body_of(type="sniper", minLiquidity=3, expiresInS=60)
        )
        assert r.status_code == 202, r.text
        kind, min_liquidity, max_price, _, expires = stored(edge, r.json()["orderId"])
        assert (kind, int(min_liquidity), max_price) == ("sniper", 3 * 10**9, None)
        assert expires.timestamp() <= time.time() + 61


async def test_bad_sniper_input_names_the_field_and_stores_nothing(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings) as (edge, client):
        cases: list[tuple[dict[str, Any], str]] = [
            ({"type": "sniper"}, "minLiquidity"),
            ({"type": "sniper", "minLiquidity": "0"}, "minLiquidity"),
            ({"type": "sniper", "minLiquidity": "-5"}, "minLiquidity"),
            ({"type": "sniper", "minLiquidity": "1.0000000001"}, "minLiquidity"),  # SOL has 9 decimals
            ({"type": "sniper", "minLiquidity": True}, "minLiquidity"),
            ({"type": "sniper", "minLiquidity": "5", "maxPrice": "0"}, "maxPrice"),
            ({"type": "sniper", "minLiquidity": "5", "maxPrice": "abc"}, "maxPrice"),
            ({"type": "sniper", "minLiquidity": "5", "maxPrice": "0.0000000001"}, "maxPrice"),
            ({"type": "sniper", "minLiquidity": "5", "limitPrice": "150"}, "limitPrice"),
            ({"type": "sniper", "minLiquidity": "5", "expiresInS": 0}, "expiresInS"),
            ({"minLiquidity": "5"}, "minLiquidity"),  # a market order has none
            ({"type": "limit", "limitPrice": "150", "maxPrice": "1"}, "maxPrice"),
        ]
        for changes, field in cases:
            r = await client.post("/api/orders/execute", json=body_of(**changes))
            assert r.status_code == 422, (changes, r.text)
            assert r.json()["error"]["field"] == field, (changes, r.json())
        r = await client.post("/api/quotes", json=body_of(type="sniper", minLiquidity="5"))
        assert r.status_code == 422
        async with websockets.connect(edge.ws_url) as ws:
            await ws.send(json.dumps({"action": "execute", **body_of(type="sniper", maxPrice="1")}))
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error" and reply["field"] == "minLiquidity", reply
        assert edge.orders_stored() == 0 and await edge.jobs_queued() == 0
