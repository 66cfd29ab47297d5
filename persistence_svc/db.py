"""The Postgres side of the process: creating the database, applying migrations, the one pool.

Migrations are the files `migrations/NNNN_name.sql`, applied in version order, each in its own
transaction, recorded in `schema_migrations` with a checksum. The whole run holds a session-level
advisory lock, so replicas starting at the same time apply each file once and the others wait.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# pg_advisory_lock key for migrations: any fixed bigint, here b"oe-migr" read as an integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"oe-migr", "big")
_MIGRATION_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
APPLICATION_NAME = "orderengine-persistence"
# seconds a connection attempt of the start-up steps (create, migrate) may take
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class SessionTimeouts:
    """Limits every pooled connection runs under, so no query, lock wait or forgotten transaction
    holds a connection (or a row) for ever: statement_timeout, lock_timeout and
    idle_in_transaction_session_timeout (milliseconds, 0 = none) and connect_timeout (seconds).
    A statement or lock wait cut short is an OperationalError, which the servicer answers with
    UNAVAILABLE (retryable). Migrations run on their own connection, without these.

    A prepared statement is planned once per session, not per run (plan_cache_mode=
    force_generic_plan): at small batches planning was a third of Postgres' CPU per order. Such a
    plan is costed on the tables as they are when it is made, on a fresh database a few pages, where
    a seq scan of `orders` is cheapest, and it stays until the tables' statistics change (an
    ANALYZE); so the sessions also never choose a seq scan where an index serves
    (enable_seqscan=off): every statement here finds its rows by key, which is the right plan at any
    size. tests/persistence_svc/test_plans.py holds the hot statements to both: planned once, on a
    fresh database, and probing their keys once the tables grew."""

    statement_ms: int = 10_000
    lock_ms: int = 5_000
    idle_in_transaction_ms: int = 30_000
    connect_s: int = 5

    def connection_kwargs(self) -> dict[str, object]:
        options = (
            f"-c statement_timeout={self.statement_ms} -c lock_timeout={self.lock_ms} "
            f"-c idle_in_transaction_session_timeout={self.idle_in_transaction_ms} "
            "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off"
        )
        return {"options": options, "connect_timeout": self.connect_s}


class MigrationError(RuntimeError):
    """A migration file is malformed or an applied one was changed afterwards."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every `NNNN_name.sql` in `directory`, in version order."""
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: expected a name like 0002_add_things.sql")
        migrations.append(Migration(int(match["version"]), match["name"], path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a version number")
    return sorted(migrations, key=lambda m: m.version)


async def ensure_database(url: str, wait_s: float = 30.0) -> None:
    """Connects to the database in `url`, creating it first (through the server's `postgres`
    database) when it does not exist. Waits up to `wait_s` for the server to accept connections."""
    deadline = time.monotonic() + wait_s
    delay = 0.2
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(
                url, application_name=APPLICATION_NAME, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.OperationalError as exc:
            if await _create_if_missing(url):
                continue
            if time.monotonic() >= deadline:
                raise
            log.warning("database not reachable yet, retrying", extra={"error": _first_line(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        else:
            await conn.close()
            return


async def _create_if_missing(url: str) -> bool:
    """True when the target database was missing and is now created (by us or a racing replica)."""
    dbname = conninfo_to_dict(url).get("dbname")
    if not dbname or dbname == "postgres":
        return False
    try:
        admin = await psycopg.AsyncConnection.connect(
            make_conninfo(url, dbname="postgres"),
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=CONNECT_TIMEOUT_S,
        )
    except psycopg.OperationalError:
        return False
    async with admin:
        cur = await admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
        if await cur.fetchone() is not None:
            return False
        try:
            await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(dbname))))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            pass  # another replica created it first
    log.info("created database", extra={"database": dbname})
    return True


async def apply_migrations(url: str, migrations: list[Migration] | None = None) -> list[int]:
    """Applies the migrations not yet recorded; returns the versions applied by this call."""
    todo = load_migrations() if migrations is None else migrations
    applied_now: list[int] = []
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, application_name=APPLICATION_NAME, connect_timeout=CONNECT_TIMEOUT_S
    ) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version    integer PRIMARY KEY,
                       name       text NOT NULL,
                       checksum   text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            cur = await conn.execute("SELECT version, checksum FROM schema_migrations")
            done = {int(version): str(checksum) for version, checksum in await cur.fetchall()}
            for migration in todo:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} was changed after it "
                            "was applied; add a new migration instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration.version)
                log.info(
                    "applied migration", extra={"version": migration.version, "migration": migration.name}
                )
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now


async def open_pool(url: str, size: int, timeouts: SessionTimeouts | None = None) -> AsyncConnectionPool:
    """The process's one pool: `size` autocommit connections, each under `timeouts`; writes use
    explicit transactions."""
    limits = (timeouts or SessionTimeouts()).connection_kwargs()
    pool = AsyncConnectionPool(
        url,
        min_size=size,
        max_size=size,
        open=False,
        name="persistence",
        timeout=10.0,
        kwargs={"autocommit": True, "application_name": APPLICATION_NAME, **limits},
    )
    await pool.open(wait=True, timeout=30.0)
    return pool


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
