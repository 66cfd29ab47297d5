"""The batch statements find their orders through the primary key at every table size.

The planner takes a set-returning function (json_to_recordset) for 100 rows: a statement that joined
its JSON rows with `orders` seq-scanned a table of up to some 30,000 orders (2-3 ms a statement at
10,000) instead of probing the primary key. The statements hand the ids over as an array instead.

A statement the pool has prepared is planned once per session (plan_cache_mode=force_generic_plan:
at small batches planning was a third of Postgres' CPU per order), on the tables as they are then:
on a fresh database, a few pages, where a seq scan looks cheapest, and that plan stays while the
tables grow (until an ANALYZE). So the sessions never choose a seq scan where an index serves
(enable_seqscan=off). Each hot statement is prepared on a fresh database, then run on grown tables:
its plan must be the one plan of the session and probe its key."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from persistence_svc import store
from persistence_svc.db import SessionTimeouts
from persistence_svc.server import Running

ORDERS = 10_000  # where the old statements' plans seq-scanned `orders`


def _plan(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> str:
    rows = conn.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params).fetchall()
    return "\n".join(row[0] for row in rows)


def _fill(conn: psycopg.Connection[Any], orders: int) -> None:
    conn.execute(
        """INSERT INTO orders (id, input_mint, output_mint, amount_in, slippage_bps, input_decimals,
               output_decimals, input_symbol, output_symbol, status, attempts, last_seq, created_at,
               updated_at, phase, final_status)
           SELECT gen_random_uuid(), 'a', 'b', 1, 50, 9, 6, 'SOL', 'USDC', 'confirmed', 1, 5, now(),
               now(), 'done', 'confirmed' FROM generate_series(1, %s)""",
        (orders,),
    )


def _create_params(count: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    news = [
        {"i": i, "id": str(uuid.uuid4()), "input_mint": "a", "output_mint": "b", "amount_in": 1}
        | {"slippage_bps": 50, "input_decimals": 9, "output_decimals": 6, "input_symbol": "SOL"}
        | {"output_symbol": "USDC", "owner": "", "order_type": "market", "quote_id": ""}
        | {"max_price_impact_bps": 0}
        for i in range(count)
    ]
    return {"orders": json.dumps(news), "ids": [n["id"] for n in news], "now": now, "expired_before": now}


def _append_params(count: int) -> dict[str, Any]:
    chains = [
        {"i": i, "order_id": str(uuid.uuid4()), "seq": 2, "status": "routing", "data": {}, "at_us": 1}
        | {"first_seq": 2, "first_status": "routing"}
        for i in range(count)
    ]
    return {
        "chains": json.dumps(chains),
        "events": json.dumps(chains),
        "legal": store._LEGAL_PAIRS,
        "ids": [c["order_id"] for c in chains],
    }


def _signed_params(count: int) -> dict[str, Any]:
    return {
        "now": datetime.now(UTC),
        "order_id": [uuid.uuid4() for _ in range(count)],
        "attempt": [1] * count,
        "signature": [uuid.uuid4().hex for _ in range(count)],
        "signed_tx": [b"\x01"] * count,
        "lvbh": [Decimal(1)] * count,
        "blockhash": ["h"] * count,
    }


def _moves_params(count: int) -> dict[str, Any]:
    return {
        "now": datetime.now(UTC),
        "order_id": [uuid.uuid4() for _ in range(count)],
        "signature": [uuid.uuid4().hex for _ in range(count)],
        "state": ["landed"] * count,
    }


# The hot path's statements: (name, statement, parameters for a batch of n, the index each must probe).
HOT = [
    ("create", store._CREATE_BATCH, _create_params, "orders_pkey"),
    ("append", store._APPEND_FAST, _append_params, "orders_pkey"),
    ("store signed", store._INSERT_SIGNED_MANY, _signed_params, "orders_pkey"),
    ("move state", store._MOVE_STATE_MANY, _moves_params, "executions_signature_key"),
    ("read", store._GET_ORDERS, lambda n: {"ids": [uuid.uuid4() for _ in range(n)]}, "orders_pkey"),
]


@pytest.mark.parametrize(("name", "statement", "params", "index"), HOT, ids=[h[0] for h in HOT])
def test_a_statement_prepared_on_a_fresh_database_is_planned_once_and_probes_the_key_once_the_table_grew(
    service: Running,
    database_url: str,
    name: str,
    statement: str,
    params: Callable[[int], dict[str, Any]],
    index: str,
) -> None:
    with psycopg.connect(database_url, autocommit=True, **SessionTimeouts().connection_kwargs()) as conn:  # type: ignore[arg-type]
        # as at a fresh start: the pool's connection runs the statement (prepared by psycopg after
        # its prepare_threshold) on tables of a few rows, for batches of any size
        for i in range(12):
            conn.execute(statement, params(1 + i % 3), prepare=True)
        _fill(conn, ORDERS)
        # the plan of the next runs, as the server ran them (auto_explain, sent as a notice)
        plans: list[str] = []
        conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        conn.execute("SET auto_explain.log_min_duration = 0")
        conn.execute("SET auto_explain.log_analyze = on")
        conn.execute("SET client_min_messages = log")
        for n in (1, 30):
            conn.execute(statement, params(n), prepare=True)
        conn.execute("SET client_min_messages = notice")
        # planned once for the session, not per run: a generic plan (plan_cache_mode)
        prepared = conn.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements").fetchall()
    assert prepared and all(generic >= 9 and custom == 0 for generic, custom in prepared), prepared
    plan = "\n".join(p for p in plans if "Query Text" in p)
    assert plan.count("Query Text") == 2, plans
    for table in ("orders", "executions"):
        assert f"Seq Scan on {table}" not in plan, plan
    assert index in plan, plan


def test_the_create_and_append_statements_probe_the_primary_key(service: Running, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        _fill(conn, ORDERS)
        conn.execute("ANALYZE orders")
        append = _plan(conn, store._APPEND_FAST, _append_params(30))
        assert "Seq Scan on orders" not in append, append
        assert "orders_pkey" in append, append
        create = _plan(conn, store._CREATE_BATCH, _create_params(30))
        assert "Seq Scan on orders" not in create, create
        assert "orders_pkey" in create, create
