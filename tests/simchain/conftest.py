"""A simulated chain on 127.0.0.1, port 0, per test; the real solana-py AsyncClient talks to it.

Slots are 60 s long, so the tip stays put unless a test warps it (`simWarpSlots`): quotes taken
before a transaction are exact for the slot it lands in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.keypair import Keypair

from common.settings import Settings, load_settings
from simchain.server import Running, start

UNIX_START = 1_800_000_000


def sim_settings(**env: str) -> Settings:
    base = {"SIM_HOST": "127.0.0.1", "SIM_PORT": "0", "SIM_SLOT_MS": "60000", "LOG_LEVEL": "warning"}
    base.update(env)
    return load_settings(base, dotenv=Path("/nonexistent"))


@pytest.fixture
async def chain() -> AsyncIterator[Running]:
    running = await start(sim_settings(), unix_start=UNIX_START, seed=1)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def client(chain: Running) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(chain.url, commitment=Confirmed) as c:
        yield c


@pytest.fixture
async def http(chain: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=chain.url) as c:
        yield c


@pytest.fixture
async def wallet(client: AsyncClient) -> Keypair:
    """A wallet funded by requestAirdrop: 100 SOL and (SIM EXTENSION) an ATA of every token."""
    kp = Keypair()
    await client.request_airdrop(kp.pubkey(), 100 * 10**9)
    return kp


async def rpc(http: httpx.AsyncClient, method: str, params: Any = None) -> Any:
    """One raw JSON-RPC call; returns the whole response object."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        body["params"] = params
    resp = await http.post("/", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()
