"""Runs every process of the engine as subprocesses, in dependency order (what `make run` does).

    python -m common.stack            # start everything, print the URL, stop all on Ctrl-C / SIGTERM

The end-to-end tests and the benchmark use `Stack` directly, with their own ports and databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from common.healthcheck import serving
from common.settings import REPO_ROOT, Settings, load_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    module: str
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None


@dataclass
class Stack:
    """The engine's processes. `env` overrides the environment of every child."""

    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    procs: dict[str, Proc] = field(default_factory=dict)
    python: str = sys.executable

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

    def child_env(self) -> dict[str, str]:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def start_proc(self, name: str) -> None:
        proc = self.procs[name]
        if self.log_dir is None:
            proc.popen = subprocess.Popen(
                [self.python, "-m", proc.module], cwd=REPO_ROOT, env=self.child_env()
            )
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        proc.log_path = self.log_dir / f"{name}.log"
        with open(proc.log_path, "ab") as out:  # the child keeps its own descriptor
            proc.popen = subprocess.Popen(
                [self.python, "-m", proc.module],
                cwd=REPO_ROOT,
                env=self.child_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

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

    def stop_proc(self, name: str, kill: bool = False, timeout: float = 15.0) -> None:
        proc = self.procs[name].popen
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop_proc(name)


async def _main() -> None:
    stack = Stack()
    print(f"starting the engine on CHAIN={stack.settings.chain} …", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stack.start()
        print(f"\n  order engine ready: {stack.url}\n  (Ctrl-C stops every process)\n", flush=True)
        while not stop.is_set():
            for proc in stack.procs.values():
                if proc.popen is not None and proc.popen.poll() is not None:
                    print(f"{proc.name} exited with code {proc.popen.returncode}; stopping", flush=True)
                    stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        print("stopping …", flush=True)
        stack.stop()


def main(argv: Mapping[str, str] | None = None) -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
