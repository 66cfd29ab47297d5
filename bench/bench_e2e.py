"""End-to-end benchmark: orders submitted at an offered rate and followed to their final status
over WebSocket, through the whole engine; prints rates, latency percentiles, orders whose final
status never arrived, and the CPU each process spent per order.

    python -m bench.bench_e2e --orders 2000 --rate 100          # starts its own stack (make bench)
    python -m bench.bench_e2e --sweep                           # steps the rate up to saturation
    python -m bench.bench_e2e --url http://127.0.0.1:3000 ...   # against a running engine

The load comes from bench/loadgen.py, a process of its own (uvloop, a raw WebSocket protocol, WS
`execute`: one message submits an order, its `accepted` answer and its statuses come back on the
same socket), open-loop at the offered rate. Each run (each step of a sweep) has a warm-up, then a
measured window; only orders sent in the window count for latency, and CPU is read from /proc at
the window's two ends (bench/cpu.py) and divided by the orders that completed in it:

- gateway, worker, router, executor, persistence, simchain: the stack's children (with --url: the
  process listening on the URL's port and, if `make run`'s supervisor is its parent, its siblings);
- postgres: the backends of the engine's own database (also shown: the whole server, background
  writers and other databases included, not added to the totals);
- redis: the redis-server process (the whole server, shared with whoever else uses it);
- client: the load generator.

accept = `execute` sent → `accepted` received; submit→final = `execute` sent → `confirmed`/`failed`
received. "no final status" counts accepted orders whose final status never came on the socket (after
the drain timeout); each is then looked up over HTTP to tell a lost message (the order ended) from an
unfinished order. A sweep step is saturated when its achieved rate is below 90 % of the offered one,
its submit→final p99 passes --p99-limit-ms, or the backlog (orders in flight) grew during the window
by more than a quarter-second of orders; the sweep stops there and names the last sustained rate.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from bench.cpu import CpuMeter, PostgresProbe, engine_pids_from_port, redis_pid
from common.lifecycle import TERMINAL
from common.settings import REPO_ROOT

ENGINE = ("gateway", "worker", "router", "executor", "persistence", "simchain", "postgres", "redis")
MODULES = {
    "gateway": "gateway",
    "worker": "worker",
    "router_svc": "router",
    "executor_svc": "executor",
    "persistence_svc": "persistence",
    "simchain": "simchain",
}
PCTS = ("p50", "p95", "p99", "max")
SWEEP_RATES = (50, 100, 200, 300, 400, 600, 800, 1000, 1200, 1500, 2000, 3000)


class LoadClient:
    """The load generator process (bench/loadgen.py) and its JSON-lines conversation."""

    def __init__(self, ws_url: str, args: argparse.Namespace) -> None:
        cmd = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--url",
            ws_url,
            "--pair",
            args.pair,
            "--per-socket",
            str(args.per_socket),
            "--socket-rate",
            str(args.socket_rate),
            "--client",
            args.client,
        ]
        if args.api_key:
            cmd += ["--api-key", args.api_key]
        self.popen = subprocess.Popen(
            cmd, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        ready = self.read()
        if ready.get("event") != "ready":
            raise RuntimeError(f"the load generator did not start: {ready}")
        self.pid = int(ready["pid"])

    def read(self) -> dict[str, Any]:
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        if not line:
            code = self.popen.wait()
            raise RuntimeError(f"the load generator exited with code {code}")
        doc = orjson.loads(line)
        assert isinstance(doc, dict)
        return doc

    def step(self, command: dict[str, Any], on_event: Callable[[str], None]) -> dict[str, Any]:
        assert self.popen.stdin is not None
        self.popen.stdin.write(orjson.dumps({"cmd": "step", **command}).decode() + "\n")
        self.popen.stdin.flush()
        while True:
            doc = self.read()
            event = str(doc.get("event"))
            if event == "result":
                return doc
            on_event(event)

    def close(self) -> None:
        if self.popen.poll() is None:
            assert self.popen.stdin is not None
            try:
                self.popen.stdin.write(orjson.dumps({"cmd": "quit"}).decode() + "\n")
                self.popen.stdin.close()
                self.popen.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.popen.kill()
                self.popen.wait()


@dataclass
class Target:
    """The engine under test: where to send orders, and how to read its processes' CPU."""

    url: str
    meter: CpuMeter
    notes: list[str]


@contextmanager
def started_engine(args: argparse.Namespace, extra: dict[str, str]) -> Iterator[Target]:
    from tests.stackutil import running_stack

    log_dir = Path(tempfile.mkdtemp(prefix="oe-bench-"))
    with running_stack(log_dir, **extra) as stack:
        print(f"stack up at {stack.url} (logs in {log_dir})", flush=True)
        pids = {name: proc.popen.pid for name, proc in stack.procs.items() if proc.popen is not None}
        with _measured(stack.url, pids, stack.settings.database_url, stack.settings.redis_url) as target:
            yield target


@contextmanager
def running_engine(args: argparse.Namespace) -> Iterator[Target]:
    port = urlsplit(args.url).port or 80
    pids = engine_pids_from_port(port, MODULES)
    database_url, redis_url = args.database_url, args.redis_url
    if not database_url or not redis_url:
        from common.settings import ConfigError, load_settings

        try:
            settings = load_settings(dotenv=REPO_ROOT / ".env")
            database_url = database_url or settings.database_url
            redis_url = redis_url or settings.redis_url
        except ConfigError:
            pass
    with _measured(args.url.rstrip("/"), pids, database_url, redis_url) as target:
        yield target


@contextmanager
def _measured(url: str, pids: dict[str, int], database_url: str, redis_url: str) -> Iterator[Target]:
    notes = []
    probe: PostgresProbe | None = None
    if database_url:
        probe = PostgresProbe(database_url)
        try:
            probe.open()
        except Exception as exc:  # noqa: BLE001 - CPU figures are optional; say why they are missing
            notes.append(f"postgres not measured ({type(exc).__name__})")
            probe = None
        else:
            if probe.postmaster is None:
                notes.append("postgres not measured (not on this machine)")
    pids = dict(pids)
    if redis_url:
        pid = redis_pid(redis_url)
        if pid is None:
            notes.append("redis not measured (not on this machine)")
        else:
            pids["redis"] = pid
    missing = [name for name in ENGINE if name not in pids and name not in ("postgres", "redis")]
    if missing:
        notes.append(f"not measured (process not found): {', '.join(missing)}")
    try:
        yield Target(url, CpuMeter(pids, probe), notes)
    finally:
        if probe is not None:
            probe.close()


def run_step(target: Target, client: LoadClient, command: dict[str, Any]) -> dict[str, Any]:
    """One step: the load generator's result, with `cpu_s` (seconds per process in the window)."""
    snapshots = {}

    def on_event(event: str) -> None:
        if event in ("window_start", "window_end"):
            snapshots[event] = target.meter.snapshot()

    result = client.step(command, on_event)
    seconds, notes = target.meter.between(snapshots["window_start"], snapshots["window_end"])
    result["cpu_s"] = seconds
    result["cpu_notes"] = notes
    result["missing_detail"] = check_missing(target.url, result.get("missing", []))
    return result


def check_missing(url: str, order_ids: list[str]) -> dict[str, int]:
    """For orders whose final status never came on the socket: how many had ended (the message was
    lost) and how many had not (still running when the drain timed out)."""
    ended = unfinished = unknown = 0
    if not order_ids:
        return {}
    with httpx.Client(base_url=url, timeout=10) as http:
        for order_id in order_ids[:200]:
            try:
                r = http.get(f"/api/orders/{order_id}")
                status = r.json().get("status") if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                status = None
            if status is None:
                unknown += 1
            elif status in TERMINAL:
                ended += 1
            else:
                unfinished += 1
    return {"ended": ended, "unfinished": unfinished, "unknown": unknown}


# --- figures -------------------------------------------------------------------------------------


def per_order_ms(r: dict[str, Any]) -> dict[str, float]:
    """CPU ms per order completed in the window, per process, with `engine` and `all` totals."""
    done = max(1, int(r["completed_in_window"]))
    cpu: dict[str, float] = r["cpu_s"]
    ms = {name: cpu[name] * 1000 / done for name in cpu}
    ms["engine"] = sum(ms[name] for name in ENGINE if name in ms)
    ms["all"] = ms["engine"] + ms.get("client", 0.0)
    return ms


def saturation(r: dict[str, Any], p99_limit_ms: float) -> list[str]:
    """Why a step is not a sustained rate (empty: it is)."""
    reasons = []
    rate = float(r["rate"])
    if r["sent_rate"] < 0.95 * rate:
        reasons.append(f"the client sent only {r['sent_rate']:.0f}/s")
    if r["achieved"] < 0.9 * rate:
        reasons.append(f"achieved {r['achieved']:.0f}/s < 90 % of offered")
    e2e = r.get("e2e_ms")
    if e2e is None:
        reasons.append("no order completed")
    elif e2e[2] > p99_limit_ms:
        reasons.append(f"p99 {e2e[2]:.0f} ms > {p99_limit_ms:g} ms")
    growth = int(r["inflight_end"]) - int(r["inflight_start"])
    if growth > max(10.0, 0.25 * rate):
        reasons.append(f"backlog grew by {growth}")
    rejected = sum(r["rejected"].values())
    if rejected:
        reasons.append(f"{rejected} rejected")
    if r["missing"] or r["unanswered"]:
        reasons.append(f"{len(r['missing']) + r['unanswered']} without final status")
    return reasons


def _ms(values: list[float] | None) -> str:
    if values is None:
        return "       -       -       -       -"
    return "".join(f"{v:8.1f}" for v in values)


def report(r: dict[str, Any], client_pid: int) -> None:
    rejected = sum(r["rejected"].values())
    missing = len(r["missing"])
    detail = r.get("missing_detail") or {}
    print(
        f"offered {r['rate']:g} orders/s   sent {r['sent_rate']:.1f}/s   "
        f"achieved {r['achieved']:.1f} orders/s   (window {r['window_s']:.1f} s after a "
        f"{r['duration_s'] - r['window_s']:.1f} s warm-up: {r['window_orders']} orders sent, "
        f"{r['completed_in_window']} completed in it)"
    )
    print(
        f"orders {r['orders']}: accepted {r['accepted']}, rejected {rejected}"
        + (f" {r['rejected']}" if rejected else "")
        + f", confirmed {r['confirmed']}, failed {r['failed']}"
        + (f" {r['failure_reasons']}" if r["failed"] else "")
    )
    print(
        f"no final status on the socket: {missing}"
        + (f" (looked up: {detail})" if missing else "")
        + (f"; executes never answered: {r['unanswered']}" if r["unanswered"] else "")
    )
    print(f"{'latency ms (orders sent in the window)':<37}" + "".join(f"{p:>8}" for p in PCTS))
    accept = "POST → 202" if r["http_connections"] else "execute → accepted"
    print(f"  {f'accept ({accept})':<35}{_ms(r['accept_ms'])}")
    print(f"  {'submit → confirmed/failed':<35}{_ms(r['e2e_ms'])}")
    for stage, values in (r.get("stages_ms") or {}).items():
        print(f"    {stage:<33}{_ms(values)}")
    ms = per_order_ms(r)
    notes = r.get("cpu_notes") or {}
    print(f"CPU ms per order ({r['completed_in_window']} orders completed in the window)")
    labels = {
        "postgres": f"backends of database {notes.get('database', '?')}: {notes.get('backends', 0)}"
        + (f", {notes['backends_gone']} exited in the window" if notes.get("backends_gone") else ""),
        "redis": "redis-server, the whole server",
        "engine": "all of the above",
        "client": f"the load generator, pid {client_pid}",
        "all": "engine + client",
    }
    for name in (*ENGINE, "engine", "client", "all"):
        if name in ms:
            print(f"  {name:<12} {ms[name]:8.2f}" + (f"   ({labels[name]})" if name in labels else ""))
        elif name in ENGINE:
            print(f"  {name:<12}        -   (not measured)")
    cpu: dict[str, float] = r["cpu_s"]
    print(
        f"  cores busy over the window: engine {cores(r, 'engine'):.2f}, "
        f"client {cpu.get('client', 0.0) / r['window_s']:.2f}, "
        f"the whole machine {cores(r, 'machine'):.2f} (of {os.cpu_count()})"
    )
    if "postgres (server)" in ms:
        print(
            f"  {'pg server':<12} {ms['postgres (server)']:8.2f}   "
            "(every process of the server: all databases, WAL writer, checkpointer; not in the totals)"
        )
    print(
        f"client: {r['sockets']} sockets ({r['sockets_opened']} opened in all), send lag max "
        f"{r['lag_max_ms']:.1f} ms, in flight {r['inflight_start']} → {r['inflight_end']} over the "
        f"window, sockets closed by the server {r['socket_closes'] or 0}, resubscribed {r['resubscribed']}, "
        f"events out of seq order {r['seq_errors']}"
        + (f", unexplained WS errors {r['ws_errors']}" if r["ws_errors"] else "")
        + (f", HTTP connections {r['http_connections']}" if r["http_connections"] else "")
        + (f", orders not sent (every socket full) {r['overrun']}" if r["overrun"] else "")
    )


SWEEP_HEADER = (
    " offered     sent achieved  acc p50  acc p99  e2e p50  e2e p95  e2e p99  rej fail miss  backlog"
    "  cpu ms/order (engine + client)  cores busy (engine/machine)"
)


def sweep_row(r: dict[str, Any]) -> str:
    acc = r["accept_ms"] or [math.nan] * 4
    e2e = r["e2e_ms"] or [math.nan] * 4
    ms = per_order_ms(r)
    backlog = int(r["inflight_end"]) - int(r["inflight_start"])
    return (
        f"{r['rate']:8g} {r['sent_rate']:8.1f} {r['achieved']:8.1f} {acc[0]:8.1f} {acc[2]:8.1f} "
        f"{e2e[0]:8.1f} {e2e[1]:8.1f} {e2e[2]:8.1f} {sum(r['rejected'].values()):4d} {r['failed']:4d} "
        f"{len(r['missing']) + r['unanswered']:4d} {backlog:+8d}  "
        f"{ms['engine']:6.2f} + {ms.get('client', 0):4.2f}"
        f"               {cores(r, 'engine'):4.2f} / {cores(r, 'machine'):4.2f}"
    )


def cores(r: dict[str, Any], what: str) -> float:
    """Cores busy over the window: the engine's processes, or the whole machine's CPUs."""
    if what == "machine":
        busy = (r.get("cpu_notes") or {}).get("machine_busy_s")
        return float(busy) / r["window_s"] if busy is not None else math.nan
    cpu: dict[str, float] = r["cpu_s"]
    return sum(cpu.get(name, 0.0) for name in ENGINE) / float(r["window_s"])


def cpu_table(results: list[dict[str, Any]]) -> None:
    names = [*ENGINE, "engine", "client", "all"]
    print("CPU ms per order, by process")
    print(" offered " + "".join(f"{n[:11]:>12}" for n in names))
    for r in results:
        ms = per_order_ms(r)
        print(f"{r['rate']:8g} " + "".join(f"{ms[n]:12.2f}" if n in ms else f"{'-':>12}" for n in names))


def sweep(target: Target, client: LoadClient, args: argparse.Namespace) -> tuple[int, list[dict[str, Any]]]:
    rates = [float(x) for x in args.rates.split(",")] if args.rates else list(SWEEP_RATES)
    print(
        f"sweep: {len(rates)} steps of {args.warmup:g} s warm-up + {args.step_seconds:g} s measured; "
        f"saturated when achieved < 90 % of offered, p99 > {args.p99_limit_ms:g} ms or the backlog grows",
        flush=True,
    )
    print(SWEEP_HEADER, flush=True)
    results = []
    sustained: dict[str, Any] | None = None
    saturated: tuple[dict[str, Any], list[str]] | None = None
    for rate in rates:
        command = {
            "rate": rate,
            "orders": max(1, round(rate * (args.warmup + args.step_seconds))),
            "warmup_s": args.warmup,
            "drain_s": args.drain,
        }
        r = run_step(target, client, command)
        results.append(r)
        reasons = saturation(r, args.p99_limit_ms)
        print(sweep_row(r) + ("  " + "; ".join(reasons) if reasons else ""), flush=True)
        if reasons:
            saturated = (r, reasons)
            break
        sustained = r
    print()
    cpu_table(results)
    print()
    if sustained is not None:
        e2e = sustained["e2e_ms"]
        print(
            f"sustained: {sustained['rate']:g} orders/s offered, {sustained['achieved']:.1f} achieved, "
            f"submit→final p99 {e2e[2]:.1f} ms, {per_order_ms(sustained)['engine']:.2f} ms CPU per order"
        )
    else:
        print("sustained: none of the steps")
    if saturated is not None:
        print(f"saturated at {saturated[0]['rate']:g} orders/s offered: {'; '.join(saturated[1])}")
    else:
        print("not saturated at the highest step offered")
    return 0, results


def arguments() -> argparse.ArgumentParser:
    """The benchmark's command line (bench.compare reads the same one)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1000, help="orders in a single run")
    parser.add_argument("--rate", type=float, default=200.0, help="orders per second offered")
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds of each run not measured (2; a sweep step 3)"
    )
    parser.add_argument("--sweep", action="store_true", help="step the rate up until saturation")
    parser.add_argument("--rates", default="", help="the sweep's offered rates, e.g. 50,100,200")
    parser.add_argument("--step-seconds", type=float, default=10.0, help="measured seconds per step")
    parser.add_argument("--p99-limit-ms", type=float, default=500.0, help="a sweep step's p99 bound")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds without progress to give up")
    parser.add_argument("--json", default="", help="also write every step's raw figures to this file")
    parser.add_argument("--url", default="", help="a running engine; default: start one")
    parser.add_argument("--api-key", default="", help="for an engine with API_KEYS")
    parser.add_argument("--database-url", default="", help="with --url: the engine's database")
    parser.add_argument("--redis-url", default="", help="with --url: the engine's Redis")
    parser.add_argument("--pair", default="SOL,USDC,0.5", help="tokenIn,tokenOut,amount")
    parser.add_argument("--per-socket", type=int, default=100, help="orders per socket before it retires")
    parser.add_argument("--socket-rate", type=float, default=10.0, help="executes per second per socket")
    parser.add_argument(
        "--client",
        choices=("ws", "http"),
        default="ws",
        help="ws: orders sent as WS execute messages (default); http: POST /api/orders/execute over "
        "a keep-alive pool, followed with WS subscribe",
    )
    parser.add_argument("--concurrency", default="256", help="WORKER_CONCURRENCY of the started stack")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the started stack (repeatable), e.g. --env CONFIRM_POLL_MS=10",
    )
    return parser


def main() -> None:
    parser = arguments()
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = 3.0 if args.sweep else 2.0
    if len(str(args.pair).split(",")) != 3:
        parser.error(f"--pair expects tokenIn,tokenOut,amount, got {args.pair!r}")
    if args.rate <= 0 or args.orders < 1:
        parser.error("--rate must be > 0 and --orders ≥ 1")
    extra = {
        "WORKER_CONCURRENCY": args.concurrency,
        "LOG_LEVEL": "warning",
        "QUEUE_MAX_DEPTH": str(max(50000, args.orders * 2)),
        "WORKER_NAME": f"bench-{uuid.uuid4().hex[:6]}",
    }
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env expects KEY=VALUE, got {item!r}")
        extra[key] = value
    engine = running_engine(args) if args.url else started_engine(args, extra)
    with engine as target:
        for note in target.notes:
            print(note)
        ws_url = target.url.replace("http://", "ws://").replace("https://", "wss://") + "/api/orders/ws"
        client = LoadClient(ws_url, args)
        target.meter.pids["client"] = client.pid
        try:
            if args.sweep:
                code, results = sweep(target, client, args)
            else:
                command = {
                    "rate": args.rate,
                    "orders": args.orders,
                    "warmup_s": args.warmup,
                    "drain_s": args.drain,
                }
                result = run_step(target, client, command)
                report(result, client.pid)
                code = 0 if not result["missing"] and not result["unanswered"] else 1
                results = [result]
            if args.json:
                for r in results:
                    r["cpu_ms_per_order"] = per_order_ms(r)
                Path(args.json).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
        finally:
            client.close()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
