"""The persistence process: Postgres pool, migrations, Redis publisher and the Orders gRPC service.

`serve(settings)` starts everything and returns a `Running` (tests call it on port 0);
`main()` runs it until SIGTERM/SIGINT and shuts down gracefully.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from common.grpc_server import GrpcService, run_service, start_grpc_service
from common.redis_client import open_redis
from common.settings import Settings
from orderengine.v1 import orders_pb2_grpc
from persistence_svc import db
from persistence_svc.outbox import Outbox
from persistence_svc.publisher import RedisPublisher
from persistence_svc.servicer import SERVICE_NAME, OrdersServicer

log = logging.getLogger(__name__)


@dataclass
class Running:
    """A started persistence service. `stop()` is graceful and idempotent."""

    settings: Settings
    service: GrpcService
    pool: AsyncConnectionPool
    redis: aioredis.Redis
    publisher: RedisPublisher
    servicer: OrdersServicer
    outbox: Outbox
    _stopped: bool = False

    @property
    def port(self) -> int:
        return self.service.port

    async def stop(self, grace: float | None = None) -> None:
        """Health → NOT_SERVING, let in-flight calls finish for `grace` s (default GRPC_GRACE_S),
        then close the Postgres pool and the Redis client."""
        if self._stopped:
            return
        self._stopped = True
        try:
            await self.service.stop(self.settings.grpc_grace_s if grace is None else grace)
        finally:
            await self.servicer.close()
            await self.publisher.aclose()
            await self.outbox.stop()
            await self.pool.close()
            await self.redis.aclose()


async def serve(settings: Settings) -> Running:
    """Creates the database if missing, applies migrations, opens the pool and the Redis client,
    and starts the gRPC server on settings.persistence_addr (port 0 picks a free port)."""
    await db.ensure_database(settings.database_url)
    await db.apply_migrations(settings.database_url)
    timeouts = db.SessionTimeouts(
        settings.db_statement_timeout_ms,
        settings.db_lock_timeout_ms,
        settings.db_idle_in_transaction_timeout_ms,
        settings.db_connect_timeout_s,
    )
    pool = await db.open_pool(settings.database_url, settings.db_pool_size, timeouts)
    redis = open_redis(settings, health_check_interval=30)
    try:
        publisher = RedisPublisher(redis, settings.redis_prefix)
        outbox = Outbox(
            pool, publisher, settings.outbox_relay_age_ms / 1000, settings.outbox_relay_interval_ms / 1000
        )
        publisher.on_published = outbox.published
        servicer = OrdersServicer(pool, publisher)

        def register(server: grpc.aio.Server) -> None:
            orders_pb2_grpc.add_OrdersServicer_to_server(servicer, server)

        service = await start_grpc_service(settings.persistence_addr, register, [SERVICE_NAME], settings)
    except BaseException:
        await pool.close()
        await redis.aclose()
        raise
    outbox.start()  # relays what a previous process committed and never published
    log.info("persistence serving", extra={"port": service.port, "pool_size": settings.db_pool_size})
    return Running(settings, service, pool, redis, publisher, servicer, outbox)


def main() -> None:
    run_service(
        "persistence",
        serve,
        {db.MigrationError: "migration failed", psycopg.OperationalError: "database unavailable"},
    )
