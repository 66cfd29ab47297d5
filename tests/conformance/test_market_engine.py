"""The real-cluster path end to end on the real DEX programs: `python -m executor_svc.market` over
JSON-RPC makes a market (token, CPMM pool, DLMM pair) on a node running the real Raydium CPMM and
Meteora DLMM binaries (LiteSVM behind tests/litesvm_node.py), then the whole engine on
`CHAIN=custom` with that markets file confirms market orders on both venues.

Runs when DEX_PROGRAMS_DIR holds the binaries (README "Conformance"); skipped otherwise."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from solders.keypair import Keypair

from common.settings import REPO_ROOT
from tests.litesvm_node import SvmNode
from tests.stackutil import running_stack

PROGRAMS_DIR = os.environ.get("DEX_PROGRAMS_DIR", "")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not PROGRAMS_DIR, reason="DEX_PROGRAMS_DIR is not set")]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[SvmNode, Keypair]]:
    from tests.executor_svc.test_market import _cluster

    svm, _, payer = _cluster(tmp_path)
    running = SvmNode(svm)
    running.start()
    try:
        yield running, payer
    finally:
        running.stop()


def test_make_market_then_the_engine_trades_it_on_both_venues(
    node: tuple[SvmNode, Keypair], tmp_path: Path
) -> None:
    rpc, payer = node
    keypair = tmp_path / "wallet.json"
    keypair.write_text(json.dumps(list(bytes(payer))))
    keypair.chmod(0o600)
    base = tmp_path / "programs.json"
    base.write_text(
        json.dumps(
            {
                "cluster": "localnet",
                "programs": {
                    "raydium_cpmm": "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C",
                    "meteora_dlmm": "LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo",
                },
                "tokens": [],
                "pools": [],
            }
        )
    )
    markets = tmp_path / "markets.json"
    chain_env = {"CHAIN": "custom", "SOLANA_RPC_URL": rpc.url, "KEYPAIR_PATH": str(keypair)}
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "executor_svc.market",
            "--markets",
            str(base),
            "--write",
            str(markets),
            "--sol",
            "2",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "MARKETS_FILE": str(markets), **chain_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    doc = json.loads(markets.read_text())
    assert {p["venue"] for p in doc["pools"]} == {"raydium_cpmm", "meteora_dlmm"}
    rpc.advance(1, seconds=60)  # both pools open

    api_key = secrets.token_urlsafe(24)
    tokens = ",".join(
        f"{who}={secrets.token_urlsafe(24)}"
        for who in ("gateway", "worker", "router", "executor", "persistence")
    )
    with running_stack(
        tmp_path / "logs",
        **chain_env,
        MARKETS_FILE=str(markets),
        API_KEYS=api_key,
        GRPC_TOKENS=tokens,
        CONFIRM_POLL_MS="20",
    ) as stack:
        dexes: list[str] = []
        legs: set[str] = set()
        with httpx.Client(
            base_url=stack.url, timeout=30, headers={"Authorization": f"Bearer {api_key}"}
        ) as client:
            for _ in range(4):
                r = client.post(
                    "/api/orders/execute",
                    json={"tokenIn": "SOL", "tokenOut": "TEST", "amount": "0.2", "slippageBps": 300},
                )
                assert r.status_code == 202, r.text
                order_id = r.json()["orderId"]
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    order = client.get(f"/api/orders/{order_id}").json()
                    if order["status"] in ("confirmed", "failed"):
                        break
                    time.sleep(0.1)
                assert order["status"] == "confirmed", order
                confirmed = next(e for e in order["events"] if e["status"] == "confirmed")
                dexes.append(confirmed["data"]["dex"])
                legs.update(leg["venue"] for leg in order["route"]["legs"])
                # the engine settled what landed, and it is at least the route's minimum
                assert int(confirmed["data"]["amountOutRaw"]) >= int(order["route"]["minAmountOutRaw"]) > 0
    # each order moves the price of the pool it used, so later ones find the other venue (or a split
    # across both) better: swaps landed through both programs
    assert legs == {"raydium_cpmm", "meteora_dlmm"}, dexes
