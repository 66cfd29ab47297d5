"""A gRPC fuzzer: random field values on every method of every service (Orders, Router, Executor),
against the real servers on port 0 with a real simulated chain and Postgres, for a fixed budget.

Random messages are built from the services' own descriptors: every scalar field gets edge values
(0, 1, the type's maximum, negative numbers), random or malformed text (huge strings, NUL, other
scripts, near-valid UUIDs and base58 mints), nested messages and repeated fields of a few members,
unknown enum numbers. Each is sent with the `admin` token, so it reaches the handlers past the
authentication (which test_grpc_auth covers). Asserted: no INTERNAL/UNKNOWN/DATA_LOSS answer (the
gRPC 5xx), every server still SERVING afterwards, no row of orders, events, executions or
idempotency keys changed by a refused call, and no transaction sent by the executor.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import psycopg
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.grpc_client import open_channel
from orderengine.v1 import executor_pb2, orders_pb2, router_pb2
from tests.conftest import SettingsFactory
from tests.engine import engine

BUDGET_S = 8.0
SEED = 20261204
SERVER_ERRORS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
SOL = "So11111111111111111111111111111111111111112"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"

_INT_LIMITS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def random_text(rng: random.Random) -> str:
    choices: list[Callable[[], str]] = [
        lambda: "",
        lambda: str(uuid.uuid4()),
        lambda: str(uuid.uuid4()).upper() + "x",
        lambda: rng.choice([SOL, USDC, SOL[:-1], USDC + "1", "0" * 44]),
        lambda: rng.choice(["raydium_cpmm", "meteora_dlmm", "signed", "sent", "landed", "{}", "[]"]),
        lambda: '{"a": ' * rng.randint(1, 50),
        lambda: "x" * rng.choice([256, 4097, 70_000]),
        lambda: "\x00" + "a" * rng.randint(0, 5),
        lambda: "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(1, 40))),
        lambda: rng.choice(["-1", "1e9", "NaN", "0.5", "18446744073709551616"]),
    ]
    return rng.choice(choices)()


def random_scalar(field: FieldDescriptor, rng: random.Random) -> Any:
    kind = field.type
    if kind in _INT_LIMITS:
        lo, hi = _INT_LIMITS[kind]
        return rng.choice([0, 1, 2, hi, lo, rng.randint(lo, hi), rng.randint(0, 10), 10**9])
    if kind == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if kind == FieldDescriptor.TYPE_STRING:
        return random_text(rng)
    if kind == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.choice([0, 1, 64, 1232, 5000]))
    if kind == FieldDescriptor.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return rng.choice([*numbers, 99, -1])
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice([0.0, -1.0, 1e300, float("nan")])
    raise AssertionError(f"unhandled field type {kind}")


def random_message(descriptor: Descriptor, rng: random.Random, depth: int = 0) -> Message:
    message = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if rng.random() < 0.25:
            continue  # left unset
        repeated = field.is_repeated
        count = rng.choice([0, 1, 2, 3]) if repeated else 1
        for _ in range(count):
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                if depth > 3:
                    continue
                value = random_message(field.message_type, rng, depth + 1)
                if repeated:
                    getattr(message, field.name).add().CopyFrom(value)
                else:
                    getattr(message, field.name).CopyFrom(value)
                continue
            value = random_scalar(field, rng)
            try:
                if repeated:
                    getattr(message, field.name).append(value)
                else:
                    setattr(message, field.name, value)
            except (ValueError, TypeError):
                pass  # e.g. an enum number proto3 rejects locally: leave the field unset
    return message


def methods() -> list[tuple[str, MethodDescriptor]]:
    found = []
    for module in (orders_pb2, router_pb2, executor_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            found += [(service.full_name, m) for m in service.methods]
    return found


async def call(
    channel: grpc.aio.Channel, service: str, method: MethodDescriptor, requests: list[Message]
) -> grpc.StatusCode:
    path = f"/{service}/{method.name}"
    response_class = GetMessageClass(method.output_type)
    serialize, deserialize = type(requests[0]).SerializeToString, response_class.FromString
    try:
        if method.client_streaming:

            async def stream() -> AsyncIterator[Message]:
                for request in requests:
                    yield request

            if method.server_streaming:
                responses = channel.stream_stream(path, serialize, deserialize)(stream(), timeout=5)
                async for _ in responses:
                    pass
            else:
                await channel.stream_unary(path, serialize, deserialize)(stream(), timeout=5)
        elif method.server_streaming:
            async for _ in channel.unary_stream(path, serialize, deserialize)(requests[0], timeout=5):
                pass
        else:
            await channel.unary_unary(path, serialize, deserialize)(requests[0], timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def row_counts(database_url: str) -> tuple[int, ...]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_events), "
            "(SELECT count(*) FROM executions), (SELECT count(*) FROM idempotency_keys)"
        ).fetchone()
    assert row is not None
    return tuple(int(v) for v in row)


async def test_random_fields_on_every_method_of_every_service(make_settings: SettingsFactory) -> None:
    rng = random.Random(SEED)
    async with engine(make_settings(LOG_LEVEL="error")) as eng:
        settings = eng.settings
        channels = {
            "orderengine.v1.Orders": open_channel(settings.persistence_addr),
            "orderengine.v1.Router": open_channel(settings.router_addr),
            "orderengine.v1.Executor": open_channel(settings.executor_addr),
        }
        codes: Counter[str] = Counter()
        per_method: Counter[str] = Counter()
        refused_changes: list[str] = []
        server_errors: list[str] = []
        try:
            deadline = time.monotonic() + BUDGET_S
            every = methods()
            assert len(every) >= 12
            while time.monotonic() < deadline:
                for service, method in every:
                    requests = [random_message(method.input_type, rng) for _ in range(rng.randint(1, 3))]
                    before = row_counts(settings.database_url)
                    code = await call(channels[service], service, method, requests)
                    codes[code.name] += 1
                    per_method[f"{service.rsplit('.', 1)[1]}.{method.name}"] += 1
                    if code in SERVER_ERRORS:
                        server_errors.append(f"{method.name}: {code.name} for {requests[0]}")
                    if code != grpc.StatusCode.OK and row_counts(settings.database_url) != before:
                        refused_changes.append(f"{method.name} ({code.name}) changed rows")
            print("\ngRPC fuzz:", sum(codes.values()), "calls;", dict(codes), dict(per_method))
            assert server_errors == [], server_errors[:5]
            assert refused_changes == [], refused_changes[:5]
            assert set(per_method) == {f"{s.rsplit('.', 1)[1]}.{m.name}" for s, m in every}
            # every server is still up and serving, and the executor sent nothing
            for address in (settings.persistence_addr, settings.router_addr, settings.executor_addr):
                async with grpc.aio.insecure_channel(address) as probe:
                    health = await health_pb2_grpc.HealthStub(probe).Check(
                        health_pb2.HealthCheckRequest(), timeout=5
                    )
                    assert health.status == health_pb2.HealthCheckResponse.SERVING, address
            assert eng.executor.chain.calls.get("sendTransaction", 0) == 0
        finally:
            await asyncio.gather(*(c.close() for c in channels.values()))
