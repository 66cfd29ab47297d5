"""A real persistence service on port 0 against this test's database, and a real channel to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from common.grpc_client import open_channel
from orderengine.v1 import orders_pb2, orders_pb2_grpc
from persistence_svc.server import Running, serve
from tests.conftest import SettingsFactory

SOL = "So11111111111111111111111111111111111111112"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


def make_spec(
    amount_in: int = 1_500_000_000, slippage_bps: int = 100, **overrides: object
) -> orders_pb2.OrderSpec:
    fields: dict[str, object] = {
        "input_mint": SOL,
        "output_mint": USDC,
        "amount_in": amount_in,
        "slippage_bps": slippage_bps,
        "input_decimals": 9,
        "output_decimals": 6,
        "input_symbol": "SOL",
        "output_symbol": "USDC",
    }
    fields.update(overrides)
    return orders_pb2.OrderSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def service(make_settings: SettingsFactory) -> AsyncIterator[Running]:
    running = await serve(make_settings(PERSISTENCE_ADDR="127.0.0.1:0", DB_POOL_SIZE="4"))
    try:
        yield running
    finally:
        await running.stop(0)


@pytest.fixture
async def stub(service: Running) -> AsyncIterator[orders_pb2_grpc.OrdersStub]:
    channel = open_channel(f"127.0.0.1:{service.port}")
    try:
        yield orders_pb2_grpc.OrdersStub(channel)
    finally:
        await channel.close()
