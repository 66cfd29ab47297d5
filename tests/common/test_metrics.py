"""common.metrics: the exporter, and the chain client's RPC series (errors by method and kind)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from common.chain import ChainClient, ChainError
from common.metrics import start_exporter
from common.settings import load_settings
from common.stack import free_port


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_exporter_is_off_by_default() -> None:
    assert start_exporter(load_settings({}, dotenv=Path("/nonexistent")), "router") is None


def test_the_exporter_serves_the_registry_on_its_port() -> None:
    port = free_port()
    settings = dataclasses.replace(load_settings({}, dotenv=Path("/nonexistent")), router_metrics_port=port)
    exporter = start_exporter(settings, "router")
    assert exporter is not None and exporter.port == port
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "orderengine_grpc_server_handled_total" in text  # the families shared code updates
        assert "orderengine_chain_rpc_calls_total" in text
    finally:
        exporter.close()


def test_a_taken_port_is_logged_and_the_process_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        defaults = load_settings({}, dotenv=Path("/nonexistent"))
        settings = dataclasses.replace(defaults, worker_metrics_port=port)
        with caplog.at_level(logging.WARNING, logger="common.metrics"):
            assert start_exporter(settings, "worker") is None
    assert "metrics exporter not started" in caplog.text


@asynccontextmanager
async def rpc_node(answers: list[tuple[int, dict | None]]) -> AsyncIterator[str]:
    """A JSON-RPC endpoint that gives `answers` in turn: (HTTP status, JSON-RPC error or None)."""
    queue = list(answers)
    writers: set[asyncio.StreamWriter] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                request = json.loads(await reader.readexactly(length))
                status, error = queue.pop(0) if queue else (200, None)
                doc = {"jsonrpc": "2.0", "id": request["id"]}
                doc.update({"error": error} if error else {"result": 42})
                body = json.dumps(doc).encode() if status == 200 else b"rate limited"
                head = b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                writer.write(head % (status, len(body)) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in writers:  # every connection closed before the loop is
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await server.wait_closed()


async def test_rpc_calls_and_errors_are_counted_by_method_and_kind() -> None:
    method = "getMetricsTestValue"  # a series no other test touches
    before_calls = sample("orderengine_chain_rpc_calls_total", method=method)
    async with rpc_node([(429, None), (200, {"code": -32602, "message": "invalid params"})]) as url:
        client = ChainClient(url, backoff_base_s=0.001, backoff_max_s=0.001)
        try:
            with pytest.raises(ChainError):
                await client.call(method, [], retry=True)  # 429 (retried in the client), then an RPC error
            assert await client.call(method, []) == 42
        finally:
            await client.close()
    assert sample("orderengine_chain_rpc_calls_total", method=method) == before_calls + 3
    assert sample("orderengine_chain_rpc_errors_total", method=method, kind="rate_limited") == 1
    assert sample("orderengine_chain_rpc_errors_total", method=method, kind="rpc") == 1
    assert sample("orderengine_chain_rpc_seconds_count", method=method) == 1  # calls that answered
