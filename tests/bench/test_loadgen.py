"""The load generator against a real stack: a socket that drops mid-run has its orders followed
again from their last seq, so every order still gets its final status, once, in seq order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.httpclient import post_request
from bench.loadgen import LoadGen
from common.stack import Stack
from tests.stackutil import running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BODY = orjson.dumps(
    {"action": "execute", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.25", "slippageBps": 100}
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("loadgen-logs")), LOG_LEVEL="warning") as s:
        yield s


async def test_a_dropped_socket_is_followed_again_and_no_order_loses_its_final_status(stack: Stack) -> None:
    url = stack.url.replace("http://", "ws://") + "/api/orders/ws"
    gen = LoadGen(url, {}, BODY, per_socket=100, hard_limit=200, socket_rate=10)
    events: list[str] = []
    dropped = False
    droppers: list[asyncio.Task[None]] = []

    async def drop_a_busy_socket() -> None:
        # the first socket seen with orders in flight is dropped as a network would (an order lives
        # for milliseconds: at the window's start none may be in flight yet)
        nonlocal dropped
        while (conn := next((c for c in gen.active if c.following), None)) is None:
            await asyncio.sleep(0.001)
        assert conn.ws is not None
        conn.ws.abort()
        dropped = True

    def emit(doc: dict[str, Any]) -> None:
        events.append(doc["event"])
        if doc["event"] == "window_start" and not droppers:
            droppers.append(asyncio.get_running_loop().create_task(drop_a_busy_socket()))

    try:
        result = await gen.run_step(rate=20, orders=30, warmup_s=0.6, drain_s=20, emit=emit)
    finally:
        for task in droppers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await gen.close()
    assert events == ["window_start", "window_end"]
    assert dropped and result["socket_closes"] == {"1006": 1}
    assert result["resubscribed"] > 0
    lost = sum(n for code, n in result["rejected"].items() if code.startswith("lost"))
    assert result["confirmed"] + lost == 30, result
    assert result["missing"] == [] and result["unanswered"] == 0
    assert result["seq_errors"] == 0
    assert result["accept_ms"] is not None and result["e2e_ms"] is not None


async def test_posted_orders_are_followed_on_rotating_sockets_to_their_final_status(stack: Stack) -> None:
    url = stack.url.replace("http://", "ws://") + "/api/orders/ws"
    port = int(stack.url.rpartition(":")[2])
    post = orjson.dumps({k: v for k, v in orjson.loads(BODY).items() if k != "action"})
    request = post_request("127.0.0.1", port, "/api/orders/execute", post, {})
    # 4 orders per socket: the two follower sockets are retired and replaced as the run goes
    gen = LoadGen(url, {}, BODY, per_socket=4, hard_limit=8, socket_rate=10, http_request=request)
    try:
        result = await gen.run_step(rate=20, orders=20, warmup_s=0.3, drain_s=20, emit=lambda doc: None)
    finally:
        await gen.close()
    assert result["confirmed"] == 20 and result["rejected"] == {}, result
    assert result["missing"] == [] and result["unanswered"] == 0 and result["seq_errors"] == 0
    assert result["http_connections"] >= 1
    assert result["sockets_opened"] >= 5 and result["socket_closes"] == {}, result
    assert result["accept_ms"] is not None and result["e2e_ms"] is not None


async def test_an_invalid_order_posted_over_http_is_counted_as_rejected_with_its_code(stack: Stack) -> None:
    url = stack.url.replace("http://", "ws://") + "/api/orders/ws"
    port = int(stack.url.rpartition(":")[2])
    post = orjson.dumps({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "-1"})
    request = post_request("127.0.0.1", port, "/api/orders/execute", post, {})
    gen = LoadGen(url, {}, BODY, per_socket=100, hard_limit=200, socket_rate=10, http_request=request)
    try:
        result = await gen.run_step(rate=20, orders=4, warmup_s=0.1, drain_s=5, emit=lambda doc: None)
    finally:
        await gen.close()
    assert result["accepted"] == 0 and sum(result["rejected"].values()) == 4, result
    assert all(code.startswith("invalid") for code in result["rejected"]), result
