"""The edge's doors (gateway/guard.py) on a real gateway, persistence and Redis: a real chain needs
API keys; POST must be JSON; a foreign Origin and an untrusted Host are refused; WebSocket
`execute` shares the HTTP rate limit; a key sees only its own orders; per-order and daily limits.
Every refusal stores nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from common.settings import ConfigError, Settings
from gateway.app import create_app
from gateway.guard import host_allowed, origin_allowed, owner_id
from tests.gateway.edgeutil import body_of, edge_and_client
from tests.gateway.test_app import ws_first

ONE, TWO = "key-one-0123456789", "key-two-0123456789"
KEYS = {"API_KEYS": f"{ONE},{TWO}"}


def test_a_real_chain_refuses_to_start_without_api_keys() -> None:
    for chain in ("devnet", "mainnet-beta", "custom"):
        with pytest.raises(ConfigError, match=f"API_KEYS: required when CHAIN={chain}"):
            create_app(Settings(chain=chain))
    with pytest.raises(ConfigError, match="GRPC_TOKENS: required when CHAIN=devnet"):
        create_app(Settings(chain="devnet", api_keys=(ONE,)))  # and service tokens too
    tokens = (("gateway", "gateway-token-0123456789"),)
    create_app(Settings(chain="devnet", api_keys=(ONE,), grpc_tokens=tokens))  # with both it starts
    create_app(Settings())  # the simulated chain stays open by default
    with pytest.raises(ConfigError, match="MAX_ORDER_AMOUNT: unknown token 'DOGE'"):
        create_app(Settings(max_order_amount=(("DOGE", "5"),)))


def test_owner_ids_do_not_reveal_the_key() -> None:
    assert owner_id(ONE) != owner_id(TWO) and len(owner_id(ONE)) == 32
    assert ONE not in owner_id(ONE) and owner_id(ONE) == owner_id(ONE)


def test_origin_and_host_rules() -> None:
    assert origin_allowed("http://127.0.0.1:3000", "127.0.0.1:3000", ())
    assert not origin_allowed("http://evil.example", "127.0.0.1:3000", ())
    assert not origin_allowed("null", "127.0.0.1:3000", ())
    assert origin_allowed("https://app.example", "127.0.0.1:3000", ("https://app.example",))
    assert host_allowed("anything:3000", ())
    assert host_allowed("api.example.com:443", ("*.example.com",))
    assert not host_allowed("evil.com", ("example.com", "*.example.com"))
    assert host_allowed("[::1]:3000", ("::1",))


async def test_post_must_be_json(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings) as (edge, client):
        raw = json.dumps(body_of())
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
            headers = {"Content-Type": content_type} if content_type else {}
            r = await client.post("/api/orders/execute", content=raw, headers=headers)
            assert r.status_code == 415, (content_type, r.text)
            assert r.json()["error"] == {
                "code": "unsupported_media_type",
                "message": "the body must be sent as application/json",
                "field": "Content-Type",
            }
        assert edge.orders_stored() == 0 and await edge.jobs_queued() == 0
        ok = await client.post(
            "/api/orders/execute", content=raw, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        assert ok.status_code == 202


async def test_a_foreign_origin_is_refused_on_post_and_websocket(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, CORS_ORIGINS="https://app.example") as (edge, client):
        host = edge.url.removeprefix("http://")
        evil = {"Origin": "https://evil.example"}
        r = await client.post("/api/orders/execute", json=body_of(), headers=evil)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_origin"
        assert await ws_first(edge.ws_url, headers=evil) == 4403
        assert await ws_first(edge.ws_url, headers={"Origin": "null"}) == 4403
        assert edge.orders_stored() == 0
        # the page's own origin, a listed origin, and no Origin at all (curl, bots) pass
        for headers in ({"Origin": f"http://{host}"}, {"Origin": "https://app.example"}, {}):
            r = await client.post("/api/orders/execute", json=body_of(), headers=headers)
            assert r.status_code == 202, (headers, r.text)
        async with websockets.connect(edge.ws_url, additional_headers={"Origin": f"http://{host}"}) as ws:
            await ws.send(json.dumps({"action": "nope"}))
            assert json.loads(await ws.recv())["code"] == "unknown_action"
        assert edge.orders_stored() == 3


async def test_an_untrusted_host_is_refused(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, TRUSTED_HOSTS="localhost,engine.example") as (edge, client):
        r = await client.get("/api/orders")  # Host: 127.0.0.1:<port>
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_host"
        assert (await client.get("/", headers={"Host": "evil.example"})).status_code == 400
        assert await ws_first(edge.ws_url) == 4400
        assert (await client.get("/healthz")).status_code == 200  # probes name no host
        r = await client.post("/api/orders/execute", json=body_of(), headers={"Host": "engine.example"})
        assert r.status_code == 202
        assert edge.orders_stored() == 1


async def test_a_websocket_execute_flood_is_throttled_with_the_http_bucket(make_settings) -> None:  # type: ignore[no-untyped-def]
    limits = {"RATE_LIMIT_PER_S": "1", "RATE_LIMIT_BURST": "3", **KEYS}
    async with edge_and_client(make_settings, **limits) as (edge, client):
        r = await client.post("/api/orders/execute", json=body_of(), headers={"X-API-Key": ONE})
        assert r.status_code == 202  # 1 of the burst of 3
        answers: list[dict[str, Any]] = []
        # the handshake takes the 2nd token; 20 executes follow as fast as the socket goes
        async with websockets.connect(f"{edge.ws_url}?apiKey={ONE}") as ws:
            for n in range(20):
                await ws.send(json.dumps({"action": "execute", **body_of(amount=str(n + 1))}))
            async with asyncio.timeout(10):
                while len([a for a in answers if a["type"] in ("accepted", "error")]) < 20:
                    answers.append(json.loads(await ws.recv()))
        accepted = [a for a in answers if a["type"] == "accepted"]
        limited = [a for a in answers if a["type"] == "error" and a["code"] == "rate_limited"]
        assert len(accepted) == 1 and len(limited) == 19, answers
        assert edge.orders_stored() == 2
        # the socket spent the HTTP bucket too
        assert (await client.get("/api/orders", headers={"X-API-Key": ONE})).status_code == 429
        assert (await client.get("/api/orders", headers={"X-API-Key": TWO})).status_code == 200


async def test_a_key_sees_only_its_own_orders(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, **KEYS) as (edge, client):
        one, two = {"X-API-Key": ONE}, {"X-API-Key": TWO}
        mine = (await client.post("/api/orders/execute", json=body_of(), headers=one)).json()["orderId"]
        theirs = (await client.post("/api/orders/execute", json=body_of(), headers=two)).json()["orderId"]
        assert (await client.get(f"/api/orders/{mine}", headers=one)).status_code == 200
        r = await client.get(f"/api/orders/{theirs}", headers=one)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        listed = (await client.get("/api/orders", headers=one)).json()["orders"]
        assert [o["orderId"] for o in listed] == [mine]
        # the WebSocket: another key's order is an unknown order, by query and by message
        got = await ws_first(f"{edge.ws_url}?orderId={theirs}&apiKey={ONE}")
        assert isinstance(got, dict) and got["type"] == "error" and got["code"] == "unknown_order", got
        got = await ws_first(f"{edge.ws_url}?apiKey={ONE}", send={"action": "subscribe", "orderId": theirs})
        assert isinstance(got, dict) and got["code"] == "unknown_order", got
        got = await ws_first(f"{edge.ws_url}?orderId={mine}&apiKey={ONE}")
        assert isinstance(got, dict) and got["type"] == "subscribed", got
        # idempotency keys are per key: the same key name by another key is another order
        k = {"Idempotency-Key": "shared-name"}
        a = await client.post("/api/orders/execute", json=body_of(), headers={**one, **k})
        b = await client.post("/api/orders/execute", json=body_of(amount="2"), headers={**two, **k})
        assert a.status_code == b.status_code == 202 and a.json()["orderId"] != b.json()["orderId"]
        again = await client.post("/api/orders/execute", json=body_of(), headers={**one, **k})
        assert again.json()["orderId"] == a.json()["orderId"]
        assert edge.orders_stored() == 4


async def test_max_order_amount_per_token(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, MAX_ORDER_AMOUNT="SOL=2,USDC=100.5") as (edge, client):
        assert (await client.post("/api/orders/execute", json=body_of(amount="2"))).status_code == 202
        r = await client.post("/api/orders/execute", json=body_of(amount="2.000000001"))
        assert r.status_code == 422 and r.json()["error"]["code"] == "amount_too_large"
        assert r.json()["error"]["field"] == "amount"
        usdc = {"tokenIn": "USDC", "tokenOut": "SOL"}
        assert (
            await client.post("/api/orders/execute", json=body_of(**usdc, amount="100.6"))
        ).status_code == 422
        got = await ws_first(edge.ws_url, send={"action": "execute", **body_of(amount="3")})
        assert isinstance(got, dict) and got["code"] == "amount_too_large"
        assert edge.orders_stored() == 1


async def test_daily_notional_cap_per_key(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, DAILY_NOTIONAL_CAP="SOL=5", **KEYS) as (edge, client):
        one, two = {"X-API-Key": ONE}, {"X-API-Key": TWO}
        k = {"Idempotency-Key": "first"}
        assert (
            await client.post("/api/orders/execute", json=body_of(amount="3"), headers={**one, **k})
        ).status_code == 202
        # a repeat of the same order is not counted again
        assert (
            await client.post("/api/orders/execute", json=body_of(amount="3"), headers={**one, **k})
        ).status_code == 202
        assert (
            await client.post("/api/orders/execute", json=body_of(amount="2"), headers=one)
        ).status_code == 202
        over = await client.post("/api/orders/execute", json=body_of(amount="0.000000001"), headers=one)
        assert over.status_code == 429 and over.json()["error"]["code"] == "daily_limit_exceeded"
        assert int(over.headers["retry-after"]) > 0
        # 50 concurrent orders of 0.2 SOL from another key: exactly 25 fit its cap of 5
        answers = await asyncio.gather(
            *(client.post("/api/orders/execute", json=body_of(amount="0.2"), headers=two) for _ in range(50))
        )
        assert sorted(r.status_code for r in answers) == [202] * 25 + [429] * 25
        # another token has no cap
        usdc = body_of(tokenIn="USDC", tokenOut="SOL", amount="1000")
        assert (await client.post("/api/orders/execute", json=usdc, headers=one)).status_code == 202
        assert edge.orders_stored() == 2 + 25 + 1


async def test_a_refused_websocket_handshake_is_closed_not_crashed(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, **KEYS) as (edge, client):
        with pytest.raises(ConnectionClosed):
            async with websockets.connect(
                edge.ws_url, additional_headers={"Origin": "https://x.example"}
            ) as ws:
                await ws.recv()
        assert (await client.get("/healthz")).status_code == 200
