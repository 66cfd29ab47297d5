"""`python -m common.stack` (what `make run` runs) as a user runs it: it keeps every child up, gives
the wallet key to the executor alone, and stops everything on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from solders.keypair import Keypair

from common.settings import KEY_VARIABLES
from common.stack import METRICS_SERVICES, default_metrics_ports, free_port
from tests.stackutil import supervised_engine

pytestmark = [pytest.mark.e2e]

PROCESSES = {"simchain", "persistence", "router", "executor", "worker", "gateway"}


def _environ(pid: int) -> dict[bytes, bytes]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(e.partition(b"=")[::2] for e in raw.split(b"\0") if e)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_only_the_executor_receives_the_key_and_sigterm_stops_every_child(tmp_path: Path) -> None:
    keypair = Keypair()
    secret = str(keypair).encode()
    # KEYPAIR_PATH is never read here (PRIVATE_KEY wins); it is set to see that it too stays away
    with supervised_engine(
        tmp_path, PRIVATE_KEY=str(keypair), KEYPAIR_PATH=str(tmp_path / "unused.json")
    ) as engine:
        children = engine.children()
        assert set(children) == PROCESSES, children
        for name, pid in children.items():
            environ = _environ(pid)
            if name == "executor":
                assert environ[b"PRIVATE_KEY"] == secret
                assert environ[b"KEYPAIR_PATH"] == str(tmp_path / "unused.json").encode()
            else:
                assert not {k.decode() for k in environ} & KEY_VARIABLES, name
                assert not any(secret in v for v in environ.values()), name
        # and the executor signs with exactly that key
        (serving,) = [e for e in engine.log_lines("executor") if e["msg"] == "executor serving"]
        assert serving["wallet"] == str(keypair.pubkey())
        assert secret.decode() not in engine.log_path.read_text()

        assert engine.stop() == 0
        assert not [name for name, pid in children.items() if _alive(pid)]
    stopped = [e["msg"] for e in engine.log_lines()]
    assert "stopping every process" in stopped and stopped[-1] == "stopped"


def test_a_supervisor_killed_with_sigkill_leaves_no_orphans(tmp_path: Path) -> None:
    """Each child asked Linux to SIGTERM it when the supervisor dies (common/parent.py, done by
    the child after exec: no preexec_fn runs in a forked copy of the supervisor)."""
    with supervised_engine(tmp_path) as engine:
        children = engine.children()
        assert set(children) == PROCESSES, children
        engine.popen.send_signal(signal.SIGKILL)
        engine.popen.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in children.values()):
            time.sleep(0.2)
        assert not [name for name, pid in children.items() if _alive(pid)]


def free_block(n: int) -> int:
    """The first of `n` consecutive free ports."""
    for _ in range(50):
        first = free_port()
        if first + n <= 65536 and all(_free(p) for p in range(first + 1, first + n)):
            return first
    raise RuntimeError(f"no {n} consecutive free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_metrics_ports_default_to_a_range_a_set_port_wins_and_a_taken_one_is_left_off(
    tmp_path: Path,
) -> None:
    base = free_block(len(METRICS_SERVICES))
    dotenv = tmp_path / ".env"
    dotenv.write_text("ROUTER_METRICS_PORT=7001\nEXECUTOR_METRICS_PORT=\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + METRICS_SERVICES.index("persistence")))
        ports = default_metrics_ports({"METRICS_PORT_BASE": str(base), "WORKER_METRICS_PORT": "0"}, dotenv)
    assert ports == {
        "GATEWAY_METRICS_PORT": str(base),  # worker (0: off) and router (.env) are set: not touched
        "EXECUTOR_METRICS_PORT": str(base + 3),  # empty in .env counts as unset
        "SUPERVISOR_METRICS_PORT": str(base + 5),  # persistence's port was taken: left off
    }
    assert default_metrics_ports({"METRICS_PORT_BASE": "0"}, dotenv) == {}


def test_a_killed_child_is_restarted_counted_and_the_engine_serves(tmp_path: Path) -> None:
    base = free_block(len(METRICS_SERVICES))
    gateway_port = free_port()  # a port set for one service wins over the default range
    with supervised_engine(
        tmp_path,
        METRICS_PORT_BASE=str(base),
        GATEWAY_METRICS_PORT=str(gateway_port),
        SUPERVISOR_BACKOFF_MS="100",
    ) as engine:
        # metrics are on by default: every process's URL is printed at start and serves Prometheus text
        deadline = time.monotonic() + 10
        while "(Ctrl-C stops every process)" not in (banner := engine.log_path.read_text()):
            assert time.monotonic() < deadline, "no banner"
            time.sleep(0.05)
        printed = dict(re.findall(r"^ {4}(\w+) +(http://\S+/metrics)$", banner, re.M))
        assert printed == {
            service: f"http://127.0.0.1:{gateway_port if service == 'gateway' else base + place}/metrics"
            for place, service in enumerate(METRICS_SERVICES)
        }
        own = {  # a family each process defines itself: the port is that process's
            "gateway": "orderengine_gateway_orders_accepted_total counter",
            "worker": "orderengine_worker_order_events_total counter",
            "router": "orderengine_router_quotes_total counter",
            "executor": "orderengine_chain_rpc_calls_total counter",
            "persistence": "orderengine_persistence_events_total counter",
            "supervisor": "orderengine_supervisor_restarts_total counter",
        }
        for service, url in printed.items():
            text = httpx.get(url, timeout=5).text
            assert f"# TYPE {own[service]}" in text, service
        port = base + METRICS_SERVICES.index("supervisor")
        for victim in ("router", "gateway"):
            old = engine.children()[victim]
            os.kill(old, signal.SIGKILL)
            engine.wait_restarted(victim, old)
        exits = [e for e in engine.log_lines() if e["msg"] == "process exited; restarting it"]
        assert [(e["child"], e["signal"]) for e in exits] == [("router", "SIGKILL"), ("gateway", "SIGKILL")]
        restarted = [e["child"] for e in engine.log_lines() if e["msg"] == "process restarted"]
        assert restarted == ["router", "gateway"]
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        for victim in ("router", "gateway"):
            assert f'orderengine_supervisor_restarts_total{{process="{victim}"}} 1.0' in metrics
        assert 'orderengine_supervisor_restarts_total{process="executor"}' not in metrics

        # the restarted gateway and router serve an order to the end
        body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.1", "slippageBps": 300}
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=engine.url, timeout=10) as client:
            while True:
                try:
                    r = client.post("/api/orders/execute", json=body, headers={"Idempotency-Key": "sup-1"})
                    if r.status_code == 202:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the restarted gateway never accepted the order"
                time.sleep(0.2)
            order_id = r.json()["orderId"]
            while (status := client.get(f"/api/orders/{order_id}").json()["status"]) not in (
                "confirmed",
                "failed",
            ):
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
        assert status == "confirmed"
