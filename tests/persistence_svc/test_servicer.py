from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from solders.hash import Hash
from solders.signature import Signature

from common.errors import LIVE_EXECUTION_KEY
from common.grpc_client import open_channel
from orderengine.v1 import orders_pb2
from orderengine.v1.orders_pb2_grpc import OrdersStub
from persistence_svc.server import Running, serve
from tests.conftest import SettingsFactory
from tests.persistence_svc.conftest import SOL, USDC, make_spec

S = orders_pb2
PENDING, ROUTING, BUILDING = S.ORDER_STATUS_PENDING, S.ORDER_STATUS_ROUTING, S.ORDER_STATUS_BUILDING
SUBMITTED, CONFIRMED, FAILED = S.ORDER_STATUS_SUBMITTED, S.ORDER_STATUS_CONFIRMED, S.ORDER_STATUS_FAILED


async def create(stub: OrdersStub, **kwargs: Any) -> S.Order:
    kwargs.setdefault("spec", make_spec())
    response = await stub.CreateOrder(S.CreateOrderRequest(**kwargs))
    return response.order


def event(
    order_id: str, seq: int, status: int, data: dict[str, Any] | None = None, **update: Any
) -> S.NewEvent:
    return S.NewEvent(
        order_id=order_id,
        seq=seq,
        status=status,
        data_json=json.dumps(data) if data is not None else "",
        update=S.OrderUpdate(**update) if update else None,
    )


async def expect_error(call: Any, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value.details() or ""


def count(database_url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return int(row[0])


# --- CreateOrder / GetOrder -----------------------------------------------------------------------


async def test_create_then_get_with_events(stub: OrdersStub) -> None:
    before = time.time_ns() // 1000
    response = await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec(amount_in=2**64 - 1)))
    assert response.created
    order = response.order
    uuid.UUID(order.order_id)
    assert order.status == PENDING and order.last_seq == 1 and order.attempts == 0
    assert order.spec == make_spec(amount_in=2**64 - 1)
    assert before <= order.created_at_us == order.updated_at_us <= time.time_ns() // 1000 + 1

    got = await stub.GetOrder(S.GetOrderRequest(order_id=order.order_id, with_events=True))
    assert got.spec.amount_in == 2**64 - 1
    assert got.created_at_us == order.created_at_us
    assert [(e.seq, e.status, e.data_json) for e in got.events] == [(1, PENDING, "{}")]
    assert got.events[0].at_us == order.created_at_us
    without = await stub.GetOrder(S.GetOrderRequest(order_id=order.order_id))
    assert len(without.events) == 0


async def test_get_unknown_and_malformed(stub: OrdersStub) -> None:
    await expect_error(
        stub.GetOrder(S.GetOrderRequest(order_id=str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND
    )
    details = await expect_error(
        stub.GetOrder(S.GetOrderRequest(order_id="nope")), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "order_id" in details


async def test_client_chosen_order_id_makes_a_retry_harmless(stub: OrdersStub, database_url: str) -> None:
    order_id = str(uuid.uuid4())
    first = await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec(), order_id=order_id))
    again = await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec(), order_id=order_id))
    assert first.created and not again.created
    assert again.order == first.order
    details = await expect_error(
        stub.CreateOrder(S.CreateOrderRequest(spec=make_spec(amount_in=7), order_id=order_id)),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert "order_id" in details
    assert count(database_url, "SELECT count(*) FROM order_events") == 1


# One service for all cases (a database per case would cost more than the cases).
CREATE_ORDER_INVALID: list[tuple[dict[str, Any], str]] = [
    ({"spec": None}, "spec"),
    ({"spec": make_spec(input_mint="")}, "spec.input_mint"),
    ({"spec": make_spec(input_mint="not-a-key")}, "spec.input_mint"),
    ({"spec": make_spec(output_mint="0OIl" * 11)}, "spec.output_mint"),
    ({"spec": make_spec(output_mint=SOL)}, "spec.output_mint"),
    ({"spec": make_spec(amount_in=0)}, "spec.amount_in"),
    ({"spec": make_spec(slippage_bps=0)}, "spec.slippage_bps"),
    ({"spec": make_spec(slippage_bps=5001)}, "spec.slippage_bps"),
    ({"spec": make_spec(input_decimals=19)}, "spec.input_decimals"),
    ({"spec": make_spec(output_decimals=255)}, "spec.output_decimals"),
    ({"spec": make_spec(input_symbol="S\x00L")}, "spec.input_symbol"),
    ({"spec": make_spec(output_symbol="X" * 33)}, "spec.output_symbol"),
    ({"order_id": "123"}, "order_id"),
    ({"idempotency_key": "k1"}, "request_hash"),
    ({"idempotency_key": "k" * 256, "request_hash": "h"}, "idempotency_key"),
]


async def test_create_order_invalid_argument_names_the_field(stub: OrdersStub, database_url: str) -> None:
    for request_fields, field in CREATE_ORDER_INVALID:
        fields = {"spec": make_spec(), **request_fields}
        details = await expect_error(
            stub.CreateOrder(S.CreateOrderRequest(**fields)), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert details.startswith(f"{field}: "), (request_fields, details)
    assert count(database_url, "SELECT count(*) FROM orders") == 0


# --- idempotency --------------------------------------------------------------------------------------


async def test_fifty_concurrent_duplicates_create_one_order(stub: OrdersStub, database_url: str) -> None:
    request = S.CreateOrderRequest(spec=make_spec(), idempotency_key="key-50", request_hash="hash-a")
    responses = await asyncio.gather(*(stub.CreateOrder(request) for _ in range(50)))
    assert sum(r.created for r in responses) == 1
    assert len({r.order.order_id for r in responses}) == 1
    assert count(database_url, "SELECT count(*) FROM orders") == 1
    assert count(database_url, "SELECT count(*) FROM order_events") == 1
    assert count(database_url, "SELECT count(*) FROM idempotency_keys") == 1


async def test_same_key_different_request_is_refused(stub: OrdersStub, database_url: str) -> None:
    first = await stub.CreateOrder(
        S.CreateOrderRequest(spec=make_spec(), idempotency_key="k", request_hash="a")
    )
    again = await stub.CreateOrder(
        S.CreateOrderRequest(
            spec=make_spec(), idempotency_key="k", request_hash="a", order_id=str(uuid.uuid4())
        )
    )
    assert first.created and not again.created and again.order.order_id == first.order.order_id
    details = await expect_error(
        stub.CreateOrder(
            S.CreateOrderRequest(spec=make_spec(amount_in=5), idempotency_key="k", request_hash="b")
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert details == "idempotency key reused with a different request"
    assert count(database_url, "SELECT count(*) FROM orders") == 1


async def test_concurrent_duplicates_with_different_bodies(stub: OrdersStub, database_url: str) -> None:
    requests = [
        S.CreateOrderRequest(
            spec=make_spec(amount_in=1 + i % 2), idempotency_key="mixed", request_hash=f"h{i % 2}"
        )
        for i in range(20)
    ]
    results = await asyncio.gather(*(stub.CreateOrder(r) for r in requests), return_exceptions=True)
    ok = [r for r in results if isinstance(r, S.CreateOrderResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(ok) == 10 and len(refused) == 10
    assert all(e.code() == grpc.StatusCode.ALREADY_EXISTS for e in refused)
    assert count(database_url, "SELECT count(*) FROM orders") == 1


async def test_expired_key_counts_as_absent(stub: OrdersStub, database_url: str) -> None:
    first = await stub.CreateOrder(
        S.CreateOrderRequest(spec=make_spec(), idempotency_key="old", request_hash="a")
    )
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    second = await stub.CreateOrder(
        S.CreateOrderRequest(spec=make_spec(), idempotency_key="old", request_hash="b")
    )
    assert second.created and second.order.order_id != first.order.order_id
    again = await stub.CreateOrder(
        S.CreateOrderRequest(spec=make_spec(), idempotency_key="old", request_hash="b")
    )
    assert not again.created and again.order.order_id == second.order.order_id


async def test_expired_keys_are_purged_lazily(service: Running, stub: OrdersStub, database_url: str) -> None:
    await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec(), idempotency_key="gone", request_hash="a"))
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    service.servicer._next_purge = 0.0
    await stub.CreateOrder(S.CreateOrderRequest(spec=make_spec(), idempotency_key="fresh", request_hash="a"))
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT key FROM idempotency_keys").fetchall() == [("fresh",)]


# --- AppendEvent ------------------------------------------------------------------------------------------


async def test_full_lifecycle_applies_updates(stub: OrdersStub) -> None:
    order = await create(stub)
    oid = order.order_id
    route = {"legs": [{"venue": "raydium_cpmm", "pool": "p", "amountInRaw": "1", "amountOutRaw": "2"}]}
    stored = await stub.AppendEvent(
        event(oid, 2, ROUTING, {"quotes": []}, attempts=1, route_json=json.dumps(route))
    )
    assert (stored.seq, stored.status, json.loads(stored.data_json)) == (2, ROUTING, {"quotes": []})
    await stub.AppendEvent(event(oid, 3, BUILDING))
    await stub.AppendEvent(
        event(
            oid,
            4,
            SUBMITTED,
            {"signature": "sig"},
            tx_hash="5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW",
        )
    )
    await stub.AppendEvent(
        event(
            oid,
            5,
            CONFIRMED,
            {"txHash": "x"},
            amount_out=2**64 - 1,
            dex="raydium_cpmm",
            executed_price="150.25",
        )
    )
    got = await stub.GetOrder(S.GetOrderRequest(order_id=oid, with_events=True))
    assert got.status == CONFIRMED and got.last_seq == 5 and got.attempts == 1
    assert json.loads(got.route_json) == route
    assert got.amount_out == 2**64 - 1
    assert got.dex == "raydium_cpmm" and got.executed_price == "150.25"
    assert got.tx_hash.startswith("5VERv8")
    assert got.failure_reason == ""
    assert [e.status for e in got.events] == [PENDING, ROUTING, BUILDING, SUBMITTED, CONFIRMED]
    assert got.updated_at_us == got.events[-1].at_us >= got.created_at_us
    ats = [e.at_us for e in got.events]
    assert ats == sorted(ats)


async def test_failed_stores_the_reason_and_keeps_unset_fields(stub: OrdersStub) -> None:
    oid = (await create(stub)).order_id
    await stub.AppendEvent(event(oid, 2, ROUTING, attempts=1, route_json='{"legs":[]}'))
    await stub.AppendEvent(event(oid, 3, FAILED, {"reason": "no quote"}, failure_reason="no quote"))
    got = await stub.GetOrder(S.GetOrderRequest(order_id=oid))
    assert got.status == FAILED and got.failure_reason == "no quote"
    assert got.attempts == 1 and got.route_json == '{"legs":[]}'


async def test_idempotent_repeat_returns_the_stored_event(stub: OrdersStub, database_url: str) -> None:
    oid = (await create(stub)).order_id
    first = await stub.AppendEvent(event(oid, 2, ROUTING, {"attempt": 1, "x": [1, 2.5, "y"]}))
    again = await stub.AppendEvent(event(oid, 2, ROUTING, {"x": [1, 2.5, "y"], "attempt": 1}))
    assert again == first
    pending_again = await stub.AppendEvent(event(oid, 1, PENDING))
    assert pending_again.seq == 1 and pending_again.status == PENDING
    assert count(database_url, "SELECT count(*) FROM order_events") == 2


async def test_seq_conflicts_are_aborted(stub: OrdersStub, database_url: str) -> None:
    oid = (await create(stub)).order_id
    await stub.AppendEvent(event(oid, 2, ROUTING, {"attempt": 1}))
    details = await expect_error(
        stub.AppendEvent(event(oid, 2, ROUTING, {"attempt": 2})), grpc.StatusCode.ABORTED
    )
    assert "seq 2" in details
    await expect_error(stub.AppendEvent(event(oid, 2, FAILED, {"attempt": 1})), grpc.StatusCode.ABORTED)
    details = await expect_error(stub.AppendEvent(event(oid, 4, BUILDING)), grpc.StatusCode.ABORTED)
    assert "not next" in details
    assert count(database_url, "SELECT count(*) FROM order_events") == 2
    assert count(database_url, "SELECT last_seq FROM orders") == 2


async def test_illegal_transition_changes_nothing(stub: OrdersStub) -> None:
    oid = (await create(stub)).order_id
    for seq, status in [(2, ROUTING), (3, BUILDING), (4, SUBMITTED), (5, CONFIRMED)]:
        await stub.AppendEvent(event(oid, seq, status))
    before = await stub.GetOrder(S.GetOrderRequest(order_id=oid, with_events=True))
    details = await expect_error(
        stub.AppendEvent(event(oid, 6, ROUTING, {"attempt": 2}, attempts=2, failure_reason="x")),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert details == "illegal transition confirmed → routing"
    after = await stub.GetOrder(S.GetOrderRequest(order_id=oid, with_events=True))
    assert after == before


async def test_pending_cannot_jump_to_building(stub: OrdersStub) -> None:
    oid = (await create(stub)).order_id
    details = await expect_error(
        stub.AppendEvent(event(oid, 2, BUILDING)), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert details == "illegal transition pending → building"


async def test_append_to_unknown_order(stub: OrdersStub) -> None:
    await expect_error(stub.AppendEvent(event(str(uuid.uuid4()), 2, ROUTING)), grpc.StatusCode.NOT_FOUND)


APPEND_INVALID: list[tuple[S.NewEvent, str]] = [
    (S.NewEvent(order_id="x", seq=2, status=ROUTING), "order_id"),
    (S.NewEvent(seq=2, status=ROUTING), "order_id"),
    (S.NewEvent(order_id="{oid}", seq=0, status=ROUTING), "seq"),
    (S.NewEvent(order_id="{oid}", seq=2), "status"),
    (S.NewEvent(order_id="{oid}", seq=2, status=42), "status"),  # type: ignore[arg-type]
    (S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, data_json="[1]"), "data_json"),
    (S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, data_json="{"), "data_json"),
    (S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, data_json='{"a": NaN}'), "data_json"),
    (S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, data_json='{"a": 1e999}'), "data_json"),
    (S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, data_json='{"a": "\\u0000"}'), "data_json"),
    (
        S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, update=S.OrderUpdate(route_json="[]")),
        "update.route_json",
    ),
    (
        S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, update=S.OrderUpdate(route_json="")),
        "update.route_json",
    ),
    (
        S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, update=S.OrderUpdate(attempts=100_000)),
        "update.attempts",
    ),
    (
        S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, update=S.OrderUpdate(executed_price="1e5")),
        "update.executed_price",
    ),
    (
        S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, update=S.OrderUpdate(dex="Raydium CPMM")),
        "update.dex",
    ),
    (
        S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, update=S.OrderUpdate(tx_hash="0x00")),
        "update.tx_hash",
    ),
    (
        S.NewEvent(order_id="{oid}", seq=2, status=ROUTING, update=S.OrderUpdate(failure_reason="a\x00")),
        "update.failure_reason",
    ),
]


async def test_append_invalid_argument_names_the_field(stub: OrdersStub) -> None:
    order = await create(stub)
    for case, field in APPEND_INVALID:
        new_event = S.NewEvent()
        new_event.CopyFrom(case)
        if new_event.order_id == "{oid}":
            new_event.order_id = order.order_id
        details = await expect_error(stub.AppendEvent(new_event), grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith(f"{field}: "), (case, details)
        batch = await stub.AppendEvents(S.AppendEventsRequest(events=[new_event]))
        assert batch.results[0].code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert batch.results[0].message.startswith(f"events[0].{field}: "), batch.results[0].message
    after = await stub.GetOrder(S.GetOrderRequest(order_id=order.order_id, with_events=True))
    assert after.last_seq == 1 and len(after.events) == 1


# --- AppendEvents ----------------------------------------------------------------------------------


async def test_batch_results_are_per_item(stub: OrdersStub) -> None:
    a, b, c = [(await create(stub)).order_id for _ in range(3)]
    unknown = str(uuid.uuid4())
    batch = [
        event(a, 2, ROUTING, {"n": 1}, attempts=1),  # ok
        event(b, 2, BUILDING),  # illegal pending → building
        event(a, 3, BUILDING),  # ok: same order, next seq within the batch
        S.NewEvent(order_id=c, seq=2, status=ROUTING, data_json="nope"),  # invalid
        event(unknown, 2, ROUTING),  # not found
        event(c, 2, ROUTING),  # ok
        event(a, 3, BUILDING),  # repeat of an event of this batch: ok
        event(a, 3, FAILED),  # seq taken within the batch: aborted
        event(b, 3, ROUTING),  # gap: aborted
        event(b, 2, ROUTING, {"after": "illegal"}),  # ok: b is still pending
    ]
    response = await stub.AppendEvents(S.AppendEventsRequest(events=batch))
    codes = [
        grpc.StatusCode.OK if r.code == 0 else next(c for c in grpc.StatusCode if c.value[0] == r.code)
        for r in response.results
    ]
    C = grpc.StatusCode
    assert codes == [
        C.OK,
        C.FAILED_PRECONDITION,
        C.OK,
        C.INVALID_ARGUMENT,
        C.NOT_FOUND,
        C.OK,
        C.OK,
        C.ABORTED,
        C.ABORTED,
        C.OK,
    ]
    results = response.results
    assert [(r.order_id, r.seq) for r in results] == [(e.order_id, e.seq) for e in batch]
    assert results[1].message == "illegal transition pending → building"
    assert results[3].message.startswith("events[3].data_json: ")
    assert results[6].event == results[2].event
    assert not results[1].HasField("event")
    assert json.loads(results[9].event.data_json) == {"after": "illegal"}

    got_a = await stub.GetOrder(S.GetOrderRequest(order_id=a, with_events=True))
    assert (got_a.status, got_a.last_seq, got_a.attempts) == (BUILDING, 3, 1)
    assert [e.seq for e in got_a.events] == [1, 2, 3]
    got_b = await stub.GetOrder(S.GetOrderRequest(order_id=b))
    assert (got_b.status, got_b.last_seq) == (ROUTING, 2)
    got_c = await stub.GetOrder(S.GetOrderRequest(order_id=c))
    assert (got_c.status, got_c.last_seq) == (ROUTING, 2)


async def test_batch_repeat_is_idempotent(stub: OrdersStub, database_url: str) -> None:
    ids = [(await create(stub)).order_id for _ in range(5)]
    batch = S.AppendEventsRequest(events=[event(i, 2, ROUTING, {"attempt": 1}) for i in ids])
    first = await stub.AppendEvents(batch)
    again = await stub.AppendEvents(batch)
    assert all(r.code == 0 for r in first.results)
    assert again == first
    assert count(database_url, "SELECT count(*) FROM order_events") == 10


async def test_empty_batch(stub: OrdersStub) -> None:
    response = await stub.AppendEvents(S.AppendEventsRequest())
    assert len(response.results) == 0


async def test_concurrent_batches_on_shared_orders_do_not_deadlock(
    stub: OrdersStub, database_url: str
) -> None:
    ids = [(await create(stub)).order_id for _ in range(20)]
    # Each batch touches every order, in a different order; exactly one batch wins each seq.
    batches = [
        S.AppendEventsRequest(events=[event(i, 2, ROUTING) for i in ids[k:] + ids[:k]]) for k in range(8)
    ]
    responses = await asyncio.gather(*(stub.AppendEvents(b) for b in batches))
    assert all(r.code == 0 for response in responses for r in response.results)  # repeats are OK
    assert count(database_url, "SELECT count(*) FROM order_events") == 40


# --- ListOrders / ListEvents ------------------------------------------------------------------------


async def test_list_orders_pages_newest_first(stub: OrdersStub) -> None:
    created = [(await create(stub, spec=make_spec(amount_in=i + 1))).order_id for i in range(7)]
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        page = await stub.ListOrders(S.ListOrdersRequest(limit=3, cursor=cursor))
        seen += [o.order_id for o in page.orders]
        pages += 1
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages == 3
    assert seen == list(reversed(created))
    everything = await stub.ListOrders(S.ListOrdersRequest())
    assert [o.order_id for o in everything.orders] == list(reversed(created))
    assert everything.next_cursor == ""
    assert len(everything.orders[0].events) == 0


async def test_list_orders_keyset_survives_equal_timestamps(stub: OrdersStub, database_url: str) -> None:
    ids = [(await create(stub)).order_id for _ in range(5)]
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE orders SET created_at = '2026-01-01T00:00:00Z'")
    seen: list[str] = []
    cursor = ""
    while True:
        page = await stub.ListOrders(S.ListOrdersRequest(limit=2, cursor=cursor))
        seen += [o.order_id for o in page.orders]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == sorted(ids, key=uuid.UUID, reverse=True)


async def test_list_orders_status_filter(stub: OrdersStub) -> None:
    ids = [(await create(stub)).order_id for _ in range(5)]
    await stub.AppendEvents(S.AppendEventsRequest(events=[event(i, 2, ROUTING) for i in ids[1:4]]))
    routing = await stub.ListOrders(S.ListOrdersRequest(status=ROUTING, limit=2))
    assert [o.order_id for o in routing.orders] == [ids[3], ids[2]]
    rest = await stub.ListOrders(S.ListOrdersRequest(status=ROUTING, limit=2, cursor=routing.next_cursor))
    assert [o.order_id for o in rest.orders] == [ids[1]] and rest.next_cursor == ""
    pending = await stub.ListOrders(S.ListOrdersRequest(status=PENDING))
    assert [o.order_id for o in pending.orders] == [ids[4], ids[0]]
    none = await stub.ListOrders(S.ListOrdersRequest(status=CONFIRMED))
    assert len(none.orders) == 0


async def test_list_orders_bad_cursor(stub: OrdersStub) -> None:
    for cursor in ["garbage!", "e30", "eyJ0IjoiYSIsImlkIjoieCJ9", "W10", "eyJ0IjoxZTMwMCwiaWQiOjF9"]:
        details = await expect_error(
            stub.ListOrders(S.ListOrdersRequest(cursor=cursor)), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert details.startswith("cursor: "), (cursor, details)


async def test_list_orders_bad_status(stub: OrdersStub) -> None:
    request = S.ListOrdersRequest(status=17)  # type: ignore[arg-type]
    details = await expect_error(stub.ListOrders(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("status: ")


async def test_list_orders_limit_is_capped(stub: OrdersStub) -> None:
    for _ in range(3):
        await create(stub)
    page = await stub.ListOrders(S.ListOrdersRequest(limit=10_000))
    assert len(page.orders) == 3


async def test_list_events_after_seq(stub: OrdersStub) -> None:
    oid = (await create(stub)).order_id
    await stub.AppendEvent(event(oid, 2, ROUTING))
    await stub.AppendEvent(event(oid, 3, BUILDING, {"k": "v"}))
    all_events = await stub.ListEvents(S.ListEventsRequest(order_id=oid))
    assert [e.seq for e in all_events.events] == [1, 2, 3]
    later = await stub.ListEvents(S.ListEventsRequest(order_id=oid, after_seq=1))
    assert [(e.seq, e.status, e.data_json) for e in later.events] == [
        (2, ROUTING, "{}"),
        (3, BUILDING, '{"k":"v"}'),
    ]
    assert len((await stub.ListEvents(S.ListEventsRequest(order_id=oid, after_seq=3))).events) == 0
    assert len((await stub.ListEvents(S.ListEventsRequest(order_id=oid, after_seq=2**32 - 1))).events) == 0
    await expect_error(
        stub.ListEvents(S.ListEventsRequest(order_id=str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(stub.ListEvents(S.ListEventsRequest(order_id="")), grpc.StatusCode.INVALID_ARGUMENT)


# --- executions ------------------------------------------------------------------------------------


def execution(
    order_id: str, attempt: int = 1, state: str = "signed", signature: str | None = None
) -> S.Execution:
    return S.Execution(
        order_id=order_id,
        attempt=attempt,
        signature=signature or str(Signature.new_unique()),
        signed_tx=b"\x01" + bytes(range(200)),
        last_valid_block_height=2**64 - 1,
        blockhash=str(Hash.new_unique()),
        state=state,
    )


async def test_record_and_list_executions(stub: OrdersStub) -> None:
    oid = (await create(stub)).order_id
    first = await stub.RecordExecution(execution(oid, 1))
    assert first.state == "signed" and first.signed_tx == b"\x01" + bytes(range(200))
    assert first.last_valid_block_height == 2**64 - 1 and first.created_at_us == first.updated_at_us > 0
    sent = await stub.RecordExecution(execution(oid, 1, "sent", first.signature))
    assert sent.state == "sent" and sent.created_at_us == first.created_at_us
    assert sent.updated_at_us >= first.updated_at_us and sent.signed_tx == first.signed_tx
    await stub.RecordExecution(execution(oid, 1, "expired", first.signature))
    second = await stub.RecordExecution(execution(oid, 2))
    listed = await stub.ListExecutions(S.ListExecutionsRequest(order_id=oid))
    assert [(e.signature, e.attempt, e.state) for e in listed.executions] == [
        (first.signature, 1, "expired"),
        (second.signature, 2, "signed"),
    ]


def live_of(error: grpc.aio.AioRpcError) -> S.Execution:
    (value,) = [v for k, v in error.trailing_metadata() or () if k == LIVE_EXECUTION_KEY]
    return S.Execution.FromString(value)


@pytest.mark.parametrize("live_state", ["signed", "sent", "landed"])
async def test_a_second_execution_is_refused_while_one_is_live(stub: OrdersStub, live_state: str) -> None:
    oid = (await create(stub)).order_id
    live = await stub.RecordExecution(execution(oid, 1))
    if live_state != "signed":
        live = await stub.RecordExecution(execution(oid, 1, live_state, live.signature))
    for state in ("signed", "sent", "landed"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.RecordExecution(execution(oid, 2, state))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert live_of(info.value) == live  # retrievable from the refusal, no second call
    # a repeat of the live one is not a second execution
    assert (await stub.RecordExecution(execution(oid, 1, "signed", live.signature))).state == live_state
    listed = await stub.ListExecutions(S.ListExecutionsRequest(order_id=oid))
    assert [e.signature for e in listed.executions] == [live.signature]


@pytest.mark.parametrize("final_state", ["expired", "failed"])
async def test_a_new_execution_is_stored_once_the_live_one_is_final(
    stub: OrdersStub, final_state: str
) -> None:
    oid = (await create(stub)).order_id
    first = await stub.RecordExecution(execution(oid, 1))
    await stub.RecordExecution(execution(oid, 1, final_state, first.signature))
    second = await stub.RecordExecution(execution(oid, 2))
    assert second.state == "signed"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RecordExecution(execution(oid, 3))
    assert live_of(info.value).signature == second.signature


async def test_racing_signed_executions_store_exactly_one(stub: OrdersStub) -> None:
    oids = [(await create(stub)).order_id for _ in range(10)]
    attempts = [execution(oid, 1) for oid in oids for _ in range(5)]
    results = await asyncio.gather(*(stub.RecordExecution(e) for e in attempts), return_exceptions=True)
    for oid in oids:
        mine = [(e, r) for e, r in zip(attempts, results, strict=True) if e.order_id == oid]
        stored = [r for _, r in mine if isinstance(r, S.Execution)]
        refused = [r for _, r in mine if isinstance(r, grpc.aio.AioRpcError)]
        assert len(stored) == 1 and len(refused) == 4, results
        assert all(r.code() == grpc.StatusCode.FAILED_PRECONDITION for r in refused)
        assert {live_of(r).signature for r in refused} == {stored[0].signature}


async def test_execution_state_never_moves_backwards(stub: OrdersStub) -> None:
    oid = (await create(stub)).order_id
    sig = (await stub.RecordExecution(execution(oid, 1, "sent"))).signature
    assert (await stub.RecordExecution(execution(oid, 1, "signed", sig))).state == "sent"
    assert (await stub.RecordExecution(execution(oid, 1, "landed", sig))).state == "landed"
    assert (await stub.RecordExecution(execution(oid, 1, "expired", sig))).state == "landed"
    assert (await stub.RecordExecution(execution(oid, 1, "sent", sig))).state == "landed"


async def test_execution_refusals(stub: OrdersStub) -> None:
    oid = (await create(stub)).order_id
    other = (await create(stub)).order_id
    sig = (await stub.RecordExecution(execution(oid))).signature
    await expect_error(stub.RecordExecution(execution(str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND)
    details = await expect_error(
        stub.RecordExecution(execution(other, signature=sig)), grpc.StatusCode.ALREADY_EXISTS
    )
    assert details.startswith("signature: ")
    for bad, field in [
        (
            S.Execution(
                order_id=oid,
                attempt=1,
                signature="x",
                signed_tx=b"t",
                blockhash=str(Hash.default()),
                state="signed",
            ),
            "signature",
        ),
        (
            S.Execution(
                order_id=oid,
                attempt=0,
                signature=sig,
                signed_tx=b"t",
                blockhash=str(Hash.default()),
                state="signed",
            ),
            "attempt",
        ),
        (
            S.Execution(
                order_id=oid, attempt=1, signature=sig, blockhash=str(Hash.default()), state="signed"
            ),
            "signed_tx",
        ),
        (
            S.Execution(
                order_id=oid, attempt=1, signature=sig, signed_tx=b"t", blockhash="nope", state="signed"
            ),
            "blockhash",
        ),
        (
            S.Execution(
                order_id=oid,
                attempt=1,
                signature=sig,
                signed_tx=b"t",
                blockhash=str(Hash.default()),
                state="done",
            ),
            "state",
        ),
        (
            S.Execution(
                order_id="",
                attempt=1,
                signature=sig,
                signed_tx=b"t",
                blockhash=str(Hash.default()),
                state="signed",
            ),
            "order_id",
        ),
    ]:
        details = await expect_error(stub.RecordExecution(bad), grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith(f"{field}: "), details
    assert len((await stub.ListExecutions(S.ListExecutionsRequest(order_id=other))).executions) == 0
    await expect_error(
        stub.ListExecutions(S.ListExecutionsRequest(order_id=str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND
    )


# --- unfinished orders ---------------------------------------------------------------------------------


async def test_list_unfinished_orders(stub: OrdersStub) -> None:
    a, b, c, d = [(await create(stub)).order_id for _ in range(4)]
    await stub.AppendEvent(event(b, 2, FAILED, failure_reason="x"))
    for seq, status in [(2, ROUTING), (3, BUILDING), (4, SUBMITTED), (5, CONFIRMED)]:
        await stub.AppendEvent(event(c, seq, status))
    await stub.AppendEvent(event(a, 2, ROUTING))  # a is now the most recently updated
    unfinished = await stub.ListUnfinishedOrders(S.ListUnfinishedOrdersRequest())
    assert [o.order_id for o in unfinished.orders] == [d, a]
    limited = await stub.ListUnfinishedOrders(S.ListUnfinishedOrdersRequest(limit=1))
    assert [o.order_id for o in limited.orders] == [d]
    got_a = await stub.GetOrder(S.GetOrderRequest(order_id=a))
    older = await stub.ListUnfinishedOrders(S.ListUnfinishedOrdersRequest(older_than_us=got_a.updated_at_us))
    assert [o.order_id for o in older.orders] == [d]
    everything = await stub.ListUnfinishedOrders(S.ListUnfinishedOrdersRequest(older_than_us=2**63 - 1))
    assert len(everything.orders) == 2
    details = await expect_error(
        stub.ListUnfinishedOrders(S.ListUnfinishedOrdersRequest(older_than_us=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert details.startswith("older_than_us: ")


# --- health ------------------------------------------------------------------------------------------


async def test_health_serving_then_not_serving(make_settings: SettingsFactory) -> None:
    running = await serve(make_settings(PERSISTENCE_ADDR="127.0.0.1:0", DB_POOL_SIZE="1"))
    channel = open_channel(f"127.0.0.1:{running.port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="orderengine.v1.Orders"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        await running.service.health.enter_graceful_shutdown()
        reply = await health.Check(health_pb2.HealthCheckRequest(service="orderengine.v1.Orders"))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await channel.close()
        await running.stop(0)
        await running.stop(0)  # idempotent
    assert running.pool.closed


async def test_mints_are_echoed(stub: OrdersStub) -> None:
    order = await create(
        stub, spec=make_spec(input_mint=USDC, output_mint=SOL, input_symbol="", output_symbol="")
    )
    got = await stub.GetOrder(S.GetOrderRequest(order_id=order.order_id))
    assert (got.spec.input_mint, got.spec.output_mint, got.spec.input_symbol) == (USDC, SOL, "")


async def test_racing_appends_for_one_seq_accept_exactly_one(stub: OrdersStub, database_url: str) -> None:
    oid = (await create(stub)).order_id
    calls = [stub.AppendEvent(event(oid, 2, ROUTING, {"racer": i})) for i in range(20)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    winners = [r for r in results if isinstance(r, S.OrderEvent)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1 and len(losers) == 19
    assert all(e.code() == grpc.StatusCode.ABORTED for e in losers)
    assert count(database_url, "SELECT count(*) FROM order_events") == 2

    same = [stub.AppendEvent(event(oid, 3, BUILDING, {"same": True}, attempts=1)) for _ in range(20)]
    stored = await asyncio.gather(*same)
    assert all(e == stored[0] for e in stored)
    got = await stub.GetOrder(S.GetOrderRequest(order_id=oid))
    assert (got.last_seq, got.status, got.attempts) == (3, BUILDING, 1)


async def test_batch_of_many_orders_in_one_call(stub: OrdersStub, database_url: str) -> None:
    ids = [(await create(stub, order_id=str(uuid.uuid4()))).order_id for _ in range(150)]
    route = '{"legs":[],"amountOutRaw":"1"}'
    batch = [event(i, 2, ROUTING, {"attempt": 1}, attempts=1, route_json=route) for i in ids]
    response = await stub.AppendEvents(S.AppendEventsRequest(events=batch))
    assert all(r.code == 0 and r.event.seq == 2 for r in response.results)
    batch = [event(i, 3, FAILED, {"reason": "x"}, failure_reason="no quote") for i in ids]
    response = await stub.AppendEvents(S.AppendEventsRequest(events=batch))
    assert all(r.code == 0 for r in response.results)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT status, last_seq, attempts, route::text, failure_reason FROM orders"
        )
        assert rows.fetchall() == [("failed", 3, 1, '{"legs": [], "amountOutRaw": "1"}', "no quote")]
    assert count(database_url, "SELECT count(*) FROM order_events") == 450


async def test_oversized_batch_is_refused(stub: OrdersStub) -> None:
    batch = [event(str(uuid.uuid4()), 2, ROUTING) for _ in range(10_001)]
    details = await expect_error(
        stub.AppendEvents(S.AppendEventsRequest(events=batch)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert details.startswith("events: ")


# --- AppendEventStream ------------------------------------------------------------------------------


async def test_append_event_stream_answers_each_event_by_key_with_the_unary_codes(
    stub: OrdersStub, database_url: str
) -> None:
    orders = [await create(stub) for _ in range(30)]
    call = stub.AppendEventStream()  # deadline-exempt: the test closes it
    # two messages written back to back: both reach the group commit; each event answered by key
    await call.write(S.AppendEventsRequest(events=[event(o.order_id, 2, ROUTING) for o in orders[:20]]))
    await call.write(
        S.AppendEventsRequest(
            events=[event(o.order_id, 2, ROUTING) for o in orders[20:]]
            + [
                event(str(uuid.uuid4()), 2, ROUTING),  # unknown order
                event(orders[0].order_id, 9, BUILDING),  # not the next seq
                event("not-a-uuid", 2, ROUTING),  # invalid
            ]
        )
    )
    await call.done_writing()
    results = {}
    async for message in call:
        for result in message.results:
            results[(result.order_id, result.seq)] = result
    assert len(results) == 33
    for o in orders:
        r = results[(o.order_id, 2)]
        assert r.code == 0 and r.event.status == ROUTING and r.event.seq == 2
    unknown = [r for (oid, _), r in results.items() if oid not in {o.order_id for o in orders}]
    codes = sorted(r.code for r in unknown)
    assert codes == sorted([grpc.StatusCode.NOT_FOUND.value[0], grpc.StatusCode.INVALID_ARGUMENT.value[0]])
    assert "order_id" in results[("not-a-uuid", 2)].message
    skipped = results[(orders[0].order_id, 9)]
    assert skipped.code in (grpc.StatusCode.FAILED_PRECONDITION.value[0], grpc.StatusCode.ABORTED.value[0])
    # every accepted event is stored once, and nothing else
    ids = [o.order_id for o in orders]
    assert (
        count(
            database_url,
            "SELECT count(*) FROM order_events WHERE seq = 2 AND order_id = ANY(%s::uuid[])",
            ids,
        )
        == 30
    )
    assert count(database_url, "SELECT count(*) FROM order_events WHERE seq = 9") == 0


async def test_append_event_stream_repeat_is_accepted_as_is(stub: OrdersStub) -> None:
    order = await create(stub)
    first = event(order.order_id, 2, ROUTING, {"attempt": 1})
    for _ in range(2):  # a retry after a broken stream sends the same event again
        call = stub.AppendEventStream()  # deadline-exempt: the test closes it
        await call.write(S.AppendEventsRequest(events=[first]))
        await call.done_writing()
        (message,) = [m async for m in call]
        (result,) = message.results
        assert result.code == 0 and result.event.seq == 2
    got = await stub.GetOrder(S.GetOrderRequest(order_id=order.order_id, with_events=True))
    assert [e.seq for e in got.events] == [1, 2]


async def test_an_orders_phase_follows_its_events_and_the_running_updates_are_hot(
    stub: OrdersStub, database_url: str
) -> None:
    """phase/final_status (what the indexes hold instead of the status) follow the events, and the
    updates within a phase are HOT (pg_stat counts them)."""

    def phase(order_id: str) -> tuple[str, str | None]:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT phase, final_status FROM orders WHERE id = %s", (order_id,)).fetchone()
        assert row is not None
        return row[0], row[1]

    def hot_updates() -> int:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'orders'"
            ).fetchone()
        return int(row[0]) if row else 0

    orders = [await create(stub) for _ in range(20)]
    assert phase(orders[0].order_id) == ("active", None)
    before = hot_updates()
    for seq, status in ((2, ROUTING), (3, BUILDING), (4, SUBMITTED)):
        await stub.AppendEvents(
            S.AppendEventsRequest(events=[event(o.order_id, seq, status) for o in orders])
        )
    assert phase(orders[0].order_id) == ("active", None)
    await stub.AppendEvents(S.AppendEventsRequest(events=[event(o.order_id, 5, CONFIRMED) for o in orders]))
    assert phase(orders[0].order_id) == ("done", "confirmed")
    listed = await stub.ListOrders(S.ListOrdersRequest(status=CONFIRMED, limit=200))
    assert {o.order_id for o in orders} <= {o.order_id for o in listed.orders}
    deadline = time.monotonic() + 5
    while hot_updates() - before < 40 and time.monotonic() < deadline:  # stats arrive within ~1 s
        await asyncio.sleep(0.2)
    # 60 running updates; a page without room may make one non-HOT, most must be HOT
    assert hot_updates() - before >= 40


async def test_get_order_stream_never_answers_a_failed_read_as_missing(
    stub: OrdersStub, service: Running
) -> None:
    """Found → orders; no such order → missing; a read that failed (here the pool is closed) →
    unavailable, which the executor asks again, never 'order not found'."""
    order = await create(stub)
    unknown = str(uuid.uuid4())

    async def read(ids: list[str]) -> S.GetOrdersResponse:
        call = stub.GetOrderStream()  # deadline-exempt: the test closes it
        await call.write(S.GetOrdersRequest(order_ids=ids))
        await call.done_writing()
        merged = S.GetOrdersResponse()
        async for message in call:
            merged.MergeFrom(message)
        return merged

    found = await read([order.order_id, unknown, "not-a-uuid"])
    assert [o.order_id for o in found.orders] == [order.order_id]
    assert sorted(found.missing) == sorted([unknown, "not-a-uuid"]) and not found.unavailable
    await service.pool.close()
    failed = await read([order.order_id])
    assert list(failed.unavailable) == [order.order_id] and not failed.missing and not failed.orders


async def test_nothing_is_stored_to_sign_for_an_order_that_ended(stub: OrdersStub) -> None:
    """A signed transaction is never stored (so never sent) for a failed or cancelled order; the
    refusal names the order and its status, and an unknown order is NOT_FOUND as before."""
    oid = (await create(stub)).order_id
    await stub.AppendEvent(
        S.NewEvent(order_id=oid, seq=2, status=S.ORDER_STATUS_FAILED, data_json='{"reason":"x"}')
    )
    for call in (
        stub.RecordExecution(execution(oid, 1)),
        stub.RecordExecutions(S.RecordExecutionsRequest(executions=[execution(oid, 1)])),
    ):
        try:
            result = await call
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "order_id: the order is failed" in (exc.details() or "")
        else:  # the batch call answers per member
            (member,) = result.results
            assert member.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
            assert "the order is failed" in member.message
    assert list((await stub.ListExecutions(S.ListExecutionsRequest(order_id=oid))).executions) == []
    await expect_error(stub.RecordExecution(execution(str(uuid.uuid4()), 1)), grpc.StatusCode.NOT_FOUND)


async def test_a_signed_record_waiting_on_a_failing_append_sees_the_failure(
    stub: OrdersStub, database_url: str
) -> None:
    """The race the row lock decides: an append holds the order's row (FOR UPDATE) and commits
    `failed` while a signed transaction of the order is being stored. The store waits for the lock,
    then reads the row again: it stores nothing."""
    oid = (await create(stub)).order_id
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("SELECT 1 FROM orders WHERE id = %s FOR UPDATE", (oid,))  # the append's lock
        record = asyncio.ensure_future(stub.RecordExecution(execution(oid, 1)))
        await asyncio.sleep(0.3)
        assert not record.done()  # waiting for the row
        await conn.execute(
            "UPDATE orders SET status = 'failed', phase = 'done', final_status = 'failed', last_seq = 2 "
            "WHERE id = %s",
            (oid,),
        )
        await conn.commit()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await record
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert list((await stub.ListExecutions(S.ListExecutionsRequest(order_id=oid))).executions) == []


async def test_a_batch_of_signed_records_and_an_append_never_deadlock(
    service: Running, stub: OrdersStub
) -> None:
    """The batch insert locks the orders' rows in id order, as appends do: a batch given in the
    other order waits for an append holding the first row, instead of holding the second and
    deadlocking with it (Postgres used to abort one of them every few thousand orders)."""
    from persistence_svc import store
    from persistence_svc.validation import parse_execution

    low, high = sorted([uuid.UUID((await create(stub)).order_id) for _ in range(2)])
    batch = [parse_execution(execution(str(high), 1)), parse_execution(execution(str(low), 1))]
    async with await psycopg.AsyncConnection.connect(service.settings.database_url) as append:
        await append.execute(
            "SELECT 1 FROM orders WHERE id = %s FOR UPDATE", (low,)
        )  # an append's first lock
        recording = asyncio.ensure_future(store.record_executions(service.pool, batch))
        await asyncio.sleep(0.3)
        assert not recording.done()  # waiting for `low`, holding nothing the append needs next
        async with asyncio.timeout(
            5
        ):  # the append's second lock: free (the deadlock detector acts after 1 s)
            await append.execute("SELECT 1 FROM orders WHERE id = %s FOR UPDATE", (high,))
        await append.commit()
    results = await recording
    assert [r.order_id for r in results if not isinstance(r, Exception)] == [high, low], results


async def test_append_event_stream_stores_an_orders_consecutive_events_together(
    stub: OrdersStub, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One order's consecutive events in one message (the worker's `routing` + `building`) are one
    chain: stored by the one-statement path, the order row updated once with what both set; a chain
    whose first event is refused stores nothing, a gap or an invalid member ends it there."""
    from persistence_svc import store

    checked: list[int] = []
    real_checked = store._append_checked

    async def spy(pool: Any, events: Any) -> Any:
        checked.append(len(events))
        return await real_checked(pool, events)

    monkeypatch.setattr(store, "_append_checked", spy)
    chained, gap, illegal, invalid = [await create(stub) for _ in range(4)]
    route = {"route": {"dex": "raydium_cpmm"}}
    call = stub.AppendEventStream()  # deadline-exempt: the test closes it
    await call.write(
        S.AppendEventsRequest(
            events=[
                event(chained.order_id, 2, ROUTING, {"attempt": 1}, attempts=1, route_json=json.dumps(route)),
                event(chained.order_id, 3, BUILDING, {"attempt": 1}),
            ]
        )
    )
    first: list[S.AppendResult] = []
    while len(first) < 2:
        first.extend((await call.read()).results)
    assert sorted((r.seq, r.code, r.event.status) for r in first) == [(2, 0, ROUTING), (3, 0, BUILDING)]
    assert checked == []  # the chain took the one-statement path
    await call.write(
        S.AppendEventsRequest(
            events=[
                event(gap.order_id, 2, ROUTING),
                event(gap.order_id, 4, BUILDING),  # not consecutive: a chain of its own, refused
                event(illegal.order_id, 2, SUBMITTED),  # pending → submitted is illegal
                event(illegal.order_id, 3, CONFIRMED),
                event(invalid.order_id, 2, ROUTING),
                S.NewEvent(
                    order_id=invalid.order_id, seq=3, status=BUILDING, data_json="[1]"
                ),  # not an object
                event(invalid.order_id, 4, SUBMITTED),
            ]
        )
    )
    await call.done_writing()
    results: dict[tuple[str, int], S.AppendResult] = {}
    while len(results) < 7:
        results.update({(r.order_id, r.seq): r for r in (await call.read()).results})
    code = {k: r.code for k, r in results.items()}
    assert code[(gap.order_id, 2)] == 0
    assert code[(gap.order_id, 4)] == grpc.StatusCode.ABORTED.value[0]
    assert code[(illegal.order_id, 2)] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert code[(illegal.order_id, 3)] != 0
    assert code[(invalid.order_id, 2)] == 0
    assert (
        code[(invalid.order_id, 3)]
        == code[(invalid.order_id, 4)]
        == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    )
    assert "data_json" in results[(invalid.order_id, 4)].message

    def stored(order_id: str) -> list[int]:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute("SELECT seq FROM order_events WHERE order_id = %s ORDER BY seq", (order_id,))
            return [row[0] for row in rows]

    assert stored(chained.order_id) == [1, 2, 3]
    assert stored(gap.order_id) == [1, 2]
    assert stored(illegal.order_id) == [1]
    assert stored(invalid.order_id) == [1, 2]
    got = await stub.GetOrder(S.GetOrderRequest(order_id=chained.order_id))
    assert (got.status, got.last_seq, got.attempts) == (BUILDING, 3, 1)
    assert json.loads(got.route_json) == route
