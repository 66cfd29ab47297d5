"""Limit and stop orders at the edge, on a real gateway, persistence and Redis (no worker: what is
accepted stays countable): the type, the exact integer price and the expiry are stored; every bad
input is a 422 naming its field and stores nothing; POST /api/orders/{id}/cancel cancels an open order
(once), refuses any other with 409 naming its status, and another key's order is a 404."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import websockets

from common.grpc_client import open_channel
from orderengine.v1 import orders_pb2, orders_pb2_grpc
from tests.gateway.edgeutil import Edge, body_of, edge_and_client

KEY_ONE, KEY_TWO = "key-one-0123456789", "key-two-0123456789"
ONE = {"Authorization": f"Bearer {KEY_ONE}"}
TWO = {"Authorization": f"Bearer {KEY_TWO}"}


def stored(edge: Edge, order_id: str) -> tuple[str, int | None, datetime | None, str]:
    with psycopg.connect(edge.settings.database_url) as conn:
        row = conn.execute(
            "SELECT order_type, trigger_price, expires_at, status FROM orders WHERE id = %s", (order_id,)
        ).fetchone()
    assert row is not None
    return row[0], None if row[1] is None else int(row[1]), row[2], row[3]


async def open_it(edge: Edge, order_id: str) -> None:
    """What the worker does with a new resting order: pending → open."""
    channel = open_channel(edge.settings.persistence_addr)
    try:
        stub = orders_pb2_grpc.OrdersStub(channel)
        await stub.AppendEvent(
            orders_pb2.NewEvent(order_id=order_id, seq=2, status=orders_pb2.ORDER_STATUS_OPEN), timeout=5
        )
    finally:
        await channel.close()


async def test_limit_and_stop_orders_are_stored_exactly(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings) as (edge, client):
        before = time.time()
        r = await client.post(
            "/api/orders/execute", json=body_of(type="limit", limitPrice="151.25", expiresInS=60)
        )
        assert r.status_code == 202, r.text
        kind, price, expires, status = stored(edge, r.json()["orderId"])
        assert (kind, price, status) == ("limit", 151_250_000, "pending")  # USDC base units per SOL
        assert expires is not None and before + 59 <= expires.timestamp() <= time.time() + 61

        at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
        r = await client.post(
            "/api/orders/execute",
            json=body_of(type="stop", stopPrice=140, expiresAt=at.isoformat().replace("+00:00", "Z")),
        )
        assert r.status_code == 202, r.text
        kind, price, expires, _ = stored(edge, r.json()["orderId"])
        assert (kind, price, expires) == ("stop", 140_000_000, at)

        r = await client.post("/api/orders/execute", json=body_of(type="limit", limitPrice="0.000001"))
        kind, price, expires, _ = stored(edge, r.json()["orderId"])
        week = edge.settings.order_max_expiry_s
        assert (kind, price) == ("limit", 1) and expires is not None
        assert abs(expires.timestamp() - (time.time() + week)) < 5  # no expiry given: the maximum
        shown = (await client.get(f"/api/orders/{r.json()['orderId']}")).json()
        assert (
            shown["type"] == "limit" and shown["limitPrice"] == "0.000001" and shown["limitPriceRaw"] == "1"
        )
        assert shown["expiresAt"].endswith("Z")
        r = await client.post("/api/orders/execute", json=body_of(type="market"))
        assert r.status_code == 202 and stored(edge, r.json()["orderId"])[:3] == ("market", None, None)


async def test_bad_resting_input_names_the_field_and_stores_nothing(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings) as (edge, client):
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        far = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        cases: list[tuple[dict[str, Any], str]] = [
            ({"type": "limit"}, "limitPrice"),
            ({"type": "stop"}, "stopPrice"),
            ({"type": "limit", "limitPrice": "0"}, "limitPrice"),
            ({"type": "limit", "limitPrice": "-1"}, "limitPrice"),
            ({"type": "limit", "limitPrice": "151.1234567"}, "limitPrice"),  # USDC has 6 decimals
            ({"type": "limit", "limitPrice": "abc"}, "limitPrice"),
            ({"type": "limit", "limitPrice": True}, "limitPrice"),
            ({"type": "limit", "limitPrice": "150", "stopPrice": "140"}, "stopPrice"),
            ({"type": "stop", "stopPrice": "140", "limitPrice": "150"}, "limitPrice"),
            ({"limitPrice": "150"}, "limitPrice"),  # a market order has no price
            ({"expiresInS": 60}, "expiresInS"),
            ({"type": "fok"}, "type"),
            ({"type": 1}, "type"),
            ({"type": "limit", "limitPrice": "150", "expiresAt": past}, "expiresAt"),
            ({"type": "limit", "limitPrice": "150", "expiresAt": far}, "expiresAt"),
            ({"type": "limit", "limitPrice": "150", "expiresAt": "tomorrow"}, "expiresAt"),
            ({"type": "limit", "limitPrice": "150", "expiresAt": "2030-01-01T00:00:00"}, "expiresAt"),
            ({"type": "limit", "limitPrice": "150", "expiresInS": 0}, "expiresInS"),
            ({"type": "limit", "limitPrice": "150", "expiresInS": 10**9}, "expiresInS"),
            ({"type": "limit", "limitPrice": "150", "expiresInS": 60, "expiresAt": far}, "expiresAt"),
        ]
        for changes, field in cases:
            r = await client.post("/api/orders/execute", json=body_of(**changes))
            assert r.status_code == 422, (changes, r.text)
            assert r.json()["error"]["field"] == field, (changes, r.json())
        r = await client.post("/api/quotes", json=body_of(type="limit", limitPrice="150"))
        assert r.status_code == 422 and r.json()["error"]["field"] == "type"  # a quote is a market order's
        assert edge.orders_stored() == 0 and await edge.jobs_queued() == 0


async def test_cancel_an_open_order_once(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, API_KEYS=f"{KEY_ONE},{KEY_TWO}") as (edge, client):
        body = body_of(type="limit", limitPrice="999", expiresInS=600)
        order_id = (await client.post("/api/orders/execute", json=body, headers=ONE)).json()["orderId"]
        pending = await client.post(f"/api/orders/{order_id}/cancel", json={}, headers=ONE)
        assert pending.status_code == 409  # not open yet: only an open order can be cancelled
        assert (
            pending.json()["error"]["code"] == "not_open" and "pending" in pending.json()["error"]["message"]
        )
        await open_it(edge, order_id)
        other = await client.post(f"/api/orders/{order_id}/cancel", json={}, headers=TWO)
        assert other.status_code == 404 and other.json()["error"]["field"] == "orderId"
        r = await client.post(f"/api/orders/{order_id}/cancel", json={}, headers=ONE)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled" and r.json()["orderId"] == order_id
        again = await client.post(f"/api/orders/{order_id}/cancel", json={}, headers=ONE)
        assert again.status_code == 409 and "cancelled" in again.json()["error"]["message"]
        assert again.json()["error"]["field"] == "orderId"
        events = (await client.get(f"/api/orders/{order_id}", headers=ONE)).json()["events"]
        assert [e["status"] for e in events] == ["pending", "open", "cancelled"]
        for path in ("00000000-0000-4000-8000-000000000000", "nope"):
            r = await client.post(f"/api/orders/{path}/cancel", json={}, headers=ONE)
            assert r.status_code == 404 and r.json()["error"]["field"] == "orderId"


async def test_cancel_on_the_websocket(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings) as (edge, client):
        body = body_of(type="stop", stopPrice="1", expiresInS=600)
        order_id = (await client.post("/api/orders/execute", json=body)).json()["orderId"]
        async with websockets.connect(edge.ws_url) as ws:
            await ws.send(json.dumps({"action": "cancel", "orderId": order_id}))
            refused = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert (refused["type"], refused["code"], refused["field"]) == ("error", "not_open", "orderId")
            assert refused["orderId"] == order_id
            await open_it(edge, order_id)
            await ws.send(json.dumps({"action": "cancel", "orderId": order_id}))
            done = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert done == {"type": "cancelled", "orderId": order_id}
            await ws.send(json.dumps({"action": "cancel", "orderId": "x"}))
            bad = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert bad["code"] == "invalid_order_id" and bad["field"] == "orderId"
        assert stored(edge, order_id)[3] == "cancelled"
