"""Event appends on the worker's persistence stream (Orders.AppendEventStream).

Each order has at most one append outstanding (its events are sequential; one append may carry
several consecutive events of the order, stored together). Appends written while
the previous message was on its way leave together, and persistence commits whatever arrived
during its previous commit together (one statement, one commit): many events per round trip and
commit under load, no timer when idle, and no call set-up per batch.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

import grpc

from common.errors import status_code
from orderengine.v1 import orders_pb2
from worker.links import EventLink, LinkBroken

log = logging.getLogger(__name__)


class AppendRejected(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, stored: int = 0) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.stored = stored  # events of the same call stored before the refused one


APPEND_TIMEOUT_S = 10.0
# A result with one of these is tried again; ABORTED is not among them: for an event it means its
# seq holds another event (another driver's), which the driver must hear about.
TRANSIENT_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


class EventWriter:
    def __init__(self, link: EventLink, retry_for_s: float = 120.0) -> None:
        self._link = link
        self._retry_for_s = retry_for_s

    @property
    def batches(self) -> int:
        return self._link.messages_written

    @property
    def events(self) -> int:
        return self._link.requests_written

    async def stop(self) -> None:
        await self._link.close()

    async def append(self, event: orders_pb2.NewEvent) -> orders_pb2.OrderEvent:
        """Appends one event (see `append_all`)."""
        (stored,) = await self.append_all([event])
        return stored

    async def append_all(self, events: Sequence[orders_pb2.NewEvent]) -> list[orders_pb2.OrderEvent]:
        """Appends one order's consecutive events together (one message: persistence stores them in
        one batch, in the common case one statement); retries transient failures (a broken stream,
        UNAVAILABLE: appends are idempotent by seq, a stored event asked again is answered as
        stored) until `retry_for_s` has passed. Raises AppendRejected for the first refused event
        (or the last transient failure), naming how many events before it were stored."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for_s
        delay = 0.05
        while True:
            stored: list[orders_pb2.OrderEvent] = []
            try:
                async with asyncio.timeout(APPEND_TIMEOUT_S):
                    results = await self._link.append_all(events)
            except LinkBroken as exc:
                code, message = exc.code, "the persistence stream broke"
            except TimeoutError:
                code, message = grpc.StatusCode.DEADLINE_EXCEEDED, "no answer from persistence"
            else:
                for result in results:
                    if result.code != 0:
                        break
                    stored.append(result.event)
                else:
                    return stored
                code, message = status_code(result.code), result.message
                if code not in TRANSIENT_CODES:
                    raise AppendRejected(code, message, len(stored))
            if loop.time() > deadline:
                raise AppendRejected(code, message, len(stored))
            log.warning("event append failed; retrying", extra={"grpc_code": code.name})
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
