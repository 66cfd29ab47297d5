"""The HTTP/JSON-RPC layer: malformed input, batches, fault injection, slots, start and stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed

from common.settings import REPO_ROOT
from simchain.server import MAX_BODY_BYTES, Running, start
from tests.simchain.conftest import UNIX_START, rpc, sim_settings


async def _post(
    http: httpx.AsyncClient, content: bytes, content_type: str = "application/json"
) -> httpx.Response:
    return await http.post("/", content=content, headers={"content-type": content_type})


async def test_parse_error_and_invalid_requests(http: httpx.AsyncClient) -> None:
    resp = await _post(http, b'{"jsonrpc": "2.0", "method": ')
    assert resp.status_code == 200
    assert resp.json() == {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}
    for body in (
        b"[]",
        b"42",
        b'"getSlot"',
        b'{"method": "getSlot", "id": 1}',
        b'{"jsonrpc": "2.0", "id": 1}',
    ):
        resp = await _post(http, body)
        assert resp.json()["error"]["code"] == -32600, body
    resp = await _post(http, b'{"jsonrpc": "2.0", "method": "getSlot", "id": {"a": 1}}')
    assert resp.json() == {
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": "Invalid request"},
        "id": None,
    }


async def test_unknown_method(http: httpx.AsyncClient) -> None:
    resp = await rpc(http, "getEverything")
    assert resp == {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 1}


MALFORMED: list[tuple[str, object]] = [
    ("getSlot", {"commitment": "confirmed"}),  # params must be an array
    ("getSlot", [{"commitment": "sometimes"}]),
    ("getSlot", [1, 2]),
    ("getBalance", []),
    ("getBalance", ["not-a-pubkey"]),
    ("getBalance", [12345]),
    ("getAccountInfo", ["11111111111111111111111111111111", {"encoding": "hex"}]),
    ("getAccountInfo", ["11111111111111111111111111111111", {"dataSlice": {"offset": -1, "length": 2}}]),
    ("getMultipleAccounts", ["11111111111111111111111111111111"]),
    ("getSignatureStatuses", ["abc"]),
    ("getSignatureStatuses", [["abc"]]),
    ("getTransaction", ["zz"]),
    ("getTransaction", ["1" * 88, {"commitment": "processed"}]),
    ("sendTransaction", ["AAAA", {"encoding": "base64"}]),
    ("sendTransaction", ["not base64!", {"encoding": "base64"}]),
    ("sendTransaction", ["x" * 5000, {"encoding": "base64"}]),
    ("sendTransaction", ["AQ==", {"encoding": "hex"}]),
    ("sendTransaction", [None]),
    ("sendTransaction", ["AQ==", {"encoding": "base64", "skipPreflight": "yes"}]),
    ("simulateTransaction", ["AQ==", {"sigVerify": True, "replaceRecentBlockhash": True}]),
    ("getMinimumBalanceForRentExemption", [-1]),
    ("getMinimumBalanceForRentExemption", [True]),
    ("getFeeForMessage", ["!!"]),
    ("getRecentPrioritizationFees", [["x"] * 129]),
    ("requestAirdrop", ["11111111111111111111111111111111"]),
    ("simSetFaults", [{"failRate": 2}]),
    ("simSetFaults", [{"latency": 5}]),
    ("simWarpSlots", [{"n": -1}]),
    ("simSwaps", [{"offset": "a"}]),
    ("isBlockhashValid", [42]),
]


async def test_malformed_params(http: httpx.AsyncClient) -> None:
    for method, params in MALFORMED:
        resp = await rpc(http, method, params)
        assert resp["error"]["code"] == -32602, (method, params, resp)
        assert resp["error"]["message"]
        assert resp["id"] == 1


async def test_http_level_errors(http: httpx.AsyncClient) -> None:
    assert (
        await _post(http, b'{"jsonrpc":"2.0","id":1,"method":"getSlot"}', "text/plain")
    ).status_code == 415
    assert (await http.get("/")).status_code == 405
    assert (await _post(http, b" " * (MAX_BODY_BYTES + 1))).status_code == 413
    health = await http.get("/health")
    assert health.status_code == 200 and health.text == "ok"


async def test_batch_request(http: httpx.AsyncClient) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
        {
            "jsonrpc": "2.0",
            "id": "two",
            "method": "getLatestBlockhash",
            "params": [{"commitment": "confirmed"}],
        },
        {"jsonrpc": "2.0", "id": 3, "method": "nope"},
        {"jsonrpc": "2.0", "method": "getSlot"},  # a notification: no answer
        {"jsonrpc": "2.0", "id": 5, "method": "getBalance", "params": ["bad"]},
        7,
    ]
    resp = await http.post("/", json=batch)
    out = resp.json()
    assert [r.get("id") for r in out] == [1, "two", 3, 5, None]
    assert out[0]["result"] == 0
    assert "blockhash" in out[1]["result"]["value"]
    assert out[2]["error"]["code"] == -32601
    assert out[3]["error"]["code"] == -32602
    assert out[4]["error"]["code"] == -32600
    lone = await http.post("/", json={"jsonrpc": "2.0", "method": "getSlot"})
    assert lone.status_code == 200 and lone.content == b""


async def test_set_faults_and_latency(http: httpx.AsyncClient, chain: Running) -> None:
    resp = await rpc(http, "simSetFaults", [{"latencyMs": 60}])
    assert resp["result"] == {"latencyMs": 60, "failRate": 0.0, "dropRate": 0.0, "statusLagSlots": 0}
    t = time.perf_counter()
    await rpc(http, "getSlot")
    assert time.perf_counter() - t >= 0.06
    await rpc(http, "simSetFaults", [{"latencyMs": 0, "failRate": 1.0}])
    # only requests carrying sendTransaction are rate limited
    assert (await rpc(http, "getSlot"))["result"] == 0
    limited = await http.post(
        "/", json={"jsonrpc": "2.0", "id": 1, "method": "sendTransaction", "params": ["AQ=="]}
    )
    assert limited.status_code == 429
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
        {"jsonrpc": "2.0", "id": 2, "method": "sendTransaction"},
    ]
    assert (await http.post("/", json=batch)).status_code == 429
    assert chain.node.faults.fail_rate == 1.0


async def test_settings_faults_apply_at_start() -> None:
    running = await start(sim_settings(SIM_FAIL_RATE="0.5", SIM_DROP_RATE="0.25", SIM_LATENCY_MS="3"), seed=1)
    try:
        assert running.node.faults.to_json() == {
            "latencyMs": 3,
            "failRate": 0.5,
            "dropRate": 0.25,
            "statusLagSlots": 0,
        }
    finally:
        await running.stop()


async def test_slots_advance_on_their_own() -> None:
    running = await start(sim_settings(SIM_SLOT_MS="20"), unix_start=UNIX_START)
    try:
        async with AsyncClient(running.url, commitment=Confirmed) as client:
            first = (await client.get_latest_blockhash()).value
            await asyncio.sleep(0.25)
            later = (await client.get_latest_blockhash()).value
            assert later.last_valid_block_height - first.last_valid_block_height >= 5
            assert later.blockhash != first.blockhash
    finally:
        await running.stop()


async def test_stop_is_graceful_and_frees_the_port() -> None:
    running = await start(sim_settings())
    port = running.port
    await running.stop()
    again = await start(sim_settings(SIM_PORT=str(port)))
    assert again.port == port
    await again.stop()


async def test_wrong_markets_file_refuses_to_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "sim.json"
    doc = json.loads((REPO_ROOT / "markets" / "sim.json").read_text())
    doc["pools"] = doc["pools"][:-1]  # a pool the genesis has is missing
    bad.write_text(json.dumps(doc))
    with pytest.raises(RuntimeError, match="regenerate"):
        await start(sim_settings(MARKETS_FILE=str(bad)))


async def test_python_m_simchain_serves_and_stops_on_sigterm() -> None:
    env = {
        **os.environ,
        "SIM_HOST": "127.0.0.1",
        "SIM_PORT": "0",
        "LOG_LEVEL": "info",
        "PYTHONPATH": str(REPO_ROOT),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simchain", env=env, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        url = json.loads(line)["url"]
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await rpc(http, "getHealth"))["result"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
