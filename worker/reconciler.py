"""The reconciler: one per engine, elected through a Redis lease, it settles what no driver holds.

- Orders left unfinished without a job (the job was lost with Redis, the gateway died between commit
  and enqueue, the driver died and its entry was dead-lettered) are queued again once they have been
  idle for RECOVER_AFTER_MS. Postgres is the source of truth.
- Orders the dead-letter path could not fail because a swap of theirs landed or may still land
  (persistence refuses `failed` then) are handed over here: the reconciler follows that swap until
  it lands (the order ends `confirmed` with the landed amounts) or provably expires (then `failed`).

Leadership is a lease (`<prefix>:reconciler`, renewed while held): if the leader dies, another worker
takes over within the lease's lifetime. Two leaders for a moment (a paused process) do no harm: every
order is driven under its own lock, and persistence decides every event by seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import grpc
import redis.asyncio as aioredis

from common import jobs, lifecycle
from common.log import order_id_var
from orderengine.v1 import orders_pb2
from worker.driver import OrderDriver, Superseded
from worker.events import AppendRejected
from worker.lease import RELEASE_IF_MINE, RENEW_IF_MINE, Lease, lead_passes

if TYPE_CHECKING:
    from worker.consumer import Worker

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.interval_s = worker.settings.recover_interval_ms / 1000
        lease_ms = max(int(self.interval_s * 3000), 3000)
        self.lease = Lease(worker.redis, worker.keys.reconciler, worker.name, lease_ms, "reconciler")
        self.settling: dict[str, asyncio.Task[None]] = {}

    # --- handing over ------------------------------------------------------------------------
    async def hand_over(self, order_id: str, reason: str) -> None:
        """Called by the dead-letter path: this order must be settled, not failed."""
        await self.w.redis.hset(self.w.keys.reconcile, order_id, reason)
        log.info("handed to the reconciler: a swap may still land", extra={"order_id": order_id})

    # --- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        await lead_passes(self.w.stopping, self.lease, self.interval_s, self._pass)

    async def _pass(self) -> None:
        await self._recover()
        await self._settle_handed_over()

    async def stop(self) -> None:
        tasks = list(self.settling.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        with contextlib.suppress(aioredis.RedisError):
            await self.lease.release()

    async def _recover(self) -> None:
        """Re-queues unfinished orders idle for RECOVER_AFTER_MS that nobody drives."""
        stale_us = self.w.settings.recover_after_ms * 1000
        now_us = int(time.time() * 1_000_000)
        page = await self.w.orders.ListUnfinishedOrders(
            orders_pb2.ListUnfinishedOrdersRequest(limit=500, older_than_us=now_us - stale_us),
            timeout=10.0,
        )
        handed = await self.w.redis.hkeys(self.w.keys.reconcile)
        skip = {h.decode() if isinstance(h, bytes) else str(h) for h in handed}
        for order in page.orders:
            oid = order.order_id
            if oid in self.w.inflight or oid in self.settling or oid in skip:
                continue
            if await self.w.redis.exists(self.w.keys.lock(oid)):
                continue
            await jobs.enqueue(self.w.redis, self.w.keys, oid)
            log.info("re-queued an unfinished order", extra={"order_id": oid})

    async def _settle_handed_over(self) -> None:
        handed = await self.w.redis.hgetall(self.w.keys.reconcile)
        for raw_id, raw_reason in handed.items():
            oid = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            reason = raw_reason.decode() if isinstance(raw_reason, bytes) else str(raw_reason)
            if oid in self.settling or oid in self.w.inflight:
                continue
            task = asyncio.create_task(self._settle(oid, reason), name=f"settle-{oid}")
            self.settling[oid] = task
            task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self.settling.pop(task.get_name().removeprefix("settle-"), None)

    async def _settle(self, order_id: str, reason: str) -> None:
        token = order_id_var.set(order_id)
        lock, holder = self.w.keys.lock(order_id), f"{self.w.name}:reconcile"
        ttl = self.w.settings.order_lock_ttl_ms
        try:
            if not await self.w.redis.set(lock, holder, nx=True, px=ttl):
                return  # a driver holds it right now; try again next pass
            keeper = asyncio.create_task(self._keep(lock, holder, ttl))
            try:
                order = await self.w.orders.GetOrder(
                    orders_pb2.GetOrderRequest(order_id=order_id), timeout=10.0, wait_for_ready=True
                )
                if order.status not in lifecycle.TERMINAL_PROTO:
                    driver = OrderDriver(self.w, order)
                    if not await driver.settle(max(order.attempts, 1)):
                        await driver.fail(reason, order.attempts)
                await self.w.redis.hdel(self.w.keys.reconcile, order_id)
                log.info("reconciled", extra={"order_id": order_id})
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
                with contextlib.suppress(aioredis.RedisError):
                    await self.w.redis.eval(RELEASE_IF_MINE, 1, lock, holder)
        except (Superseded, AppendRejected) as exc:
            log.info("reconcile superseded", extra={"detail": str(exc)})
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                await self.w.redis.hdel(self.w.keys.reconcile, order_id)
            else:
                log.warning("reconcile interrupted; next pass", extra={"grpc_code": exc.code().name})
        except aioredis.RedisError as exc:
            log.warning("reconcile interrupted; next pass", extra={"error": type(exc).__name__})
        finally:
            order_id_var.reset(token)

    async def _keep(self, lock: str, holder: str, ttl: int) -> None:
        while True:
            await asyncio.sleep(ttl / 3000)
            with contextlib.suppress(aioredis.RedisError):
                await self.w.redis.eval(RENEW_IF_MINE, 1, lock, holder, ttl)
