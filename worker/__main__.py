"""`python -m worker`: a worker process (consumer group member) with its own gRPC health service."""

from __future__ import annotations

import asyncio
import logging

from common.grpc_server import start_grpc_service, wait_for_shutdown_signal
from common.log import setup_logging
from common.metrics import start_exporter
from common.parent import die_with_parent
from common.settings import Settings, load_settings
from worker.consumer import Worker

log = logging.getLogger("worker")


async def run(settings: Settings) -> None:
    """Runs a worker until SIGTERM/SIGINT: health → NOT_SERVING, no new jobs, in-flight orders get
    WORKER_GRACE_S to finish, the rest stay unacknowledged (another worker reclaims them)."""
    worker = Worker(settings)
    await worker.start()
    health = await start_grpc_service(settings.worker_health_addr, lambda server: None, [])
    log.info(
        "worker started",
        extra={
            "consumer": worker.name,
            "concurrency": settings.worker_concurrency,
            "health_port": health.port,
        },
    )
    await wait_for_shutdown_signal()
    log.info("worker stopping", extra={"inflight": len(worker.inflight), "grace_s": settings.worker_grace_s})
    await health.health.enter_graceful_shutdown()
    try:
        await worker.stop(settings.worker_grace_s)
    finally:
        await health.server.stop(0)
    log.info("worker stopped", extra={"completed": worker.completed})


def main() -> None:
    die_with_parent()
    settings = load_settings()
    setup_logging("worker", settings.log_level)
    start_exporter(settings, "worker")
    try:
        import uvloop

        uvloop.run(run(settings))
    except ImportError:  # pragma: no cover
        asyncio.run(run(settings))


if __name__ == "__main__":
    main()
