"""Fixtures the worker's tests share. Each module defines its own `eng` (the engine with the
settings it needs); these build on whichever `eng` the requesting test's module has."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from common.grpc_client import open_channel
from orderengine.v1 import orders_pb2_grpc
from tests.engine import Engine
from worker.consumer import Worker


@pytest.fixture
async def worker(eng: Engine) -> AsyncIterator[Worker]:
    w = Worker(eng.settings)
    await w.start()
    yield w
    await w.stop(grace_s=2)


@pytest.fixture
async def orders(eng: Engine) -> AsyncIterator[orders_pb2_grpc.OrdersAsyncStub]:
    channel = open_channel(eng.settings.persistence_addr)
    yield orders_pb2_grpc.OrdersStub(channel)
    await channel.close()
