"""The transactional outbox: an event committed in Postgres reaches Redis even if this process dies
between the commit and the publish, or Redis is down at that moment.

Every event is written with a row in `event_outbox` (store.py, same statement). After a successful
publish the publisher hands the events' keys to `published()`, which deletes their rows off the
RPC's path: gathered for up to 200 ms, one statement, and a commit that does not wait for its WAL
flush (a lost delete costs only a repeat). The relay runs at start and every `interval_s`: it
publishes the events whose rows are older than `age_s` (in (order_id, seq) order) and deletes those
rows in the same transaction. An event may so be published twice (a crash after the publish and
before the delete); subscribers drop repeats by seq (gateway/ws.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from persistence_svc import store
from persistence_svc.models import EventRow, utcnow
from persistence_svc.publisher import EventKey, RedisPublisher, event_message

log = logging.getLogger(__name__)

RELAY_BATCH = 1000


class Outbox:
    def __init__(
        self, pool: AsyncConnectionPool, publisher: RedisPublisher, age_s: float, interval_s: float
    ) -> None:
        self.pool = pool
        self.publisher = publisher
        self.age = timedelta(seconds=age_s)
        self.interval_s = interval_s
        # Rows are deleted well before the relay would take them (it republishes only rows older
        # than age_s; a repeat would be harmless, subscribers drop it by seq, but costs a publish).
        self.clean_delay_s = min(age_s / 10, 0.2)
        self.relayed = 0
        self._done: list[EventKey] = []
        self._cleaner: asyncio.Task[None] | None = None
        self._relay: asyncio.Task[None] | None = None

    # --- rows of published events ---------------------------------------------------------------

    def published(self, keys: Sequence[EventKey]) -> None:
        """Schedules the deletion of these rows. Deletes are gathered for `clean_delay_s` (a tenth
        of the relay's age, at most 200 ms) and go as one statement: under load one delete (and one
        commit) serves hundreds of events instead of one per publish."""
        self._done.extend(keys)
        if self._cleaner is None or self._cleaner.done():
            self._cleaner = asyncio.create_task(self._clean(), name="outbox-clean")

    async def _clean(self) -> None:
        while self._done:
            if self.clean_delay_s > 0:
                await asyncio.sleep(self.clean_delay_s)
            batch, self._done = self._done, []
            try:
                await store.delete_outbox(self.pool, batch)
            except (psycopg.Error, PoolTimeout) as exc:
                # The rows stay; the relay publishes them once more later (a harmless repeat).
                log.warning(
                    "cannot delete published outbox rows",
                    extra={"rows": len(batch), "error": type(exc).__name__},
                )

    # --- the relay --------------------------------------------------------------------------------

    async def relay_once(self) -> int:
        """Publishes every event left in the outbox for longer than `age_s`; returns how many."""
        total = 0
        while True:
            n = await store.relay_outbox(self.pool, utcnow() - self.age, RELAY_BATCH, self._publish)
            total += n
            if n < RELAY_BATCH:
                break
        if total:
            self.relayed += total
            log.info("relayed unpublished events", extra={"events": total})
        return total

    async def _publish(self, events: list[EventRow]) -> bool:
        # whether an event concerns a resting order is not known here: the resting books get every
        # relayed event too (they skip what they do not hold), so no state change is lost to them
        messages = [event_message(e) for e in events]
        return await self.publisher.publish_messages(messages, resting=messages)

    def start(self) -> None:
        if self.interval_s > 0:
            self._relay = asyncio.create_task(self._run(), name="outbox-relay")

    async def _run(self) -> None:
        while True:
            try:
                await self.relay_once()
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("outbox relay failed; retrying", extra={"error": type(exc).__name__})
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        """Stops the relay and finishes the pending deletes (call before closing the pool)."""
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
        self.clean_delay_s = 0.0  # what is gathered goes now
        if self._cleaner is not None:
            await asyncio.wait([self._cleaner], timeout=5.0)
