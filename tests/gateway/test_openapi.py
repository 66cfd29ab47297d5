"""GET /openapi.json describes exactly the app's routes, and the running gateway keeps to it under
schemathesis: no 5xx, every answer as described, every invalid request refused — and nothing stored
or queued from the invalid ones."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from common.settings import load_settings
from gateway.app import create_app
from gateway.openapi import openapi_document
from tests.gateway.edgeutil import running_edge

MAX_EXAMPLES = 50  # per operation and mode
FUZZ_BUDGET_S = 20.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _normalized(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_route_is_described_and_nothing_else() -> None:
    app = create_app(load_settings({}, dotenv=Path("/nonexistent")))
    routes = {
        (_normalized(r.path), method.lower())
        for r in app.routes
        if isinstance(r, Route)
        for method in (r.methods or ())
        if method != "HEAD"
    }
    doc = openapi_document()
    described = {(_normalized(path), method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == described
    assert doc["openapi"].startswith("3.1")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")) and path != "/healthz":
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}


async def test_openapi_json_is_served(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with running_edge(make_settings) as edge, httpx.AsyncClient(base_url=edge.url) as client:
        r = await client.get("/openapi.json")
        assert r.status_code == 200 and r.json() == openapi_document()


def _fuzz(base_url: str, mode: GenerationMode, deadline: float) -> dict[str, int]:
    """Runs every operation's generated cases in `mode`; returns how many ran per operation."""
    schema = schemathesis.openapi.from_dict(openapi_document())
    ran: dict[str, int] = {}
    checks = CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        ran[label] = 0
        _run_operation(operation.as_strategy(generation_mode=mode), label, base_url, checks, deadline, ran)
    return ran


def _run_operation(
    strategy: Any, label: str, base_url: str, checks: list[Any], deadline: float, ran: dict[str, int]
) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            return
        case.call_and_validate(base_url=base_url, checks=checks, timeout=10)
        ran[label] += 1

    try:
        run()
    except Unsatisfiable:  # an operation without parameters has no invalid form
        ran[label] = -1


async def test_schemathesis_finds_no_5xx_and_invalid_requests_change_nothing(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with running_edge(make_settings, router=True) as edge:  # the router: POST /api/quotes
        deadline = time.monotonic() + FUZZ_BUDGET_S
        # Invalid requests only: every one must be refused (4xx) and none may store or queue anything.
        stored, queued = edge.orders_stored(), await edge.jobs_queued()
        ran = await asyncio.to_thread(_fuzz, edge.url, GenerationMode.NEGATIVE, deadline)
        assert edge.orders_stored() == stored and await edge.jobs_queued() == queued
        print("negative", ran)
        with_parameters = ("POST /api/orders/execute", "GET /api/orders", "GET /api/orders/{orderId}")
        assert all(ran[op] > 0 for op in with_parameters), ran
        # Valid requests: no 5xx, every answer as described.
        ran = await asyncio.to_thread(_fuzz, edge.url, GenerationMode.POSITIVE, deadline)
        print("positive", ran)
        assert time.monotonic() < deadline + 5, "the fuzz ran past its budget"
