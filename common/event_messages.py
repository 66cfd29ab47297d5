"""The messages on the events channel (`common.redis_names.events_channel`).

persistence_svc publishes every committed event as the exact WebSocket status message the gateway
forwards (`{"type":"status","orderId":…,"seq":…,…}`). One Redis message carries either one such
object or a JSON array of them — a batch of events committed together travels as one message (one
PUBLISH, one delivery to each gateway). Events of one order keep their seq order within and across
messages; a consumer drops repeats by seq (the outbox relay may publish an event twice).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

# A batch is split into messages of at most this many events and about this many bytes, so one
# message never holds a gateway's event loop (or Redis's output buffers) for long.
MAX_EVENTS_PER_MESSAGE = 500
MAX_MESSAGE_BYTES = 1 << 20


def pack(texts: Sequence[str]) -> list[str]:
    """Event messages (each a JSON object's text) → the Redis messages that carry them, in order:
    a single event as itself, several as JSON arrays."""
    out: list[str] = []
    chunk: list[str] = []
    size = 0
    for text in texts:
        if chunk and (len(chunk) >= MAX_EVENTS_PER_MESSAGE or size + len(text) > MAX_MESSAGE_BYTES):
            out.append(_join(chunk))
            chunk, size = [], 0
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        out.append(_join(chunk))
    return out


def _join(chunk: list[str]) -> str:
    return chunk[0] if len(chunk) == 1 else "[" + ",".join(chunk) + "]"


def unpack(data: bytes | str) -> Iterator[tuple[dict[str, Any], str]]:
    """A Redis message → each event object with its own compact JSON text (the text received, for a
    single object; serialized once, for a member of an array). Raises ValueError on malformed JSON;
    members that are not objects are skipped."""
    doc = orjson.loads(data)
    if isinstance(doc, dict):
        yield doc, data.decode() if isinstance(data, bytes) else data
    elif isinstance(doc, list):
        for item in doc:
            if isinstance(item, dict):
                yield item, orjson.dumps(item).decode()


# The head of every status message, in the order persistence writes its fields
# (persistence_svc.publisher.event_message). Inside `data` a quote is escaped, so an unescaped
# `{"type":"status","orderId":"` can only start a message object.
_HEAD = re.compile(rb'\{"type":"status","orderId":"([0-9a-f-]{36})","seq":(\d+),"status":"([a-z]+)"')


def heads(raw: bytes) -> Iterator[tuple[str, int, str]]:
    """(order id, seq, status) of each event in a Redis message, without parsing it: for a
    consumer that needs only these (the trigger loop's book follows every event and keeps few)."""
    for match in _HEAD.finditer(raw):
        yield match.group(1).decode(), int(match.group(2)), match.group(3).decode()
