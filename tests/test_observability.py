"""Operators' view of the running engine: every process's Prometheus exporter after real orders, and
JSON logs that carry the order id on every line about an order."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.grpc_auth import call_metadata, client_token
from common.stack import Stack, free_port
from orderengine.v1 import router_pb2, router_pb2_grpc
from tests.stackutil import running_stack

pytestmark = pytest.mark.e2e

SERVICES = ("gateway", "worker", "router", "executor", "persistence")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ports = {f"{s.upper()}_METRICS_PORT": str(free_port()) for s in SERVICES}
    # per-order lines below the final one are DEBUG (issue 9): read them all here
    with running_stack(tmp_path_factory.mktemp("observability-logs"), LOG_LEVEL="debug", **ports) as s:
        yield s


@pytest.fixture(scope="module")
def orders(stack: Stack) -> list[str]:
    """Two confirmed orders, one rejected request, one unknown order read, one refused quote."""
    ids = []
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        for body in (
            {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.25"},
            {"tokenIn": "USDC", "tokenOut": "SOL", "amount": "40"},
        ):
            r = client.post("/api/orders/execute", json=body)
            assert r.status_code == 202, r.text
            ids.append(r.json()["orderId"])
        assert (
            client.post(
                "/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "-1"}
            ).status_code
            == 422
        )
        assert client.get("/api/orders/00000000-0000-4000-8000-000000000000").status_code == 404
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(client.get(f"/api/orders/{i}").json()["status"] == "confirmed" for i in ids):
                break
            time.sleep(0.05)
        else:
            pytest.fail("orders did not confirm")
    with grpc.insecure_channel(stack.settings.router_addr) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            router_pb2_grpc.RouterStub(channel).Quote(
                router_pb2.QuoteRequest(input_mint="nope"),
                timeout=5,
                metadata=call_metadata(client_token(stack.settings, "admin")),
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    time.sleep(0.3)  # the worker's last counters land right after the confirmed event
    return ids


def scrape(stack: Stack, service: str) -> Samples:
    port = stack.settings.metrics_port(service)
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    similar = sorted(n for n, _ in samples if n.startswith(name))
    assert key in samples, f"no series {name}{labels}; have {similar}"
    return samples[key]


def handled(samples: Samples, service: str, method: str, code: str = "OK") -> float:
    return value(
        samples,
        "orderengine_grpc_server_handled_total",
        grpc_service=f"orderengine.v1.{service}",
        grpc_method=method,
        grpc_code=code,
    )


def started(samples: Samples, service: str, method: str) -> float:
    labels = {"grpc_service": f"orderengine.v1.{service}", "grpc_method": method}
    return value(samples, "orderengine_grpc_server_started_total", **labels)


def streamed(samples: Samples, service: str, method: str) -> float:
    labels = {"grpc_service": f"orderengine.v1.{service}", "grpc_method": method}
    return value(samples, "orderengine_grpc_server_msg_sent_total", **labels)


def test_gateway_exports_queue_depth_and_accepted_orders(stack: Stack, orders: list[str]) -> None:
    m = scrape(stack, "gateway")
    assert value(m, "orderengine_gateway_queue_backlog") >= 0
    assert value(m, "orderengine_gateway_orders_accepted_total", created="true") == 2
    assert value(m, "orderengine_gateway_ws_connections") == 0
    assert value(m, "process_resident_memory_bytes") > 0


def test_worker_exports_orders_by_status_and_stage_durations(stack: Stack, orders: list[str]) -> None:
    m = scrape(stack, "worker")
    for status in ("routing", "building", "submitted", "confirmed"):
        assert value(m, "orderengine_worker_order_events_total", status=status) == 2, status
    assert value(m, "orderengine_worker_order_events_total", status="failed") == 0
    for stage in ("routing", "building", "confirming"):
        assert value(m, "orderengine_worker_stage_seconds_count", stage=stage) == 2, stage
        assert value(m, "orderengine_worker_stage_seconds_sum", stage=stage) > 0
    assert value(m, "orderengine_worker_order_seconds_count", status="confirmed") == 2
    assert value(m, "orderengine_worker_queue_wait_seconds_count") == 2
    assert value(m, "orderengine_worker_orders_inflight") == 0


def test_router_exports_quote_latency_and_grpc_calls(stack: Stack, orders: list[str]) -> None:
    m = scrape(stack, "router")
    assert value(m, "orderengine_router_quote_seconds_count") == 3
    assert value(m, "orderengine_router_quotes_total", outcome="ok") == 2
    assert value(m, "orderengine_router_quotes_total", outcome="invalid") == 1
    # the worker quotes over its long-lived QuoteBatches stream: open (started, not yet handled), the
    # two orders' answers sent in one or two messages (answers ready together share one)
    assert started(m, "Router", "QuoteBatches") >= 1
    assert not any(name.endswith("handled_total") and ("grpc_method", "QuoteBatches") in lb for name, lb in m)
    assert 1 <= streamed(m, "Router", "QuoteBatches") <= 2
    # the one unary Quote is the refused one
    assert started(m, "Router", "Quote") == 1
    assert handled(m, "Router", "Quote", "INVALID_ARGUMENT") == 1  # the code the error interceptor chose
    assert not any(("grpc_method", "Quote") in lb and ("grpc_code", "OK") in lb for _, lb in m)
    assert (
        value(
            m,
            "orderengine_grpc_server_handling_seconds_count",
            grpc_service="orderengine.v1.Router",
            grpc_method="Quote",
        )
        == 1
    )
    assert value(m, "orderengine_chain_rpc_calls_total", method="getMultipleAccounts") >= 1


def test_executor_exports_chain_rpc_calls_and_execute_streams(stack: Stack, orders: list[str]) -> None:
    m = scrape(stack, "executor")
    # the worker executes over one long-lived ExecuteBatches stream: the orders' updates went out on it
    # (at least two messages: an order's confirmed update follows its submitted one); nothing used
    # the unary Execute
    assert started(m, "Executor", "ExecuteBatches") >= 1
    assert streamed(m, "Executor", "ExecuteBatches") >= 2
    assert not any(("grpc_method", "Execute") in labels for _, labels in m)
    for method in ("sendTransaction", "getSignatureStatuses", "getLatestBlockhash"):
        assert value(m, "orderengine_chain_rpc_calls_total", method=method) >= 1, method
        assert value(m, "orderengine_chain_rpc_seconds_count", method=method) >= 1, method
    assert not any(name == "orderengine_chain_rpc_errors_total" for name, _ in m)  # a healthy chain


def test_persistence_exports_events_by_status(stack: Stack, orders: list[str]) -> None:
    m = scrape(stack, "persistence")
    for status in ("pending", "routing", "building", "submitted", "confirmed"):
        assert value(m, "orderengine_persistence_events_total", status=status) == 2, status
    # the gateway's micro-batches (one POST each here) on its CreateOrderStream
    assert value(m, "orderengine_persistence_create_batches_total") == 2
    assert handled(m, "Orders", "GetOrder", "NOT_FOUND") >= 1
    # the hot path's streams: the gateway's creates, the worker's events, the executor's order
    # reads and records; none of their unary twins was used
    for method in ("CreateOrderStream", "AppendEventStream", "GetOrderStream", "RecordExecutionStream"):
        assert started(m, "Orders", method) >= 1, method
        assert streamed(m, "Orders", method) >= 1, method
    for method in ("CreateOrders", "AppendEvents", "GetOrders", "RecordExecutions"):
        assert not any(("grpc_method", method) in labels for _, labels in m), method


def test_no_series_is_labelled_by_order(stack: Stack, orders: list[str]) -> None:
    for service in SERVICES:
        for _name, labels in scrape(stack, service):
            for _key, label_value in labels:
                assert not any(order_id in label_value for order_id in orders), (service, labels)


def log_lines(stack: Stack, process: str) -> list[dict]:
    assert stack.log_dir is not None
    path = Path(stack.log_dir) / f"{process}.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("process", ["worker", "router", "executor"])
def test_every_log_line_about_an_order_carries_its_id(stack: Stack, orders: list[str], process: str) -> None:
    lines = log_lines(stack, process)
    for order_id in orders:
        about = [e for e in lines if order_id in json.dumps(e) and e.get("logger") != "uvicorn.error"]
        assert about, f"{process} logged nothing about {order_id}"
        for entry in about:
            assert entry.get("order_id") == order_id, entry
    assert all(e["service"] == process for e in lines)
