"""Redis names more than one service relies on (all under the REDIS_PREFIX of the settings)."""

from __future__ import annotations


def events_channel(prefix: str) -> str:
    """The channel persistence_svc publishes committed events on and every gateway subscribes to."""
    return f"{prefix}:events"
