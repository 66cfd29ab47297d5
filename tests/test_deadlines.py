"""Every gRPC stub call in the engine's code carries a deadline (`timeout=`).

The test walks the source (AST) of every package for calls of a method of one of our services or of
grpc.health.v1 (`anything.CreateOrder(...)`, `stub.Execute(...)`) and fails on one without a
`timeout=` keyword. A long-lived stream that must outlive any deadline says so on its line with a
`# deadline-exempt: <why>` (or `# no-deadline: <why>`) comment, which a reviewer can see and this
test accepts.
"""

from __future__ import annotations

import ast
from pathlib import Path

from grpc_health.v1 import health_pb2

from orderengine.v1 import executor_pb2, orders_pb2, router_pb2

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "gateway", "worker", "router_svc", "executor_svc", "persistence_svc", "simchain")
PRAGMAS = ("# no-deadline:", "# deadline-exempt:")


def rpc_methods() -> set[str]:
    names: set[str] = set()
    for module in (orders_pb2, router_pb2, executor_pb2, health_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            names |= {method.name for method in service.methods}
    return names


def stub_calls_without_deadline(source: str, methods: set[str]) -> list[int]:
    """Line numbers of calls `x.<rpc method>(...)` without `timeout=` (nor the pragma)."""
    lines = source.splitlines()
    missing = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in methods:
            continue
        if any(k.arg == "timeout" for k in node.keywords):
            continue
        span = lines[node.lineno - 1 : (node.end_lineno or node.lineno)]
        if any(p in line for line in span for p in PRAGMAS):
            continue
        missing.append(node.lineno)
    return sorted(missing)


def test_the_walker_finds_calls_without_a_deadline() -> None:
    methods = rpc_methods()
    assert {"CreateOrder", "AppendEvents", "Quote", "Execute", "Check"} <= methods
    source = (
        "async def f(stub, other):\n"
        "    await stub.CreateOrder(req, timeout=5)\n"
        "    await stub.GetOrder(req)\n"
        "    call = other.Execute(req, wait_for_ready=True)\n"
        "    stream = stub.QuoteStream()  # no-deadline: one stream for the process's life\n"
        "    stub.something_else(req)\n"
    )
    assert stub_calls_without_deadline(source, methods) == [3, 4]


def test_every_stub_call_in_the_engine_has_a_deadline() -> None:
    methods = rpc_methods()
    offenders = []
    checked = 0
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            source = path.read_text()
            checked += 1
            offenders += [
                f"{path.relative_to(REPO)}:{n}" for n in stub_calls_without_deadline(source, methods)
            ]
    assert checked > 50
    assert offenders == [], f"gRPC calls without timeout=: {offenders}"
