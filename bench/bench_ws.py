"""WebSocket fan-out benchmark: N sockets on ONE gateway follow a late-joined order (pure catch-up)
and a live one, and it prints what reached them.

    python -m bench.bench_ws --subscribers 5000          # starts its own stack (make bench-ws N=5000)
    python -m bench.bench_ws --subscribers 5000 --env WS_CACHE_ORDERS=0

1. Order A is placed and runs to its end before any socket exists; then every socket subscribes to
   it with afterSeq 0 (its whole history is catch-up: from the gateway's cache, or one shared read).
2. The worker is paused (SIGSTOP), order B is placed, every socket subscribes to it and gets its
   `pending`; the worker resumes, and B's later statuses reach every socket live.

Printed: events missing (must be 0) or out of order per order, the fan-out spread of each live
status (the time from the first socket receiving it to the p50 / p99 / last one), the gateway's
RSS and CPU, and the persistence reads (GetOrder) the catch-up cost. The client is lean — a few
processes, each a raw asyncio protocol speaking just enough WebSocket (RFC 6455) — so the gateway,
not the client, is what is measured; receive times are CLOCK_MONOTONIC, comparable across processes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import re
import resource
import signal
import struct
import tempfile
import time
import uuid
from collections import defaultdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import httpx
import orjson

# --- the lean client (runs in several processes) ------------------------------------------------


def _frame(text: bytes) -> bytes:
    """A masked client text frame (mask key 0: the payload goes as it is, as RFC 6455 allows)."""
    n = len(text)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + b"\x00\x00\x00\x00" + text


class Recorder:
    """What one client process saw, for every socket and order."""

    def __init__(self) -> None:
        self.seqs: dict[str, list[list[int]]] = {}  # order → per socket: seqs received, in order
        self.times: dict[tuple[str, int], list[float]] = defaultdict(list)  # (order, seq) → times
        self.status_of: dict[tuple[str, int], str] = {}
        self.subscribed: dict[str, int] = defaultdict(int)
        self.errors: list[dict[str, Any]] = []
        self.closes: list[int] = []


class LeanSocket(asyncio.Protocol):
    def __init__(self, index: int, host: str, path: str, rec: Recorder, opened: asyncio.Future[None]) -> None:
        self.index = index
        self.rec = rec
        self.opened = opened
        key = base64.b64encode(os.urandom(16)).decode()
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.buf = bytearray()
        self.open = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        transport = self.transport
        transport.write(self.request)

    def send(self, doc: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(orjson.dumps(doc)))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(bytes(buf[:end]).decode(errors="replace")))
                return
            del buf[: end + 4]
            self.open = True
            self.opened.set_result(None)
        while len(buf) >= 2:
            opcode, length, i = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, i = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, i = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < i + length:
                return
            payload = bytes(buf[i : i + length])
            del buf[: i + length]
            if opcode == 1:
                self.on_text(payload)
            elif opcode == 9 and self.transport is not None:  # ping → pong, masked
                self.transport.write(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\x00" * 4 + payload)
            elif opcode == 8:
                self.rec.closes.append(int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005)
                if self.transport is not None:
                    self.transport.close()

    def on_text(self, payload: bytes) -> None:
        now = time.monotonic()
        msg = orjson.loads(payload)
        kind = msg.get("type")
        rec = self.rec
        if kind == "status":
            order_id, seq = msg["orderId"], msg["seq"]
            per_socket = rec.seqs.get(order_id)
            if per_socket is not None:
                per_socket[self.index].append(seq)
            rec.times[(order_id, seq)].append(now)
            rec.status_of[(order_id, seq)] = msg["status"]
        elif kind == "subscribed":
            rec.subscribed[msg["orderId"]] += 1
        elif kind == "ping":
            self.send({"action": "pong"})
        elif kind == "error":
            rec.errors.append(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))


async def _client(host: str, port: int, count: int, pipe: Connection) -> None:
    rec = Recorder()
    loop = asyncio.get_running_loop()
    sockets: list[LeanSocket] = []
    gate = asyncio.Semaphore(64)  # handshakes in flight

    async def open_one(i: int) -> None:
        async with gate:
            opened: asyncio.Future[None] = loop.create_future()
            sock = LeanSocket(i, f"{host}:{port}", "/api/orders/ws", rec, opened)
            await loop.create_connection(lambda: sock, host, port)
            await opened
            sockets.append(sock)

    await asyncio.gather(*(open_one(i) for i in range(count)))
    sockets.sort(key=lambda s: s.index)
    pipe.send(("ready", len(sockets)))
    while True:
        while not pipe.poll():
            await asyncio.sleep(0.01)
        command, *args = pipe.recv()
        if command == "subscribe":
            (order_id,) = args
            rec.seqs[order_id] = [[] for _ in sockets]
            for sock in sockets:
                sock.send({"action": "subscribe", "orderId": order_id, "afterSeq": 0})
            pipe.send(("sent",))
        elif command == "progress":
            order_id, seq = args
            have = sum(1 for got in rec.seqs[order_id] if seq in got)
            pipe.send(("progress", have, rec.subscribed[order_id], len(rec.errors), len(rec.closes)))
        elif command == "report":
            pipe.send(
                (
                    "report",
                    {
                        "seqs": rec.seqs,
                        "times": dict(rec.times),
                        "status_of": rec.status_of,
                        "errors": rec.errors[:20],
                        "error_count": len(rec.errors),
                        "closes": rec.closes,
                        "cpu_s": sum(os.times()[:2]),
                    },
                )
            )
            for sock in sockets:
                if sock.transport is not None:
                    sock.transport.close()
            await asyncio.sleep(0.2)
            return


def client_process(host: str, port: int, count: int, pipe: Connection) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.run(_client(host, port, count, pipe))
    except ImportError:
        asyncio.run(_client(host, port, count, pipe))


# --- the parent ----------------------------------------------------------------------------------


class Clients:
    def __init__(self, url: str, total: int, processes: int) -> None:
        m = re.match(r"http://([^:/]+):(\d+)", url)
        assert m, url
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        sizes = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
        for size in sizes:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_process, args=(m.group(1), int(m.group(2)), size, child))
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def ask(self, *command: Any) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def wait_ready(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        opened = 0
        for pipe in self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("the client processes did not open their sockets in time")
            opened += pipe.recv()[1]
        return opened

    def wait_for(self, order_id: str, seq: int, total: int, timeout: float) -> tuple[int, int]:
        """Polls until every socket has `seq` of `order_id` (or timeout): (have, errors)."""
        deadline = time.monotonic() + timeout
        while True:
            answers = self.ask("progress", order_id, seq)
            have = sum(a[1] for a in answers)
            errors = sum(a[3] for a in answers)
            closes = sum(a[4] for a in answers)
            if have + errors + closes >= total or time.monotonic() > deadline:
                return have, errors
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


def proc_stats(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds so far) of a process, from /proc."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return rss_kb / 1024, ticks / os.sysconf("SC_CLK_TCK")


def get_reads(metrics_url: str) -> float:
    text = httpx.get(metrics_url, timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("orderengine_grpc_server_handled_total{") and 'grpc_method="GetOrder"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def place_order(client: httpx.Client) -> str:
    r = client.post("/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.5"})
    r.raise_for_status()
    order_id: str = r.json()["orderId"]
    return order_id


def wait_final(client: httpx.Client, order_id: str, timeout: float = 60) -> dict[str, Any]:
    from common import lifecycle  # here: the lean client processes do not load the engine's modules

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        order: dict[str, Any] = client.get(f"/api/orders/{order_id}").json()
        if order["status"] in lifecycle.TERMINAL:
            return order
        time.sleep(0.05)
    raise TimeoutError(f"order {order_id} did not end within {timeout:g} s")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def check(reports: list[dict[str, Any]], order_id: str, last_seq: int) -> tuple[int, int, int]:
    """(events missing, sockets out of order or with repeats, sockets complete) for one order."""
    missing = disordered = complete = 0
    want = list(range(1, last_seq + 1))
    for report in reports:
        for got in report["seqs"].get(order_id, []):
            if got == want:
                complete += 1
                continue
            missing += len(set(want) - set(got))
            if got != sorted(set(got)):
                disordered += 1
    return missing, disordered, complete


def run(url: str, stack: Any, subscribers: int, processes: int, metrics_url: str) -> int:
    gateway_pid = stack.procs["gateway"].popen.pid
    worker = stack.procs["worker"].popen
    http = httpx.Client(base_url=url, timeout=30)
    rss0, cpu0 = proc_stats(gateway_pid)
    print(f"gateway before the sockets: RSS {rss0:.0f} MB", flush=True)

    order_a = place_order(http)
    final_a = wait_final(http, order_a)
    print(f"order A {order_a}: {final_a['status']} at seq {final_a['lastSeq']} before anyone follows it")

    started = time.monotonic()
    clients = Clients(url, subscribers, processes)
    try:
        opened = clients.wait_ready(timeout=300)
        rss1, cpu1 = proc_stats(gateway_pid)
        print(
            f"{opened} sockets open in {time.monotonic() - started:.1f} s ({processes} client processes); "
            f"gateway RSS {rss1:.0f} MB, CPU {cpu1 - cpu0:.1f} s for the handshakes",
            flush=True,
        )

        # 1. catch-up: everyone subscribes to the finished order A at once
        reads0 = get_reads(metrics_url)
        t0 = time.monotonic()
        clients.ask("subscribe", order_a)
        have, errors = clients.wait_for(order_a, final_a["lastSeq"], opened, timeout=120)
        catchup_s = time.monotonic() - t0
        reads = get_reads(metrics_url) - reads0
        rss2, cpu2 = proc_stats(gateway_pid)
        print(
            f"catch-up of A: {have}/{opened} sockets complete in {catchup_s:.2f} s, {errors} errors, "
            f"{reads:.0f} persistence read(s); gateway CPU {cpu2 - cpu1:.2f} s",
            flush=True,
        )

        # 2. live: B is placed with the worker paused, everyone subscribes, then it runs
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            order_b = place_order(http)
            clients.ask("subscribe", order_b)
            have, errors = clients.wait_for(order_b, 1, opened, timeout=120)
            print(f"order B {order_b}: {have}/{opened} sockets subscribed (pending received)", flush=True)
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        rss3, cpu3 = proc_stats(gateway_pid)
        final_b = wait_final(http, order_b)
        have, errors = clients.wait_for(order_b, final_b["lastSeq"], opened, timeout=120)
        rss4, cpu4 = proc_stats(gateway_pid)
        reports = [answer[1] for answer in clients.ask("report")]
    finally:
        clients.stop()

    print()
    print(f"subscribers: {opened} sockets on one gateway (every socket follows both orders)")
    total_missing = 0
    for name, order_id, final in (("A (catch-up)", order_a, final_a), ("B (live)", order_b, final_b)):
        missing, disordered, complete = check(reports, order_id, final["lastSeq"])
        total_missing += missing + disordered
        print(
            f"order {name}: {final['lastSeq']} events; complete on {complete}/{opened} sockets; "
            f"missing events {missing}; sockets out of order {disordered}"
        )
    errors = sum(r["error_count"] for r in reports)
    closes = [c for r in reports for c in r["closes"]]
    print(f"error messages: {errors}; sockets closed by the gateway: {len(closes)} {sorted(set(closes))}")
    if errors:
        print("  first errors:", [e for r in reports for e in r["errors"]][:3])
    print("live fan-out of B, per status: time from the first socket to the p50 / p99 / last socket")
    for seq in range(2, final_b["lastSeq"] + 1):
        times = [t for r in reports for t in r["times"].get((order_b, seq), [])]
        status = next(
            (r["status_of"][(order_b, seq)] for r in reports if (order_b, seq) in r["status_of"]), "?"
        )
        if not times:
            print(f"  seq {seq} {status:10s} received by nobody")
            continue
        first = min(times)
        p50, p99, last = ((t - first) * 1000 for t in (pct(times, 50), pct(times, 99), max(times)))
        print(
            f"  seq {seq} {status:10s} {len(times):5d} sockets  "
            f"p50 +{p50:6.1f} ms  p99 +{p99:6.1f} ms  last +{last:6.1f} ms"
        )
    client_cpu = sum(r["cpu_s"] for r in reports)
    print(
        f"gateway RSS: {rss0:.0f} MB idle, {rss1:.0f} MB with {opened} sockets, "
        f"{max(rss2, rss3, rss4):.0f} MB peak while following"
    )
    print(
        f"gateway CPU: handshakes {cpu1 - cpu0:.2f} s, catch-up {cpu2 - cpu1:.2f} s, "
        f"live phase {cpu4 - cpu3:.2f} s ({(cpu4 - cpu3) / max(1, final_b['lastSeq'] - 1) * 1000:.0f} ms "
        f"per live status); clients {client_cpu:.1f} s"
    )
    with open("/proc/loadavg") as f:
        print(f"machine load average (1, 5, 15 min): {' '.join(f.read().split()[:3])}")
    return 1 if total_missing else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=1000, help="WebSockets on the one gateway")
    parser.add_argument("--processes", type=int, default=0, help="client processes (default: 1 per 1,250)")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="a setting for the started stack"
    )
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.subscribers + 1024
    if hard < need:
        parser.error(f"the open-file limit ({hard}) is below {need}: raise `ulimit -Hn`")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the stack's children inherit it
    processes = args.processes or max(1, -(-args.subscribers // 1250))

    from common.stack import free_port
    from tests.stackutil import running_stack

    metrics_port = free_port()
    extra = {
        "LOG_LEVEL": "warning",
        "WORKER_NAME": f"bench-ws-{uuid.uuid4().hex[:6]}",
        "WS_MAX_SOCKETS": str(args.subscribers + 100),
        "WS_MAX_SOCKETS_PER_CLIENT": str(args.subscribers + 100),
        "PERSISTENCE_METRICS_PORT": str(metrics_port),
    }
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env expects KEY=VALUE, got {item!r}")
        extra[key] = value
    log_dir = Path(tempfile.mkdtemp(prefix="oe-bench-ws-"))
    with running_stack(log_dir, **extra) as stack:
        print(f"stack up at {stack.url} (logs in {log_dir})", flush=True)
        code = run(stack.url, stack, args.subscribers, processes, f"http://127.0.0.1:{metrics_port}/metrics")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
