"""The events channel's messages: one event as itself, a batch as a JSON array, in order."""

from __future__ import annotations

import json

import pytest

from common import event_messages


def event(seq: int, pad: str = "") -> str:
    return json.dumps(
        {"type": "status", "orderId": "o", "seq": seq, "data": {"pad": pad}}, separators=(",", ":")
    )


def test_one_event_travels_as_itself_and_many_as_one_array() -> None:
    assert event_messages.pack([event(1)]) == [event(1)]
    (batch,) = event_messages.pack([event(1), event(2), event(3)])
    assert json.loads(batch) == [json.loads(event(s)) for s in (1, 2, 3)]
    assert [text for _, text in event_messages.unpack(batch.encode())] == [event(1), event(2), event(3)]
    assert [doc["seq"] for doc, _ in event_messages.unpack(event(7).encode())] == [7]
    assert event_messages.pack([]) == []


def test_a_big_batch_is_split_in_order_by_count_and_size() -> None:
    texts = [event(s) for s in range(1, 1202)]
    packed = event_messages.pack(texts)
    assert len(packed) == 3  # 500 + 500 + 201
    assert [t for p in packed for _, t in event_messages.unpack(p)] == texts
    big = [event(s, "x" * 400_000) for s in range(1, 6)]
    packed = event_messages.pack(big)
    assert all(len(p) <= event_messages.MAX_MESSAGE_BYTES for p in packed) and len(packed) == 3
    assert [t for p in packed for _, t in event_messages.unpack(p)] == big


def test_malformed_messages_raise_and_non_objects_are_skipped() -> None:
    with pytest.raises(ValueError):
        list(event_messages.unpack(b"{not json"))
    assert [d["seq"] for d, _ in event_messages.unpack(b'[1, "x", {"seq": 2}]')] == [2]
    assert list(event_messages.unpack(b"42")) == []


def test_heads_are_read_without_parsing_exactly_as_persistence_writes_them() -> None:
    """`heads` relies on the field order of persistence's own message (publisher.event_message):
    built from real rows, every event's (order id, seq, status) comes back, in order; a look-alike
    inside an event's data (quotes escaped there) is not taken for an event."""
    import uuid
    from datetime import UTC, datetime

    from persistence_svc.models import EventRow
    from persistence_svc.publisher import event_message

    ids = [uuid.uuid4() for _ in range(3)]
    look_alike = '{"type":"status","orderId":"' + str(ids[0]) + '","seq":9,"status":"open"}'
    sneaky = json.dumps({"note": look_alike})
    rows = [
        EventRow(ids[0], 2, "routing", {}, datetime.now(UTC), sneaky),
        EventRow(ids[1], 5, "confirmed", {}, datetime.now(UTC), '{"amountOut":"1"}'),
        EventRow(ids[2], 3, "open", {}, datetime.now(UTC), '{"type":"limit"}'),
    ]
    (message,) = event_messages.pack([event_message(r) for r in rows])
    assert list(event_messages.heads(message.encode())) == [
        (str(ids[0]), 2, "routing"),
        (str(ids[1]), 5, "confirmed"),
        (str(ids[2]), 3, "open"),
    ]
    assert list(event_messages.heads(event_message(rows[1]).encode())) == [(str(ids[1]), 5, "confirmed")]
