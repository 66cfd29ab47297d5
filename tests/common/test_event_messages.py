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
