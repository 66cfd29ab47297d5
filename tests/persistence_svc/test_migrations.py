from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from common import lifecycle
from persistence_svc import db, store
from persistence_svc.server import serve
from tests.conftest import ADMIN_DSN, SettingsFactory, _dsn_for


def tables(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


ALL = [m.version for m in db.load_migrations()]


def versions(database_url: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        return [
            r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        ]


def test_migration_files_are_well_formed() -> None:
    migrations = db.load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "init"


async def test_applying_twice_is_a_no_op(database_url: str) -> None:
    assert await db.apply_migrations(database_url) == ALL
    assert tables(database_url) == {
        "orders",
        "order_events",
        "executions",
        "idempotency_keys",
        "event_outbox",
        "schema_migrations",
    }
    assert await db.apply_migrations(database_url) == []
    assert versions(database_url) == ALL


async def test_concurrent_starts_apply_each_migration_once(database_url: str) -> None:
    results = await asyncio.gather(*(db.apply_migrations(database_url) for _ in range(4)))
    assert sorted(v for r in results for v in r) == ALL
    assert versions(database_url) == ALL


async def test_two_services_starting_at_once(make_settings: SettingsFactory, database_url: str) -> None:
    settings = make_settings(PERSISTENCE_ADDR="127.0.0.1:0", DB_POOL_SIZE="1")
    first, second = await asyncio.gather(serve(settings), serve(settings))
    try:
        assert first.port != second.port
        assert versions(database_url) == ALL
    finally:
        await asyncio.gather(first.stop(0), second.stop(0))


async def test_later_migrations_apply_in_order(database_url: str, tmp_path: Path) -> None:
    shipped = await db.apply_migrations(database_url)
    for path in db.MIGRATIONS_DIR.glob("*.sql"):
        (tmp_path / path.name).write_text(path.read_text())
    b, c = len(shipped) + 1, len(shipped) + 2
    (tmp_path / f"{c:04d}_c.sql").write_text(
        "UPDATE orders SET b = 1; ALTER TABLE orders ALTER COLUMN b SET NOT NULL;"
    )
    (tmp_path / f"{b:04d}_b.sql").write_text("ALTER TABLE orders ADD COLUMN b int; -- 100% harmless")
    assert await db.apply_migrations(database_url, db.load_migrations(tmp_path)) == [b, c]
    assert versions(database_url) == [*shipped, b, c]


async def test_failed_migration_is_rolled_back(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "0001_init.sql").write_text((db.MIGRATIONS_DIR / "0001_init.sql").read_text())
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (a int); SELECT no_such_function();")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        await db.apply_migrations(database_url, db.load_migrations(tmp_path))
    assert versions(database_url) == [1]
    assert "half" not in tables(database_url)


async def test_changed_migration_is_refused(database_url: str, tmp_path: Path) -> None:
    await db.apply_migrations(database_url)
    (tmp_path / "0001_init.sql").write_text("SELECT 1;")
    with pytest.raises(db.MigrationError, match="changed after it was applied"):
        await db.apply_migrations(database_url, db.load_migrations(tmp_path))


def test_malformed_file_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "2_oops.sql").write_text("SELECT 1;")
    with pytest.raises(db.MigrationError, match="2_oops.sql"):
        db.load_migrations(tmp_path)


async def test_event_rows_cannot_be_updated_or_deleted(database_url: str) -> None:
    await db.apply_migrations(database_url)
    now = datetime.now(UTC)
    order_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO orders (id, input_mint, output_mint, amount_in, slippage_bps, input_decimals,
                                   output_decimals, last_seq, created_at, updated_at)
               VALUES (%s, 'a', 'b', 1, 50, 9, 6, 1, %s, %s)""",
            (order_id, now, now),
        )
        conn.execute(
            "INSERT INTO order_events (order_id, seq, status, at) VALUES (%s, 1, 'pending', %s)",
            (order_id, now),
        )
        for statement in (
            "UPDATE order_events SET status = 'failed'",
            "DELETE FROM order_events",
            "TRUNCATE order_events CASCADE",
        ):
            with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("DELETE FROM orders")
        assert conn.execute("SELECT count(*) FROM order_events").fetchone() == (1,)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO order_events (order_id, seq, status, data, at) VALUES (%s, 2, 'routing', "
                "'[]', %s)",
                (order_id, now),
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE orders SET status = 'paused'")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE orders SET amount_in = 18446744073709551616")


async def test_missing_database_is_created() -> None:
    name = f"oe_test_{uuid.uuid4().hex[:12]}"
    url = _dsn_for(name)
    try:
        await asyncio.gather(db.ensure_database(url), db.ensure_database(url))
        await db.ensure_database(url)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_unreachable_server_gives_up() -> None:
    with pytest.raises(psycopg.OperationalError):
        await db.ensure_database("postgresql://postgres@127.0.0.1:1/nothing", wait_s=0.1)


async def test_the_database_accepts_exactly_the_lifecycles_statuses(database_url: str) -> None:
    """The status columns' CHECK constraints are the database's copy of common/lifecycle.py's
    statuses (SQL cannot import it): a status added to the lifecycle needs a migration, and this
    test names the table that lacks it."""
    await db.apply_migrations(database_url)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT c.conrelid::regclass::text, pg_get_constraintdef(c.oid)
               FROM pg_constraint c
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
               WHERE c.contype = 'c' AND a.attname = 'status'"""
        ).fetchall()
    found = {table: set(re.findall(r"'([a-z_]+)'::text", definition)) for table, definition in rows}
    assert set(found) >= {"orders", "order_events"}, found
    for table, statuses in found.items():
        assert statuses == set(lifecycle.STATUSES), table


async def test_the_phase_copies_are_the_lifecycles(database_url: str) -> None:
    """The order's phase (what the indexes hold instead of its status, so that most updates are
    HOT) has SQL copies of "terminal" and "resting": the migration's backfill and the store's
    expressions; each must be lifecycle.TERMINAL and lifecycle.RESTING. And the database sets it:
    after a market order's events and a resting order's, phase and final_status are as derived."""
    migration = next(m for m in db.load_migrations() if m.name == "hot_order_updates").sql
    done, resting = re.search(
        r"phase = CASE WHEN status IN \(([^)]*)\) THEN 'done'\s+WHEN status IN \(([^)]*)\)", migration
    ).groups()  # type: ignore[union-attr]
    assert set(re.findall(r"'([a-z_]+)'", done)) == lifecycle.TERMINAL
    assert set(re.findall(r"'([a-z_]+)'", resting)) == lifecycle.RESTING
    assert store._PHASE_SQL.count("IN (") == 2
    assert set(re.findall(r"'([a-z_]+)'", store._PHASE_SQL.split("THEN 'done'")[0])) == lifecycle.TERMINAL
    assert set(re.findall(r"'([a-z_]+)'", store._FINAL_STATUS_SQL)) == lifecycle.TERMINAL
    await db.apply_migrations(database_url)
    with psycopg.connect(database_url) as conn:
        indexed = {
            r[0]
            for r in conn.execute(
                """SELECT a.attname FROM pg_index i
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                   WHERE i.indrelid = 'orders'::regclass"""
            ).fetchall()
        }
        predicates = " ".join(
            r[0] or ""
            for r in conn.execute(
                "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indrelid = 'orders'::regclass"
            ).fetchall()
        )
    # no index holds what an event changes within a phase
    for column in ("status", "updated_at", "last_seq", "attempts", "route", "tx_hash", "amount_out"):
        assert column not in indexed, column
        assert not re.search(rf"\b{column}\b", predicates), (column, predicates)
