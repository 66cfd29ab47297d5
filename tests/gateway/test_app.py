"""The HTTP + WebSocket edge on a real gateway: idempotency under concurrency, backpressure that
half-accepts nothing, API keys on every protected route, the per-client rate limit, CORS, and
health while stopping. No worker runs, so whatever is queued stays countable."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed

from tests.gateway.edgeutil import body_of, edge_and_client

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def ws_first(
    url: str,
    headers: dict[str, str] | None = None,
    send: dict[str, Any] | None = None,
) -> dict[str, Any] | int:
    """Connects, optionally sends a message, and returns the first message — or the close code
    when the server closes the socket first."""
    try:
        async with websockets.connect(url, additional_headers=headers or {}) as ws:
            if send is not None:
                await ws.send(json.dumps(send))
            async with asyncio.timeout(5):
                message: dict[str, Any] = json.loads(await ws.recv())
                return message
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code


# --- idempotency ---------------------------------------------------------------------------------


async def test_fifty_concurrent_duplicates_make_one_order_and_one_job(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings) as (edge, client):
        key = {"Idempotency-Key": "same-key-50"}
        answers = await asyncio.gather(
            *(client.post("/api/orders/execute", json=body_of(), headers=key) for _ in range(50))
        )
        assert {r.status_code for r in answers} == {202}, [r.text for r in answers if r.status_code != 202]
        order_ids = {r.json()["orderId"] for r in answers}
        assert len(order_ids) == 1
        assert edge.orders_stored() == 1 and await edge.jobs_queued() == 1

        # the same order spelled differently is the same request
        respelled = {"tokenIn": "sol", "tokenOut": "USDC", "amount": "1.50", "slippageBps": 100}
        again = await client.post("/api/orders/execute", headers=key, json=respelled)
        assert again.status_code == 202 and again.json()["orderId"] in order_ids
        # another order under the same key: 422 naming the header, nothing stored
        changed = await client.post("/api/orders/execute", json=body_of(amount="2"), headers=key)
        assert changed.status_code == 422
        assert changed.json()["error"]["field"] == "Idempotency-Key"
        assert edge.orders_stored() == 1 and await edge.jobs_queued() == 1


async def test_websocket_execute_shares_the_key_namespace(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings) as (edge, client):
        http = await client.post("/api/orders/execute", json=body_of(), headers={"Idempotency-Key": "k-http"})
        assert http.status_code == 202
        execute = {"action": "execute", **body_of(), "idempotencyKey": "k-http"}
        same = await ws_first(edge.ws_url, send=execute)
        assert isinstance(same, dict) and same["type"] == "accepted"
        assert same["orderId"] == http.json()["orderId"]
        other = await ws_first(
            edge.ws_url, send={"action": "execute", **body_of(amount="3"), "idempotencyKey": "k-http"}
        )
        assert isinstance(other, dict) and other["type"] == "error"
        assert other["code"] == "idempotency_key_reused" and other["field"] == "Idempotency-Key"
        # and the other way round: a key first used on the socket
        ws = await ws_first(edge.ws_url, send={"action": "execute", **body_of(), "idempotencyKey": "k-ws"})
        assert isinstance(ws, dict) and ws["type"] == "accepted"
        http_again = await client.post(
            "/api/orders/execute", json=body_of(), headers={"Idempotency-Key": "k-ws"}
        )
        assert http_again.json()["orderId"] == ws["orderId"]
        assert edge.orders_stored() == 2 and await edge.jobs_queued() == 2


# --- backpressure --------------------------------------------------------------------------------


async def test_backpressure_answers_503_and_accepts_nothing(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, QUEUE_MAX_DEPTH="3") as (edge, client):
        for n in range(3):
            r = await client.post("/api/orders/execute", json=body_of(amount=str(n + 1)))
            assert r.status_code == 202
        await edge.idle_backlog()
        stored, queued = edge.orders_stored(), await edge.jobs_queued()
        key = {"Idempotency-Key": "while-overloaded"}
        for headers in ({}, key):
            r = await client.post("/api/orders/execute", json=body_of(amount="9"), headers=headers)
            assert r.status_code == 503 and r.headers["retry-after"].isdigit(), r.text
            assert r.json()["error"]["code"] == "overloaded"
        ws = await ws_first(edge.ws_url, send={"action": "execute", **body_of(amount="9")})
        assert isinstance(ws, dict) and ws["type"] == "error" and ws["code"] == "overloaded"
        assert edge.orders_stored() == stored and await edge.jobs_queued() == queued  # nothing half-accepted

        # once the queue drains, the same key is free: it was never claimed
        await edge.redis.delete(f"{edge.settings.redis_prefix}:orders")
        await edge.idle_backlog()
        r = await client.post("/api/orders/execute", json=body_of(amount="9"), headers=key)
        assert r.status_code == 202
        assert edge.orders_stored() == stored + 1


# --- API keys ------------------------------------------------------------------------------------

KEYS = {"API_KEYS": "key-one-0123456789,key-two-0123456789"}


def protected_requests(order_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", "/api/orders/execute", body_of()),
        ("GET", f"/api/orders/{order_id}", None),
        ("GET", "/api/orders?limit=5", None),
    ]


async def test_api_keys_guard_every_protected_route(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, **KEYS) as (edge, client):
        good = {"Authorization": "Bearer key-two-0123456789"}
        created = await client.post("/api/orders/execute", json=body_of(), headers=good)
        assert created.status_code == 202
        order_id = created.json()["orderId"]
        refused = [
            {},
            {"Authorization": "Bearer nope"},
            {"X-API-Key": "key-one-012345678"},
            {"Authorization": "key-one-0123456789"},
            {"X-API-Key": ""},
        ]
        accepted = [
            {"Authorization": "Bearer key-one-0123456789"},
            {"X-API-Key": "key-two-0123456789"},
            {"authorization": "bearer key-one-0123456789"},
        ]
        for method, path, body in protected_requests(order_id):
            for headers in refused:
                r = await client.request(method, path, json=body, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"]["code"] == "unauthorized"
            for headers in accepted:
                r = await client.request(method, path, json=body, headers=headers)
                # the order belongs to key-two: key-one is let in, and told it has no such order
                mine = "key-two" in str(headers) or "/api/orders/" not in path or path.endswith("execute")
                assert r.status_code in ((200, 202) if mine else (404,)), (method, path, headers, r.text)
        stored = edge.orders_stored()
        assert stored == 1 + 3  # one per accepted POST; none from a refused one

        # WebSocket: refused with close code 4401; accepted with a header key or ?apiKey=
        ws = f"{edge.ws_url}?orderId={order_id}"
        assert await ws_first(ws) == 4401
        assert await ws_first(ws, headers={"X-API-Key": "wrong"}) == 4401
        assert await ws_first(f"{ws}&apiKey=wrong") == 4401
        for ok in (
            await ws_first(f"{ws}&apiKey=key-two-0123456789"),
            await ws_first(ws, headers={"Authorization": "Bearer key-two-0123456789"}),
            await ws_first(ws, headers={"X-API-Key": "key-two-0123456789"}),
        ):
            assert isinstance(ok, dict) and ok["type"] == "subscribed", ok
        # every /api route needs the key, the markets too; public: health, the API description,
        # the page and its lifecycle module
        assert (await client.get("/api/markets")).status_code == 401
        assert (
            await client.get("/api/markets", headers={"X-API-Key": "key-two-0123456789"})
        ).status_code == 200
        for path in ("/healthz", "/openapi.json", "/", "/js/lifecycle.js"):
            assert (await client.get(path)).status_code == 200, path


async def test_without_api_keys_nothing_is_required(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings) as (edge, client):
        assert (await client.post("/api/orders/execute", json=body_of())).status_code == 202
        assert (await client.get("/api/orders")).status_code == 200
        assert (await client.get(f"/api/orders/{UNKNOWN}")).status_code == 404


# --- rate limit ----------------------------------------------------------------------------------


async def test_rate_limit_per_client_answers_429_with_retry_after(make_settings) -> None:  # type: ignore[no-untyped-def]
    limits = {"RATE_LIMIT_PER_S": "2", "RATE_LIMIT_BURST": "3"}
    async with edge_and_client(make_settings, **limits, **KEYS) as (edge, client):
        one = {"X-API-Key": "key-one-0123456789"}
        two = {"X-API-Key": "key-two-0123456789"}
        for _ in range(3):
            assert (await client.get("/api/orders", headers=one)).status_code == 200
        limited = await client.get("/api/orders", headers=one)
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert limited.headers["retry-after"] == "1"
        stored = edge.orders_stored()
        assert (await client.post("/api/orders/execute", json=body_of(), headers=one)).status_code == 429
        assert edge.orders_stored() == stored  # a limited POST stores nothing
        assert await ws_first(f"{edge.ws_url}?apiKey=key-one-0123456789") == 4429
        # another key is another client, with its own bucket; public routes are not limited
        assert (await client.get("/api/orders", headers=two)).status_code == 200
        assert [(await client.get("/healthz")).status_code for _ in range(5)] == [200] * 5
        await asyncio.sleep(0.6)  # the bucket refills at 2/s
        assert (await client.get("/api/orders", headers=one)).status_code == 200


async def test_rate_limit_without_keys_is_per_ip_and_off_by_default(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, RATE_LIMIT_PER_S="1", RATE_LIMIT_BURST="2") as (edge, client):
        codes = [(await client.get("/api/orders")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
    async with edge_and_client(make_settings) as (edge, client):
        assert {(await client.get("/api/orders")).status_code for _ in range(150)} == {200}


# --- CORS ----------------------------------------------------------------------------------------


async def test_cors_is_off_by_default_and_configurable(make_settings) -> None:  # type: ignore[no-untyped-def]
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,idempotency-key",
    }
    async with edge_and_client(make_settings) as (edge, client):
        r = await client.options("/api/orders/execute", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = await client.get("/api/orders", headers={"Origin": "https://app.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    async with edge_and_client(make_settings, CORS_ORIGINS="https://app.example", **KEYS) as (edge, client):
        r = await client.options("/api/orders/execute", headers=preflight)  # no key needed for a preflight
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "idempotency-key" in r.headers["access-control-allow-headers"].lower()
        r = await client.get("/api/orders", headers={"Origin": "https://app.example"})
        assert r.status_code == 401  # the key is still required, and the browser may read why
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = await client.options(
            "/api/orders/execute", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers


# --- health --------------------------------------------------------------------------------------


async def test_health_answers_503_once_stopping(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings) as (edge, client):
        assert (await client.get("/healthz")).json()["status"] == "ok"
        app: Any = edge.server.config.app
        app.state.stopping = True  # what gateway.server.GracefulServer.handle_exit does on SIGTERM
        r = await client.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "stopping"


def test_sigterm_marks_the_app_stopping() -> None:
    import signal

    import uvicorn
    from starlette.applications import Starlette

    from gateway.server import GracefulServer

    app = Starlette()
    server = GracefulServer(uvicorn.Config(app), app)
    server.handle_exit(signal.SIGTERM, None)
    assert app.state.stopping is True and server.should_exit
