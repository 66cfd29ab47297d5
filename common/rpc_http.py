"""A lean HTTP/1.1 client for JSON-RPC POSTs: pooled keep-alive connections, no per-request objects.

The chain client sends a handful of POSTs per slot, each carrying a JSON-RPC batch; a general HTTP
library spends ~0.5 ms of CPU per request on objects, hooks and state machines this use does not
need. This client writes one request head and body, reads the status line, the headers it needs
(Content-Length, Transfer-Encoding, Connection, Retry-After) and the body, and keeps the connection
for the next request. http and https (TLS with certificate and host checks, SNI) are supported; the
body is never compressed (Accept-Encoding: identity).

Failures say whether the request may have reached the server (`maybe_delivered`): only a request
never written (no connection) is known undelivered. A request on a reused keep-alive connection
that fails before any byte of the answer arrived is retried once on a fresh connection (the server
may have closed an idle connection); every request sent through here is safe to repeat (reads, and
sendTransaction with the same signed bytes, which lands at most once).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 256 * 1024 * 1024


class HttpError(Exception):
    """The request failed below HTTP (connect, TLS, broken connection, malformed answer)."""

    def __init__(self, message: str, maybe_delivered: bool, connect: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.maybe_delivered = maybe_delivered
        self.connect = connect


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    retry_after: str = ""


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _NoAnswer(Exception):
    """The connection closed before any byte of the answer (a stale keep-alive connection)."""


class RpcHttpClient:
    def __init__(
        self,
        url: str,
        max_connections: int = 16,
        headers: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url.split('?')[0]!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":  # certificate and host name checked (the system's CAs by default)
            self._ssl = ssl_context or ssl.create_default_context()
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host_header = parts.netloc.rpartition("@")[2]
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json\r\nAccept-Encoding: identity\r\nUser-Agent: orderengine\r\n{extra}"
            "Content-Length: "
        ).encode()
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(max_connections)
        self.connections_opened = 0

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def post(self, body: bytes) -> HttpResponse:
        async with self._slots:
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await self._connect()
            try:
                response, keep = await self._exchange(conn, body)
            except _NoAnswer:
                conn.close()
                if not reused:
                    raise HttpError("the server closed the connection without answering", True) from None
                conn = await self._connect()  # a stale keep-alive connection: once more, fresh
                try:
                    response, keep = await self._exchange(conn, body)
                except _NoAnswer:
                    conn.close()
                    raise HttpError("the server closed the connection without answering", True) from None
                except BaseException:
                    conn.close()
                    raise
            except BaseException:
                conn.close()
                raise
            if keep:
                self._idle.append(conn)
            else:
                conn.close()
            return response

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(
                self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._ssl else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise HttpError(f"cannot connect ({type(exc).__name__})", False, connect=True) from None
        self.connections_opened += 1
        return _Conn(reader, writer)

    async def _exchange(self, conn: _Conn, body: bytes) -> tuple[HttpResponse, bool]:
        try:
            conn.writer.write(self._head + str(len(body)).encode() + b"\r\n\r\n" + body)
            await conn.writer.drain()
        except (OSError, ssl.SSLError):
            raise _NoAnswer() from None
        reader = conn.reader
        try:
            status_line = await reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _NoAnswer() from None
            raise HttpError("the connection broke in the answer's status line", True) from None
        except (OSError, ssl.SSLError):
            raise _NoAnswer() from None
        except asyncio.LimitOverrunError:
            raise HttpError("malformed HTTP answer (status line too long)", True) from None
        try:
            return await self._read_rest(reader, status_line)
        except (asyncio.IncompleteReadError, OSError, ssl.SSLError):
            raise HttpError("the connection broke while reading the answer", True) from None
        except asyncio.LimitOverrunError:
            raise HttpError("malformed HTTP answer (header line too long)", True) from None

    async def _read_rest(self, reader: asyncio.StreamReader, status_line: bytes) -> tuple[HttpResponse, bool]:
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpError("malformed HTTP answer (status line)", True)
        status = int(parts[1])
        keep = parts[0] == b"HTTP/1.1"
        length: int | None = None
        chunked = False
        retry_after = ""
        total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            total += len(line)
            if total > MAX_HEADER_BYTES:
                raise HttpError("malformed HTTP answer (headers too large)", True)
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            val = value.strip()
            if key == b"content-length":
                if not val.isdigit():
                    raise HttpError("malformed HTTP answer (Content-Length)", True)
                length = int(val)
            elif key == b"transfer-encoding":
                chunked = b"chunked" in val.lower()
            elif key == b"connection":
                low = val.lower()
                keep = b"close" not in low and (keep or b"keep-alive" in low)
            elif key == b"retry-after":
                retry_after = val.decode("latin-1")
        if chunked:
            body = await self._read_chunked(reader)
        elif length is not None:
            if length > MAX_BODY_BYTES:
                raise HttpError("HTTP answer too large", True)
            body = await reader.readexactly(length)
        else:
            body = await reader.read(MAX_BODY_BYTES)
            keep = False
        return HttpResponse(status, body, retry_after), keep

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpError("malformed HTTP answer (chunk size)", True) from None
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                return bytes(out)
            if len(out) + size > MAX_BODY_BYTES:
                raise HttpError("HTTP answer too large", True)
            out += await reader.readexactly(size)
            await reader.readexactly(2)
