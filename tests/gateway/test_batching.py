"""New orders leave the gateway in micro-batches: concurrent POSTs and WebSocket executes share one
CreateOrders batch on the gateway's CreateOrderStream, counted on the real persistence server
(in-process, so its metrics are this process's), and each caller still gets its own answer."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prometheus_client import REGISTRY

from tests.gateway.edgeutil import body_of, edge_and_client
from tests.gateway.test_app import ws_first


def create_batches() -> float:
    """Batches of new orders the persistence server stored so far (one statement each)."""
    return REGISTRY.get_sample_value("orderengine_persistence_create_batches_total") or 0.0


def calls(method: str) -> float:
    """Orders calls the persistence server answered OK so far, by method."""
    value = REGISTRY.get_sample_value(
        "orderengine_grpc_server_handled_total",
        {"grpc_service": "orderengine.v1.Orders", "grpc_method": method, "grpc_code": "OK"},
    )
    return value or 0.0


async def test_concurrent_orders_share_few_create_orders_calls(make_settings) -> None:  # type: ignore[no-untyped-def]
    # A batch leaves once it holds 20 orders (or after 100 ms): 60 orders are at least 3 calls.
    async with edge_and_client(make_settings, CREATE_BATCH_MS="100", CREATE_BATCH_MAX="20") as (edge, client):
        before_batch, before_single = create_batches(), calls("CreateOrder")
        posts = [client.post("/api/orders/execute", json=body_of(amount=str(i + 1))) for i in range(50)]
        executes = [
            ws_first(edge.ws_url, send={"action": "execute", **body_of(amount="0.5")}) for _ in range(10)
        ]
        answers: list[Any] = await asyncio.gather(*posts, *executes)
        http: list[httpx.Response] = answers[:50]
        ws: list[Any] = answers[50:]
        assert [r.status_code for r in http] == [202] * 50, [r.text for r in http if r.status_code != 202]
        assert all(isinstance(m, dict) and m["type"] == "accepted" for m in ws), ws
        ids = {r.json()["orderId"] for r in http} | {m["orderId"] for m in ws}
        assert len(ids) == 60
        batches = create_batches() - before_batch
        assert 3 <= batches <= 6, batches
        assert calls("CreateOrder") == before_single  # nothing goes one by one
        assert edge.orders_stored() == 60 and await edge.jobs_queued() == 60


async def test_batch_members_get_their_own_answers(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, CREATE_BATCH_MS="100", CREATE_BATCH_MAX="16") as (edge, client):
        key = {"Idempotency-Key": "batch-key"}
        first = await client.post("/api/orders/execute", json=body_of(), headers=key)
        assert first.status_code == 202
        before = create_batches()
        answers = await asyncio.gather(
            *(client.post("/api/orders/execute", json=body_of(), headers=key) for _ in range(10)),
            client.post("/api/orders/execute", json=body_of(amount="3"), headers=key),
            *(client.post("/api/orders/execute", json=body_of()) for _ in range(5)),
        )
        repeats, reused, fresh = answers[:10], answers[10], answers[11:]
        assert {(r.status_code, r.json()["orderId"]) for r in repeats} == {(202, first.json()["orderId"])}
        assert reused.status_code == 422
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
        assert reused.json()["error"]["field"] == "Idempotency-Key"
        assert [r.status_code for r in fresh] == [202] * 5
        assert len({r.json()["orderId"] for r in fresh} | {first.json()["orderId"]}) == 6
        assert create_batches() - before <= 3  # 16 requests: one batch unless they straggle
        # only new orders are queued: the first and the five fresh ones
        assert edge.orders_stored() == 6 and await edge.jobs_queued() == 6


async def test_fifty_concurrent_duplicates_in_batches_are_one_order(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with edge_and_client(make_settings, CREATE_BATCH_MS="50", CREATE_BATCH_MAX="8") as (edge, client):
        key = {"Idempotency-Key": "dup-key"}
        answers = await asyncio.gather(
            *(client.post("/api/orders/execute", json=body_of(), headers=key) for _ in range(50))
        )
        assert {r.status_code for r in answers} == {202}
        assert len({r.json()["orderId"] for r in answers}) == 1
        assert edge.orders_stored() == 1 and await edge.jobs_queued() == 1
