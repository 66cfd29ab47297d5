"""`python -m common.healthcheck HOST:PORT [SERVICE]`: exit 0 when the gRPC health check says
SERVING (used by docker-compose healthchecks), 1 otherwise."""

from __future__ import annotations

import asyncio
import sys

import grpc
from grpc_health.v1 import health_pb2

CHECK_METHOD = "/grpc.health.v1.Health/Check"


def health_check(
    channel: grpc.aio.Channel,
) -> grpc.aio.UnaryUnaryMultiCallable[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]:
    """The client side of grpc.health.v1 `Health.Check` on `channel` (types-grpcio-health-checking
    declares no methods on `HealthStub`, so the call is built here with its message types)."""
    return channel.unary_unary(
        CHECK_METHOD,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )


async def serving(address: str, service: str = "", timeout: float = 2.0) -> bool:
    """True when the gRPC server at `address` answers SERVING for `service` ("" = the server)."""
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            resp = await health_check(channel)(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def check(address: str, service: str = "", timeout: float = 2.0) -> bool:
    return asyncio.run(serving(address, service, timeout))


def main() -> None:
    if len(sys.argv) not in (2, 3):
        print("usage: python -m common.healthcheck HOST:PORT [SERVICE]", file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if check(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "") else 1)


if __name__ == "__main__":
    main()
