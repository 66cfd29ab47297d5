"""Quote, then execute that quote, on a real gateway with the real router, persistence and Redis
(no worker: what an execute queues stays countable; the worker's side is tests/worker/test_quoted.py
and the whole path tests/test_e2e.py).

POST /api/quotes answers both venues' quotes, the route, its price impact, min-out and fee with a
quoteId; executing it stores an order that carries exactly that route; a quote executes at most once;
an unknown, expired or another key's quote is a 422 naming quoteId and stores nothing; the price-impact
guard refuses at quote time; the same works on the WebSocket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
import websockets

from orderengine.v1 import types_pb2
from tests.gateway.edgeutil import body_of, edge_and_client

KEY_ONE, KEY_TWO = "key-one-0123456789", "key-two-0123456789"
ONE = {"Authorization": f"Bearer {KEY_ONE}"}
TWO = {"Authorization": f"Bearer {KEY_TWO}"}


def stored_spec(database_url: str, order_id: str) -> tuple[bytes | None, str, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT quoted_route, quote_id, max_price_impact_bps FROM orders WHERE id = %s", (order_id,)
        ).fetchone()
    assert row is not None
    return (None if row[0] is None else bytes(row[0]), row[1], row[2])


async def test_a_quote_answers_both_venues_and_executes_exactly_once(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, router=True, API_KEYS=f"{KEY_ONE},{KEY_TWO}") as (
        edge,
        client,
    ):
        r = await client.post("/api/quotes", json=body_of(amount="2", slippageBps=75), headers=ONE)
        assert r.status_code == 201, r.text
        quote = r.json()
        assert {q["venue"] for q in quote["quotes"]} == {"raydium_cpmm", "meteora_dlmm"}
        assert all(int(q["amountOutRaw"]) > 0 and int(q["feeRaw"]) > 0 for q in quote["quotes"])
        route = quote["route"]
        assert route["legs"] and quote["amountOutRaw"] == route["amountOutRaw"]
        assert int(quote["minAmountOutRaw"]) == sum(int(leg["minAmountOutRaw"]) for leg in route["legs"])
        assert int(quote["minAmountOutRaw"]) < int(quote["amountOutRaw"])
        assert quote["priceImpactBps"] == max(leg["priceImpactBps"] for leg in route["legs"])
        assert int(quote["feeRaw"]) == sum(int(leg["feeRaw"]) for leg in route["legs"]) > 0
        assert quote["slippageBps"] == 75 and quote["maxPriceImpactBps"] == 1000  # the server default
        assert quote["amountInRaw"] == "2000000000" and quote["expiresAt"].endswith("Z")
        assert edge.orders_stored() == 0 and await edge.jobs_queued() == 0  # a quote is not an order

        executed = await client.post("/api/orders/execute", json={"quoteId": quote["quoteId"]}, headers=ONE)
        assert executed.status_code == 202, executed.text
        order_id = executed.json()["orderId"]
        raw, quote_id, impact = stored_spec(edge.settings.database_url, order_id)
        assert raw is not None and quote_id == quote["quoteId"] and impact == 1000
        legs = [
            {"pool": leg.pool, "amountInRaw": str(leg.amount_in), "minAmountOutRaw": str(leg.min_amount_out)}
            for leg in types_pb2.Route.FromString(raw).legs
        ]
        assert legs == [
            {k: leg[k] for k in ("pool", "amountInRaw", "minAmountOutRaw")} for leg in route["legs"]
        ]
        # executing the same quote again (by either edge) is the same order: a quote executes once
        again = await client.post("/api/orders/execute", json={"quoteId": quote["quoteId"]}, headers=ONE)
        assert again.status_code == 202 and again.json()["orderId"] == order_id
        assert edge.orders_stored() == 1 and await edge.jobs_queued() == 1
        shown = (await client.get(f"/api/orders/{order_id}", headers=ONE)).json()
        assert shown["quoteId"] == quote["quoteId"] and shown["amountInRaw"] == "2000000000"

        # another key's quote id is unknown to this key, as another key's order is
        other = await client.post("/api/orders/execute", json={"quoteId": quote["quoteId"]}, headers=TWO)
        assert other.status_code == 422
        assert (
            other.json()["error"]["code"] == "unknown_quote" and other.json()["error"]["field"] == "quoteId"
        )
        assert edge.orders_stored() == 1


async def test_unknown_expired_and_malformed_quotes_are_refused_naming_the_field(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, router=True, QUOTE_TTL_S="1") as (edge, client):
        quote = (await client.post("/api/quotes", json=body_of())).json()
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"quoteId": "00000000-0000-4000-8000-000000000000"}, "unknown_quote", "quoteId"),
            ({"quoteId": "not-a-quote"}, "invalid_quote_id", "quoteId"),
            ({"quoteId": 7}, "invalid_quote_id", "quoteId"),
            ({"quoteId": quote["quoteId"], "amount": "3"}, "unknown_field", "amount"),
        ]
        for body, code, field in cases:
            r = await client.post("/api/orders/execute", json=body)
            assert r.status_code == 422, (body, r.text)
            assert (r.json()["error"]["code"], r.json()["error"]["field"]) == (code, field), body
        await asyncio.sleep(1.1)
        expired = await client.post("/api/orders/execute", json={"quoteId": quote["quoteId"]})
        assert expired.status_code == 422
        assert expired.json()["error"]["code"] == "quote_expired"
        assert expired.json()["error"]["field"] == "quoteId"
        assert edge.orders_stored() == 0 and await edge.jobs_queued() == 0


async def test_the_price_impact_guard_refuses_at_quote_time(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, router=True) as (edge, client):
        small = (await client.post("/api/quotes", json=body_of(amount="1"))).json()
        big = await client.post("/api/quotes", json=body_of(amount="500"))
        assert big.status_code == 201, big.text
        impact = big.json()["priceImpactBps"]
        assert impact > small["priceImpactBps"]
        refused = await client.post("/api/quotes", json=body_of(amount="500", maxPriceImpactBps=impact - 1))
        assert refused.status_code == 422
        err = refused.json()["error"]
        assert err["code"] == "price_impact_too_high" and err["field"] == "maxPriceImpactBps"
        assert str(impact) in err["message"]
        for bad in (0, 10_001, "5", 1.5, True):
            r = await client.post("/api/quotes", json=body_of(maxPriceImpactBps=bad))
            assert r.status_code == 422 and r.json()["error"]["field"] == "maxPriceImpactBps", bad
            r = await client.post("/api/orders/execute", json=body_of(maxPriceImpactBps=bad))
            assert r.status_code == 422 and r.json()["error"]["field"] == "maxPriceImpactBps", bad
        # a market order carries its own bound (or the server's) to the worker
        placed = await client.post("/api/orders/execute", json=body_of(maxPriceImpactBps=42))
        default = await client.post("/api/orders/execute", json=body_of(amount="1.25"))
        assert placed.status_code == default.status_code == 202
        assert stored_spec(edge.settings.database_url, placed.json()["orderId"]) == (None, "", 42)
        assert stored_spec(edge.settings.database_url, default.json()["orderId"]) == (None, "", 1000)
        # bad quote bodies: the market order's rules, field named
        r = await client.post("/api/quotes", json=body_of(amount="-1"))
        assert r.status_code == 422 and r.json()["error"]["field"] == "amount"
        # an amount that buys 0 base units of tokenOut on every venue: refused at routing, naming it
        r = await client.post("/api/quotes", json=body_of(amount="0.000000001"))
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert (err["code"], err["field"]) == ("amount_too_small", "amount"), err
        assert err["message"].startswith("the amount is too small: no venue pays anything for it"), err
        assert edge.orders_stored() == 2


async def test_quote_and_execute_it_on_the_websocket(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, router=True) as (edge, _client):
        async with websockets.connect(edge.ws_url) as ws:
            await ws.send(json.dumps({"action": "quote", **body_of(amount="1.5")}))
            quote = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert quote["type"] == "quote" and quote["quoteId"] and quote["route"]["legs"]
            await ws.send(json.dumps({"action": "quote", **body_of(amount="x")}))
            err = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert err["type"] == "error" and err["field"] == "amount"
            await ws.send(
                json.dumps({"action": "execute", "quoteId": quote["quoteId"], "idempotencyKey": "k"})
            )
            accepted = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert accepted["type"] == "accepted", accepted
            raw, quote_id, _ = stored_spec(edge.settings.database_url, accepted["orderId"])
            assert raw is not None and quote_id == quote["quoteId"]


async def test_executing_a_quote_again_counts_once_against_the_daily_cap(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, router=True, API_KEYS=KEY_ONE, DAILY_NOTIONAL_CAP="SOL=3") as (
        edge,
        client,
    ):
        quote = (await client.post("/api/quotes", json=body_of(amount="2"), headers=ONE)).json()
        first = await client.post("/api/orders/execute", json={"quoteId": quote["quoteId"]}, headers=ONE)
        again = await client.post("/api/orders/execute", json={"quoteId": quote["quoteId"]}, headers=ONE)
        assert first.status_code == again.status_code == 202, again.text  # 2 + 2 would pass the cap
        assert first.json()["orderId"] == again.json()["orderId"]
        over = await client.post("/api/orders/execute", json=body_of(amount="1.5"), headers=ONE)
        assert over.status_code == 429 and over.json()["error"]["code"] == "daily_limit_exceeded"
        assert edge.orders_stored() == 1
