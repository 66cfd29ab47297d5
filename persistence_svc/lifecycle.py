"""The order lifecycle: statuses, their proto enum values, and the legal transitions (one place).

pending → routing → building → submitted → confirmed, or → failed with a reason. A retry is a new
`routing` event, so routing may follow routing, building and submitted. confirmed and failed are
terminal. See docs/CONVENTIONS.md.
"""

from __future__ import annotations

from typing import Final

from common.errors import FailedPrecondition
from orderengine.v1 import orders_pb2

PENDING: Final = "pending"
ROUTING: Final = "routing"
BUILDING: Final = "building"
SUBMITTED: Final = "submitted"
CONFIRMED: Final = "confirmed"
FAILED: Final = "failed"

STATUSES: Final = (PENDING, ROUTING, BUILDING, SUBMITTED, CONFIRMED, FAILED)
TERMINAL: Final = frozenset({CONFIRMED, FAILED})

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    PENDING: frozenset({ROUTING, FAILED}),
    ROUTING: frozenset({ROUTING, BUILDING, FAILED}),
    BUILDING: frozenset({ROUTING, SUBMITTED, FAILED}),
    SUBMITTED: frozenset({SUBMITTED, ROUTING, CONFIRMED, FAILED}),
    CONFIRMED: frozenset(),
    FAILED: frozenset(),
}

_TO_PROTO: Final[dict[str, orders_pb2.OrderStatus]] = {
    PENDING: orders_pb2.ORDER_STATUS_PENDING,
    ROUTING: orders_pb2.ORDER_STATUS_ROUTING,
    BUILDING: orders_pb2.ORDER_STATUS_BUILDING,
    SUBMITTED: orders_pb2.ORDER_STATUS_SUBMITTED,
    CONFIRMED: orders_pb2.ORDER_STATUS_CONFIRMED,
    FAILED: orders_pb2.ORDER_STATUS_FAILED,
}
_FROM_PROTO: Final[dict[int, str]] = {int(v): k for k, v in _TO_PROTO.items()}


def is_legal(current: str, new: str) -> bool:
    """Whether an order in status `current` may move to `new`."""
    return new in TRANSITIONS.get(current, frozenset())


def check_transition(current: str, new: str) -> None:
    """Raises FailedPrecondition("illegal transition confirmed → routing") unless legal."""
    if not is_legal(current, new):
        raise FailedPrecondition(f"illegal transition {current} → {new}")


def to_proto(status: str) -> orders_pb2.OrderStatus:
    return _TO_PROTO[status]


def from_proto(value: int) -> str | None:
    """The status name of a proto enum value; None for UNSPECIFIED or an unknown value."""
    return _FROM_PROTO.get(int(value))
