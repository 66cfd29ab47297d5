"""The benchmark's load generator: a process of its own (so its CPU is measured apart from the
engine's) that submits orders at an offered rate with WebSocket `execute` messages and follows each
to its final status on the same socket. `bench/bench_e2e.py` starts it and drives it.

    python -m bench.loadgen --url ws://127.0.0.1:3000/api/orders/ws [--pair SOL,USDC,0.5]

Protocol (JSON lines). On stdin, one command at a time:
    {"cmd": "step", "rate": 200, "orders": 2000, "warmup_s": 2, "drain_s": 30}   (or "seconds": 13)
    {"cmd": "quit"}
On stdout: {"event": "ready", "pid": …}; per step {"event": "window_start"} once the warm-up is
over, {"event": "window_end"} when the last order of the step was sent (the driver reads /proc at
each), then {"event": "result", …} once every order of the step has its final status (or the
drain timed out).

The load is open-loop: order i is sent at t0 + i/rate whatever the engine does (late sends go at
once and the lateness is reported). The client is cheap: a raw asyncio WebSocket protocol
(bench/wsclient.py) under uvloop, orjson, one prebuilt request body, no task per order. Each socket
carries at most `--socket-rate` executes per second (the gateway allows 50 client messages per
second per socket) and at most `--per-socket` orders (the gateway caps subscriptions per socket at
WS_MAX_SUBSCRIPTIONS, 200 by default); then it is retired — it takes no more orders, a successor
opened ahead takes its place, and it is closed once its last order ended — so the client never sends
an `unsubscribe`. A socket the server closes early has its unfinished orders followed again on a new
socket with `subscribe` from their last seq (the reconnect every client must do); executes it had
sent but not seen answered are counted as lost.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from collections import Counter, deque
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.httpclient import HttpConn, post_request
from bench.wsclient import WsClient
from common.lifecycle import BUILDING, FAILED, PENDING, ROUTING, SUBMITTED, TERMINAL

PONG = orjson.dumps({"action": "pong"})
RESUBSCRIBE_PER_S = 40.0
# where the time of an order goes: from the first arrival of one status to the first of the next
STAGES = (
    ("submit → pending", "", PENDING),
    ("pending → routing", PENDING, ROUTING),
    ("routing → building", ROUTING, BUILDING),
    ("building → submitted", BUILDING, SUBMITTED),
    ("submitted → final", SUBMITTED, "final"),
)


class Order:
    __slots__ = (
        "sent",
        "accepted",
        "done",
        "seq",
        "status",
        "order_id",
        "error",
        "reason",
        "in_window",
        "stamps",
    )

    def __init__(self, sent: float, in_window: bool) -> None:
        self.sent = sent
        self.accepted = 0.0
        self.done = 0.0
        self.seq = 0
        self.status = ""
        self.order_id = ""
        self.error = ""  # the execute was answered with this error code (or lost with its socket)
        self.reason = ""  # a failed order's reason
        self.in_window = in_window
        self.stamps: dict[str, float] = {}  # status → when it first arrived


class Conn:
    """One socket of the pool, with the executes waiting for their answer (FIFO: the gateway
    answers one socket's messages in order) and the orders it follows."""

    __slots__ = ("ws", "pending", "following", "sent", "retired", "successor", "index")

    def __init__(self, index: int) -> None:
        self.ws: WsClient | None = None
        self.pending: deque[Order] = deque()
        self.following: dict[str, Order] = {}
        self.sent = 0
        self.retired = False
        self.successor: asyncio.Task[Conn] | None = None
        self.index = index


def percentiles(values: list[float]) -> list[float] | None:
    """[p50, p95, p99, max] (nearest rank), None without values."""
    if not values:
        return None
    ordered = sorted(values)
    last = len(ordered) - 1
    return [ordered[min(last, max(0, math.ceil(p / 100 * len(ordered)) - 1))] for p in (50, 95, 99)] + [
        ordered[-1]
    ]


class LoadGen:
    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        body: bytes,
        per_socket: int,
        hard_limit: int,
        socket_rate: float,
        http_request: bytes = b"",
        max_http: int = 256,
    ) -> None:
        self.url = url
        self.headers = headers
        self.body = body
        # with `http_request` (a prebuilt POST /api/orders/execute), orders are posted over a pool of
        # keep-alive connections and followed with `subscribe` on the WebSockets
        self.http_request = http_request
        self.max_http = max_http
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.http_idle: list[HttpConn] = []
        self.http_conns: set[HttpConn] = set()
        self.http_waiting: deque[Order] = deque()
        self.http_opening = 0
        self.per_socket = per_socket
        self.hard_limit = max(per_socket, hard_limit)
        self.socket_rate = socket_rate
        self.active: list[Conn] = []
        self.retiring: set[Conn] = set()
        self.rr = 0
        self.opened = 0
        self.inflight = 0  # sent, not yet ended (final status or error)
        self.step_orders: list[Order] = []
        self.closes: Counter[str] = Counter()  # sockets the server closed early, by code
        self.resubscribed = 0
        self.orphans: list[Order] = []
        self.recovering: asyncio.Task[None] | None = None
        self.last_progress = time.perf_counter()
        self.overrun = 0  # orders not sent: every socket at its subscription limit
        self.seq_errors = 0  # status events that were not the next seq of their order
        self.ws_errors: Counter[str] = Counter()  # error messages no request of ours explains

    # --- sockets ------------------------------------------------------------------------------------
    async def open_conn(self) -> Conn:
        conn = Conn(self.opened)
        self.opened += 1
        conn.ws = await WsClient.connect(
            self.url,
            lambda payload: self.on_text(conn, payload),
            lambda code, reason: self.on_close(conn, code, reason),
            self.headers,
        )
        return conn

    async def resize(self, rate: float) -> None:
        if self.http_request:
            more = min(self.max_http, max(4, math.ceil(rate * 0.02))) - len(self.http_conns)
            for _ in range(more):
                self._grow_http()
        want = max(2, math.ceil(rate / self.socket_rate))
        if len(self.active) < want:
            self.active += await asyncio.gather(*(self.open_conn() for _ in range(want - len(self.active))))
        while len(self.active) > want:
            self.retire(self.active.pop())

    def retire(self, conn: Conn) -> None:
        """`conn` takes no more orders; it closes once its last order ended. A successor opened
        for it and not taken is closed too."""
        conn.retired = True
        self.retiring.add(conn)
        successor, conn.successor = conn.successor, None
        if successor is not None:
            successor.add_done_callback(self._drop_successor)
        self.maybe_close(conn)

    def _drop_successor(self, task: asyncio.Task[Conn]) -> None:
        if not task.cancelled() and task.exception() is None:
            unused = task.result()
            unused.retired = True
            self.retiring.add(unused)
            self.maybe_close(unused)

    def maybe_close(self, conn: Conn) -> None:
        if conn.retired and not conn.pending and not conn.following and conn.ws is not None:
            self.retiring.discard(conn)
            conn.ws.close()

    def pick(self) -> Conn | None:
        active = self.active
        for _ in range(len(active)):
            i = self.rr % len(active)
            self.rr += 1
            conn = active[i]
            if conn.sent >= self.per_socket * 3 // 4 and conn.successor is None:
                conn.successor = asyncio.create_task(self.open_conn())
            if conn.sent < self.per_socket:
                return conn
            successor = conn.successor
            if successor is not None and successor.done() and successor.exception() is None:
                active[i] = successor.result()
                conn.successor = None
                self.retire(conn)
                return active[i]
            if successor is not None and successor.done():  # it failed to open: try again
                conn.successor = asyncio.create_task(self.open_conn())
            if conn.sent < self.hard_limit:
                return conn
        return None

    # --- orders over HTTP ----------------------------------------------------------------------------
    def _grow_http(self) -> None:
        if len(self.http_conns) + self.http_opening < self.max_http:
            self.http_opening += 1
            asyncio.get_running_loop().create_task(self._open_http())

    async def _open_http(self) -> None:
        try:
            conn = await HttpConn.connect(self.host, self.port, self._http_idle, self._http_lost)
        except (OSError, TimeoutError):
            if not self.http_conns:  # nothing will ever take them
                while self.http_waiting:
                    self._ended(self.http_waiting.popleft(), "connect_failed")
            return
        finally:
            self.http_opening -= 1
        self.http_conns.add(conn)
        self._http_idle(conn)

    def _http_idle(self, conn: HttpConn) -> None:
        if self.http_waiting:
            self._post(conn, self.http_waiting.popleft())
        else:
            self.http_idle.append(conn)

    def _http_lost(self, conn: HttpConn) -> None:
        self.http_conns.discard(conn)
        if conn in self.http_idle:
            self.http_idle.remove(conn)
        if self.http_waiting:
            self._grow_http()

    def _post(self, conn: HttpConn, order: Order) -> None:
        conn.send(self.http_request, lambda status, body: self._posted(order, status, body))

    def _posted(self, order: Order, status: int, body: bytes) -> None:
        if status != 202:
            code = "lost (connection closed)" if status == 0 else f"http_{status}"
            try:
                error = orjson.loads(body).get("error") if body else None
                code = str(error["code"]) if isinstance(error, dict) else code
            except (orjson.JSONDecodeError, AttributeError, KeyError):
                pass
            self._ended(order, code)
            return
        order.accepted = time.perf_counter()
        order.order_id = orjson.loads(body)["orderId"]
        follower = self.pick()
        if follower is None or follower.ws is None:
            self.orphan(order)
            return
        follower.sent += 1
        follower.following[order.order_id] = order
        follower.ws.send_text(orjson.dumps({"action": "subscribe", "orderId": order.order_id, "afterSeq": 0}))

    def _ended(self, order: Order, error: str) -> None:
        order.error = error
        order.done = time.perf_counter()
        self.inflight -= 1

    # --- messages from the server -------------------------------------------------------------------
    def on_text(self, conn: Conn, payload: bytes) -> None:
        msg = orjson.loads(payload)
        kind = msg.get("type")
        if kind == "status":
            order = conn.following.get(msg.get("orderId"))
            if order is None:
                return
            now = time.perf_counter()
            seq = msg.get("seq")
            if seq != order.seq + 1:
                self.seq_errors += 1
            if isinstance(seq, int) and seq > order.seq:
                order.seq = seq
            status = msg.get("status")
            if status not in order.stamps:
                order.stamps[status] = now
            if status in TERMINAL:
                order.stamps["final"] = now
                del conn.following[order.order_id]
                order.done = now
                order.status = status
                if status == FAILED:
                    data = msg.get("data") or {}
                    order.reason = str(data.get("reason", ""))[:80]
                self.inflight -= 1
                self.last_progress = now
                if conn.retired:
                    self.maybe_close(conn)
        elif kind == "accepted":
            if not conn.pending:
                return
            order = conn.pending.popleft()
            order.accepted = time.perf_counter()
            order.order_id = msg["orderId"]
            conn.following[order.order_id] = order
        elif kind == "error":
            order_id = msg.get("orderId")
            code = str(msg.get("code", "error"))
            if order_id is None:  # the answer to an execute
                if conn.pending:
                    self._ended(conn.pending.popleft(), code)
                    if conn.retired:
                        self.maybe_close(conn)
                else:
                    self.ws_errors[code] += 1
                return
            order = conn.following.get(order_id)
            if order is None:
                self.ws_errors[code] += 1
                return
            if code == "unknown_order":
                del conn.following[order_id]
                order.error = code
                self.inflight -= 1
            else:  # catchup_failed, too_many_subscriptions: follow it again elsewhere
                del conn.following[order_id]
                self.orphan(order)
        elif kind == "ping":
            if conn.ws is not None:
                conn.ws.send_text(PONG)

    def on_close(self, conn: Conn, code: int, reason: str) -> None:
        self.retiring.discard(conn)
        if conn.retired and not conn.pending and not conn.following:
            return  # closed by us, done
        self.closes[str(code)] += 1
        if conn in self.active:
            self.active[self.active.index(conn)] = self.active[-1]
            self.active.pop()
            asyncio.get_running_loop().create_task(self._replace())
        conn.retired = True
        while conn.pending:
            order = conn.pending.popleft()
            order.error = f"lost (socket closed {code})"
            order.done = time.perf_counter()
            self.inflight -= 1
        for order in conn.following.values():
            self.orphan(order)
        conn.following.clear()

    async def _replace(self) -> None:
        try:
            self.active.append(await self.open_conn())
        except (OSError, TimeoutError):
            pass  # the next resize tries again

    def orphan(self, order: Order) -> None:
        self.orphans.append(order)
        if self.recovering is None or self.recovering.done():
            self.recovering = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        """Follows orphaned orders again on a socket of their own, from their last seq."""
        await asyncio.sleep(0.5)
        while self.orphans:
            try:
                conn = await self.open_conn()
            except (OSError, TimeoutError):
                await asyncio.sleep(1.0)
                continue
            conn.retired = True
            self.retiring.add(conn)
            batch, self.orphans = self.orphans[: self.per_socket], self.orphans[self.per_socket :]
            for order in batch:
                conn.following[order.order_id] = order
                assert conn.ws is not None
                conn.ws.send_text(
                    orjson.dumps({"action": "subscribe", "orderId": order.order_id, "afterSeq": order.seq})
                )
                self.resubscribed += 1
                await asyncio.sleep(1 / RESUBSCRIBE_PER_S)

    # --- a step -------------------------------------------------------------------------------------
    async def run_step(
        self, rate: float, orders: int, warmup_s: float, drain_s: float, emit: Any
    ) -> dict[str, Any]:
        await self.resize(rate)
        interval = 1.0 / rate
        duration = orders * interval
        warmup_s = min(warmup_s, duration / 2)
        step: list[Order] = []
        self.step_orders = step
        self.closes.clear()
        self.resubscribed = 0
        self.overrun = 0
        self.seq_errors = 0
        self.ws_errors.clear()
        t0 = time.perf_counter() + 0.02
        window_at = t0 + warmup_s
        window_start = 0.0
        inflight_start = 0
        lag_max = 0.0
        body = self.body
        i = 0
        while i < orders:
            now = time.perf_counter()
            if not window_start and now >= window_at:
                emit({"event": "window_start"})
                window_start = time.perf_counter()
                inflight_start = self.inflight
            due = t0 + i * interval
            if due > now:
                await asyncio.sleep(due - now)
                continue
            lag_max = max(lag_max, now - due)
            i += 1
            order = Order(now, due >= window_at)
            step.append(order)
            if self.http_request:
                self.inflight += 1
                if self.http_idle:
                    self._post(self.http_idle.pop(), order)
                else:
                    self.http_waiting.append(order)
                    self._grow_http()
                continue
            conn = self.pick()
            if conn is None or conn.ws is None:
                self.overrun += 1
                order.error = "client_overrun"
                order.done = now
                continue
            conn.sent += 1
            conn.pending.append(order)
            self.inflight += 1
            conn.ws.send_text(body)
        end_at = t0 + duration
        if end_at > time.perf_counter():
            await asyncio.sleep(end_at - time.perf_counter())
        if not window_start:  # a step shorter than its warm-up: the window is the whole step
            window_start, inflight_start = t0, 0
            emit({"event": "window_start"})
        emit({"event": "window_end"})
        window_end = time.perf_counter()
        inflight_end = self.inflight
        self.last_progress = window_end
        while any(not o.done for o in step):
            if time.perf_counter() - self.last_progress > drain_s:
                break
            await asyncio.sleep(0.05)
        return self.summary(
            rate, step, window_start, window_end, inflight_start, inflight_end, lag_max, duration
        )

    def summary(
        self,
        rate: float,
        step: list[Order],
        window_start: float,
        window_end: float,
        inflight_start: int,
        inflight_end: int,
        lag_max: float,
        duration: float,
    ) -> dict[str, Any]:
        window_s = max(1e-9, window_end - window_start)
        windowed = [o for o in step if o.in_window]
        completed = sum(1 for o in step if o.status and window_start <= o.done <= window_end)
        errors = Counter(o.error for o in step if o.error)
        reasons = Counter(o.reason for o in step if o.status == FAILED)
        missing = [o.order_id for o in step if o.order_id and not o.done]
        stages = {}
        for name, start, end in STAGES:
            spans = []
            for o in windowed:
                t1 = o.stamps.get(end)
                t0 = o.stamps.get(start) if start else o.sent
                if t0 is not None and t1 is not None:
                    spans.append((t1 - t0) * 1000)
            stages[name] = percentiles(spans)
        unanswered = sum(1 for o in step if not o.order_id and not o.done)
        return {
            "event": "result",
            "rate": rate,
            "orders": len(step),
            "duration_s": duration,
            "window_s": window_s,
            "window_orders": len(windowed),
            "sent_rate": len(windowed) / window_s,
            "achieved": completed / window_s,
            "completed_in_window": completed,
            "accepted": sum(1 for o in step if o.order_id),
            "rejected": dict(errors),
            "confirmed": sum(1 for o in step if o.status == "confirmed"),
            "failed": sum(1 for o in step if o.status == FAILED),
            "failure_reasons": dict(reasons.most_common(5)),
            "missing": missing,
            "unanswered": unanswered,
            "accept_ms": percentiles([(o.accepted - o.sent) * 1000 for o in windowed if o.accepted]),
            "e2e_ms": percentiles([(o.done - o.sent) * 1000 for o in windowed if o.status]),
            "stages_ms": stages,
            "seq_errors": self.seq_errors,
            "ws_errors": dict(self.ws_errors),
            "http_connections": len(self.http_conns),
            "overrun": self.overrun,
            "inflight_start": inflight_start,
            "inflight_end": inflight_end,
            "lag_max_ms": lag_max * 1000,
            "sockets": len(self.active),
            "sockets_opened": self.opened,
            "socket_closes": dict(self.closes),
            "resubscribed": self.resubscribed,
        }

    async def close(self) -> None:
        for http in list(self.http_conns):
            http.close()
        for conn in [*self.active, *self.retiring]:
            conn.retired = True
            if conn.successor is not None:
                self.retire(conn)
            if conn.ws is not None:
                conn.ws.close()
        await asyncio.sleep(0.05)


def emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    sys.stdout.flush()


async def serve(args: argparse.Namespace) -> None:
    token_in, token_out, amount = args.pair.split(",")
    body = orjson.dumps(
        {
            "action": "execute",
            "tokenIn": token_in,
            "tokenOut": token_out,
            "amount": amount,
            "slippageBps": args.slippage_bps,
        }
    )
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    http_request = b""
    if args.client == "http":
        parts = urlsplit(args.url)
        post = orjson.dumps({k: v for k, v in orjson.loads(body).items() if k != "action"})
        http_request = post_request(
            parts.hostname or "127.0.0.1", parts.port or 80, "/api/orders/execute", post, headers
        )
    gen = LoadGen(
        args.url,
        headers,
        body,
        args.per_socket,
        args.max_subscriptions,
        args.socket_rate,
        http_request=http_request,
        max_http=args.max_connections,
    )
    loop = asyncio.get_running_loop()
    emit({"event": "ready", "pid": os.getpid()})
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            cmd = orjson.loads(line)
            if cmd.get("cmd") != "step":
                return
            rate = float(cmd["rate"])
            orders = int(cmd.get("orders") or round(rate * float(cmd["seconds"])))
            result = await gen.run_step(
                rate, orders, float(cmd.get("warmup_s", 2.0)), float(cmd.get("drain_s", 30.0)), emit
            )
            emit(result)
    finally:
        await gen.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="ws://host:port/api/orders/ws")
    parser.add_argument("--pair", default="SOL,USDC,0.5", help="tokenIn,tokenOut,amount")
    parser.add_argument("--slippage-bps", type=int, default=100)
    parser.add_argument("--api-key", default="")
    parser.add_argument("--per-socket", type=int, default=100, help="orders per socket before it retires")
    parser.add_argument(
        "--max-subscriptions", type=int, default=200, help="the gateway's WS_MAX_SUBSCRIPTIONS"
    )
    parser.add_argument("--socket-rate", type=float, default=10.0, help="executes per second per socket")
    parser.add_argument(
        "--client",
        choices=("ws", "http"),
        default="ws",
        help="ws: WS execute; http: POST /api/orders/execute (keep-alive pool), then WS subscribe",
    )
    parser.add_argument("--max-connections", type=int, default=256, help="HTTP connections at most")
    args = parser.parse_args()
    if len(args.pair.split(",")) != 3:
        parser.error(f"--pair expects tokenIn,tokenOut,amount, got {args.pair!r}")
    import uvloop

    uvloop.run(serve(args))


if __name__ == "__main__":
    main()
