"""Drives one order through its lifecycle: quote, execute (the executor's stream), events.

The driver knows the order's last seq and status, so it appends only legal events; a refused append
means another driver owns the order (Superseded). Every event goes through the shared EventWriter
(one batched AppendEvents for every order in flight).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import orjson
from prometheus_client import Counter, Gauge, Histogram

from common import lifecycle
from common.amounts import format_amount, format_price
from common.errors import LIVE_EXECUTION_REFUSAL
from common.metrics import LATENCY_BUCKETS
from gateway.views import costs_json, quotes_json, route_json
from orderengine.v1 import executor_pb2, orders_pb2, router_pb2
from worker.events import AppendRejected
from worker.links import LinkBroken, QuoteFailed
from worker.sniper import sniper_floor
from worker.triggers import limit_out, resting_json, with_limit

if TYPE_CHECKING:
    from worker.consumer import Worker

log = logging.getLogger(__name__)

S = orders_pb2  # statuses
Step = tuple["orders_pb2.OrderStatus.ValueType", dict[str, Any], "orders_pb2.OrderUpdate | None"]  # one event
Stage = executor_pb2.ExecutionUpdate
QUOTE_TIMEOUT_S = 5.0
EXECUTE_TIMEOUT_S = 180.0
TRANSIENT_ROUTER_CODES = {
    grpc.StatusCode.UNAVAILABLE: "router unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "quote timed out",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "router rate limited",
    grpc.StatusCode.FAILED_PRECONDITION: "no quote",
}


ORDER_EVENTS = Counter(
    "orderengine_worker_order_events_total",
    "Events this worker appended, by status: orders entering each status (confirmed/failed: orders ended).",
    ["status"],
)
_ORDER_EVENTS: dict[int, Counter] = {
    code: ORDER_EVENTS.labels(name) for code, name in lifecycle.NAMES.items()
}
ORDERS_INFLIGHT = Gauge("orderengine_worker_orders_inflight", "Orders this worker is driving right now.")
STAGE_SECONDS = Histogram(
    "orderengine_worker_stage_seconds",
    "Time of each stage of an attempt: routing (quote asked → route stored), building (build started → "
    "transaction sent), confirming (sent → confirmed).",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
_STAGE = {name: STAGE_SECONDS.labels(name) for name in ("routing", "building", "confirming")}
QUEUE_WAIT_SECONDS = Histogram(
    "orderengine_worker_queue_wait_seconds",
    "Time a new order's job waited in the stream until a worker took it.",
    buckets=LATENCY_BUCKETS,
)
ORDER_SECONDS = Histogram(
    "orderengine_worker_order_seconds",
    "Time from a worker taking an order to its end, by final status.",
    ["status"],
    buckets=LATENCY_BUCKETS,
)


@dataclass
class Outcome:
    terminal: bool
    reason: str = ""
    retryable: bool = False
    nothing_live: bool = False  # a settle found no stored swap that can still land


class LiveExecution(Exception):
    """Persistence refused `failed`: a swap of the order landed or may still land. The order is
    settled (followed until it lands or provably expires) instead of failed."""


class Superseded(Exception):
    """Another driver owns this order now (its seq moved on); stop without acknowledging."""

    def __init__(self, message: str, appended: int) -> None:
        super().__init__(message)
        self.appended = appended  # events this driver had appended before it was refused


def _routed(attempt: int, data: dict[str, Any], routing: dict[str, Any], route: Any) -> Step:
    """The `routing` event of an attempt, which stores its route on the order."""
    update = orders_pb2.OrderUpdate(attempts=attempt, route_json=orjson.dumps(routing).decode(), route=route)
    return S.ORDER_STATUS_ROUTING, data, update


def _handed_over(routed: Step) -> list[Step]:
    """The route and the hand-over to the executor (`building`), appended together: one commit and
    one publish, and the executor starts on a route already stored."""
    return [routed, (S.ORDER_STATUS_BUILDING, {"attempt": routed[1]["attempt"]}, None)]


class OrderDriver:
    """Drives one order; knows the order's last seq and status so it appends only legal events."""

    def __init__(self, worker: Worker, order: orders_pb2.Order) -> None:
        self.w = worker
        self.order = order
        self.seq = order.last_seq
        self.status = order.status
        self.last_signature = ""
        self.appended = 0
        self.started = time.perf_counter()
        self.quote_at: float | None = None  # when this attempt's quote was asked
        self.building_at: float | None = None
        self.submitted_at: float | None = None
        self.sent_at: float | None = None  # when the executor reported this attempt's send
        self._outcome_due_since: float | None = None  # the same, until its outcome came
        self.held: Step | None = None  # a `submitted` event waiting a little for its outcome
        self._hold_timer: asyncio.TimerHandle | None = None  # ends the hold
        self._releasing: asyncio.Task[None] | None = None  # the held event's append, once the hold ended

    async def append(
        self,
        status: orders_pb2.OrderStatus.ValueType,
        data: dict[str, Any],
        update: orders_pb2.OrderUpdate | None = None,
    ) -> None:
        await self.append_chain([(status, data, update)])

    async def append_chain(self, steps: list[Step]) -> None:
        """Appends consecutive events of the order in one call (persistence stores them together,
        in the common case with one statement and one commit); stops at the first refused one."""
        events = [
            orders_pb2.NewEvent(
                order_id=self.order.order_id,
                seq=self.seq + 1 + k,
                status=status,
                data_json=orjson.dumps(data).decode(),
                update=update,
            )
            for k, (status, data, update) in enumerate(steps)
        ]
        try:
            await self.w.events.append_all(events)
        except AppendRejected as exc:
            self._appended(steps[: exc.stored])
            if exc.code == grpc.StatusCode.FAILED_PRECONDITION and exc.message.startswith(
                LIVE_EXECUTION_REFUSAL
            ):
                raise LiveExecution(exc.message) from None
            if exc.code in (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION):
                raise Superseded(exc.message, self.appended) from None
            raise
        self._appended(steps)

    def _appended(self, steps: list[Step]) -> None:
        for status, _, _ in steps:
            self.seq += 1
            self.status = status
            self.appended += 1
            self._measure(status)

    def _measure(self, status: int) -> None:
        """Counts the event and times the stage it ends (cheap: no label lookups)."""
        _ORDER_EVENTS[status].inc()
        now = time.perf_counter()
        if status == S.ORDER_STATUS_ROUTING:
            if self.quote_at is not None:
                _STAGE["routing"].observe(now - self.quote_at)
                self.quote_at = None
            self.building_at = self.submitted_at = self.sent_at = self._outcome_due_since = None
        elif status == S.ORDER_STATUS_BUILDING:
            self.building_at = now
        elif status == S.ORDER_STATUS_SUBMITTED:
            if self.building_at is not None:
                sent = self.sent_at or now  # a held `submitted` is timed by its send, not its append
                _STAGE["building"].observe(sent - self.building_at)
                self.building_at = None
                self.submitted_at = sent
        elif status == S.ORDER_STATUS_CONFIRMED:
            if self.submitted_at is not None:
                _STAGE["confirming"].observe(now - self.submitted_at)
        if status in lifecycle.TERMINAL_PROTO:
            ORDER_SECONDS.labels(lifecycle.name_of(status)).observe(now - self.started)

    # --- the lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        spec = self.order.spec
        if spec.order_type != orders_pb2.ORDER_TYPE_MARKET and self.status == S.ORDER_STATUS_PENDING:
            await self.append(S.ORDER_STATUS_OPEN, resting_json(spec))  # rests until its trigger
            return
        if self.status == S.ORDER_STATUS_OPEN:
            return  # the trigger loop (worker.triggers) owns it until it triggers
        attempt = self.order.attempts
        retry_of = ""
        executing = self.status in (S.ORDER_STATUS_BUILDING, S.ORDER_STATUS_SUBMITTED)
        if executing and self.order.HasField("route"):
            # A previous driver died mid-execution: resume that attempt (the executor finds the
            # stored transaction and follows it instead of signing anew).
            outcome = await self.execute(attempt, self.order.route)
            if outcome.terminal:
                return
            retry_of = outcome.reason
        while True:
            attempt += 1
            if attempt > self.w.settings.max_attempts:
                await self.fail(retry_of or "no attempts left", attempt - 1)
                return
            if retry_of:
                await self.w.backoff(attempt - 1)
            self.quote_at = time.perf_counter()
            if spec.HasField("quoted_route"):
                # Execute-by-quote: exactly the quoted route with its min-outs, never routed anew
                # (the executor still checks each leg against its own fresh quote).
                next_try = await self.after(await self.execute_quoted(attempt, retry_of), attempt)
                if next_try is None:
                    return
                retry_of = next_try
                continue
            try:
                quote = await self.quote(
                    router_pb2.QuoteRequest(
                        request_id=f"{self.order.order_id}:{attempt}",
                        input_mint=spec.input_mint,
                        output_mint=spec.output_mint,
                        amount_in=spec.amount_in,
                        amount_out=spec.amount_out,  # exact-out: the router quotes the input
                        slippage_bps=spec.slippage_bps,
                        order_id=self.order.order_id,
                    )
                )
            except QuoteFailed as exc:
                reason = TRANSIENT_ROUTER_CODES.get(exc.code)
                detail = exc.message
                data: dict[str, Any] = {"attempt": attempt, "error": f"{reason or 'quote refused'}: {detail}"}
                if retry_of:
                    data["retryOf"] = retry_of
                await self.append(S.ORDER_STATUS_ROUTING, data, orders_pb2.OrderUpdate(attempts=attempt))
                if reason is None:
                    await self.fail(f"quote refused: {detail}", attempt)
                    return
                retry_of = f"{reason}: {detail}" if detail else reason
                continue
            route = quote.route
            floor = limit_out(spec) if spec.order_type == orders_pb2.ORDER_TYPE_LIMIT else sniper_floor(spec)
            if floor and route.amount_out >= floor:
                route = with_limit(route, floor)  # a triggered limit's (sniper's) min-out is its price
            route_view = route_json(route, spec.output_decimals)
            routing = {"quotes": quotes_json(list(quote.quotes), spec.output_decimals), "route": route_view}
            data = {"attempt": attempt, **routing, "slot": quote.slot}
            if retry_of:
                data["retryOf"] = retry_of
            log.debug(
                "routed",
                extra={
                    "attempt": attempt,
                    "dex": route_view["dex"],
                    "amount_out": route.amount_out,
                },
            )
            routed = _routed(attempt, data, routing, route)
            limit = spec.max_price_impact_bps
            refusal = ""
            if limit and route.price_impact_bps > limit:
                refusal = f"price impact {route.price_impact_bps} bps exceeds maxPriceImpactBps {limit}"
            elif route.amount_out < floor:
                refusal = (
                    f"the price moved below the limit after the trigger: the best route pays "
                    f"{route.amount_out}, the limit needs {floor} (base units of the output)"
                )
            if refusal:
                await self.append(*routed)  # the route is on record, then why it is not taken
                await self.fail(refusal, attempt)
                return
            await self.append_chain(_handed_over(routed))
            next_try = await self.after(await self.execute(attempt, route), attempt)
            if next_try is None:
                return
            retry_of = next_try

    async def after(self, outcome: Outcome, attempt: int) -> str | None:
        """What an attempt's outcome leaves: None when the order ended (confirmed, or failed for good
        — unless a swap may still land: fail() settles it), else the reason the next attempt retries."""
        if outcome.terminal:
            return None
        if not outcome.retryable:
            await self.fail(outcome.reason, attempt)
            return None
        return outcome.reason

    async def execute_quoted(self, attempt: int, retry_of: str) -> Outcome:
        """One attempt of an execute-by-quote order: its `routing` event names the quote and carries
        the quoted route (no venue was asked again), then the route runs as quoted."""
        spec = self.order.spec
        route = spec.quoted_route
        routing = {"quotes": [], "route": route_json(route, spec.output_decimals), "quoteId": spec.quote_id}
        data: dict[str, Any] = {"attempt": attempt, **routing}
        if retry_of:
            data["retryOf"] = retry_of
        await self.append_chain(_handed_over(_routed(attempt, data, routing, route)))
        return await self.execute(attempt, route)

    async def quote(self, request: router_pb2.QuoteRequest) -> router_pb2.QuoteResponse:
        """A quote over the worker's router stream. A router restarting is waited for (up to
        QUOTE_TIMEOUT_S), not counted as an attempt."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUOTE_TIMEOUT_S
        pause = 0.05
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    return await self.w.router_link.quote(request)
            except TimeoutError:
                raise QuoteFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "no answer in time") from None
            except LinkBroken as exc:
                if loop.time() + pause >= deadline:
                    raise QuoteFailed(exc.code, "the router stream broke") from None
            await asyncio.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 1.0)

    async def execute(self, attempt: int, route: Any, settle_only: bool = False) -> Outcome:
        """Runs one attempt through the executor; reconnects (same attempt) if the executor dies.
        With `settle_only` nothing is built: the executor follows the stored live swap."""
        spec = self.order.spec
        request = executor_pb2.ExecuteRequest(
            order_id=self.order.order_id,
            attempt=max(attempt, 1),
            input_mint=spec.input_mint,
            output_mint=spec.output_mint,
            amount_in=spec.amount_in,
            amount_out=spec.amount_out,
            route=route,
            settle_only=settle_only,
            urgent=spec.order_type == orders_pb2.ORDER_TYPE_SNIPER,
        )
        reconnects = 0
        while True:
            try:
                async with asyncio.timeout(EXECUTE_TIMEOUT_S):
                    outcome = await self._follow(attempt, request)
            except LinkBroken as exc:
                await self.release_held()  # the send happened, whatever became of the stream
                if reconnects < 20:
                    # the executor restarted: ask again for the same attempt; it resumes
                    reconnects += 1
                    await asyncio.sleep(min(0.1 * 2**reconnects, 2.0) * (0.5 + random.random()))
                    continue
                return Outcome(False, f"executor error: {exc.code.name.lower()}", True)
            except TimeoutError:
                outcome = Outcome(False, "executor error: deadline_exceeded", True)
            except BaseException:
                self._drop_held()
                raise
            await self.release_held()
            return outcome

    async def _follow(self, attempt: int, request: executor_pb2.ExecuteRequest) -> Outcome:
        async for update in self.w.executor_link.execute(request):
            if update.code:
                return Outcome(False, f"execution refused: {update.reason}", update.retryable)
            outcome = await self.on_update(attempt, update)
            if outcome is not None:
                return outcome
        return Outcome(False, "executor ended the stream without a result", True)

    # --- the held `submitted` event -----------------------------------------------------------
    def _hold(self, submitted: Step, hold_s: float) -> None:
        self.held = submitted
        self._hold_timer = asyncio.get_running_loop().call_later(hold_s, self._hold_over)

    def _hold_over(self) -> None:
        """The hold ended before the outcome came: the event is appended now, in the background (the
        driver waits for that append before it appends anything else: `release_held`)."""
        self._hold_timer = None
        if self.held is not None and self._releasing is None:
            held, self.held = self.held, None
            self._releasing = asyncio.create_task(self.append(*held))

    def _take_held(self) -> Step | None:
        """The held event, no longer held (its hold's end cancelled)."""
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        held, self.held = self.held, None
        return held

    async def release_held(self) -> None:
        """Has the held event on record: appends it now, or waits for its append under way."""
        if self._releasing is not None:
            releasing, self._releasing = self._releasing, None
            await releasing
        if (held := self._take_held()) is not None:
            await self.append(*held)

    def _drop_held(self) -> None:
        """The attempt is abandoned (cancelled, superseded): the held event is not appended."""
        self._take_held()
        if self._releasing is not None:
            releasing, self._releasing = self._releasing, None
            releasing.cancel()
            releasing.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def on_update(self, attempt: int, update: executor_pb2.ExecutionUpdate) -> Outcome | None:
        spec = self.order.spec
        if update.stage == Stage.STAGE_BUILDING:
            if self.status == S.ORDER_STATUS_ROUTING:
                await self.append(S.ORDER_STATUS_BUILDING, {"attempt": attempt})
        elif update.stage == Stage.STAGE_SUBMITTED:
            if self.status == S.ORDER_STATUS_SUBMITTED and update.signature == self.last_signature:
                return None
            if update.signature == self.last_signature and (self.held or self._releasing):
                return None
            if self.status in (S.ORDER_STATUS_BUILDING, S.ORDER_STATUS_SUBMITTED, S.ORDER_STATUS_ROUTING):
                await self.release_held()  # another transaction's send: the earlier one is on record
                if self.status == S.ORDER_STATUS_ROUTING:
                    await self.append(S.ORDER_STATUS_BUILDING, {"attempt": attempt})
                submitted: Step = (
                    S.ORDER_STATUS_SUBMITTED,
                    {
                        "attempt": attempt,
                        "signature": update.signature,
                        "lastValidBlockHeight": update.last_valid_block_height,
                        **({"resumed": True} if update.resumed else {}),
                    },
                    orders_pb2.OrderUpdate(tx_hash=update.signature),
                )
                self.last_signature = update.signature
                self.sent_at = self._outcome_due_since = time.perf_counter()
                hold_s = self.w.settings.submitted_hold_ms / 1000
                if hold_s > 0 and self.w.landing_s <= hold_s:
                    # Held a little for the outcome while swaps have been landing within the hold:
                    # one that lands within it has its `submitted` and `confirmed` events appended
                    # together (one commit, one publish).
                    self._hold(submitted, hold_s)
                else:
                    await self.append(*submitted)
        elif update.stage == Stage.STAGE_CONFIRMED:
            price = format_price(
                update.amount_out,
                spec.output_decimals,
                update.amount_in or spec.amount_in,
                spec.input_decimals,
            )
            amount_out = format_amount(update.amount_out, spec.output_decimals)
            self._landed_after_send()
            if self._releasing is not None or (self.held and self.held[1]["signature"] != update.signature):
                await self.release_held()  # (or a resumed order: another of its transactions landed)
            held = self._take_held()  # the outcome came within the hold: both events at once
            steps: list[Step] = [held] if held is not None else []
            if self.status != S.ORDER_STATUS_SUBMITTED and not steps:
                steps.append(
                    (
                        S.ORDER_STATUS_SUBMITTED,
                        {"attempt": attempt, "signature": update.signature},
                        orders_pb2.OrderUpdate(tx_hash=update.signature),
                    )
                )
            steps.append(
                (
                    S.ORDER_STATUS_CONFIRMED,
                    {
                        "txHash": update.signature,
                        "dex": update.dex,
                        "amountOut": amount_out,
                        "amountOutRaw": str(update.amount_out),
                        "amountIn": format_amount(update.amount_in, spec.input_decimals),
                        "amountInRaw": str(update.amount_in),
                        "executedPrice": price,
                        "slot": update.slot,
                        "attempt": attempt,
                        **({"costs": costs_json(update.cost, spec)} if update.HasField("cost") else {}),
                    },
                    orders_pb2.OrderUpdate(
                        cost=update.cost if update.HasField("cost") else None,
                        amount_out=update.amount_out,
                        amount_in=update.amount_in,
                        tx_hash=update.signature,
                        dex=update.dex,
                        executed_price=price,
                    ),
                )
            )
            await self.append_chain(steps)
            log.info(
                "confirmed",
                extra={"dex": update.dex, "amount_out": update.amount_out, "signature": update.signature},
            )
            return Outcome(True)
        elif update.stage == Stage.STAGE_FAILED:
            self._landed_after_send()
            return Outcome(False, update.reason or "execution failed", update.retryable, update.nothing_live)
        return None

    def _landed_after_send(self) -> None:
        """Tells the worker how long this attempt's outcome took after its send (once per send)."""
        if self._outcome_due_since is not None:
            self.w.note_landing(time.perf_counter() - self._outcome_due_since)
            self._outcome_due_since = None

    async def fail(self, reason: str, attempt: int, settle: bool = True) -> None:
        """Ends the order `failed` — unless a swap of it landed or may still land: persistence
        refuses `failed` then, and the order is settled instead (`settle`), or LiveExecution is
        raised for the caller to hand it to the reconciler."""
        while True:
            try:
                await self.append(
                    S.ORDER_STATUS_FAILED,
                    {"reason": reason, "attempt": attempt},
                    orders_pb2.OrderUpdate(failure_reason=reason),
                )
                log.warning("order failed", extra={"reason": reason, "attempt": attempt})
                return
            except LiveExecution:
                if not settle:
                    raise
            log.info("not failing: a swap may still land; settling", extra={"reason": reason})
            if await self.settle(attempt):
                return

    async def settle(self, attempt: int) -> bool:
        """Follows the order's live swap until it lands (→ confirmed, True) or no stored swap can
        land any more (False: the order may now be failed). No attempt limit: the wait is bounded
        by the blockhash's lifetime, and an RPC outage only makes it longer, never a failure."""
        pause = 0.2
        while True:
            outcome = await self.execute(attempt, None, settle_only=True)
            if outcome.terminal:
                return True
            if outcome.nothing_live:
                return False
            log.info("settling: outcome not final yet", extra={"reason": outcome.reason})
            await asyncio.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 5.0)
