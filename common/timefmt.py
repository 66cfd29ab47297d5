"""Times on the wire: unix microseconds inside (gRPC), ISO-8601 UTC with milliseconds at the edge.

One place, so an event's `at` is spelled the same whether the WebSocket gets it live (published by
persistence_svc) or from history (read back through the gateway). Exact integer arithmetic: no
float on the way, so no rounding at a millisecond boundary.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_us(at: datetime) -> int:
    """Unix microseconds, exactly."""
    return (at - EPOCH) // _MICROSECOND


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def iso_ms(at: datetime) -> str:
    """2026-11-25T08:00:00.123Z: UTC, milliseconds (truncated), 'Z'."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def iso_ms_from_us(us: int) -> str:
    return iso_ms(from_us(us))
