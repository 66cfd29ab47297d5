"""Event appends on the worker's persistence stream (Orders.AppendEventStream).

Each order has at most one append outstanding (its events are sequential). Appends written while
the previous message was on its way leave together, and persistence commits whatever arrived
during its previous commit together (one statement, one commit): many events per round trip and
commit under load, no timer when idle, and no call set-up per batch.
"""

from __future__ import annotations

import asyncio
import logging
import random

import grpc

from common.errors import status_code
from orderengine.v1 import orders_pb2
from worker.links import EventLink, LinkBroken

log = logging.getLogger(__name__)


class AppendRejected(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


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
        """Appends one event; retries transient failures (a broken stream, UNAVAILABLE: appends are
        idempotent by seq) until `retry_for_s` has passed. Raises AppendRejected for a refused event
        (or the last transient failure)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for_s
        delay = 0.05
        while True:
            try:
                async with asyncio.timeout(APPEND_TIMEOUT_S):
                    result = await self._link.append(event)
            except LinkBroken as exc:
                code, message = exc.code, "the persistence stream broke"
            except TimeoutError:
                code, message = grpc.StatusCode.DEADLINE_EXCEEDED, "no answer from persistence"
            else:
                if result.code == 0:
                    return result.event
                code, message = status_code(result.code), result.message
                if code not in TRANSIENT_CODES:
                    raise AppendRejected(code, message)
            if loop.time() > deadline:
                raise AppendRejected(code, message)
            log.warning("event append failed; retrying", extra={"grpc_code": code.name})
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
