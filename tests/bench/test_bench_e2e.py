"""The end-to-end benchmark: one short run through a real stack prints every figure; the CPU
accounting reads real processes (this one, Postgres, Redis); the saturation rule."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest

from bench.bench_e2e import ENGINE, cores, per_order_ms, saturation
from bench.cpu import PostgresProbe, cpu_ticks, listening_pid, machine_busy_ticks, redis_pid
from common.settings import REPO_ROOT
from tests.conftest import REDIS_URL


@pytest.mark.slow
@pytest.mark.e2e
def test_a_short_run_prints_every_figure() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_e2e", "--orders", "10", "--rate", "10", "--warmup", "0.3"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    number = r"[0-9]+(?:\.[0-9]+)?"
    assert re.search(rf"offered 10 orders/s +sent {number}/s +achieved {number} orders/s", text), text
    assert "orders 10: accepted 10, rejected 0, confirmed 10, failed 0" in text, text
    assert "no final status on the socket: 0" in text, text
    for row in ("accept (execute → accepted)", "submit → confirmed/failed"):
        assert re.search(rf"{re.escape(row)} +{number} +{number} +{number} +{number}\n", text), text
    for name in (*ENGINE, "engine", "client", "all"):
        assert re.search(rf"\n  {re.escape(name)} +{number}", text), f"no CPU figure for {name}:\n{text}"
    assert re.search(r"backends of database oe_test_\w+", text), text


def test_cpu_ticks_grow_with_work_and_a_gone_process_reads_none() -> None:
    before = cpu_ticks(os.getpid())
    assert before is not None
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    after = cpu_ticks(os.getpid())
    assert after is not None and after > before
    machine = machine_busy_ticks()
    assert machine is not None and machine >= after - before
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu_ticks(child.pid) is None


def test_the_listener_of_a_port_is_found() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert listening_pid(s.getsockname()[1]) == os.getpid()


def test_postgres_backends_of_one_database_and_redis_are_found(database_url: str) -> None:
    import psycopg

    probe = PostgresProbe(database_url)
    probe.open()
    try:
        if probe.postmaster is None:
            pytest.skip("Postgres does not run on this machine")
        with psycopg.connect(database_url) as other:
            pid = other.info.backend_pid
            assert pid in probe.backend_ticks()
            assert probe.own_pid not in probe.backend_ticks()
        server = probe.server_ticks()
        assert server is not None and server > 0
    finally:
        probe.close()
    assert redis_pid(REDIS_URL) is not None


def _result(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "rate": 100.0,
        "achieved": 99.0,
        "sent_rate": 100.0,
        "e2e_ms": [20.0, 30.0, 40.0, 50.0],
        "inflight_start": 5,
        "inflight_end": 7,
        "rejected": {},
        "missing": [],
        "unanswered": 0,
        "completed_in_window": 1000,
        "cpu_s": {"gateway": 1.0, "postgres": 0.5, "client": 0.25, "postgres (server)": 2.0},
    }
    base.update(changes)
    return base


def test_a_step_is_saturated_by_rate_latency_backlog_or_losses() -> None:
    assert saturation(_result(), 500) == []
    assert "achieved 80/s < 90 % of offered" in saturation(_result(achieved=80.0), 500)
    assert "the client sent only 90/s" in saturation(_result(sent_rate=90.0), 500)
    assert "p99 40 ms > 25 ms" in saturation(_result(), 25)
    assert "backlog grew by 40" in saturation(_result(inflight_end=45), 500)
    assert "3 rejected" in saturation(_result(rejected={"overloaded": 3}), 500)
    assert "2 without final status" in saturation(_result(missing=["a"], unanswered=1), 500)


def test_cpu_per_order_totals_the_engine_and_leaves_the_whole_postgres_server_out() -> None:
    ms = per_order_ms(_result())
    assert ms["gateway"] == 1.0 and ms["postgres"] == 0.5 and ms["client"] == 0.25
    assert ms["engine"] == 1.5
    assert ms["all"] == 1.75
    assert cores(_result(window_s=2.0), "engine") == 0.75
    assert cores(_result(window_s=2.0, cpu_notes={"machine_busy_s": 3.0}), "machine") == 1.5
