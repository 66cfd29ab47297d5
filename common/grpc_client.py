"""gRPC client channels: one per process and peer, with retries only for idempotent methods."""

from __future__ import annotations

import json

import grpc

# Only reads and calls that carry an idempotency key are retried by the channel itself.
_RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.05s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_IDEMPOTENT_METHODS = {
    "orderengine.v1.Orders": [
        "GetOrder",
        "ListOrders",
        "ListEvents",
        "ListExecutions",
        "ListUnfinishedOrders",
        "AppendEvent",
        "AppendEvents",
        "RecordExecution",
        "CreateOrder",
    ],
    "orderengine.v1.Router": ["Quote"],
}


def _service_config() -> str:
    names = [{"service": s, "method": m} for s, methods in _IDEMPOTENT_METHODS.items() for m in methods]
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": _RETRY_POLICY}]})


def open_channel(address: str) -> grpc.aio.Channel:
    """An insecure channel to `address` with keepalive and the retry policy above."""
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.service_config", _service_config()),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ],
    )
