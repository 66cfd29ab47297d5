"""gRPC client channels: one per process and peer, balanced over every replica of the peer, with
retries only for idempotent methods.

A configured address `host:port` is dialled as `dns:///host:port`: every address the name resolves
to is a backend (a compose service scaled to N replicas, a Kubernetes headless Service), and the
`round_robin` policy sends each call to the next ready one instead of `pick_first`'s single
connection. The name is resolved again whenever a connection closes, at most every
`_RESOLVE_MIN_INTERVAL_MS`; servers close every connection after `MAX_CONNECTION_AGE_MS`
(common.grpc_server), so new replicas are found within about that time even when none fails.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from common.settings import Settings

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
        "CreateOrders",
    ],
    "orderengine.v1.Router": ["Quote"],
}


# A target that already names its resolver is used as it is (`ipv4:10.0.0.1:50052,10.0.0.2:50052`,
# `dns://8.8.8.8/router:50052`, `unix:/run/router.sock`).
_SCHEMED = re.compile(r"^(dns|ipv4|ipv6|unix|unix-abstract|vsock):")
_RESOLVE_MIN_INTERVAL_MS = 5_000


def target(address: str) -> str:
    """The gRPC target for a configured address: `host:port` becomes `dns:///host:port`."""
    address = address.strip()
    if _SCHEMED.match(address):
        return address
    return f"dns:///{address}"


def service_config() -> dict[str, Any]:
    """round_robin over every resolved address, plus the retry policy of the idempotent methods."""
    names = [{"service": s, "method": m} for s, methods in _IDEMPOTENT_METHODS.items() for m in methods]
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{"name": names, "retryPolicy": _RETRY_POLICY}],
    }


def channel_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.service_config", json.dumps(service_config())),
        # our service config, never one published in DNS TXT records
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.enable_retries", 1),
        ("grpc.dns_min_time_between_resolutions_ms", _RESOLVE_MIN_INTERVAL_MS),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ]


def open_channel(address: str, settings: Settings | None = None, identity: str = "admin") -> grpc.aio.Channel:
    """An insecure channel to every replica behind `address`, with keepalive, round_robin and the
    retry policy above, whose every call presents the service token of `identity` from `settings`
    (common.grpc_auth; None: the defaults, i.e. the development tokens of CHAIN=sim)."""
    from common.grpc_auth import TokenChannel, client_token

    token = client_token(settings, identity)
    return TokenChannel(grpc.aio.insecure_channel(target(address), options=channel_options()), token)


def open_stream_channel(
    address: str, settings: Settings | None = None, identity: str = "admin"
) -> tuple[grpc.aio.Channel, tuple[tuple[str, str]]]:
    """A channel for long-lived streams, and the metadata each stream call must carry.

    No client interceptors: grpc.aio runs an intercepted stream's every message through extra
    tasks, a real cost on a stream that carries every order of a worker. The stream's call puts
    the token in its metadata itself, once."""
    from common.grpc_auth import call_metadata, client_token

    channel = grpc.aio.insecure_channel(target(address), options=channel_options())
    return channel, call_metadata(client_token(settings, identity))
