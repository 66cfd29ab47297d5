from __future__ import annotations

import itertools

import pytest

from common import lifecycle
from common.errors import FailedPrecondition
from orderengine.v1 import orders_pb2

# Written out from docs/CONVENTIONS.md, independently of lifecycle.TRANSITIONS.
LEGAL = {
    ("pending", "routing"),
    ("pending", "failed"),
    ("routing", "routing"),
    ("routing", "building"),
    ("routing", "failed"),
    ("building", "routing"),
    ("building", "submitted"),
    ("building", "failed"),
    ("submitted", "submitted"),
    ("submitted", "routing"),
    ("submitted", "confirmed"),
    ("submitted", "failed"),
    # resting orders (limit, stop): pending → open, and out of open once
    ("pending", "open"),
    ("open", "routing"),
    ("open", "cancelled"),
    ("open", "expired"),
    ("open", "failed"),
}
STATUSES = [
    "pending",
    "routing",
    "building",
    "submitted",
    "confirmed",
    "failed",
    "open",
    "cancelled",
    "expired",
]
ALL_PAIRS = list(itertools.product(STATUSES, STATUSES))


def test_statuses_are_the_documented_ones() -> None:
    assert list(lifecycle.STATUSES) == STATUSES
    assert set(lifecycle.TRANSITIONS) == set(STATUSES)
    assert lifecycle.TERMINAL == {"confirmed", "failed", "cancelled", "expired"}


@pytest.mark.parametrize(("current", "new"), sorted(LEGAL))
def test_legal_transition(current: str, new: str) -> None:
    assert lifecycle.is_legal(current, new)
    lifecycle.check_transition(current, new)


@pytest.mark.parametrize(("current", "new"), sorted(set(ALL_PAIRS) - LEGAL))
def test_illegal_transition(current: str, new: str) -> None:
    assert not lifecycle.is_legal(current, new)
    with pytest.raises(FailedPrecondition) as err:
        lifecycle.check_transition(current, new)
    assert err.value.message == f"illegal transition {current} → {new}"


@pytest.mark.parametrize("terminal", ["confirmed", "failed", "cancelled", "expired"])
def test_nothing_follows_a_terminal_status(terminal: str) -> None:
    assert not any(lifecycle.is_legal(terminal, s) for s in STATUSES)


def test_nothing_returns_to_pending() -> None:
    assert not any(lifecycle.is_legal(s, "pending") for s in STATUSES)


def test_nothing_returns_to_open_so_a_trigger_happens_once() -> None:
    assert [s for s in STATUSES if lifecycle.is_legal(s, "open")] == ["pending"]


def test_unknown_status_is_never_legal() -> None:
    assert not lifecycle.is_legal("paused", "routing")
    assert not lifecycle.is_legal("routing", "paused")


def test_proto_round_trip() -> None:
    for status in STATUSES:
        value = lifecycle.to_proto(status)
        assert orders_pb2.OrderStatus.Name(value) == f"ORDER_STATUS_{status.upper()}"
        assert lifecycle.from_proto(value) == status
    assert lifecycle.from_proto(orders_pb2.ORDER_STATUS_UNSPECIFIED) is None
    assert lifecycle.from_proto(99) is None
