"""The batch statements find their orders through the primary key at every table size.

The planner takes a set-returning function (json_to_recordset) for 100 rows: a statement that joined
its JSON rows with `orders` seq-scanned a table of up to some 30,000 orders (2-3 ms a statement at
10,000) instead of probing the primary key. The statements hand the ids over as an array instead."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from persistence_svc import store
from persistence_svc.server import Running

ORDERS = 10_000  # where the old statements' plans seq-scanned `orders`


def _plan(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> str:
    rows = conn.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params).fetchall()
    return "\n".join(row[0] for row in rows)


def test_the_create_and_append_statements_probe_the_primary_key(service: Running, database_url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO orders (id, input_mint, output_mint, amount_in, slippage_bps, input_decimals,
                   output_decimals, input_symbol, output_symbol, status, attempts, last_seq, created_at,
                   updated_at, phase, final_status)
               SELECT gen_random_uuid(), 'a', 'b', 1, 50, 9, 6, 'SOL', 'USDC', 'confirmed', 1, 5, now(),
                   now(), 'done', 'confirmed' FROM generate_series(1, %s)""",
            (ORDERS,),
        )
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
        news = [
            {"i": i, "id": str(uuid.uuid4()), "input_mint": "a", "output_mint": "b", "amount_in": 1}
            | {"slippage_bps": 50, "input_decimals": 9, "output_decimals": 6, "input_symbol": "SOL"}
            | {"output_symbol": "USDC", "owner": "", "order_type": "market", "quote_id": ""}
            | {"max_price_impact_bps": 0}
            for i in range(30)
        ]
        create = _plan(
            conn,
            store._CREATE_BATCH,
            {"orders": json.dumps(news), "ids": [n["id"] for n in news], "now": now, "expired_before": now},
        )
        assert "Seq Scan on orders" not in create, create
        assert "orders_pkey" in create, create
