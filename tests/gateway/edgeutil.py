"""A real gateway (uvicorn, in-process, port 0 style) on the real persistence service and Redis, with
no worker: an order stays queued where the test leaves it, so the stream can be counted."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import redis.asyncio as aioredis
import uvicorn

from common import jobs
from common.settings import Settings
from common.stack import free_port
from gateway.app import create_app
from tests.engine import engine

ORDER = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5", "slippageBps": 100}


@dataclass
class Edge:
    url: str
    settings: Settings
    redis: aioredis.Redis
    server: uvicorn.Server

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/orders/ws"

    def orders_stored(self) -> int:
        with psycopg.connect(self.settings.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM orders").fetchone()
        assert row is not None
        return int(row[0])

    async def jobs_queued(self) -> int:
        return int(await self.redis.xlen(jobs.Keys(self.settings.redis_prefix).stream))

    async def idle_backlog(self) -> None:
        """Lets the gateway's cached backlog (refreshed every 100 ms) catch up with the stream."""
        await asyncio.sleep(0.25)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner owns the signals
        yield


@asynccontextmanager
async def running_edge(
    make_settings: Callable[..., Settings], *, router: bool = False, executor: bool = False, **env: str
) -> AsyncIterator[Edge]:
    """The gateway on persistence and Redis (and, when asked, the router and the executor)."""
    settings = make_settings(**env)
    async with engine(settings, router=router, executor=executor) as eng:
        port = free_port()
        app = create_app(dataclasses.replace(eng.settings, http_port=port))
        server = _Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, ws="websockets-sansio", log_config=None, lifespan="on"
            )
        )
        task = asyncio.create_task(server.serve())
        client = aioredis.Redis.from_url(eng.settings.redis_url)
        try:
            async with asyncio.timeout(10):
                while not server.started:
                    await asyncio.sleep(0.01)
            yield Edge(f"http://127.0.0.1:{port}", eng.settings, client, server)
        finally:
            server.should_exit = True
            await task
            await client.aclose()


def body_of(**changes: Any) -> dict[str, Any]:
    return {**ORDER, **changes}


@asynccontextmanager
async def edge_and_client(
    make_settings: Callable[..., Settings], *, router: bool = False, executor: bool = False, **env: str
) -> AsyncIterator[tuple[Edge, httpx.AsyncClient]]:
    async with running_edge(make_settings, router=router, executor=executor, **env) as edge:
        async with httpx.AsyncClient(base_url=edge.url, timeout=10) as client:
            yield edge, client
