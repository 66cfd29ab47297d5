"""The simulated chain's JSON-RPC 2.0 endpoint over HTTP: a minimal ASGI app under uvicorn.

``POST /`` takes one request object or a batch (an array); ``GET /health`` answers ``ok`` as a
validator's RPC does. Bodies are limited to 50 KiB and must be ``application/json``, as on a real
node. JSON-RPC errors answer HTTP 200 with an error object; injected rate limiting answers HTTP 429.

Fault injection (settings SIM_LATENCY_MS, SIM_FAIL_RATE, SIM_DROP_RATE; changed live with the
`simSetFaults` method): every HTTP request waits the latency before it is handled; a request that
carries a sendTransaction is answered 429 "Too Many Requests" at the fail rate, without executing
anything; a sendTransaction is dropped at the drop rate (answered with its signature, never lands).

`start(settings)` runs the node in the current event loop (tests use port 0 and read
`Running.port`); `main()` is `python -m simchain`, stopping gracefully on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
import uvicorn
import uvloop
from solders.pubkey import Pubkey

from common.log import setup_logging
from common.markets import Markets, load_markets
from common.parent import die_with_parent
from common.settings import Settings, load_settings
from simchain.genesis import Genesis, build_genesis
from simchain.journal import Journal
from simchain.ledger import Ledger
from simchain.programs import programs_for
from simchain.pubsub import PubsubSocket
from simchain.rpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    Faults,
    Node,
    RpcError,
)
from simchain.rpc import _signature as rpc_signature
from simchain.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 50 * 1024
GRACE_S: Final = 5.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON_HEADERS: Final = [(b"content-type", b"application/json")]
_TOO_MANY: Final = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "error": {"code": 429, "message": "Too many requests for a specific RPC call"},
        "id": None,
    }
)


def _error(code: int, message: str, id_: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id_}


class RpcApp:
    """The ASGI application: HTTP in, JSON-RPC dispatch to a `Node`, JSON out."""

    def __init__(self, node: Node, journal: Journal | None = None) -> None:
        self.node = node
        self.journal = journal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await PubsubSocket(self.node.pubsub, _is_signature).serve(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method == "GET" and scope["path"] == "/health":
            await self._respond(send, 200, b"ok", [(b"content-type", b"text/plain")])
            return
        if method != "POST":
            await self._respond(
                send,
                405,
                b"Used HTTP Method is not allowed. POST or OPTIONS is required",
                [(b"content-type", b"text/plain")],
            )
            return
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
        if not content_type.split(b";")[0].strip().lower() == b"application/json":
            await self._respond(
                send,
                415,
                b"Supplied content type is not allowed. Content-Type: application/json is required",
                [(b"content-type", b"text/plain")],
            )
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                await self._respond(send, 413, b"Payload Too Large", [(b"content-type", b"text/plain")])
                return
            more = message.get("more_body", False)

        faults = self.node.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            await self._respond(send, 200, orjson.dumps(_error(PARSE_ERROR, "Parse error")), _JSON_HEADERS)
            return
        if faults.fail_rate and _carries_send(request) and self.node.rng.random() < faults.fail_rate:
            await self._respond(send, 429, _TOO_MANY, _JSON_HEADERS)
            return
        if isinstance(request, list):
            if not request:
                payload: Any = _error(INVALID_REQUEST, "Invalid request")
            else:
                payload = [r for r in (self.dispatch(item) for item in request) if r is not None]
                self._journal_flush()
                if not payload:
                    await self._respond(send, 200, b"", _JSON_HEADERS)
                    return
        else:
            payload = self.dispatch(request)
            self._journal_flush()
            if payload is None:
                await self._respond(send, 200, b"", _JSON_HEADERS)
                return
        await self._respond(send, 200, orjson.dumps(payload), _JSON_HEADERS)

    def _journal_flush(self) -> None:
        """What the request changed reaches the journal before anyone hears of it (nothing awaits
        between handling the request and this write, so no other request saw it either)."""
        if self.journal is not None:
            self.journal.flush()

    def dispatch(self, request: Any) -> dict[str, Any] | None:
        """One JSON-RPC request object → its response object (None for a notification)."""
        if not isinstance(request, dict):
            return _error(INVALID_REQUEST, "Invalid request")
        id_ = request.get("id")
        if request.get("jsonrpc") != "2.0" or not isinstance(request.get("method"), str):
            return _error(INVALID_REQUEST, "Invalid request", id_ if _valid_id(id_) else None)
        if not _valid_id(id_):
            return _error(INVALID_REQUEST, "Invalid request")
        handler = self.node.methods.get(request["method"])
        if handler is None:
            response = _error(METHOD_NOT_FOUND, "Method not found", id_)
        else:
            try:
                response = {"jsonrpc": "2.0", "result": handler(request.get("params")), "id": id_}
            except RpcError as exc:
                response = {"jsonrpc": "2.0", "error": exc.to_json(), "id": id_}
            except Exception:  # noqa: BLE001 - never leak an internal error's text
                log.exception("internal error in %s", request["method"])
                response = _error(INTERNAL_ERROR, "Internal error", id_)
        return response if "id" in request else None

    @staticmethod
    async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _is_signature(value: str) -> bool:
    """The JSON-RPC methods' own signature check, as a yes or no (for the WebSocket's requests)."""
    try:
        rpc_signature(value)
    except RpcError:
        return False
    return True


def _valid_id(id_: Any) -> bool:
    return id_ is None or isinstance(id_, str) or (isinstance(id_, int) and not isinstance(id_, bool))


def _carries_send(request: Any) -> bool:
    if isinstance(request, dict):
        return request.get("method") == "sendTransaction"
    if isinstance(request, list):
        return any(isinstance(r, dict) and r.get("method") == "sendTransaction" for r in request)
    return False


# -- running -------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the caller owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_node(
    settings: Settings,
    *,
    markets: Markets | None = None,
    unix_start: int | None = None,
    seed: int | None = None,
) -> tuple[Node, Journal | None]:
    """The chain at genesis: ledger, runtime and methods, with the settings' faults. With
    SIM_DATA_DIR, the journal there is replayed (the chain is where it was, its tip where the clock
    says) and every change from now on is journaled."""
    markets = markets if markets is not None else load_markets(settings.markets_path)
    genesis = build_genesis(markets.programs)
    check_markets(markets, genesis)
    unix_start = int(time.time()) if unix_start is None else unix_start
    journal = None
    if settings.sim_data_dir:
        journal = Journal.open(
            Path(settings.sim_data_dir),
            slot_ms=settings.sim_slot_ms,
            programs={venue: str(pid) for venue, pid in markets.programs.items()},
            unix_start=unix_start,
        )
        unix_start = int(journal.header["unixStart"])
    ledger = Ledger(slot_ms=settings.sim_slot_ms, unix_start=unix_start)
    genesis.load_into(ledger)
    runtime = Runtime(ledger, programs_for(markets))
    faults = Faults(settings.sim_latency_ms, settings.sim_fail_rate, settings.sim_drop_rate)
    rng = random.Random(seed)

    def grant_tokens(wallet: Pubkey) -> None:
        genesis.airdrop_tokens(ledger, wallet)

    if journal is None:
        return Node(
            ledger, runtime, genesis.faucet, grant_tokens, faults, rng, genesis.pool_creator, markets.programs
        ), None
    replayed = journal.replay(ledger, runtime, grant_tokens)
    ledger.advance(journal.tip_now(settings.sim_slot_ms, replayed) - ledger.slot)
    if replayed.transactions or replayed.airdrops:
        log.info(
            "chain restored from its journal",
            extra={
                "journal": str(journal.path),
                "transactions": replayed.transactions,
                "airdrops": replayed.airdrops,
                "slot": ledger.slot,
            },
        )
    if replayed.mismatches:
        log.error("journaled transactions did not replay as landed", extra={"count": replayed.mismatches})
    ledger.on_record = journal.transaction

    def grant_tokens_journaled(wallet: Pubkey) -> None:
        genesis.airdrop_tokens(ledger, wallet)
        journal.airdrop(wallet, ledger.slot)

    node = Node(
        ledger,
        runtime,
        genesis.faucet,
        grant_tokens_journaled,
        faults,
        rng,
        genesis.pool_creator,
        markets.programs,
    )
    # requestAirdrop numbers its memos (equal requests in one slot must differ): carry on counting
    node._airdrops = replayed.airdrops
    warp = node.methods["simWarpSlots"]

    def warp_journaled(params: Any) -> Any:
        before = ledger.slot
        result = warp(params)
        journal.warp(ledger.slot - before)
        return result

    node.methods["simWarpSlots"] = warp_journaled
    return node, journal


def check_markets(markets: Markets, genesis: Genesis) -> None:
    """The markets file must describe this genesis (same tokens, same pools)."""
    doc = genesis.markets_doc()
    want_tokens = [(t["symbol"], t["mint"], t["decimals"]) for t in doc["tokens"]]
    have_tokens = [(t.symbol, t.mint, t.decimals) for t in markets.tokens]
    want_pools = [(p["venue"], p["address"]) for p in doc["pools"]]
    have_pools = [(p.venue, p.address) for p in markets.pools]
    if want_tokens != have_tokens or want_pools != have_pools:
        raise RuntimeError(
            "the markets file does not describe the simulated chain's genesis; regenerate it with "
            "`python -m simchain.genesis --write <markets file>`"
        )


@dataclass
class Running:
    """A node serving on `port`; `stop()` shuts it down gracefully."""

    port: int
    url: str
    node: Node
    _server: _Server
    _serve_task: asyncio.Task[None]
    _slot_task: asyncio.Task[None]
    journal: Journal | None = None

    async def stop(self) -> None:
        self._slot_task.cancel()
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._slot_task
        await self._serve_task
        if self.journal is not None:
            self.journal.close()


async def _advance_slots(node: Node, slot_ms: int) -> None:
    """Moves the tip one slot every `slot_ms` (catching up after a stall, never drifting)."""
    loop = asyncio.get_running_loop()
    period = slot_ms / 1000
    t0 = loop.time()
    ticks = 0
    while True:
        await asyncio.sleep(max(0.0, t0 + (ticks + 1) * period - loop.time()))
        due = int((loop.time() - t0) / period)
        if due > ticks:
            node.ledger.advance(due - ticks)
            ticks = due


async def start(
    settings: Settings,
    *,
    markets: Markets | None = None,
    unix_start: int | None = None,
    seed: int | None = None,
) -> Running:
    """Starts the node on settings.sim_host:settings.sim_port (0 picks a free port)."""
    node, journal = build_node(settings, markets=markets, unix_start=unix_start, seed=seed)
    family = socket.AF_INET6 if ":" in settings.sim_host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((settings.sim_host, settings.sim_port))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        RpcApp(node, journal),
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(GRACE_S),
        backlog=4096,
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
    server = _Server(config)
    serve_task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serve_task.done():
            serve_task.result()
            raise RuntimeError("the simulated chain's HTTP server stopped during start-up")
        await asyncio.sleep(0.005)
    slot_task = asyncio.create_task(_advance_slots(node, settings.sim_slot_ms))
    host = f"[{settings.sim_host}]" if ":" in settings.sim_host else settings.sim_host
    return Running(port, f"http://{host}:{port}", node, server, serve_task, slot_task, journal)


async def _wait_for_shutdown_signal() -> None:
    """Returns when the process receives SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _serve(settings: Settings) -> None:
    running = await start(settings)
    log.info(
        "simulated chain listening",
        extra={"url": running.url, "slot_ms": settings.sim_slot_ms, "faults": running.node.faults.to_json()},
    )
    await _wait_for_shutdown_signal()
    log.info("shutting down")
    await running.stop()


def main() -> None:
    die_with_parent()
    settings = load_settings()
    setup_logging("simchain", settings.log_level)
    uvloop.run(_serve(settings))
