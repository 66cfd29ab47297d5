"""`python -m common.healthcheck HOST:PORT [SERVICE]`: exit 0 when the gRPC health check says
SERVING (used by docker-compose healthchecks), 1 otherwise."""

from __future__ import annotations

import asyncio
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


async def serving(address: str, service: str = "", timeout: float = 2.0) -> bool:
    """True when the gRPC server at `address` answers SERVING for `service` ("" = the server)."""
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            resp = await health_pb2_grpc.HealthStub(channel).Check(
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
