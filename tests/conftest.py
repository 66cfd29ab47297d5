"""Fixtures shared by every test: a fresh Postgres database and Redis key prefix per test,
and settings pointing at them. Tests use the real Redis and Postgres on this machine."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import psycopg
import pytest
import redis.asyncio as aioredis

from common.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _dsn_for(name: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new, empty database, dropped afterwards."""
    name = f"oe_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _dsn_for(name)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url() -> Iterator[str]:
    """A new, empty database for this test, dropped afterwards."""
    with scratch_database() as dsn:
        yield dsn


@pytest.fixture
def redis_prefix() -> str:
    return f"oetest:{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis_client(redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A Redis client; every key under this test's prefix is deleted afterwards."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=f"{redis_prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
def make_settings(database_url: str, redis_prefix: str) -> SettingsFactory:
    def factory(**env: str) -> Settings:
        base = {
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": redis_prefix,
            "LOG_LEVEL": "warning",
        }
        base.update(env)
        return load_settings(base, dotenv=Path("/nonexistent"))

    return factory


class SettingsFactory(Protocol):
    """`make_settings(**env)`: the test's Settings with `env` over the test database and Redis prefix."""

    def __call__(self, **env: str) -> Settings: ...
