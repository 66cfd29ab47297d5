"""common.rpc_http against a raw asyncio server that answers exactly what each test scripts."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from common.rpc_http import HttpError, RpcHttpClient

Script = Callable[[int, bytes], bytes | None]  # (request number, body) -> raw answer, None = hang up


class RawServer:
    def __init__(self) -> None:
        self.script: Script = lambda n, body: _answer(200, body)
        self.requests = 0
        self.connections = 0
        self.close_after_each = False
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                self.requests += 1
                answer = self.script(self.requests, body)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _answer(status: int, body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    raw = RawServer()
    srv = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.port = srv.sockets[0].getsockname()[1]
    try:
        yield raw
    finally:
        srv.close()
        await srv.wait_closed()


async def test_keep_alive_reuses_one_connection(server: RawServer) -> None:
    client = RpcHttpClient(f"http://127.0.0.1:{server.port}/")
    for i in range(5):
        response = await client.post(b'{"n":%d}' % i)
        assert response.status == 200 and response.body == b'{"n":%d}' % i
    assert server.connections == 1 and client.connections_opened == 1
    await client.close()


async def test_chunked_answer_is_reassembled(server: RawServer) -> None:
    server.script = lambda n, body: (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[1,2\r\n2\r\n,3\r\n1\r\n]\r\n0\r\n\r\n"
    )
    client = RpcHttpClient(f"http://127.0.0.1:{server.port}")
    assert (await client.post(b"{}")).body == b"[1,2,3]"
    assert (await client.post(b"{}")).body == b"[1,2,3]"  # the connection stayed usable
    assert server.connections == 1
    await client.close()


async def test_a_stale_keep_alive_connection_is_retried_once_on_a_fresh_one(server: RawServer) -> None:
    client = RpcHttpClient(f"http://127.0.0.1:{server.port}")
    assert (await client.post(b"1")).status == 200
    # the server now hangs up on the pooled connection before answering the next request
    server.script = lambda n, body: None if n == 2 else _answer(200, body)
    assert (await client.post(b"2")).body == b"2"
    assert server.connections == 2
    await client.close()


async def test_connection_close_honoured_status_and_retry_after_reported(
    server: RawServer,
) -> None:
    server.script = lambda n, body: _answer(429, b"slow down", "Retry-After: 3\r\nConnection: close\r\n")
    client = RpcHttpClient(f"http://127.0.0.1:{server.port}")
    response = await client.post(b"{}")
    assert response.status == 429 and response.retry_after == "3" and response.body == b"slow down"
    await client.post(b"{}")
    assert client.connections_opened == 2  # not kept after Connection: close
    await client.close()


async def test_a_refused_connection_is_known_undelivered() -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    client = RpcHttpClient(f"http://127.0.0.1:{port}")
    with pytest.raises(HttpError) as info:
        await client.post(b"{}")
    assert info.value.connect and not info.value.maybe_delivered


async def test_an_answer_cut_short_may_have_been_delivered(server: RawServer) -> None:
    server.script = lambda n, body: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    server.close_after_each = True
    client = RpcHttpClient(f"http://127.0.0.1:{server.port}")
    with pytest.raises(HttpError) as info:
        await client.post(b"{}")
    assert info.value.maybe_delivered and not info.value.connect


def test_only_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        RpcHttpClient("ftp://example.com/")


async def test_https_checks_the_certificate_and_the_host_name(tmp_path: Path) -> None:
    """TLS with SNI and host name verification: a certificate for localhost from a CA the client
    trusts is accepted; the same server under another name is refused before anything is sent."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    raw = RawServer()
    srv = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.sockets[0].getsockname()[1]
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        client = RpcHttpClient(f"https://localhost:{port}/", ssl_context=trusting)
        assert (await client.post(b'{"tls":1}')).body == b'{"tls":1}'
        await client.close()
        wrong_name = RpcHttpClient(f"https://127.0.0.1:{port}/", ssl_context=trusting)
        with pytest.raises(HttpError) as info:
            await wrong_name.post(b"{}")
        assert info.value.connect and not info.value.maybe_delivered
        assert raw.requests == 1
    finally:
        srv.close()
        await srv.wait_closed()
