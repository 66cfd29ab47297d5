"""Starting the whole engine as subprocesses for end-to-end tests (as `make run` does)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.stack import Stack, free_port
from tests.conftest import REDIS_URL, scratch_database


def stack_env(database_url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {
        "CHAIN": "sim",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": prefix,
        "HTTP_PORT": str(free_port()),
        "PERSISTENCE_ADDR": f"127.0.0.1:{free_port()}",
        "ROUTER_ADDR": f"127.0.0.1:{free_port()}",
        "EXECUTOR_ADDR": f"127.0.0.1:{free_port()}",
        "WORKER_HEALTH_ADDR": f"127.0.0.1:{free_port()}",
        "SIM_PORT": str(free_port()),
        "LOG_LEVEL": "info",
        "SOLANA_RPC_URL": "",
    }
    env.update(extra)
    return env


@contextmanager
def running_stack(log_dir: Path, **extra: str) -> Iterator[Stack]:
    with scratch_database() as dsn:
        prefix = f"oetest:{uuid.uuid4().hex[:10]}"
        stack = Stack(env=stack_env(dsn, prefix, **extra), log_dir=log_dir)
        try:
            import asyncio

            asyncio.run(stack.start())
            yield stack
        finally:
            stack.stop()
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
