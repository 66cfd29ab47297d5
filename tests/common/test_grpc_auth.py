"""Every gRPC server needs a service token; each identity may call only its own methods."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from common.grpc_auth import Authenticator, allowed, call_metadata, parse_tokens, tokens_of
from common.grpc_client import open_channel
from common.settings import ConfigError, Settings
from orderengine.v1 import orders_pb2, orders_pb2_grpc
from persistence_svc.server import Running, serve
from tests.conftest import SettingsFactory
from tests.persistence_svc.conftest import make_spec

TOKENS = "gateway=gateway-token-0123456789,worker=worker-token-0123456789,executor=" + (
    "sha256:" + hashlib.sha256(b"executor-token-0123456789").hexdigest()
)


def test_tokens_are_parsed_and_checked() -> None:
    parsed = dict(parse_tokens(TOKENS))
    assert parsed["gateway"] == "gateway-token-0123456789"
    for bad in ("nobody=0123456789abcdef01", "gateway=short", "gateway", "executor=sha256:xyz"):
        with pytest.raises(ValueError):
            parse_tokens(bad)
    auth = Authenticator(parsed)
    assert auth.identify("worker-token-0123456789") == "worker"
    assert auth.identify("executor-token-0123456789") == "executor"  # verified from its digest
    assert auth.identify("worker-token-012345678") is None
    assert auth.identify_metadata((("authorization", "Bearer gateway-token-0123456789"),)) == "gateway"
    assert auth.identify_metadata((("authorization", "gateway-token-0123456789"),)) is None


def test_a_real_chain_needs_tokens() -> None:
    with pytest.raises(ConfigError, match="GRPC_TOKENS"):
        tokens_of(Settings(chain="devnet"))
    assert tokens_of(Settings())["worker"] == "sim-dev-worker"


def test_only_the_worker_appends_and_only_the_executor_records() -> None:
    append = "/orderengine.v1.Orders/AppendEvents"
    record = "/orderengine.v1.Orders/RecordExecution"
    assert allowed("worker", append) and not allowed("gateway", append) and not allowed("executor", append)
    assert allowed("executor", record) and not allowed("worker", record) and not allowed("gateway", record)
    assert allowed("gateway", "/orderengine.v1.Orders/CreateOrder")
    assert not allowed("worker", "/orderengine.v1.Orders/CreateOrder")
    assert not allowed("gateway", "/orderengine.v1.Executor/Execute")
    # a method nobody listed is admin's alone; reflection is for any known identity
    assert not allowed("worker", "/orderengine.v1.Orders/DropEverything")
    assert allowed("admin", "/orderengine.v1.Orders/DropEverything")
    assert allowed("worker", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")


@pytest.fixture
async def service(make_settings: SettingsFactory) -> AsyncIterator[tuple[Settings, Running]]:
    settings = make_settings(PERSISTENCE_ADDR="127.0.0.1:0", DB_POOL_SIZE="2", GRPC_TOKENS=TOKENS)
    running = await serve(settings)
    try:
        yield settings, running
    finally:
        await running.stop(0)


async def test_a_call_without_a_token_is_unauthenticated_and_health_stays_open(
    service: tuple[Settings, Running],
) -> None:
    settings, running = service
    address = f"127.0.0.1:{running.port}"
    async with grpc.aio.insecure_channel(address) as bare:
        stub = orders_pb2_grpc.OrdersStub(bare)
        for call in (
            stub.GetOrder(orders_pb2.GetOrderRequest(order_id="x"), timeout=5),
            stub.CreateOrder(orders_pb2.CreateOrderRequest(spec=make_spec()), timeout=5),
            stub.ListOrders(orders_pb2.ListOrdersRequest(), timeout=5),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        wrong = call_metadata("worker-token-0123456780")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ListOrders(orders_pb2.ListOrdersRequest(), timeout=5, metadata=wrong)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # probes hold no token
        health = await health_pb2_grpc.HealthStub(bare).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        # reflection is off unless GRPC_REFLECTION=1
        reflect = reflection_pb2_grpc.ServerReflectionStub(bare).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            timeout=5,
            metadata=call_metadata("worker-token-0123456789"),
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in reflect:
                pass
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # a sim development token is no token here
    dev = open_channel(address)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await orders_pb2_grpc.OrdersStub(dev).ListOrders(orders_pb2.ListOrdersRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await dev.close()
    assert settings.grpc_tokens  # the tokens above were in force


async def test_each_identity_calls_only_its_own_methods(service: tuple[Settings, Running]) -> None:
    settings, running = service
    address = f"127.0.0.1:{running.port}"
    gateway = open_channel(address, settings, "gateway")
    worker = open_channel(address, settings, "worker")
    try:
        as_gateway = orders_pb2_grpc.OrdersStub(gateway)
        as_worker = orders_pb2_grpc.OrdersStub(worker)
        created = await as_gateway.CreateOrder(orders_pb2.CreateOrderRequest(spec=make_spec()), timeout=5)
        order_id = created.order.order_id
        forged = orders_pb2.NewEvent(order_id=order_id, seq=2, status=orders_pb2.ORDER_STATUS_ROUTING)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await as_gateway.AppendEvents(orders_pb2.AppendEventsRequest(events=[forged]), timeout=5)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await as_worker.RecordExecution(orders_pb2.Execution(order_id=order_id), timeout=5)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await as_worker.CreateOrder(orders_pb2.CreateOrderRequest(spec=make_spec()), timeout=5)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # nothing the refused callers sent changed the order
        order = await as_gateway.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id), timeout=5)
        assert order.last_seq == 1 and order.status == orders_pb2.ORDER_STATUS_PENDING
        listed = await as_gateway.ListOrders(orders_pb2.ListOrdersRequest(), timeout=5)
        assert [o.order_id for o in listed.orders] == [order_id]
        appended = await as_worker.AppendEvents(orders_pb2.AppendEventsRequest(events=[forged]), timeout=5)
        assert appended.results[0].code == 0
    finally:
        await gateway.close()
        await worker.close()


async def test_reflection_when_enabled_needs_a_token(make_settings: SettingsFactory) -> None:
    settings = make_settings(PERSISTENCE_ADDR="127.0.0.1:0", DB_POOL_SIZE="2", GRPC_REFLECTION="1")
    running = await serve(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as bare:
            stub = reflection_pb2_grpc.ServerReflectionStub(bare)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in stub.ServerReflectionInfo(iter([request]), timeout=5):
                    pass
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            names = []
            async for response in stub.ServerReflectionInfo(
                iter([request]), timeout=5, metadata=call_metadata("sim-dev-admin")
            ):
                names = [s.name for s in response.list_services_response.service]
            assert "orderengine.v1.Orders" in names
    finally:
        await running.stop(0)
