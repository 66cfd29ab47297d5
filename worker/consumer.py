"""The worker: takes order jobs from the Redis stream and drives each order to confirmed or failed.

Delivery is at-least-once (a Redis Streams consumer group); an entry is acknowledged only after its
order reached a terminal status. Several deliveries of one order are harmless: a per-order lock
keeps one driver at a time, events are appended by seq (a repeat is a no-op), and the executor
resumes a stored transaction instead of signing a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from typing import Any

import grpc
import redis.asyncio as aioredis

from common import jobs, lifecycle
from common.grpc_client import open_channel, open_stream_channel
from common.log import order_id_var
from common.redis_client import open_redis
from common.settings import Settings
from orderengine.v1 import executor_pb2_grpc, orders_pb2, orders_pb2_grpc, router_pb2_grpc
from worker.driver import ORDERS_INFLIGHT, QUEUE_WAIT_SECONDS, LiveExecution, OrderDriver, Superseded
from worker.events import AppendRejected, EventWriter
from worker.lease import RELEASE_IF_MINE
from worker.links import EventLink, ExecutorLink, RouterLink
from worker.reconciler import Reconciler
from worker.redis_batch import RedisBatcher
from worker.sniper import SniperWatch
from worker.throttle import OrderThrottle
from worker.triggers import TriggerLoop

log = logging.getLogger(__name__)
# the weight of the latest outcome in the moving average of how long swaps take to land after their
# send (Worker.landing_s)
LANDING_WEIGHT = 0.2

# A stream entry as the worker drives it: (entry id, fields).
Entry = tuple[bytes | str, dict[Any, Any]]


def stream_entries(messages: object) -> list[Entry]:
    """The (entry id, fields) pairs of a stream reply's messages. An entry deleted from the stream
    while pending (fields None) is left out."""
    found: list[Entry] = []
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, list | tuple) and len(message) == 2:
            entry_id, fields = message
            if isinstance(entry_id, bytes | str) and isinstance(fields, dict):
                found.append((entry_id, fields))
    return found


def read_group_entries(reply: object) -> list[Entry]:
    """The entries of an XREADGROUP reply: [[stream, messages], ...] (RESP2), {stream: messages}
    (RESP3), or None when the block timed out."""
    if isinstance(reply, dict):
        per_stream = list(reply.values())
    elif isinstance(reply, list):
        per_stream = [item[1] for item in reply if isinstance(item, list | tuple) and len(item) == 2]
    else:
        per_stream = []
    return [entry for messages in per_stream for entry in stream_entries(messages)]


def _hint(order_id: str, fields: dict[Any, Any]) -> orders_pb2.Order | None:
    """The order as a fresh job's enqueuer stored it (common.jobs): a whole Order, or a new order's
    spec (as created: seq 1, pending); None without one. A malformed hint, or one for another
    order, is ignored: the order is read instead."""
    order_raw = fields.get(jobs.ORDER_FIELD.encode()) or fields.get(jobs.ORDER_FIELD)
    spec_raw = fields.get(jobs.SPEC_FIELD.encode()) or fields.get(jobs.SPEC_FIELD)
    try:
        if order_raw:
            order = orders_pb2.Order.FromString(order_raw)
            return order if order.order_id == order_id and order.last_seq > 0 else None
        if spec_raw:
            spec = orders_pb2.OrderSpec.FromString(spec_raw)
            return orders_pb2.Order(
                order_id=order_id, spec=spec, status=orders_pb2.ORDER_STATUS_PENDING, last_seq=1
            )
    except Exception:  # noqa: BLE001 - a malformed hint is ignored; the order is read instead
        return None
    return None


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = jobs.Keys(settings.redis_prefix)
        self.name = settings.worker_name or f"{socket.gethostname()}-{os.getpid()}"
        self.redis = open_redis(settings)
        self._channels = {
            "orders": open_channel(settings.persistence_addr, settings, "worker"),
            "router": open_channel(settings.router_addr, settings, "worker"),
            "executor": open_channel(settings.executor_addr, settings, "worker"),
        }
        self.orders = orders_pb2_grpc.OrdersStub(self._channels["orders"])
        self.router = router_pb2_grpc.RouterStub(self._channels["router"])
        self.executor = executor_pb2_grpc.ExecutorStub(self._channels["executor"])
        # the hot path's two long-lived streams, on channels of their own without interceptors
        router_stream, router_auth = open_stream_channel(settings.router_addr, settings, "worker")
        executor_stream, executor_auth = open_stream_channel(settings.executor_addr, settings, "worker")
        self._channels["router-stream"] = router_stream
        self._channels["executor-stream"] = executor_stream
        self.executor_link = ExecutorLink(executor_pb2_grpc.ExecutorStub(executor_stream), executor_auth)
        self.router_link = RouterLink(router_pb2_grpc.RouterStub(router_stream), router_auth)
        orders_stream, orders_auth = open_stream_channel(settings.persistence_addr, settings, "worker")
        self._channels["orders-stream"] = orders_stream
        self.events = EventWriter(EventLink(orders_pb2_grpc.OrdersStub(orders_stream), orders_auth))
        linger_s = settings.batch_linger_ms / 1000
        self.batch = RedisBatcher(self.redis, linger_s=linger_s)
        self.reconciler = Reconciler(self)
        self.triggers = TriggerLoop(self)  # resting orders (limit, stop): one loop per engine
        self.sniper = SniperWatch(self)  # sniper orders: one watch per engine
        self.slots = asyncio.Semaphore(settings.worker_concurrency)
        self.throttle = OrderThrottle(self.redis, settings.redis_prefix, settings.orders_per_minute)
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.completed = 0
        # How long swaps have recently taken to land (or fail) after their send, a moving average
        # (0: none yet). The driver holds a `submitted` event for its outcome only while this is
        # within SUBMITTED_HOLD_MS: where swaps take longer (a real cluster, a busy engine), holding
        # would only delay the event, and it is appended at once.
        self.landing_s = 0.0

    def note_landing(self, seconds: float) -> None:
        if self.landing_s == 0:
            self.landing_s = seconds
        else:
            self.landing_s += LANDING_WEIGHT * (seconds - self.landing_s)

    async def backoff(self, retry_number: int) -> None:
        """Exponential backoff with full jitter; the worker slot is released while waiting."""
        cap = min(self.settings.retry_max_ms, self.settings.retry_base_ms * 2 ** (retry_number - 1))
        delay = random.uniform(cap / 2, cap) / 1000
        self.slots.release()
        try:
            await asyncio.sleep(delay)
        finally:
            await self.slots.acquire()

    async def wait_for_turn(self) -> None:
        """Honours ORDERS_PER_MINUTE (engine-wide); the worker slot is released while waiting."""
        while (wait_s := await self.throttle.try_acquire()) > 0:
            self.slots.release()
            try:
                await asyncio.sleep(wait_s)
            finally:
                await self.slots.acquire()

    # --- consuming -----------------------------------------------------------------------------
    async def start(self) -> None:
        await jobs.ensure_group(self.redis, self.keys)
        self._tasks = [
            asyncio.create_task(self._consume(), name="consume"),
            asyncio.create_task(self._reclaim(), name="reclaim"),
            asyncio.create_task(self.reconciler.run(), name="reconciler"),
            asyncio.create_task(self.triggers.run(), name="triggers"),
            asyncio.create_task(self.sniper.run(), name="sniper"),
        ]

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stops taking jobs; waits up to grace_s for in-flight orders, leaves the rest unacknowledged
        (another worker reclaims them)."""
        self.stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.inflight:
            await asyncio.wait(list(self.inflight.values()), timeout=grace_s)
        # Cancel the rest all at once (a job cancelled in its backoff takes a slot back, which
        # another cancelled job gives up); their locks are released, their entries stay pending.
        left = list(self.inflight.values())
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=5.0)
        await self.reconciler.stop()
        await self.triggers.stop()
        await self.sniper.stop()
        await self.events.stop()
        await self.batch.stop()
        await self.executor_link.close()
        await self.router_link.close()
        for channel in self._channels.values():
            await channel.close()
        await self.redis.aclose()

    async def _consume(self) -> None:
        backoff = 0.1
        while not self.stopping.is_set():
            await self.slots.acquire()
            free = 1
            while free < 100 and not self.slots.locked():
                await self.slots.acquire()
                free += 1
            try:
                entries = await self.redis.xreadgroup(
                    jobs.GROUP, self.name, {self.keys.stream: ">"}, count=free, block=1000
                )
                backoff = 0.1
            except asyncio.CancelledError:
                for _ in range(free):
                    self.slots.release()
                raise
            except aioredis.ResponseError as exc:
                for _ in range(free):
                    self.slots.release()
                if "NOGROUP" in str(exc):
                    await jobs.ensure_group(self.redis, self.keys)
                    continue
                raise
            except (aioredis.ConnectionError, aioredis.TimeoutError):
                for _ in range(free):
                    self.slots.release()
                log.warning("redis unavailable; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            used = 0
            for entry_id, fields in read_group_entries(entries):
                used += 1
                self._spawn(entry_id, fields, fresh=True)
            for _ in range(free - used):
                self.slots.release()

    def _spawn(self, entry_id: bytes | str, fields: dict[Any, Any], fresh: bool = False) -> None:
        """Starts driving a job; the caller has acquired a slot for it, released when it ends."""
        entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        raw = fields.get(b"order_id") or fields.get("order_id")
        order_id = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        if order_id in self.inflight:
            # already driving this order here: this delivery is a duplicate
            self.slots.release()
            task = asyncio.create_task(self._ack(entry))
            task.add_done_callback(lambda _t: None)
            return

        hint = _hint(order_id, fields) if fresh else None

        if fresh:
            # a stream entry id starts with the time it was added, in ms
            added_ms = entry.partition("-")[0]
            if added_ms.isdigit():
                QUEUE_WAIT_SECONDS.observe(max(0.0, time.time() - int(added_ms) / 1000))

        async def job() -> None:
            ORDERS_INFLIGHT.inc()
            try:
                await self.handle(order_id, entry, hint)
            finally:
                ORDERS_INFLIGHT.dec()
                self.inflight.pop(order_id, None)
                self.slots.release()

        self.inflight[order_id] = asyncio.create_task(job(), name=f"order-{order_id}")

    async def _ack(self, entry: str) -> None:
        """Acknowledges and deletes a finished job (in the batcher's next pipeline, in this order)."""
        await asyncio.gather(
            self.batch.command("XACK", self.keys.stream, jobs.GROUP, entry),
            self.batch.command("XDEL", self.keys.stream, entry),
        )

    async def handle(self, order_id: str, entry: str, hint: orders_pb2.Order | None = None) -> None:
        """Drives one job's order under its lock. `hint` is the order as the job's enqueuer stored
        it (a new order as created, a triggered order after its trigger), so nothing is read back
        first; if anything happened to it since, the driver's first append is refused and the
        order is read instead."""
        token = order_id_var.set(order_id)
        lock = self.keys.lock(order_id)
        try:
            if not order_id:
                log.error("job without an order id; dead-lettering", extra={"entry": entry})
                await self.dead_letter(entry, order_id, "job has no order id")
                return
            ttl = self.settings.order_lock_ttl_ms
            if not await self.batch.command("SET", lock, f"{self.name}:{entry}", "NX", "PX", ttl):
                # another worker drives it right now; this delivery is a duplicate
                await self._ack(entry)
                return
            keeper = asyncio.create_task(self._keep(lock, entry))
            try:
                await self.wait_for_turn()
                finished = False
                if hint is not None:
                    try:
                        await OrderDriver(self, hint).run()
                        finished = True
                    except Superseded as exc:
                        if exc.appended:
                            raise
                if not finished:
                    order = await self.orders.GetOrder(
                        orders_pb2.GetOrderRequest(order_id=order_id), timeout=10.0, wait_for_ready=True
                    )
                    if order.status not in lifecycle.TERMINAL_PROTO:
                        await OrderDriver(self, order).run()
                self.completed += 1
                await self._ack(entry)
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
                with contextlib.suppress(aioredis.RedisError):
                    await self._release(lock, entry)
        except Superseded as exc:
            log.info("order superseded by another driver", extra={"detail": str(exc)})
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                await self.dead_letter(entry, order_id, "unknown order")
            else:
                # leave unacknowledged: it is reclaimed and retried (bounded by MAX_DELIVERIES)
                log.warning("job interrupted; left for retry", extra={"grpc_code": exc.code().name})
        except aioredis.RedisError as exc:
            log.warning("redis unavailable during a job; left for retry", extra={"error": type(exc).__name__})
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a job must never kill the worker
            log.exception("job crashed; left for retry")
        finally:
            order_id_var.reset(token)

    async def _release(self, lock: str, entry: str) -> None:
        await self.batch.command("EVAL", RELEASE_IF_MINE, 1, lock, f"{self.name}:{entry}")

    async def _keep(self, lock: str, entry: str) -> None:
        """Renews the order lock and keeps the stream entry's idle time low while driving."""
        while True:
            ttl = self.settings.order_lock_ttl_ms
            await asyncio.sleep(min(ttl, self.settings.claim_idle_ms) / 3000)
            with contextlib.suppress(aioredis.RedisError):
                if not await self.redis.pexpire(lock, ttl):
                    # gone (Redis restarted empty): take it again so recovery leaves this order alone
                    await self.redis.set(lock, f"{self.name}:{entry}", nx=True, px=ttl)
                await self.redis.xclaim(self.keys.stream, jobs.GROUP, self.name, 0, [entry], justid=True)

    async def dead_letter(self, entry: str, order_id: str, reason: str) -> None:
        await self.redis.xadd(
            self.keys.dead,
            {"order_id": order_id, "entry": entry, "reason": reason},
            maxlen=100_000,
            approximate=True,
        )
        if order_id:
            with contextlib.suppress(grpc.aio.AioRpcError, Superseded, AppendRejected):
                order = await self.orders.GetOrder(
                    orders_pb2.GetOrderRequest(order_id=order_id), timeout=10.0, wait_for_ready=True
                )
                if order.status not in lifecycle.TERMINAL_PROTO:
                    why = f"dead-lettered: {reason}"
                    try:
                        await OrderDriver(self, order).fail(why, order.attempts, settle=False)
                    except LiveExecution:
                        # never failed while its swap may land: the reconciler follows it instead
                        await self.reconciler.hand_over(order_id, why)
        await self._ack(entry)

    async def _reclaim(self) -> None:
        """Takes over entries left pending by dead consumers; dead-letters those delivered too often."""
        interval = max(self.settings.claim_idle_ms / 4000, 0.2)
        while not self.stopping.is_set():
            await asyncio.sleep(interval)
            try:
                pending = await self.redis.xpending_range(
                    self.keys.stream,
                    jobs.GROUP,
                    min="-",
                    max="+",
                    count=100,
                    idle=self.settings.claim_idle_ms,
                )
            except aioredis.RedisError:
                continue
            for item in pending:
                if self.stopping.is_set():
                    break
                # Wait for a free slot (the consume loop holds the free ones while it blocks on
                # XREADGROUP and gives them back at least every second; waiters are served in turn).
                await self.slots.acquire()
                spawned = False
                try:
                    spawned = await self._take_over(item)
                except (aioredis.RedisError, grpc.aio.AioRpcError) as exc:
                    log.warning(
                        "reclaiming a job failed; retrying later", extra={"error": type(exc).__name__}
                    )
                finally:
                    if not spawned:
                        self.slots.release()

    async def _take_over(self, item: dict[str, Any]) -> bool:
        """Claims one idle pending entry; returns whether it is now driven here (holding a slot)."""
        raw_id = item["message_id"]
        entry = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        claimed = await self.redis.xclaim(
            self.keys.stream, jobs.GROUP, self.name, self.settings.claim_idle_ms, [entry]
        )
        for entry_id, fields in stream_entries(claimed):
            raw = fields.get(b"order_id") or b""
            order_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            if int(item["times_delivered"]) >= self.settings.max_deliveries:
                reason = f"delivered {item['times_delivered']} times without finishing"
                await self.dead_letter(entry, order_id, reason)
                return False
            self._spawn(entry_id, fields)
            return True
        return False
