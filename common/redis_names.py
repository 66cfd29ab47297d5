"""Redis names more than one service relies on (all under the REDIS_PREFIX of the settings)."""

from __future__ import annotations


def events_channel(prefix: str) -> str:
    """The channel persistence_svc publishes committed events on and every gateway subscribes to."""
    return f"{prefix}:events"


def resting_events_channel(prefix: str) -> str:
    """The channel persistence_svc publishes the events of resting orders on (an order opens, or
    leaves `open`): the worker's resting books follow it instead of every market order's events."""
    return f"{prefix}:events:resting"
