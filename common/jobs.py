"""The Redis names the gateway and the worker share, and enqueueing an order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from common.redis_names import events_channel, resting_events_channel

GROUP = "workers"


@dataclass(frozen=True)
class Keys:
    prefix: str

    @property
    def stream(self) -> str:
        return f"{self.prefix}:orders"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:orders:dead"

    @property
    def events(self) -> str:
        return events_channel(self.prefix)

    @property
    def resting_events(self) -> str:
        return resting_events_channel(self.prefix)

    def lock(self, order_id: str) -> str:
        return f"{self.prefix}:lock:{order_id}"

    @property
    def reconciler(self) -> str:
        """The reconciler's lease (one per engine)."""
        return f"{self.prefix}:reconciler"

    @property
    def reconcile(self) -> str:
        """Orders handed to the reconciler (hash: order id → the reason it would have failed)."""
        return f"{self.prefix}:reconcile"

    def idem(self, key: str) -> str:
        return f"{self.prefix}:idem:{key}"


async def ensure_group(redis: aioredis.Redis, keys: Keys) -> None:
    """Creates the stream and its consumer group if missing (idempotent)."""
    try:
        await redis.xgroup_create(keys.stream, GROUP, id="0", mkstream=True)
    except aioredis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


# A job's hint, so that the worker starts without reading the order back from persistence:
SPEC_FIELD = "spec"  # a brand-new order's OrderSpec (the order as created: seq 1, pending)
ORDER_FIELD = "order"  # the whole Order as its enqueuer has just stored it (a triggered resting order)


async def enqueue(redis: aioredis.Redis, keys: Keys, order_id: str, spec: bytes = b"") -> str:
    """Adds an order to the job stream; returns the entry id.

    `spec` (a serialized OrderSpec) lets the worker start a brand-new order without reading it back
    from persistence; jobs without a hint (recovery re-queues) are read first."""
    return (await enqueue_many(redis, keys, [(order_id, spec)]))[0]


async def enqueue_many(
    redis: aioredis.Redis, keys: Keys, orders: Sequence[tuple[str, bytes]], hint: str = SPEC_FIELD
) -> list[str]:
    """`enqueue` for a batch of (order_id, hint): one pipelined round trip (no MULTI: each XADD
    stands alone; a retried batch is harmless: several deliveries of one order are, see
    worker.consumer). `hint` names what the bytes are (SPEC_FIELD or ORDER_FIELD); empty bytes, no
    hint. A hint is only ever a shortcut: a worker whose first append from it is refused reads the
    order instead. Returns the entry ids, in order."""
    if not orders:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for order_id, blob in orders:
            fields: dict[str, str | bytes] = {"order_id": order_id}
            if blob:
                fields[hint] = blob
            pipe.xadd(keys.stream, fields)  # type: ignore[arg-type]
        entries = await pipe.execute()
    return [e.decode() if isinstance(e, bytes) else str(e) for e in entries]


async def backlog(redis: aioredis.Redis, keys: Keys) -> int:
    """Jobs not yet finished: entries never delivered plus entries delivered and not acknowledged.

    Acknowledged entries are deleted by the worker, so the stream length is the backlog."""
    return int(await redis.xlen(keys.stream))
