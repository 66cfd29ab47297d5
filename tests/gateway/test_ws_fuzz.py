"""A WebSocket fuzzer against a real gateway (persistence and Redis real, no worker), for a fixed
budget: random and malformed frames (random JSON of every action with fields of every type, broken
JSON, binary frames, other scripts), huge messages and floods, on many sockets.

Asserted: the gateway never answers an internal error (no `internal` error message, no close code
1011), it still serves afterwards, and the orders stored and jobs queued are exactly the ones it
answered `accepted`: every refused message changed nothing.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import SettingsFactory
from tests.gateway.edgeutil import ORDER, running_edge

BUDGET_S = 8.0
SEED = 20261204
ACTIONS = ["subscribe", "unsubscribe", "execute", "pong", "nope", "", None, 1, ["execute"]]
FIELDS = ["orderId", "afterSeq", "tokenIn", "tokenOut", "amount", "slippageBps", "idempotencyKey", "type"]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(14)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, -1, 1, 2**31, 2**64, 10**30, rng.randint(-1000, 1000)])
    if pick == 3:
        return rng.choice([0.5, -0.0, 1e308, 1.5])
    if pick == 4:
        return str(uuid.uuid4())
    if pick == 5:
        return rng.choice(["SOL", "USDC", "sol", "So11111111111111111111111111111111111111112", "XYZ"])
    if pick == 6:
        return rng.choice(["1.5", "0", "-1", "1e3", "0.0000000001", "99999999999999999999", " 1 ", "١"])
    if pick == 7:
        return "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(0, 30)))
    if pick == 8:
        return "x" * rng.choice([200, 5000])
    if pick == 9 and depth < 3:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if pick == 10 and depth < 3:
        return {rng.choice(FIELDS): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if pick == 11:
        return rng.randint(1, 5000)
    if pick == 12:
        return "\x00\ud7ff"
    return ""


def random_frame(rng: random.Random) -> str | bytes:
    pick = rng.randrange(10)
    if pick == 0:
        return rng.randbytes(rng.randint(0, 200))  # a binary frame
    if pick == 1:
        return rng.choice(['{"action":', "{", "[", "null", '"x"', "1", "", "{'a': 1}", "\ud7ff"])
    if pick == 2:
        return "x" * rng.choice([16 * 1024 + 1, 200_000, 1_000_000])  # above the message limit
    if pick == 3:  # a well-formed order, sometimes: some of these are accepted
        body = {**ORDER, "amount": str(rng.randint(1, 5)), "action": "execute"}
        if rng.random() < 0.3:
            body["idempotencyKey"] = rng.choice(["k1", "k2", "x" * 200, ""])
        return json.dumps(body)
    doc: dict[str, Any] = {"action": rng.choice(ACTIONS)}
    for _ in range(rng.randint(0, 6)):
        doc[rng.choice(FIELDS)] = random_value(rng)
    return json.dumps(doc)


async def drain(ws: Any, seen: Counter[str], accepted: set[str], quiet_s: float = 0.2) -> None:
    """Reads what the server says until it is quiet for `quiet_s`."""
    while True:
        try:
            async with asyncio.timeout(quiet_s):
                raw = await ws.recv()
        except TimeoutError:
            return
        message = json.loads(raw)
        kind = message.get("type", "?")
        seen[f"{kind}:{message.get('code', '')}" if kind == "error" else kind] += 1
        if kind == "accepted":
            accepted.add(message["orderId"])


async def test_random_huge_and_flooding_frames_change_nothing_they_refuse(
    make_settings: SettingsFactory,
) -> None:
    rng = random.Random(SEED)
    seen: Counter[str] = Counter()
    closes: Counter[int] = Counter()
    accepted: set[str] = set()
    frames = sockets = 0
    async with running_edge(make_settings) as edge:
        deadline = time.monotonic() + BUDGET_S
        while time.monotonic() < deadline:
            sockets += 1
            flood = rng.random() < 0.15
            try:
                async with websockets.connect(edge.ws_url, max_size=None) as ws:
                    count = rng.randint(200, 400) if flood else rng.randint(1, 20)
                    for _ in range(count):
                        frame = random_frame(rng)
                        if flood and (rng.random() < 0.7 or isinstance(frame, bytes)):
                            # a flood of text (a binary frame closes the socket with 1003)
                            frame = json.dumps({"action": "subscribe", "orderId": str(uuid.uuid4())})
                        await ws.send(frame)
                        frames += 1
                        if not flood:
                            await drain(ws, seen, accepted, 0.02)
                    await drain(ws, seen, accepted)
            except ConnectionClosed as exc:
                closes[exc.rcvd.code if exc.rcvd else -1] += 1
        print(
            f"\nWS fuzz: {frames} frames on {sockets} sockets; answers {dict(seen)}; "
            f"closed by the server {dict(closes)}; accepted {len(accepted)}"
        )
        assert frames > 500 and sockets > 20
        assert not [k for k in seen if k.startswith("error:internal")], seen
        assert 1011 not in closes and -1 not in closes, closes  # only deliberate closes
        assert closes[1003] > 0, closes  # binary frames
        assert seen["error:rate_limited"] > 0 or seen["error:too_many_subscriptions"] > 0, seen
        assert seen["error:message_too_large"] > 0 and seen["error:invalid_json"] > 0, seen
        # exactly the accepted orders were stored and queued; the refused changed nothing
        await edge.idle_backlog()
        assert edge.orders_stored() == len(accepted)
        assert await edge.jobs_queued() == len(accepted)
        async with httpx.AsyncClient(base_url=edge.url, timeout=5) as client:
            health = await client.get("/healthz")
            assert health.status_code == 200, health.text
