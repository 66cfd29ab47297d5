"""CPU time of the engine's processes, Postgres and Redis, read from /proc (Linux), for the
benchmark's CPU-per-order figures.

A process's CPU is utime + stime from /proc/<pid>/stat, plus cutime + cstime (children it has
waited for), in clock ticks (`SC_CLK_TCK`, usually 10 ms each). Postgres is measured two ways:

- `postgres` — the backends connected to the benchmark's own database (found in pg_stat_activity at
  each snapshot, the probe's own connection left out). A backend that exits inside the window takes
  its time with it (the count of those is reported); one that appears inside it counts whole.
- `postgres (server)` — the whole server: the postmaster (with cutime/cstime, where the time of every
  exited backend lands) plus every live child (backends of every database, WAL writer,
  checkpointer, background writer, autovacuum). It includes other users of the same server.

Redis is the redis-server process (its pid from `INFO server`), whole: other users of the same
server count too.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (fields[0] is the state); None if the
    process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rpartition(")")[2].split()


def cpu_ticks(pid: int, children: bool = True) -> int | None:
    """utime + stime (+ cutime + cstime) of `pid`, in clock ticks; None if it is gone."""
    fields = stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    # after the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def machine_busy_ticks() -> int | None:
    """Clock ticks every CPU of the machine spent busy (not idle, not waiting for I/O), from
    /proc/stat: with other work on the machine, the engine's share is seen beside it."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(values) - values[3] - values[4]


def child_pids(parent: int) -> list[int]:
    """Live children of `parent` (a scan of /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is not None and fields[0] != "Z" and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def ppid(pid: int) -> int | None:
    fields = stat_fields(pid)
    return None if fields is None else int(fields[1])


def listening_pid(port: int) -> int | None:
    """The pid of the process that listens on TCP `port` (this user's processes only)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rpartition(":")[2], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(entry.name)
    return None


def engine_pids_from_port(port: int, modules: dict[str, str]) -> dict[str, int]:
    """For a running engine: the gateway listening on `port` and, when its parent is the supervisor
    (`python -m common.stack`), its siblings, named by module (`modules`: module → process name)."""
    gateway = listening_pid(port)
    if gateway is None:
        return {}
    found = {"gateway": gateway}
    parent = ppid(gateway)
    if parent is None or cmdline(parent)[1:3] != ["-m", "common.stack"]:
        return found
    for pid in child_pids(parent):
        args = cmdline(pid)
        if len(args) >= 3 and args[1] == "-m" and args[2] in modules:
            found.setdefault(modules[args[2]], pid)
    return found


@dataclass
class PostgresProbe:
    """Finds the server's processes and the benchmark database's backends through one connection."""

    dsn: str
    conn: psycopg.Connection[tuple[Any, ...]] | None = field(default=None, init=False, repr=False)
    own_pid: int = field(default=0, init=False)
    postmaster: int | None = field(default=None, init=False)
    database: str = field(default="", init=False)

    def open(self) -> None:
        conn = psycopg.connect(self.dsn, autocommit=True)
        row = conn.execute("SELECT pg_backend_pid(), current_database()").fetchone()
        assert row is not None
        self.conn = conn
        self.own_pid, self.database = int(row[0]), str(row[1])
        parent = ppid(self.own_pid)
        # the server is on this machine (and in this pid namespace) if that pid is a postgres
        if parent is not None and "postgres" in " ".join(cmdline(self.own_pid) + cmdline(parent)):
            self.postmaster = parent

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def backend_ticks(self) -> dict[int, int]:
        """Clock ticks of every live backend of this database but the probe's own."""
        if self.conn is None or self.postmaster is None:
            return {}
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        ticks = {}
        for (pid,) in rows:
            t = cpu_ticks(int(pid), children=False)
            if t is not None:
                ticks[int(pid)] = t
        return ticks

    def server_ticks(self) -> int | None:
        if self.postmaster is None:
            return None
        total = cpu_ticks(self.postmaster)
        if total is None:
            return None
        for pid in child_pids(self.postmaster):
            total += cpu_ticks(pid, children=False) or 0
        return total


def redis_pid(url: str) -> int | None:
    """redis-server's pid if it runs on this machine (its `INFO server` process_id is a redis
    process here)."""
    client = redis.Redis.from_url(url)
    try:
        pid = int(client.info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return None
    finally:
        client.close()
    return pid if "redis" in " ".join(cmdline(pid)) else None


@dataclass
class Snapshot:
    ticks: dict[str, int]  # process name → clock ticks
    backends: dict[int, int]  # Postgres backend pid → clock ticks
    server: int | None  # the whole Postgres server's ticks
    machine: int | None = None  # every CPU's busy ticks


@dataclass
class CpuMeter:
    """Snapshots of named processes (plus Postgres); `between` gives CPU seconds per name."""

    pids: dict[str, int]
    postgres: PostgresProbe | None = None

    def snapshot(self) -> Snapshot:
        ticks = {}
        for name, pid in self.pids.items():
            t = cpu_ticks(pid)
            if t is not None:
                ticks[name] = t
        backends = self.postgres.backend_ticks() if self.postgres is not None else {}
        server = self.postgres.server_ticks() if self.postgres is not None else None
        return Snapshot(ticks, backends, server, machine_busy_ticks())

    def between(self, start: Snapshot, end: Snapshot) -> tuple[dict[str, float], dict[str, object]]:
        """CPU seconds per process name from `start` to `end`, and notes (backends seen/gone)."""
        seconds = {
            name: (end.ticks[name] - start.ticks[name]) * TICK_S
            for name in self.pids
            if name in start.ticks and name in end.ticks
        }
        notes: dict[str, object] = {}
        if start.machine is not None and end.machine is not None:
            notes["machine_busy_s"] = (end.machine - start.machine) * TICK_S
        if self.postgres is not None and self.postgres.postmaster is not None:
            seconds["postgres"] = (
                sum(t - start.backends.get(pid, 0) for pid, t in end.backends.items()) * TICK_S
            )
            notes["backends"] = len(end.backends)
            notes["backends_gone"] = len(set(start.backends) - set(end.backends))
            notes["database"] = self.postgres.database
            if start.server is not None and end.server is not None:
                seconds["postgres (server)"] = (end.server - start.server) * TICK_S
        return seconds, notes
