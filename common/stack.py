"""Runs and supervises every process of the engine, in dependency order (what `make run` does).

    python -m common.stack            # start everything, print the URL, keep it up until Ctrl-C / SIGTERM

Supervision: a child that exits, for whatever reason (a crash, SIGKILL, the OOM killer), is started
again after a backoff (SUPERVISOR_BACKOFF_MS, doubled on each restart up to SUPERVISOR_BACKOFF_MAX_MS,
back to the start once the child stayed up SUPERVISOR_STABLE_S). Every exit and restart is a JSON log
line, and restarts are counted (`orderengine_supervisor_restarts_total{process}` on
SUPERVISOR_METRICS_PORT). Only Ctrl-C or SIGTERM stops the engine: each child then gets SIGTERM, in
reverse start order, and SUPERVISOR_GRACE_S to finish before SIGKILL. Children run in their own
process group (a terminal's Ctrl-C reaches the supervisor alone, which stops them in order) and, on
Linux, get SIGTERM if the supervisor itself dies.

The key: only the executor's environment carries PRIVATE_KEY / KEYPAIR_PATH (`KEY_VARIABLES`); every
other child's environment has them removed (they read `.env` themselves, and skip those names there).

On CHAIN=sim without SIM_DATA_DIR, the simulated chain gets a directory of its own for the run (its
journal), so a restarted chain keeps every transaction it landed; the directory goes at the end.

Metrics are on: a process whose <SERVICE>_METRICS_PORT is not set (environment or `.env`) serves
Prometheus metrics on METRICS_PORT_BASE + its place in METRICS_SERVICES (9101-9106 by default; a
default port already taken is left off, with a warning); the URLs are printed with the engine's.

The end-to-end tests and the benchmark use `Stack` directly (start, stop_proc, start_proc, wait_ready,
stop), with their own ports and databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client import Counter

from common.healthcheck import serving
from common.parent import PARENT_PID_ENV
from common.settings import KEY_VARIABLES, REPO_ROOT, Settings, load_settings, read_dotenv

log = logging.getLogger("supervisor")

RESTARTS = Counter(
    "orderengine_supervisor_restarts_total",
    "Children of `make run` started again by the supervisor after they exited, by process.",
    ["process"],
)
POLL_S = 0.1  # how often the supervisor looks for exited children
# the processes with a Prometheus exporter, in the order of their default ports under `make run`
METRICS_SERVICES = ("gateway", "worker", "router", "executor", "persistence", "supervisor")


# Ports handed out below the kernel's ephemeral range: a port the kernel picked for us (bind to 0)
# lies inside that range, where any outgoing connection may take it before the child binds it
# (seen: a gateway failing with "address already in use"). Below the range only another bind can.
_PICK_FROM = 20_000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0  # not Linux: fall back to the kernel's choice


def free_port() -> int:
    """A 127.0.0.1 port free now, for a child to bind; outside the ephemeral range where there is
    room, so no outgoing connection takes it meanwhile."""
    low = _ephemeral_low()
    if low - _PICK_FROM >= 1_000:
        for _ in range(100):
            port = random.randrange(_PICK_FROM, low)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    module: str
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    started_at: float = 0.0  # time.monotonic() of the last start
    restarts: int = 0  # started again by `supervise` after it exited
    backoff_s: float = 0.0  # the delay before the last restart (0: none since it was stable)
    restart_at: float | None = None  # when `supervise` starts it again


def _exit_text(returncode: int) -> dict[str, object]:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return {"exit_code": returncode, "signal": signal.Signals(-returncode).name}
    return {"exit_code": returncode}


@dataclass
class Stack:
    """The engine's processes. `env` overrides the environment of every child."""

    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    procs: dict[str, Proc] = field(default_factory=dict)
    python: str = sys.executable
    sim_dir: Path | None = field(default=None, init=False)  # the chain's journal, made for this run

    def __post_init__(self) -> None:
        self.settings: Settings = load_settings({**os.environ, **self.env}, dotenv=REPO_ROOT / ".env")
        names = ["persistence", "router", "executor", "worker", "gateway"]
        if self.settings.chain == "sim":
            names.insert(0, "simchain")
        modules = {
            "simchain": "simchain",
            "persistence": "persistence_svc",
            "router": "router_svc",
            "executor": "executor_svc",
            "worker": "worker",
            "gateway": "gateway",
        }
        self.procs = {n: Proc(n, modules[n]) for n in names}

    @property
    def url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"

    def child_env(self, name: str | None = None) -> dict[str, str]:
        """The environment of child `name`: this process's, overlaid by `env`, without the wallet
        key's variables unless `name` is the executor."""
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env[PARENT_PID_ENV] = str(os.getpid())  # the child asks to die with this process (common/parent.py)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        if name != "executor":
            for variable in KEY_VARIABLES:
                env.pop(variable, None)
        if name == "simchain" and not self.settings.sim_data_dir:
            env["SIM_DATA_DIR"] = str(self._sim_data_dir())
        return env

    def _sim_data_dir(self) -> Path:
        """The simulated chain's journal directory for this run (removed by `stop`)."""
        if self.sim_dir is None:
            self.sim_dir = Path(tempfile.mkdtemp(prefix="oe-simchain-"))
        return self.sim_dir

    def start_proc(self, name: str) -> None:
        proc = self.procs[name]
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            proc.log_path = self.log_dir / f"{name}.log"
            out = open(proc.log_path, "ab")  # closed below: the child keeps its own descriptor
        try:
            proc.popen = subprocess.Popen(
                [self.python, "-m", proc.module],
                cwd=REPO_ROOT,
                env=self.child_env(name),
                stdout=out,
                stderr=None if out is None else subprocess.STDOUT,
                # its own process group: a terminal's Ctrl-C reaches the supervisor only, which
                # stops the children in order
                process_group=0,
            )
        finally:
            if out is not None:
                out.close()
        proc.started_at = time.monotonic()

    async def wait_ready(self, name: str, timeout: float = 60.0) -> None:
        s = self.settings
        deadline = time.monotonic() + timeout
        proc = self.procs[name]
        while time.monotonic() < deadline:
            if proc.popen is not None and proc.popen.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {proc.popen.returncode}"
                    + (f"; see {proc.log_path}" if proc.log_path else "")
                )
            with contextlib.suppress(Exception):
                if name == "simchain":
                    async with httpx.AsyncClient() as client:
                        r = await client.post(
                            s.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}, timeout=1.0
                        )
                        if r.status_code == 200:
                            return
                elif name == "gateway":
                    async with httpx.AsyncClient() as client:
                        r = await client.get(self.url + "/healthz", timeout=1.0)
                        if r.status_code == 200:
                            return
                else:
                    addr = {
                        "persistence": s.persistence_addr,
                        "router": s.router_addr,
                        "executor": s.executor_addr,
                        "worker": s.worker_health_addr,
                    }[name]
                    if await serving(addr, timeout=1.0):
                        return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{name} was not ready within {timeout:g} s")

    async def start(self) -> None:
        order = list(self.procs)
        for name in order:
            self.start_proc(name)
            await self.wait_ready(name)

    async def restart(self, name: str, kill: bool = True) -> None:
        self.stop_proc(name, kill=kill)
        self.start_proc(name)
        await self.wait_ready(name)

    def stop_proc(self, name: str, kill: bool = False, timeout: float | None = None) -> None:
        """SIGTERM (SIGKILL with `kill`) to one child; SIGKILL if it has not exited after `timeout`
        seconds (default SUPERVISOR_GRACE_S)."""
        proc = self.procs[name].popen
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(self.settings.supervisor_grace_s if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            log.warning("process did not stop in time; killing it", extra={"child": name})
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """Stops every child in reverse start order, then removes this run's chain journal."""
        for name in reversed(list(self.procs)):
            self.procs[name].restart_at = None
            self.stop_proc(name)
        if self.sim_dir is not None:
            shutil.rmtree(self.sim_dir, ignore_errors=True)
            self.sim_dir = None

    def restarts(self) -> dict[str, int]:
        """How many times `supervise` started each child again."""
        return {name: proc.restarts for name, proc in self.procs.items()}

    def _backoff(self, proc: Proc, uptime_s: float) -> float:
        s = self.settings
        if uptime_s >= s.supervisor_stable_s or proc.backoff_s == 0:
            return s.supervisor_backoff_ms / 1000
        return min(proc.backoff_s * 2, s.supervisor_backoff_max_ms / 1000)

    def check_children(self) -> None:
        """One supervision step: a child found exited is scheduled to start again after its
        backoff; a child whose time has come is started again."""
        now = time.monotonic()
        for name, proc in self.procs.items():
            if proc.restart_at is not None:
                if now < proc.restart_at:
                    continue
                proc.restart_at = None
                try:
                    self.start_proc(name)
                except OSError as exc:  # fork failed (no memory, too many processes): try again
                    proc.backoff_s = self._backoff(proc, 0.0)
                    proc.restart_at = now + proc.backoff_s
                    log.error("process could not be started", extra={"child": name, "error": str(exc)})
                    continue
                proc.restarts += 1
                RESTARTS.labels(name).inc()
                assert proc.popen is not None
                log.warning(
                    "process restarted",
                    extra={"child": name, "pid": proc.popen.pid, "restarts": proc.restarts},
                )
                continue
            popen = proc.popen
            if popen is None or popen.poll() is None:
                continue
            uptime = now - proc.started_at
            proc.backoff_s = self._backoff(proc, uptime)
            proc.restart_at = now + proc.backoff_s
            log.error(
                "process exited; restarting it",
                extra={
                    "child": name,
                    "pid": popen.pid,
                    **_exit_text(popen.returncode),
                    "uptime_s": round(uptime, 3),
                    "restart_in_s": round(proc.backoff_s, 3),
                    "restarts": proc.restarts,
                },
            )

    async def supervise(self, stop: asyncio.Event) -> None:
        """Keeps every child running until `stop` is set."""
        while not stop.is_set():
            try:
                self.check_children()
            except Exception:  # noqa: BLE001 - the supervisor outlives its own mistakes
                log.exception("supervision step failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def default_metrics_ports(environ: Mapping[str, str], dotenv: Path) -> dict[str, str]:
    """`make run`'s metrics ports: the <SERVICE>_METRICS_PORT variables to give the children (and
    the supervisor) whose port the environment and `.env` leave unset: METRICS_PORT_BASE + the
    service's place in METRICS_SERVICES. A default port already taken is left off, with a warning."""
    given = {**read_dotenv(dotenv), **environ}
    settings = load_settings(environ, dotenv=dotenv)
    if settings.metrics_port_base == 0:
        return {}
    ports: dict[str, str] = {}
    for place, service in enumerate(METRICS_SERVICES):
        variable = f"{service.upper()}_METRICS_PORT"
        if given.get(variable, "").strip():
            continue  # set: the user's choice, 0 included
        port = settings.metrics_port_base + place
        if not _port_free(settings.metrics_host, port):
            log.warning(
                "default metrics port taken; this process serves no metrics",
                extra={"child": service, "port": port, "setting": variable},
            )
            continue
        ports[variable] = str(port)
    return ports


def metrics_urls(settings: Settings) -> dict[str, str]:
    """Service → its /metrics URL, for the services whose exporter port is set."""
    host = settings.metrics_host
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else f"[{host}]" if ":" in host else host
    return {
        service: f"http://{shown}:{settings.metrics_port(service)}/metrics"
        for service in METRICS_SERVICES
        if settings.metrics_port(service) > 0
    }


def _banner(stack: Stack) -> str:
    lines = ["", f"  order engine ready: {stack.url}"]
    urls = metrics_urls(stack.settings)
    if urls:
        lines.append("  Prometheus metrics:")
        lines += [f"    {service:<12} {url}" for service, url in urls.items()]
    lines += ["  (Ctrl-C stops every process)", ""]
    return "\n".join(lines)


async def _main() -> int:
    from common.log import setup_logging
    from common.metrics import start_exporter

    dotenv = REPO_ROOT / ".env"
    setup_logging("supervisor", load_settings(dotenv=dotenv).log_level)
    stack = Stack(env=default_metrics_ports(os.environ, dotenv))
    settings = stack.settings
    start_exporter(settings, "supervisor")
    log.info("starting the engine", extra={"chain": settings.chain, "processes": list(stack.procs)})
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal went away
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        boot = asyncio.create_task(stack.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({boot, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not boot.done():  # Ctrl-C during start-up
            boot.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await boot
        else:
            try:
                boot.result()
            except (RuntimeError, TimeoutError) as exc:  # a child died or hung before it was ready
                log.error("the engine could not start: %s", exc)
                return 1
            log.info("engine ready", extra={"url": stack.url, "metrics": metrics_urls(settings)})
            print(_banner(stack), flush=True)
            await stack.supervise(stop)
    finally:
        log.info("stopping every process", extra={"grace_s": settings.supervisor_grace_s})
        stack.stop()
        log.info("stopped", extra={"restarts": stack.restarts()})
    return code


def main(argv: Mapping[str, str] | None = None) -> None:
    raise SystemExit(asyncio.run(_main()))


if __name__ == "__main__":
    main()
