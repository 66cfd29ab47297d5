"""The engine as integrators meet it, against the whole running engine (with API_KEYS set):
- docs/postman_collection.json, run by newman: every endpoint, error cases included, kept true;
- a Node.js gRPC client built from protos/ alone (Router.Quote, Orders.GetOrder);
- server reflection listing each gRPC service;
- the CLI presenting its API key."""

from __future__ import annotations

import io
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from starlette.routing import Route

from cli import commands as cli
from common.grpc_auth import client_token
from common.markets import load_markets
from common.settings import load_settings
from common.stack import Stack
from gateway.app import create_app
from tests.jsdeps import node_tools
from tests.stackutil import running_stack

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
COLLECTION = REPO / "docs" / "postman_collection.json"
ARTIFACTS = REPO / "test-artifacts"
API_KEY = "test-key-0123456789"
LIFECYCLE = ["pending", "routing", "building", "submitted", "confirmed"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("clients-logs"), API_KEYS=API_KEY, GRPC_REFLECTION="1") as s:
        yield s


def confirmed_order(stack: Stack) -> str:
    """Submits an order over HTTP and waits until it is confirmed; returns its id."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as client:
        r = client.post("/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.75"})
        assert r.status_code == 202, r.text
        order_id: str = r.json()["orderId"]
        for _ in range(200):
            if client.get(f"/api/orders/{order_id}").json()["status"] in ("confirmed", "failed"):
                break
            time.sleep(0.05)
        assert client.get(f"/api/orders/{order_id}").json()["status"] == "confirmed"
    return order_id


# ------------------------------------------------------------------------------------------------
# the Postman collection


def collection_requests() -> list[dict]:
    def walk(items: list[dict]) -> Iterator[dict]:
        for it in items:
            if "item" in it:
                yield from walk(it["item"])
            else:
                yield it

    return list(walk(json.loads(COLLECTION.read_text())["item"]))


def test_the_collection_covers_every_http_route() -> None:
    doc = json.loads(COLLECTION.read_text())
    assert doc["info"]["schema"] == "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    assert {v["key"] for v in doc["variable"]} >= {"baseUrl", "apiKey"}
    requests = collection_requests()
    assert all(r["request"]["url"]["raw"].startswith("{{baseUrl}}/") for r in requests)
    called = {
        (r["request"]["method"], r["request"]["url"]["raw"].removeprefix("{{baseUrl}}").split("?")[0])
        for r in requests
    }
    settings = load_settings({}, dotenv=Path("/nonexistent"))
    app = create_app(settings, load_markets(REPO / "markets" / "sim.json"))
    routes = [r for r in app.routes if isinstance(r, Route)]
    assert routes
    for route in routes:
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", route.path) + "$")
        for method in route.methods or ():
            if method == "HEAD":
                continue
            assert any(m == method and pattern.match(path) for m, path in called), (method, route.path)
    statuses = {
        int(m)
        for r in requests
        for line in r["event"][-1]["script"]["exec"]
        for m in re.findall(r"have\.status\((\d+)\)", line)
    }
    assert statuses >= {200, 202, 400, 404, 405, 413, 422}


def test_newman_runs_the_collection_against_the_engine(stack: Stack) -> None:
    tools = node_tools()
    report = ARTIFACTS / "newman" / "report.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            str(tools / ".bin" / "newman"),
            "run",
            str(COLLECTION),
            "--env-var",
            f"baseUrl={stack.url}",
            "--env-var",
            f"apiKey={API_KEY}",
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
            "--color",
            "off",
            "--timeout-request",
            "10000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    run = json.loads(report.read_text())["run"]
    assert run["failures"] == []
    stats = run["stats"]
    assert stats["assertions"]["failed"] == 0 and stats["assertions"]["total"] >= 100
    assert stats["requests"]["failed"] == 0
    executed = {e["item"]["name"] for e in run["executions"]}
    assert executed == {r["name"] for r in collection_requests()}  # every request ran


def test_without_an_api_key_the_api_answers_401(stack: Stack) -> None:
    r = httpx.get(f"{stack.url}/api/orders")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


# ------------------------------------------------------------------------------------------------
# gRPC from another language, and reflection


def test_a_node_client_quotes_and_reads_an_order_from_the_protos(stack: Stack) -> None:
    tools = node_tools()
    order_id = confirmed_order(stack)
    markets = load_markets(stack.settings.markets_path)
    sol, usdc = markets.token("SOL"), markets.token("USDC")
    assert sol and usdc
    args = {
        "router": stack.settings.router_addr,
        "orders": stack.settings.persistence_addr,
        "orderId": order_id,
        "inputMint": sol.mint,
        "outputMint": usdc.mint,
        "amountIn": "1500000000",
        "token": client_token(stack.settings, "admin"),
    }
    proc = subprocess.run(
        ["node", str(tools.parent / "grpc_client.mjs"), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)

    quote = got["quote"]["ok"]
    assert quote["request_id"] == "node-quote-1"
    assert {q["venue"] for q in quote["quotes"]} == {"raydium_cpmm", "meteora_dlmm"}
    legs = quote["route"]["legs"]
    assert legs and sum(int(leg["amount_in"]) for leg in legs) == 1_500_000_000
    assert int(quote["route"]["amount_out"]) >= int(quote["route"]["min_amount_out"]) > 0
    assert got["badQuote"]["codeName"] == "INVALID_ARGUMENT" and "output_mint" in got["badQuote"]["details"]

    order = got["order"]["ok"]
    assert order["order_id"] == order_id
    assert order["status"] == "ORDER_STATUS_CONFIRMED"
    assert order["spec"]["input_mint"] == sol.mint and order["spec"]["amount_in"] == "750000000"
    assert [e["seq"] for e in order["events"]] == [1, 2, 3, 4, 5]
    assert [e["status"] for e in order["events"]] == [f"ORDER_STATUS_{s.upper()}" for s in LIFECYCLE]
    assert got["missing"]["codeName"] == "NOT_FOUND"


class _Token(grpc.StreamStreamClientInterceptor):  # type: ignore[misc]
    """Puts the service token on a sync channel's streaming calls (reflection is one)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        metadata = [*(details.metadata or ()), ("authorization", f"Bearer {self.token}")]
        return continuation(details._replace(metadata=metadata), request_iterator)


@pytest.mark.parametrize(
    ("address_of", "service"),
    [
        ("persistence_addr", "orderengine.v1.Orders"),
        ("router_addr", "orderengine.v1.Router"),
        ("executor_addr", "orderengine.v1.Executor"),
    ],
)
def test_server_reflection_lists_each_service(stack: Stack, address_of: str, service: str) -> None:
    with grpc.insecure_channel(getattr(stack.settings, address_of)) as channel:
        token = client_token(stack.settings, "admin")
        channel = grpc.intercept_channel(channel, _Token(token))
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert services >= {service, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
        # …and serves the descriptors a client needs to call it without the .proto files
        proto = db.FindFileContainingSymbol(service)
        assert proto.package == "orderengine.v1"
        assert service.rsplit(".", 1)[1] in [s.name for s in proto.service]


# ------------------------------------------------------------------------------------------------
# the CLI with an API key


def test_the_cli_presents_its_api_key(stack: Stack) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert (
        cli.main(
            ["execute", "SOL", "USDC", "0.2", "--json", "--url", stack.url, "--api-key", API_KEY],
            out=out,
            err=err,
        )
        == 0
    ), err.getvalue()
    statuses = [json.loads(line).get("status") for line in out.getvalue().splitlines()[1:]]
    assert statuses == LIFECYCLE
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["orders", "list", "--url", stack.url], out=out, err=err) == 2
    assert "API key" in err.getvalue()
