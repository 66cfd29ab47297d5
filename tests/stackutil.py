"""Starting the whole engine as subprocesses for end-to-end tests (as `make run` does).

`running_stack`: the `Stack` harness in this process (tests stop and start children themselves).
`supervised_engine`: `python -m common.stack` as a subprocess, exactly what `make run` runs, with its
own ports, database and Redis prefix; its children are found through /proc.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.settings import REPO_ROOT
from common.stack import Stack, free_port
from tests.conftest import REDIS_URL, scratch_database


def stack_env(database_url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {
        "CHAIN": "sim",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": prefix,
        "HTTP_PORT": str(free_port()),
        "PERSISTENCE_ADDR": f"127.0.0.1:{free_port()}",
        "ROUTER_ADDR": f"127.0.0.1:{free_port()}",
        "EXECUTOR_ADDR": f"127.0.0.1:{free_port()}",
        "WORKER_HEALTH_ADDR": f"127.0.0.1:{free_port()}",
        "SIM_PORT": str(free_port()),
        "LOG_LEVEL": "info",
        "SOLANA_RPC_URL": "",
        # no default metrics ports under the supervisor (tests run side by side); a test sets its own
        "METRICS_PORT_BASE": "0",
    }
    env.update(extra)
    return env


@contextmanager
def running_stack(log_dir: Path, **extra: str) -> Iterator[Stack]:
    with scratch_database() as dsn:
        prefix = f"oetest:{uuid.uuid4().hex[:10]}"
        stack = Stack(env=stack_env(dsn, prefix, **extra), log_dir=log_dir)
        try:
            import asyncio

            asyncio.run(stack.start())
            yield stack
        finally:
            stack.stop()
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def _delete_keys(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.ConnectionError:
        pass  # a test's own Redis, already gone
    finally:
        client.close()


@dataclass
class SupervisedEngine:
    """A running `python -m common.stack` (the supervisor) and what the test needs to reach it."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    url: str
    names: dict[str, str]  # child module → process name

    def children(self) -> dict[str, int]:
        """Process name → pid of the supervisor's live children (from /proc)."""
        found: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # gone meanwhile
            fields = stat.rpartition(")")[2].split()
            if int(fields[1]) != self.popen.pid or fields[0] == "Z":
                continue
            if len(cmdline) >= 3 and cmdline[1] == b"-m":
                name = self.names.get(cmdline[2].decode())
                if name is not None:
                    found[name] = int(entry.name)
        return found

    def log_lines(self, service: str = "supervisor") -> list[dict[str, Any]]:
        """The JSON log lines of one service (the supervisor's by default) written so far."""
        lines = []
        for raw in self.log_path.read_bytes().splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue  # the banner, a partial line
            if isinstance(entry, dict) and entry.get("service") == service:
                lines.append(entry)
        return lines

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the supervisor exited with {self.popen.returncode}; see {self.log_path}")
            if any(e.get("msg") == "engine ready" for e in self.log_lines()):
                return
            time.sleep(0.2)
        raise TimeoutError(f"the engine was not ready within {timeout:g} s; see {self.log_path}")

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 60.0) -> int:
        """The pid of `name` once the supervisor started it again after `old_pid`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.children().get(name)
            if pid is not None and pid != old_pid:
                return pid
            time.sleep(0.05)
        raise TimeoutError(f"{name} was not restarted within {timeout:g} s; see {self.log_path}")

    def stop(self, timeout: float = 90.0) -> int:
        """SIGTERM to the supervisor (as Ctrl-C would); its exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        return self.popen.returncode


@contextmanager
def supervised_engine(log_dir: Path, **extra: str) -> Iterator[SupervisedEngine]:
    """`python -m common.stack` with its own ports, database and Redis prefix (`extra` overrides
    any setting), ready to serve; stopped with SIGTERM afterwards."""
    with scratch_database() as dsn:
        prefix = f"oetest:{uuid.uuid4().hex[:10]}"
        settings = stack_env(dsn, prefix, **extra)
        names = {proc.module: name for name, proc in Stack(env=settings).procs.items()}
        env = {**os.environ, **settings, "PYTHONPATH": str(REPO_ROOT)}
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / "engine.log"
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "common.stack"],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a kill of the test's process group leaves it alone
            )
        url = f"http://127.0.0.1:{settings['HTTP_PORT']}"
        engine = SupervisedEngine(popen, log_path, env, url, names)
        try:
            engine.wait_ready()
            yield engine
        finally:
            engine.stop()
            _delete_keys(settings["REDIS_URL"], prefix)
