"""Every SQL statement of the engine. Functions take the pool and validated inputs, return rows.

Connections are autocommit; a function that writes more than one statement opens an explicit
transaction. Times are taken in this process (`utcnow()`), microsecond precision like Postgres.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import grpc
import orjson
import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from common import lifecycle
from common.errors import (
    LIVE_EXECUTION_REFUSAL,
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from persistence_svc.models import (
    AppendOutcome,
    CreateOutcome,
    EventInput,
    EventRow,
    ExecutionInput,
    ExecutionRow,
    NewOrder,
    OrderRow,
    Spec,
    Update,
    compact_json,
    from_us,
    to_us,
    utcnow,
)

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL = timedelta(hours=24)
PURGE_BATCH = 1000

_ORDER_COLUMNS = """id, input_mint, output_mint, amount_in, slippage_bps, input_decimals, output_decimals,
    input_symbol, output_symbol, status, attempts, route, amount_out, tx_hash, dex, executed_price,
    failure_reason, created_at, updated_at, last_seq, route_proto, quoted_route, quote_id,
    max_price_impact_bps, order_type, trigger_price, expires_at, exact_amount_out, amount_in_spent,
    min_liquidity, max_price, cost"""
_EVENT_COLUMNS = "order_id, seq, status, data, at"
_EXECUTION_COLUMNS = """order_id, attempt, signature, signed_tx, last_valid_block_height, blockhash, state,
    created_at, updated_at"""


def _sql_list(statuses: frozenset[str]) -> str:
    return "(" + ", ".join(f"'{s}'" for s in sorted(statuses)) + ")"


# An order's phase (migration 0011): what the indexes hold instead of its status, so that an event
# that moves an order within a phase is a HOT update. `u.status` is the status being set.
_PHASE_SQL = (
    f"CASE WHEN u.status IN {_sql_list(lifecycle.TERMINAL)} THEN 'done' "
    f"WHEN u.status IN {_sql_list(lifecycle.RESTING)} THEN 'open' ELSE 'active' END"
)
_FINAL_STATUS_SQL = f"CASE WHEN u.status IN {_sql_list(lifecycle.TERMINAL)} THEN u.status END"


# --- rows -------------------------------------------------------------------------------------


def _order_row(row: TupleRow) -> OrderRow:
    (
        order_id,
        input_mint,
        output_mint,
        amount_in,
        slippage_bps,
        input_decimals,
        output_decimals,
        input_symbol,
        output_symbol,
        status,
        attempts,
        route,
        amount_out,
        tx_hash,
        dex,
        executed_price,
        failure_reason,
        created_at,
        updated_at,
        last_seq,
        route_proto,
        quoted_route,
        quote_id,
        max_price_impact_bps,
        order_type,
        trigger_price,
        expires_at,
        exact_amount_out,
        amount_in_spent,
        min_liquidity,
        max_price,
        cost,
    ) = row
    return OrderRow(
        order_id=order_id,
        spec=Spec(
            input_mint=input_mint,
            output_mint=output_mint,
            amount_in=int(amount_in),
            slippage_bps=slippage_bps,
            input_decimals=input_decimals,
            output_decimals=output_decimals,
            input_symbol=input_symbol,
            output_symbol=output_symbol,
            quoted_route=b"" if quoted_route is None else bytes(quoted_route),
            quote_id=quote_id,
            max_price_impact_bps=max_price_impact_bps,
            order_type=order_type,
            trigger_price=0 if trigger_price is None else int(trigger_price),
            expires_at_us=0 if expires_at is None else to_us(expires_at),
            amount_out=0 if exact_amount_out is None else int(exact_amount_out),
            min_liquidity=0 if min_liquidity is None else int(min_liquidity),
            max_price=0 if max_price is None else int(max_price),
        ),
        status=status,
        attempts=attempts,
        route_json="" if route is None else compact_json(route),
        amount_out=0 if amount_out is None else int(amount_out),
        tx_hash=tx_hash or "",
        dex=dex or "",
        executed_price=executed_price or "",
        failure_reason=failure_reason or "",
        created_at=created_at,
        updated_at=updated_at,
        last_seq=last_seq,
        route_proto=b"" if route_proto is None else bytes(route_proto),
        amount_in_spent=0 if amount_in_spent is None else int(amount_in_spent),
        cost=b"" if cost is None else bytes(cost),
    )


def _event_row(row: TupleRow) -> EventRow:
    order_id, seq, status, data, at = row
    return EventRow(order_id, seq, status, data, at)


def _execution_row(row: TupleRow) -> ExecutionRow:
    order_id, attempt, signature, signed_tx, lvbh, blockhash, state, created_at, updated_at = row
    return ExecutionRow(
        order_id, attempt, signature, bytes(signed_tx), int(lvbh), blockhash, state, created_at, updated_at
    )


# --- orders -----------------------------------------------------------------------------------

_CLAIM_KEY = """
INSERT INTO idempotency_keys AS k (owner, key, request_hash, order_id, created_at)
VALUES (%(owner)s, %(key)s, %(hash)s, %(id)s, %(now)s)
ON CONFLICT (owner, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, order_id = EXCLUDED.order_id, created_at = EXCLUDED.created_at
    WHERE k.created_at < %(expired_before)s
RETURNING order_id"""

# One statement inserts the order, its first event and that event's outbox row; no row back means
# the id already exists.
_INSERT_ORDER = """
WITH o AS (
    INSERT INTO orders (id, input_mint, output_mint, amount_in, slippage_bps, input_decimals,
                        output_decimals, input_symbol, output_symbol, status, attempts, last_seq,
                        created_at, updated_at, idempotency_key, request_hash, owner, quoted_route,
                        quote_id, max_price_impact_bps, order_type, trigger_price, expires_at,
                        exact_amount_out, min_liquidity, max_price)
    VALUES (%(id)s, %(input_mint)s, %(output_mint)s, %(amount_in)s, %(slippage_bps)s, %(input_decimals)s,
            %(output_decimals)s, %(input_symbol)s, %(output_symbol)s, 'pending', 0, 1,
            %(now)s, %(now)s, %(key)s, %(hash)s, %(owner)s, %(quoted_route)s, %(quote_id)s,
            %(max_price_impact_bps)s, %(order_type)s, %(trigger_price)s, %(expires_at)s,
            %(exact_amount_out)s, %(min_liquidity)s, %(max_price)s)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, created_at
),
e AS (
    INSERT INTO order_events (order_id, seq, status, data, at)
    SELECT id, 1, 'pending', '{}'::jsonb, created_at FROM o
    RETURNING order_id, seq, at
)
INSERT INTO event_outbox (order_id, seq, at) SELECT order_id, seq, at FROM e
RETURNING at"""


async def create_order(pool: AsyncConnectionPool, new: NewOrder) -> CreateOutcome:
    """Creates the order and its event 1 (pending), or returns the order that the idempotency key
    or the client-chosen order_id already names (created=False)."""
    now = utcnow()
    params: dict[str, Any] = {
        "id": new.order_id,
        "input_mint": new.spec.input_mint,
        "output_mint": new.spec.output_mint,
        "amount_in": Decimal(new.spec.amount_in),
        "slippage_bps": new.spec.slippage_bps,
        "input_decimals": new.spec.input_decimals,
        "output_decimals": new.spec.output_decimals,
        "input_symbol": new.spec.input_symbol,
        "output_symbol": new.spec.output_symbol,
        "now": now,
        "key": new.idempotency_key,
        "hash": new.request_hash,
        "expired_before": now - IDEMPOTENCY_TTL,
        "owner": new.owner,
        "quoted_route": new.spec.quoted_route or None,
        "quote_id": new.spec.quote_id,
        "max_price_impact_bps": new.spec.max_price_impact_bps,
        "order_type": new.spec.order_type,
        "trigger_price": Decimal(new.spec.trigger_price) if new.spec.trigger_price else None,
        "expires_at": from_us(new.spec.expires_at_us) if new.spec.expires_at_us else None,
        "exact_amount_out": Decimal(new.spec.amount_out) if new.spec.amount_out else None,
        "min_liquidity": Decimal(new.spec.min_liquidity) if new.spec.min_liquidity else None,
        "max_price": Decimal(new.spec.max_price) if new.spec.max_price else None,
    }
    async with pool.connection() as conn:
        if new.idempotency_key is None:
            cur = await conn.execute(_INSERT_ORDER, params)
            if await cur.fetchone() is not None:
                return _created(new, now)
            return CreateOutcome(await _same_order(conn, new), created=False, first_event=None)

        async with conn.transaction():
            # Atomic claim: the unique key decides; a key older than the TTL counts as absent.
            cur = await conn.execute(_CLAIM_KEY, params)
            if await cur.fetchone() is None:
                cur = await conn.execute(
                    "SELECT request_hash, order_id FROM idempotency_keys WHERE owner = %s AND key = %s",
                    (new.owner, new.idempotency_key),
                )
                claimed = await cur.fetchone()
                if claimed is None:  # purged between the two statements: let the caller retry
                    raise Aborted("idempotency key changed concurrently; retry")
                if claimed[0] != new.request_hash:
                    raise AlreadyExists("idempotency key reused with a different request")
                order = await _get_order(conn, claimed[1])
                if order is None:
                    raise NotFound("the order of this idempotency key no longer exists")
                return CreateOutcome(order, created=False, first_event=None)
            cur = await conn.execute(_INSERT_ORDER, params)
            if await cur.fetchone() is not None:
                return _created(new, now)
            return CreateOutcome(await _same_order(conn, new), created=False, first_event=None)


def _created(new: NewOrder, now: datetime) -> CreateOutcome:
    order = OrderRow(
        order_id=new.order_id,
        spec=new.spec,
        status=lifecycle.PENDING,
        attempts=0,
        route_json="",
        amount_out=0,
        tx_hash="",
        dex="",
        executed_price="",
        failure_reason="",
        created_at=now,
        updated_at=now,
        last_seq=1,
    )
    return CreateOutcome(order, True, EventRow(new.order_id, 1, lifecycle.PENDING, {}, now, "{}"))


async def _same_order(conn: psycopg.AsyncConnection[TupleRow], new: NewOrder) -> OrderRow:
    """The existing order with the client-chosen id, which must have the same spec."""
    order = await _get_order(conn, new.order_id)
    if order is None:  # cannot happen: the insert conflicted on this id
        raise Aborted("order changed concurrently; retry")
    if order.spec != new.spec:
        raise AlreadyExists("order_id already used for a different order")
    return order


# --- a batch of new orders (CreateOrders) -------------------------------------------------------

_CREATE_ROW_TYPE = """(i int, id uuid, input_mint text, output_mint text, amount_in numeric,
     slippage_bps int, input_decimals int, output_decimals int, input_symbol text, output_symbol text,
     key text, hash text, owner text, quoted_route text, quote_id text, max_price_impact_bps int,
     order_type text, trigger_price numeric, expires_at timestamptz, exact_amount_out numeric,
     min_liquidity numeric, max_price numeric)"""

# The whole batch in one statement (autocommit: one round trip, one commit). Members whose id is
# new claim their idempotency key (in (owner, key) order, so that concurrent batches lock keys in
# one order and cannot deadlock each other; an expired key counts as absent); the keyless ones and
# those whose claim took are inserted with their event 1 (pending) and its outbox row. Each input
# row comes back with whether its id was new, its key claimed and its order inserted.
_CREATE_BATCH = f"""
WITH input AS (SELECT * FROM json_to_recordset(%(orders)s::json) AS u{_CREATE_ROW_TYPE}),
fresh AS (SELECT u.* FROM input u WHERE u.id NOT IN (SELECT id FROM orders WHERE id = ANY(%(ids)s::uuid[]))),
claimed AS (
    INSERT INTO idempotency_keys AS k (owner, key, request_hash, order_id, created_at)
    SELECT owner, key, hash, id, %(now)s FROM fresh WHERE key IS NOT NULL ORDER BY owner, key
    ON CONFLICT (owner, key) DO UPDATE
        SET request_hash = EXCLUDED.request_hash, order_id = EXCLUDED.order_id,
            created_at = EXCLUDED.created_at
        WHERE k.created_at < %(expired_before)s
    RETURNING order_id
),
o AS (
    INSERT INTO orders (id, input_mint, output_mint, amount_in, slippage_bps, input_decimals,
                        output_decimals, input_symbol, output_symbol, status, attempts, last_seq,
                        created_at, updated_at, idempotency_key, request_hash, owner, quoted_route,
                        quote_id, max_price_impact_bps, order_type, trigger_price, expires_at,
                        exact_amount_out, min_liquidity, max_price)
    SELECT id, input_mint, output_mint, amount_in, slippage_bps, input_decimals, output_decimals,
           input_symbol, output_symbol, 'pending', 0, 1, %(now)s, %(now)s, key, hash, owner,
           decode(quoted_route, 'base64'), quote_id, max_price_impact_bps, order_type, trigger_price,
           expires_at, exact_amount_out, min_liquidity, max_price
    FROM fresh WHERE key IS NULL OR id IN (SELECT order_id FROM claimed)
    ORDER BY id
    ON CONFLICT (id) DO NOTHING
    RETURNING id
),
e AS (
    INSERT INTO order_events (order_id, seq, status, data, at)
    SELECT id, 1, 'pending', '{{}}'::jsonb, %(now)s FROM o
    RETURNING order_id, seq, at
),
x AS (INSERT INTO event_outbox (order_id, seq, at) SELECT order_id, seq, at FROM e)
SELECT u.i, u.id IN (SELECT id FROM fresh), u.id IN (SELECT order_id FROM claimed),
       u.id IN (SELECT id FROM o)
FROM input u"""

# The stored claim of each (owner, key) and the order it names (NULL columns when it is gone).
_READ_CLAIMS = f"""
SELECT q.i, k.request_hash, o.*
FROM unnest(%s::int[], %s::text[], %s::text[]) AS q(i, owner, key)
JOIN idempotency_keys k ON k.owner = q.owner AND k.key = q.key
LEFT JOIN LATERAL (SELECT {_ORDER_COLUMNS} FROM orders WHERE orders.id = k.order_id) o ON true"""

_UNCLAIM = """DELETE FROM idempotency_keys
WHERE (owner, key, order_id) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::uuid[]))"""

_BATCH_RETRIES = 3


def _create_json(index: int, new: NewOrder) -> dict[str, Any]:
    s = new.spec
    return {
        "i": index,
        "id": str(new.order_id),
        "input_mint": s.input_mint,
        "output_mint": s.output_mint,
        "amount_in": str(s.amount_in),
        "slippage_bps": s.slippage_bps,
        "input_decimals": s.input_decimals,
        "output_decimals": s.output_decimals,
        "input_symbol": s.input_symbol,
        "output_symbol": s.output_symbol,
        "key": new.idempotency_key,
        "hash": new.request_hash,
        "owner": new.owner,
        "quoted_route": base64.b64encode(s.quoted_route).decode() if s.quoted_route else None,
        "quote_id": s.quote_id,
        "max_price_impact_bps": s.max_price_impact_bps,
        "order_type": s.order_type,
        "trigger_price": str(s.trigger_price) if s.trigger_price else None,
        "expires_at": from_us(s.expires_at_us).isoformat() if s.expires_at_us else None,
        "exact_amount_out": str(s.amount_out) if s.amount_out else None,
        "min_liquidity": str(s.min_liquidity) if s.min_liquidity else None,
        "max_price": str(s.max_price) if s.max_price else None,
    }


async def create_orders(
    pool: AsyncConnectionPool, news: Sequence[NewOrder]
) -> list[CreateOutcome | DomainError]:
    """create_order for a batch: one outcome per member, in order, each exactly what create_order
    gives (or raises) for that member alone.

    The common case (fresh ids, keys new or expired) is one statement and one commit for the whole
    batch. A member that repeats an earlier member's (owner, idempotency key) is resolved from the
    stored claim once the batch is committed (same request_hash: the same order; another:
    AlreadyExists), as a key claimed by another call is. The rare rest (an id already taken, a
    batch statement Postgres refuses) goes through create_order one member at a time, so one
    member's failure is that member's alone."""
    outcomes: list[CreateOutcome | DomainError | None] = [None] * len(news)
    batch: list[int] = []  # members in the batch statement
    from_claim: list[int] = []  # members answered from their key's stored claim
    one_by_one: list[int] = []  # members that go through create_order
    seen_ids: set[uuid.UUID] = set()
    seen_keys: set[tuple[str, str]] = set()
    for i, new in enumerate(news):
        key = None if new.idempotency_key is None else (new.owner, new.idempotency_key)
        if key is not None and key in seen_keys:
            from_claim.append(i)
        elif new.order_id in seen_ids:
            one_by_one.append(i)
        else:
            batch.append(i)
            seen_ids.add(new.order_id)
            if key is not None:
                seen_keys.add(key)

    if batch:
        rows = await _run_batch(pool, news, batch)
        if rows is None:  # refused as a whole: decide each member on its own
            one_by_one = sorted([*one_by_one, *batch])
        else:
            now, decided = rows
            unclaim: list[NewOrder] = []
            for i, fresh, claimed, inserted in decided:
                new = news[i]
                if inserted:
                    outcomes[i] = _created(new, now)
                elif new.idempotency_key is not None and fresh and not claimed:
                    from_claim.append(i)  # the key was claimed before: a repeat (or a reuse)
                else:
                    # The id was taken (a repeated client-chosen id): if the key was claimed for
                    # it meanwhile, give the claim back; create_order decides, as for one order.
                    if claimed:
                        unclaim.append(new)
                    one_by_one.append(i)
            if unclaim:
                async with pool.connection() as conn:
                    await conn.execute(
                        _UNCLAIM,
                        (
                            [n.owner for n in unclaim],
                            [n.idempotency_key for n in unclaim],
                            [n.order_id for n in unclaim],
                        ),
                    )

    for i in sorted(one_by_one):
        try:
            outcomes[i] = await create_order(pool, news[i])
        except DomainError as exc:
            outcomes[i] = exc
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
            log.exception("creating an order failed")
            outcomes[i] = DomainError("internal error")

    if from_claim:
        for i, outcome in (await _from_claims(pool, news, sorted(from_claim))).items():
            outcomes[i] = outcome
    return [o if o is not None else Aborted("order changed concurrently; retry") for o in outcomes]


async def _run_batch(
    pool: AsyncConnectionPool, news: Sequence[NewOrder], members: list[int]
) -> tuple[datetime, list[tuple[int, bool, bool, bool]]] | None:
    """Runs the batch statement; returns its time and, per member, (index, id was new, key claimed,
    order inserted); None when Postgres refuses the statement for something in a member's data.
    A deadlock with another writer (only possible through the orders' ids) is retried."""
    doc = orjson.dumps([_create_json(i, news[i]) for i in members]).decode()
    ids = [news[i].order_id for i in members]
    for attempt in range(_BATCH_RETRIES):
        now = utcnow()
        params = {"orders": doc, "ids": ids, "now": now, "expired_before": now - IDEMPOTENCY_TTL}
        try:
            async with pool.connection() as conn:
                cur = await conn.execute(_CREATE_BATCH, params)
                return now, [(i, bool(f), bool(c), bool(n)) for i, f, c, n in await cur.fetchall()]
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            if attempt == _BATCH_RETRIES - 1:
                raise
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
            log.warning("batch of new orders refused; creating them one by one", exc_info=True)
            return None
    return None


async def _from_claims(
    pool: AsyncConnectionPool, news: Sequence[NewOrder], members: list[int]
) -> dict[int, CreateOutcome | DomainError]:
    """Members whose (owner, key) is claimed: the claimed order when the request_hash matches."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _READ_CLAIMS,
            (members, [news[i].owner for i in members], [news[i].idempotency_key for i in members]),
        )
        found = {row[0]: row for row in await cur.fetchall()}
    result: dict[int, CreateOutcome | DomainError] = {}
    for i in members:
        row = found.get(i)
        if row is None:  # purged between the claim and this read: the caller may retry
            result[i] = Aborted("idempotency key changed concurrently; retry")
        elif row[1] != news[i].request_hash:
            result[i] = AlreadyExists("idempotency key reused with a different request")
        elif row[2] is None:
            result[i] = NotFound("the order of this idempotency key no longer exists")
        else:
            result[i] = CreateOutcome(_order_row(row[2:]), created=False, first_event=None)
    return result


async def _get_order(
    conn: psycopg.AsyncConnection[TupleRow], order_id: uuid.UUID, owner: str = ""
) -> OrderRow | None:
    if owner:
        cur = await conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = %s AND owner = %s", (order_id, owner)
        )
    else:
        cur = await conn.execute(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = %s", (order_id,))
    row = await cur.fetchone()
    return None if row is None else _order_row(row)


async def purge_expired_keys(pool: AsyncConnectionPool) -> int:
    """Deletes up to PURGE_BATCH idempotency keys older than the TTL; returns how many."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """DELETE FROM idempotency_keys WHERE (owner, key) IN (
                   SELECT owner, key FROM idempotency_keys WHERE created_at < %s LIMIT %s)""",
            (utcnow() - IDEMPOTENCY_TTL, PURGE_BATCH),
        )
        return cur.rowcount


async def get_order(
    pool: AsyncConnectionPool, order_id: uuid.UUID, with_events: bool, owner: str = ""
) -> tuple[OrderRow, list[EventRow]]:
    """The order (and its events); with an `owner`, an order of another owner is NotFound."""
    async with pool.connection() as conn:
        order = await _get_order(conn, order_id, owner)
        if order is None:
            raise NotFound("order not found", field="order_id")
        events: list[EventRow] = []
        if with_events:
            cur = await conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM order_events WHERE order_id = %s ORDER BY seq", (order_id,)
            )
            events = [_event_row(r) for r in await cur.fetchall()]
        return order, events


_GET_ORDERS = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ANY(%(ids)s)"


async def get_orders(pool: AsyncConnectionPool, order_ids: Sequence[uuid.UUID]) -> list[OrderRow]:
    """The orders among `order_ids` that exist (one statement for the whole batch)."""
    if not order_ids:
        return []
    async with pool.connection() as conn:
        cur = await conn.execute(_GET_ORDERS, {"ids": list(order_ids)})
        return [_order_row(r) for r in await cur.fetchall()]


def encode_cursor(order: OrderRow) -> str:
    raw = json.dumps({"t": to_us(order.created_at), "id": str(order.order_id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(doc, dict) and isinstance(doc.get("t"), int) and isinstance(doc.get("id"), str):
            return from_us(doc["t"]), uuid.UUID(doc["id"])
    except (ValueError, OverflowError, binascii.Error):
        pass
    raise InvalidArgument("is not a cursor returned by ListOrders", field="cursor")


async def list_orders(
    pool: AsyncConnectionPool, limit: int, cursor: str, status: str | None, owner: str = ""
) -> tuple[list[OrderRow], str]:
    """Newest first; keyset pagination on (created_at, id); with an `owner`, only its orders.
    Returns the page and the next cursor ("" after the last page)."""
    where: list[str] = []
    params: list[Any] = []
    if owner:
        where.append("owner = %s")
        params.append(owner)
    if cursor:
        created_at, order_id = decode_cursor(cursor)
        where.append("(created_at, id) < (%s, %s)")
        params += [created_at, order_id]
    if status is not None:
        # through the index of the status's phase (no index holds the status itself)
        if status in lifecycle.TERMINAL:
            where.append("final_status = %s")
        elif status in lifecycle.RESTING:
            where.append("phase = 'open' AND status = %s")
        else:
            where.append("phase = 'active' AND status = %s")
        params.append(status)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    params.append(limit + 1)
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders {clause} ORDER BY created_at DESC, id DESC LIMIT %s", params
        )
        orders = [_order_row(r) for r in await cur.fetchall()]
    if len(orders) > limit:
        orders = orders[:limit]
        return orders, encode_cursor(orders[-1])
    return orders, ""


async def list_unfinished(
    pool: AsyncConnectionPool, limit: int, older_than: datetime | None
) -> list[OrderRow]:
    """Orders neither finished nor resting (open), least recently updated first (the partial
    index orders_active_idx holds exactly them)."""
    before = "" if older_than is None else "AND updated_at < %(before)s"
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"""SELECT {_ORDER_COLUMNS} FROM orders WHERE phase = 'active' {before}
                ORDER BY updated_at, id LIMIT %(limit)s""",
            {"before": older_than, "limit": limit},
        )
        return [_order_row(r) for r in await cur.fetchall()]


# --- events -----------------------------------------------------------------------------------


async def list_events(pool: AsyncConnectionPool, order_id: uuid.UUID, after_seq: int) -> list[EventRow]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM order_events WHERE order_id = %s AND seq > %s ORDER BY seq",
            (order_id, after_seq),
        )
        events = [_event_row(r) for r in await cur.fetchall()]
        if not events:
            await _require_order(conn, order_id)
        return events


async def _require_order(conn: psycopg.AsyncConnection[TupleRow], order_id: uuid.UUID) -> None:
    cur = await conn.execute("SELECT 1 FROM orders WHERE id = %s", (order_id,))
    if await cur.fetchone() is None:
        raise NotFound("order not found", field="order_id")


# How an order row takes the fields its events set: NULL leaves a column as it is.
_SET_ORDER_FIELDS = f"""
    status = u.status,
    phase = {_PHASE_SQL},
    final_status = {_FINAL_STATUS_SQL},
    last_seq = u.seq,
    updated_at = 'epoch'::timestamptz + u.at_us * interval '1 microsecond',
    attempts = COALESCE(u.attempts, o.attempts),
    route = COALESCE(u.route, o.route),
    amount_out = COALESCE(u.amount_out, o.amount_out),
    tx_hash = COALESCE(u.tx_hash, o.tx_hash),
    dex = COALESCE(u.dex, o.dex),
    executed_price = COALESCE(u.executed_price, o.executed_price),
    failure_reason = COALESCE(u.failure_reason, o.failure_reason),
    route_proto = COALESCE(u.route_proto, o.route_proto),
    amount_in_spent = COALESCE(u.amount_in_spent, o.amount_in_spent),
    cost = COALESCE(u.cost, o.cost)"""
_ROW_TYPE = """(i int, order_id uuid, seq int, status text, data jsonb, at_us bigint, attempts int,
     route jsonb, amount_out numeric, tx_hash text, dex text, executed_price text, failure_reason text,
     route_proto bytea, amount_in_spent numeric, cost bytea)"""
_CHAIN_TYPE = _ROW_TYPE[:-1] + ", first_seq int, first_status text)"
_AT = "'epoch'::timestamptz + u.at_us * interval '1 microsecond'"

# Executions whose swap landed or may still land. An order with one is never `failed`: its
# transaction is followed until it lands (→ confirmed) or provably expires (state "expired").
_LIVE_STATES = "('signed', 'sent', 'landed')"

# The common case in one statement and one round trip (autocommit, so one commit too). Its input
# is chains: each order's events of the batch, consecutive seqs with legal steps between them
# (checked in Python), as one row per order (the first event's seq and status, the last event's
# seq, status and time, the order fields the chain sets). Lock the orders in id order, keep the
# chains whose first event is next after the stored last_seq and whose first transition is legal
# (the pairs come from lifecycle.TRANSITIONS), insert all their events, update each order once, and
# return the kept orders with their prior status. A chain is kept whole or not at all. The orders
# are found by an array of ids, not by a join with the JSON rows: the planner takes a set-returning
# function for 100 rows and then seq-scans a table of up to some 30,000 orders instead of probing
# its primary key (the same in the create statement).
_APPEND_FAST = f"""
WITH chains AS (
    SELECT * FROM json_to_recordset(%(chains)s::json) AS u{_CHAIN_TYPE}
),
locked AS (
    SELECT id, status, last_seq FROM orders WHERE id = ANY(%(ids)s::uuid[]) ORDER BY id FOR UPDATE
),
ok AS (
    SELECT u.*, l.status AS prior FROM chains AS u JOIN locked AS l ON l.id = u.order_id
    WHERE u.first_seq = l.last_seq + 1 AND l.status || '>' || u.first_status = ANY(%(legal)s::text[])
),
inserted AS (
    INSERT INTO order_events (order_id, seq, status, data, at)
    SELECT u.order_id, u.seq, u.status, u.data, {_AT}
    FROM json_to_recordset(%(events)s::json) AS u{_ROW_TYPE}
    WHERE u.order_id IN (SELECT order_id FROM ok)
    RETURNING order_id, seq, at
),
outboxed AS (
    INSERT INTO event_outbox (order_id, seq, at) SELECT order_id, seq, at FROM inserted
),
updated AS (
    UPDATE orders AS o SET {_SET_ORDER_FIELDS}
    FROM ok AS u WHERE o.id = u.order_id
)
SELECT order_id, prior FROM ok"""

# The write of the checked path: the accepted events, and one row per changed order.
_WRITE_CHECKED = f"""
WITH inserted AS (
    INSERT INTO order_events (order_id, seq, status, data, at)
    SELECT u.order_id, u.seq, u.status, u.data, {_AT}
    FROM json_to_recordset(%(events)s::json) AS u{_ROW_TYPE}
    RETURNING order_id, seq, at
),
outboxed AS (
    INSERT INTO event_outbox (order_id, seq, at) SELECT order_id, seq, at FROM inserted
)
UPDATE orders AS o SET {_SET_ORDER_FIELDS}
FROM json_to_recordset(%(orders)s::json) AS u{_ROW_TYPE}
WHERE o.id = u.order_id"""

_LIVE_ORDERS = f"""SELECT DISTINCT ON (order_id) order_id, signature FROM executions
WHERE order_id = ANY(%s::uuid[]) AND state IN {_LIVE_STATES}"""

_LOCK_ORDERS = "SELECT id, status, last_seq FROM orders WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE"

_READ_STORED = f"""SELECT {_EVENT_COLUMNS} FROM order_events
WHERE (order_id, seq) IN (SELECT * FROM unnest(%s::uuid[], %s::int[]))"""

_LEGAL_PAIRS = [f"{a}>{b}" for a, targets in lifecycle.TRANSITIONS.items() for b in sorted(targets)]


def _json_row(
    index: int, event: EventInput, at: datetime, fields: dict[str, Any], with_data: bool = True
) -> str:
    """One record for json_to_recordset: the event, and the order fields to set (absent = keep).
    Built by hand: ids, ints and statuses need no escaping; data and route are compact JSON.
    A row that only updates its order leaves the event's data out (`with_data`): Postgres would
    parse it for nothing."""
    parts = [
        f'{{"i":{index},"order_id":"{event.order_id}","seq":{event.seq},"status":"{event.status}"',
        f'"at_us":{to_us(at)}',
    ]
    if with_data:
        parts.append(f'"data":{event.data_json}')
    for name, value in fields.items():
        if name == "route_json":
            parts.append(f'"route":{value}')
        elif name in ("route_proto", "cost"):  # bytea's hex input form, as a JSON string
            parts.append(f'"{name}":"\\\\x{value.hex()}"')
        elif name in ("attempts", "amount_out", "amount_in_spent"):
            parts.append(f'"{name}":{int(value)}')
        else:
            parts.append(f'"{name}":{json.dumps(value, ensure_ascii=False)}')
    return ",".join(parts) + "}"


def _set_fields(update: Update) -> dict[str, Any]:
    return {name: getattr(update, name) for name in _UPDATE_FIELDS if getattr(update, name) is not None}


_UPDATE_FIELDS = tuple(Update.__dataclass_fields__)


def _resting(prior: str, status: str) -> bool:
    """An event the resting books follow: an order opens, or leaves `open`."""
    return status == lifecycle.OPEN or prior == lifecycle.OPEN


async def append_events(pool: AsyncConnectionPool, events: Sequence[EventInput]) -> list[AppendOutcome]:
    """Appends a batch; returns one outcome per event, in order.

    Each order's events of the batch that form a chain (consecutive seqs, each step a legal
    transition, no `failed`) go through one statement for the whole batch, which accepts a chain
    whose first event is plainly next and legal. Whatever it leaves (repeats, conflicts, unknown
    orders, illegal transitions, broken chains, `failed`) goes through the checked path: one
    transaction that locks the orders and decides each event in Python. Either way an event is
    accepted only if its seq is the order's last_seq + 1 and its transition is legal, under the
    order's row lock."""
    if not events:
        return []
    outcomes: list[AppendOutcome | None] = [None] * len(events)
    by_order: dict[uuid.UUID, list[int]] = {}
    for i, e in enumerate(events):
        by_order.setdefault(e.order_id, []).append(i)
    chains = {order_id: members for order_id, members in by_order.items() if _is_chain(events, members)}
    if chains:
        ats = [utcnow() for _ in events]
        rows: list[str] = []
        heads: list[str] = []
        for members in chains.values():
            fields: dict[str, Any] = {}
            for i in members:
                rows.append(_json_row(i, events[i], ats[i], {}))
                fields.update(_set_fields(events[i].update))
            first, last = events[members[0]], members[-1]
            head = _json_row(last, events[last], ats[last], fields, with_data=False)
            heads.append(f'{head[:-1]},"first_seq":{first.seq},"first_status":"{first.status}"}}')
        async with pool.connection() as conn:
            cur = await conn.execute(
                _APPEND_FAST,
                {
                    "events": "[" + ",".join(rows) + "]",
                    "chains": "[" + ",".join(heads) + "]",
                    "legal": _LEGAL_PAIRS,
                    "ids": list(chains),
                },
            )
            for order_id, prior in await cur.fetchall():
                for i in chains[order_id]:
                    e = events[i]
                    written = EventRow(e.order_id, e.seq, e.status, e.data, ats[i], e.data_json)
                    resting = _resting(prior, e.status)
                    outcomes[i] = AppendOutcome(grpc.StatusCode.OK, event=written, new=True, resting=resting)
                    prior = e.status
    rest = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if rest:
        for i, outcome in zip(rest, await _append_checked(pool, [events[i] for i in rest]), strict=True):
            outcomes[i] = outcome
    return [o for o in outcomes if o is not None]


def _is_chain(events: Sequence[EventInput], members: list[int]) -> bool:
    """The order's events of a batch can take the one-statement path: consecutive seqs, each step
    a legal transition, and no `failed` (decided where its live-execution read comes after the
    orders' locks: a statement of its own, so it sees an execution stored while it waited for a
    lock; in the one statement that read would use the statement's older snapshot)."""
    previous: EventInput | None = None
    for i in members:
        e = events[i]
        if e.status == lifecycle.FAILED:
            return False
        if previous is not None and (
            e.seq != previous.seq + 1 or not lifecycle.is_legal(previous.status, e.status)
        ):
            return False
        previous = e
    return True


class _Pending:
    """What a batch does to one order, simulated in Python under the row lock."""

    __slots__ = ("status", "last_seq", "last", "fields")

    def __init__(self, status: str, last_seq: int) -> None:
        self.status = status
        self.last_seq = last_seq
        self.last: tuple[EventInput, datetime] | None = None
        self.fields: dict[str, Any] = {}

    def apply(self, event: EventInput, at: datetime) -> None:
        self.status = event.status
        self.last_seq = event.seq
        self.last = (event, at)
        self.fields.update(_set_fields(event.update))


async def _append_checked(pool: AsyncConnectionPool, events: Sequence[EventInput]) -> list[AppendOutcome]:
    """One transaction: lock the orders FOR UPDATE in id order (so concurrent batches cannot
    deadlock), decide each event in Python against the locked state, then write every accepted
    event with one set-based statement, whatever the batch size."""
    order_ids = sorted({e.order_id for e in events})
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(_LOCK_ORDERS, ("{" + ",".join(map(str, order_ids)) + "}",))
        state = {row[0]: _Pending(row[1], row[2]) for row in await cur.fetchall()}

        # Events at or below the stored last_seq may be repeats: read what is stored there.
        stored: dict[tuple[uuid.UUID, int], EventRow] = {}
        maybe_repeats = [e for e in events if e.order_id in state and e.seq <= state[e.order_id].last_seq]
        if maybe_repeats:
            cur = await conn.execute(
                _READ_STORED, ([e.order_id for e in maybe_repeats], [e.seq for e in maybe_repeats])
            )
            for found in map(_event_row, await cur.fetchall()):
                stored[(found.order_id, found.seq)] = found

        live: dict[uuid.UUID, str] = {}
        failing = [e.order_id for e in events if e.status == lifecycle.FAILED and e.order_id in state]
        if failing:
            cur = await conn.execute(_LIVE_ORDERS, ("{" + ",".join(map(str, failing)) + "}",))
            live = {row[0]: row[1] for row in await cur.fetchall()}

        outcomes: list[AppendOutcome] = []
        new_rows: list[str] = []
        for event in events:
            pending = state.get(event.order_id)
            if pending is None:
                outcomes.append(AppendOutcome(grpc.StatusCode.NOT_FOUND, "order_id: order not found"))
                continue
            if event.seq <= pending.last_seq:
                existing = stored.get((event.order_id, event.seq))
                if existing is not None and existing.status == event.status and existing.data == event.data:
                    outcomes.append(AppendOutcome(grpc.StatusCode.OK, event=existing))
                else:
                    message = f"seq {event.seq} is already taken by a different event"
                    outcomes.append(AppendOutcome(grpc.StatusCode.ABORTED, message))
                continue
            if event.seq != pending.last_seq + 1:
                message = f"seq {event.seq} is not next (last seq is {pending.last_seq})"
                outcomes.append(AppendOutcome(grpc.StatusCode.ABORTED, message))
                continue
            if not lifecycle.is_legal(pending.status, event.status):
                message = f"illegal transition {pending.status} → {event.status}"
                outcomes.append(AppendOutcome(grpc.StatusCode.FAILED_PRECONDITION, message))
                continue
            if event.status == lifecycle.FAILED and event.order_id in live:
                message = (
                    f"{LIVE_EXECUTION_REFUSAL} ({live[event.order_id]}): it landed or may still land, "
                    "so it is followed until it lands or its blockhash provably expires"
                )
                outcomes.append(AppendOutcome(grpc.StatusCode.FAILED_PRECONDITION, message))
                continue
            written = EventRow(event.order_id, event.seq, event.status, event.data, utcnow(), event.data_json)
            resting = _resting(pending.status, event.status)
            pending.apply(event, written.at)
            stored[(event.order_id, event.seq)] = written
            new_rows.append(_json_row(len(new_rows), event, written.at, {}))
            outcomes.append(AppendOutcome(grpc.StatusCode.OK, event=written, new=True, resting=resting))

        if new_rows:
            changed = [
                _json_row(0, p.last[0], p.last[1], p.fields, with_data=False)
                for p in state.values()
                if p.last is not None
            ]
            await conn.execute(
                _WRITE_CHECKED,
                {"events": "[" + ",".join(new_rows) + "]", "orders": "[" + ",".join(changed) + "]"},
            )
    return outcomes


# --- executions -------------------------------------------------------------------------------

# The signed bytes of a signature never change; only the state moves, and never backwards:
# signed → sent → landed | failed | expired (the last three are final).
_UPSERT_EXECUTION = f"""
INSERT INTO executions AS x ({_EXECUTION_COLUMNS})
VALUES (%(order_id)s, %(attempt)s, %(signature)s, %(signed_tx)s, %(lvbh)s, %(blockhash)s, %(state)s,
        %(now)s, %(now)s)
ON CONFLICT (signature) DO UPDATE
    SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
    WHERE x.order_id = EXCLUDED.order_id
      AND x.state NOT IN ('landed', 'failed', 'expired')
      AND (x.state = 'signed' OR EXCLUDED.state <> 'signed')
RETURNING {_EXECUTION_COLUMNS}"""

# A new signed transaction: stored unless its signature is known or another execution of the order
# is live (the unique index executions_one_live_idx decides, atomically, even between racing
# executors: the second insert waits for the first to commit, then conflicts).
#
# Only for an order that has not ended: the check takes a KEY SHARE lock on the order's row, which
# waits for an append holding it (FOR UPDATE) and then re-reads the row, so a `failed` committed
# meanwhile is seen and nothing is stored (so nothing sent) for a failed order.
_ORDER_NOT_ENDED = "SELECT 1 FROM orders AS o WHERE o.id = {id} AND o.phase <> 'done' FOR KEY SHARE OF o"
_INSERT_SIGNED = f"""
INSERT INTO executions ({_EXECUTION_COLUMNS})
SELECT %(order_id)s, %(attempt)s, %(signature)s, %(signed_tx)s, %(lvbh)s, %(blockhash)s, %(state)s,
       %(now)s, %(now)s
WHERE EXISTS ({_ORDER_NOT_ENDED.format(id="%(order_id)s")})
ON CONFLICT DO NOTHING
RETURNING {_EXECUTION_COLUMNS}"""

_LIVE_EXECUTION = f"""SELECT {_EXECUTION_COLUMNS} FROM executions
WHERE order_id = %s AND state IN ('signed', 'sent', 'landed') LIMIT 1"""


class LiveExecution(Exception):
    """Another execution of the order may still land or has landed: no new one may be stored."""

    def __init__(self, live: ExecutionRow) -> None:
        super().__init__(f"execution {live.signature} of this order is {live.state}")
        self.live = live


async def record_execution(pool: AsyncConnectionPool, execution: ExecutionInput) -> ExecutionRow:
    """Stores a new execution or moves a stored one's state forward; returns the stored row.

    Raises LiveExecution (with the live row) when the execution is new and another execution of the
    same order is signed, sent or landed: at most one transaction per order can ever be sent."""
    params = {
        "order_id": execution.order_id,
        "attempt": execution.attempt,
        "signature": execution.signature,
        "signed_tx": execution.signed_tx,
        "lvbh": Decimal(execution.last_valid_block_height),
        "blockhash": execution.blockhash,
        "state": execution.state,
        "now": utcnow(),
    }
    async with pool.connection() as conn:
        try:
            if execution.state == "signed":
                cur = await conn.execute(_INSERT_SIGNED, params)
            else:
                cur = await conn.execute(_UPSERT_EXECUTION, params)
        except psycopg.errors.ForeignKeyViolation:
            raise NotFound("order not found", field="order_id") from None
        except psycopg.errors.UniqueViolation:
            # a new signature in a live state while another execution of the order is live
            raise LiveExecution(await _live_execution(conn, execution)) from None
        row = await cur.fetchone()
        if row is not None:
            return _execution_row(row)
        # Not stored: the signature is known (a repeat, or another order's), or its state may not
        # move that way, or (a new signed one) another execution of the order is live.
        cur = await conn.execute(
            f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE signature = %s", (execution.signature,)
        )
        found = await cur.fetchone()
        if found is None:
            if execution.state == "signed":
                cur = await conn.execute("SELECT status FROM orders WHERE id = %s", (execution.order_id,))
                order = await cur.fetchone()
                if order is None:
                    raise NotFound("order not found", field="order_id")
                if order[0] in lifecycle.TERMINAL:
                    raise FailedPrecondition(
                        f"the order is {order[0]}; no transaction is stored or sent for it", field="order_id"
                    )
            raise LiveExecution(await _live_execution(conn, execution))
        existing = _execution_row(found)
        if existing.order_id != execution.order_id:
            raise AlreadyExists("signature is recorded for another order", field="signature")
        return existing


# The common case of a batch in one statement each: new signed transactions inserted (unless the
# signature is known or the order has a live execution: the unique index decides, as for one), and
# state moves of stored ones. Whatever a statement leaves is decided member by member, as alone.
_INSERT_SIGNED_MANY = f"""
INSERT INTO executions ({_EXECUTION_COLUMNS})
SELECT u.order_id, u.attempt, u.signature, u.signed_tx, u.lvbh, u.blockhash, 'signed', %(now)s, %(now)s
FROM unnest(%(order_id)s::uuid[], %(attempt)s::int[], %(signature)s::text[], %(signed_tx)s::bytea[],
            %(lvbh)s::numeric[], %(blockhash)s::text[])
     AS u(order_id, attempt, signature, signed_tx, lvbh, blockhash)
WHERE EXISTS ({_ORDER_NOT_ENDED.format(id="u.order_id")})
ON CONFLICT DO NOTHING
RETURNING {_EXECUTION_COLUMNS}"""

_MOVE_STATE_MANY = f"""
UPDATE executions AS x SET state = u.state, updated_at = %(now)s
FROM unnest(%(order_id)s::uuid[], %(signature)s::text[], %(state)s::text[]) AS u(order_id, signature, state)
WHERE x.signature = u.signature AND x.order_id = u.order_id
  AND x.state NOT IN ('landed', 'failed', 'expired')
  AND (x.state = 'signed' OR u.state <> 'signed')
RETURNING {", ".join("x." + c.strip() for c in _EXECUTION_COLUMNS.split(","))}"""


async def record_executions(
    pool: AsyncConnectionPool, executions: Sequence[ExecutionInput]
) -> list[ExecutionRow | Exception]:
    """record_execution for a batch: one statement for the new signed transactions and one for the
    state moves (autocommit: each its own commit); members either statement leaves (a repeat, a
    refusal, an unknown order, two members of one order) are decided one by one, exactly as alone.
    Returns the stored row or the exception record_execution would have raised, per member."""
    results: list[ExecutionRow | Exception | None] = [None] * len(executions)
    # in order id order: the insert takes each order's row lock (KEY SHARE) as it goes, and appends
    # lock theirs in id order too, so the two can wait for each other but never deadlock
    signed = sorted(
        (i for i, e in enumerate(executions) if e.state == "signed"), key=lambda i: executions[i].order_id
    )
    moves = [i for i, e in enumerate(executions) if e.state != "signed"]
    now = utcnow()
    async with pool.connection() as conn:
        if signed:
            cur = await conn.execute(
                _INSERT_SIGNED_MANY,
                {
                    "now": now,
                    "order_id": [executions[i].order_id for i in signed],
                    "attempt": [executions[i].attempt for i in signed],
                    "signature": [executions[i].signature for i in signed],
                    "signed_tx": [executions[i].signed_tx for i in signed],
                    "lvbh": [Decimal(executions[i].last_valid_block_height) for i in signed],
                    "blockhash": [executions[i].blockhash for i in signed],
                },
            )
            stored = {row.signature: row for row in map(_execution_row, await cur.fetchall())}
            for i in signed:
                row = stored.pop(executions[i].signature, None)
                if row is not None:
                    results[i] = row
        if moves:
            cur = await conn.execute(
                _MOVE_STATE_MANY,
                {
                    "now": now,
                    "order_id": [executions[i].order_id for i in moves],
                    "signature": [executions[i].signature for i in moves],
                    "state": [executions[i].state for i in moves],
                },
            )
            moved = {row.signature: row for row in map(_execution_row, await cur.fetchall())}
            for i in moves:
                row = moved.get(executions[i].signature)
                if row is not None and row.state == executions[i].state:
                    results[i] = row
    for i, result in enumerate(results):
        if result is None:
            try:
                results[i] = await record_execution(pool, executions[i])
            except Exception as exc:  # noqa: BLE001 - this member's own outcome
                results[i] = exc
    return [r for r in results if r is not None]


async def _live_execution(conn: psycopg.AsyncConnection[TupleRow], execution: ExecutionInput) -> ExecutionRow:
    cur = await conn.execute(_LIVE_EXECUTION, (execution.order_id,))
    row = await cur.fetchone()
    if row is None:  # the live one moved to a final state in between: the caller may retry
        raise Aborted("execution changed concurrently; retry")
    return _execution_row(row)


async def list_executions(pool: AsyncConnectionPool, order_id: uuid.UUID) -> list[ExecutionRow]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"""SELECT {_EXECUTION_COLUMNS} FROM executions WHERE order_id = %s
                ORDER BY created_at, attempt, signature""",
            (order_id,),
        )
        executions = [_execution_row(r) for r in await cur.fetchall()]
        if not executions:
            await _require_order(conn, order_id)
        return executions


# --- the outbox -------------------------------------------------------------------------------

_DELETE_OUTBOX = """DELETE FROM event_outbox
WHERE (order_id, seq) IN (SELECT * FROM unnest(%s::uuid[], %s::int[]))"""

# Rows left behind, oldest orders' events first, each order's in seq order. SKIP LOCKED: replicas
# relaying at the same time take different rows.
_UNPUBLISHED = f"""SELECT {", ".join("e." + c.strip() for c in _EVENT_COLUMNS.split(","))}
FROM event_outbox AS o JOIN order_events AS e USING (order_id, seq)
WHERE o.at < %s
ORDER BY o.order_id, o.seq
LIMIT %s
FOR UPDATE OF o SKIP LOCKED"""


async def delete_outbox(pool: AsyncConnectionPool, keys: Sequence[tuple[uuid.UUID, int]]) -> int:
    """Forgets published events (one statement for the whole batch); returns how many rows went."""
    if not keys:
        return 0
    async with pool.connection() as conn, conn.transaction():
        # A lost delete only re-publishes the events (subscribers drop repeats by seq), so this
        # commit need not wait for its WAL flush: one fdatasync less per batch.
        await conn.execute("SET LOCAL synchronous_commit = off")
        cur = await conn.execute(_DELETE_OUTBOX, ([k[0] for k in keys], [k[1] for k in keys]))
        return cur.rowcount


async def relay_outbox(
    pool: AsyncConnectionPool,
    older_than: datetime,
    limit: int,
    publish: Callable[[list[EventRow]], Awaitable[bool]],
) -> int:
    """Publishes up to `limit` events committed before `older_than` and still in the outbox, then
    deletes their rows, in one transaction that holds their rows locked meanwhile. Returns how
    many were published (0 when `publish` failed: the rows stay for the next round)."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(_UNPUBLISHED, (older_than, limit))
        events = [_event_row(r) for r in await cur.fetchall()]
        if not events or not await publish(events):
            return 0
        await conn.execute(_DELETE_OUTBOX, ([e.order_id for e in events], [e.seq for e in events]))
    return len(events)
