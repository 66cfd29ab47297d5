"""Nothing waits for ever: pooled Postgres connections run under statement, lock and
idle-in-transaction timeouts, and Redis clients under connect and socket timeouts (settings)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
import redis.asyncio as aioredis

from common.redis_client import open_redis
from persistence_svc import db
from tests.conftest import SettingsFactory


async def test_pooled_connections_carry_the_timeouts(database_url: str) -> None:
    await db.ensure_database(database_url)
    pool = await db.open_pool(database_url, 1, db.SessionTimeouts(1500, 700, 9000, 3))
    try:
        async with pool.connection() as conn:
            shown = {}
            for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
                cur = await conn.execute(f"SHOW {name}")
                row = await cur.fetchone()
                assert row is not None
                shown[name] = row[0]
            assert shown == {
                "statement_timeout": "1500ms",
                "lock_timeout": "700ms",
                "idle_in_transaction_session_timeout": "9s",
            }
            with pytest.raises(psycopg.errors.QueryCanceled):
                await conn.execute("SELECT pg_sleep(5)")
    finally:
        await pool.close()


async def test_a_lock_wait_is_cut_short(database_url: str) -> None:
    await db.ensure_database(database_url)
    pool = await db.open_pool(database_url, 2, db.SessionTimeouts(10_000, 300, 30_000, 3))
    try:
        async with pool.connection() as setup:
            await setup.execute("CREATE TABLE t (id int PRIMARY KEY)")
            await setup.execute("INSERT INTO t VALUES (1)")
        async with pool.connection() as holder, pool.connection() as waiter:
            async with holder.transaction():
                await holder.execute("SELECT * FROM t WHERE id = 1 FOR UPDATE")
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    async with waiter.transaction():
                        await waiter.execute("UPDATE t SET id = 2 WHERE id = 1")
    finally:
        await pool.close()


async def test_the_settings_reach_the_persistence_pool(make_settings: SettingsFactory) -> None:
    from persistence_svc.server import serve

    settings = make_settings(PERSISTENCE_ADDR="127.0.0.1:0", DB_POOL_SIZE="1", DB_STATEMENT_TIMEOUT_MS="1234")
    running = await serve(settings)
    try:
        async with running.pool.connection() as conn:
            cur = await conn.execute("SHOW statement_timeout")
            assert await cur.fetchone() == ("1234ms",)
    finally:
        await running.stop(0)


async def test_a_redis_that_never_answers_times_out(make_settings: SettingsFactory) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = make_settings(REDIS_URL=f"redis://127.0.0.1:{port}/0", REDIS_SOCKET_TIMEOUT_S="2")
    client = open_redis(settings)
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 2.0 and kwargs["socket_connect_timeout"] == 2.0
        async with asyncio.timeout(15):  # the client gives up by itself, long before this
            with pytest.raises((aioredis.TimeoutError, aioredis.ConnectionError)):
                await client.ping()
    finally:
        await client.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
