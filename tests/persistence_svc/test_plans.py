"""The batch statements find their orders through the primary key at every table size.

The planner takes a set-returning function (json_to_recordset) for 100 rows: a statement that joined
its JSON rows with `orders` seq-scanned a table of up to some 30,000 orders (2-3 ms a statement at
10,000) instead of probing the primary key. The statements hand the ids over as an array instead.

A statement the pool has prepared keeps the plan it was given, and after five runs Postgres may give
it a generic plan, costed on the table as it was then: on a fresh database, a seq scan of a few
pages. That plan stayed while `orders` grew (until an ANALYZE), so a sweep's Postgres CPU per order
doubled by its last steps. The pool's sessions plan every run of a statement for its parameters
and the table as it is (plan_cache_mode=force_custom_plan)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

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


def test_a_statement_prepared_on_a_fresh_database_probes_the_key_once_the_table_grew(
    service: Running, database_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True, **SessionTimeouts().connection_kwargs()) as conn:  # type: ignore[arg-type]
        # as at a fresh start: the pool's connection runs the create statement (prepared by
        # psycopg after its prepare_threshold) on a table of a few orders
        for _ in range(12):
            conn.execute(store._CREATE_BATCH, _create_params(1), prepare=True)
        _fill(conn, ORDERS)
        # the plan of the very next run, as the server ran it (auto_explain, sent as a notice)
        plans: list[str] = []
        conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        conn.execute("SET auto_explain.log_min_duration = 0")
        conn.execute("SET auto_explain.log_analyze = on")
        conn.execute("SET client_min_messages = log")
        conn.execute(store._CREATE_BATCH, _create_params(1), prepare=True)
    plan = "\n".join(p for p in plans if "orders" in p)
    assert plan, plans
    assert "Seq Scan on orders" not in plan, plan
    assert "orders_pkey" in plan, plan


def test_the_create_and_append_statements_probe_the_primary_key(service: Running, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        _fill(conn, ORDERS)
        conn.execute("ANALYZE orders")
        chains = [
            {"i": i, "order_id": str(uuid.uuid4()), "seq": 2, "status": "routing", "data": {}, "at_us": 1}
            | {"first_seq": 2, "first_status": "routing"}
            for i in range(30)
        ]
        append = _plan(
            conn,
            store._APPEND_FAST,
            {
                "chains": json.dumps(chains),
                "events": json.dumps(chains),
                "legal": store._LEGAL_PAIRS,
                "ids": [c["order_id"] for c in chains],
            },
        )
        assert "Seq Scan on orders" not in append, append
        assert "orders_pkey" in append, append
        create = _plan(conn, store._CREATE_BATCH, _create_params(30))
        assert "Seq Scan on orders" not in create, create
        assert "orders_pkey" in create, create
