"""The typed async servicer of `orderengine.v1.Executor`.

`Execute` drives one attempt of one order and streams its stages. The rule it never breaks
(DESIGN.md, "Order lifecycle"): a swap is never sent twice for one order. A new transaction is
stored (RecordExecution, state "signed") before its first send; if that store fails, nothing is
sent. Persistence stores it only while no other execution of the order is live (signed, sent or
landed: a unique index, so two executors racing on one order cannot both store, hence both send);
otherwise it refuses and names the live one, which is resumed instead: reported if it landed, its
very bytes re-sent while it may still land; only once it expired (blockhash too old, signature not
on chain) is ours stored and sent. So a fresh order costs no read before building; a failed build
looks at the stored executions before reporting the failure.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from common.chain import ChainError
from common.chain_pubsub import Watch
from common.dex.spl_token import ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from common.errors import (
    RETRYABLE_CODES,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from common.log import order_id_var
from common.markets import VENUES, Markets
from common.settings import Settings
from common.streams import multiplex
from executor_svc.builder import (
    MEMO_PROGRAM_ID,
    BuildFailed,
    BuiltTx,
    LegPlan,
    OrderPlan,
    TxBuilder,
    associated_token_address,
    describe_transaction_error,
)
from executor_svc.checks import FreshQuoter, OffMarketBound, check_min_outs, check_order
from executor_svc.costs import trade_cost
from executor_svc.records import ExecutionRecorder, OrderReader, RecordRefused
from executor_svc.sender import (
    UNSENDABLE_RPC_CODES,
    Expired,
    Landed,
    LandedWithError,
    Outcome,
    RpcTrouble,
    Sender,
    realized_amounts,
)
from executor_svc.wallet import Wallet
from orderengine.v1 import executor_pb2, executor_pb2_grpc, orders_pb2, orders_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = executor_pb2.DESCRIPTOR.services_by_name["Executor"].full_name
Update = executor_pb2.ExecutionUpdate
Stage = executor_pb2.ExecutionUpdate.Stage
PERSISTENCE_TIMEOUT_S = 5.0
MAY_LAND = ("signed", "sent")
# Refusals of our signed transaction (a live execution found expired in between) before giving up.
MAX_RECORD_TRIES = 3
_COMPUTE_BUDGET_ID = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
_SYSTEM_ID = Pubkey.from_string("11111111111111111111111111111111")


# ------------------------------------------------------------------------------------------------
# request validation


def _mint(value: str, field: str) -> Pubkey:
    if not value:
        raise InvalidArgument("is required", field=field)
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise InvalidArgument("is not a valid base58 address", field=field) from None


def validate_request(request: executor_pb2.ExecuteRequest, markets: Markets) -> OrderPlan:
    """The request as an OrderPlan, or InvalidArgument naming the first bad field."""
    try:
        order_id = str(uuid.UUID(request.order_id))
    except ValueError:
        raise InvalidArgument("must be a UUID", field="order_id") from None
    if request.attempt < 1:
        raise InvalidArgument("must be 1 or more", field="attempt")
    input_mint = _mint(request.input_mint, "input_mint")
    output_mint = _mint(request.output_mint, "output_mint")
    if input_mint == output_mint:
        raise InvalidArgument("must differ from input_mint", field="output_mint")
    exact_out = request.amount_out > 0
    if exact_out and request.amount_in:
        raise InvalidArgument("must be 0 for an exact-out order (amount_out is set)", field="amount_in")
    if request.amount_in <= 0 and not exact_out:
        raise InvalidArgument("must be greater than 0", field="amount_in")
    if request.settle_only:
        # nothing is built: only the stored executions of the order are followed
        return OrderPlan(
            order_id, request.attempt, input_mint, output_mint, request.amount_in, (), request.amount_out
        )
    legs_in = request.route.legs
    if not 1 <= len(legs_in) <= 2:
        raise InvalidArgument(f"must have 1 or 2 legs, got {len(legs_in)}", field="route.legs")
    legs: list[LegPlan] = []
    for i, leg in enumerate(legs_in):
        where = f"route.legs[{i}]"
        if leg.venue not in VENUES:
            raise InvalidArgument(
                f"unknown venue {leg.venue[:40]!r} (known: {', '.join(VENUES)})", field=f"{where}.venue"
            )
        if leg.venue not in markets.programs:
            raise InvalidArgument(
                f"venue {leg.venue} is not configured on this cluster", field=f"{where}.venue"
            )
        pool = _mint(leg.pool, f"{where}.pool")
        # Any pool of the venue's program may be traded, not only the markets file's: pools created
        # after start (sniper orders) too. The builder reads it from the chain and refuses an
        # account the venue's program does not own, or a pool that does not trade the order's pair.
        if any(prev.pool == pool for prev in legs):
            raise InvalidArgument("repeats the pool of another leg", field=f"{where}.pool")
        if leg.amount_in <= 0:
            raise InvalidArgument("must be greater than 0", field=f"{where}.amount_in")
        if leg.min_amount_out <= 0:
            raise InvalidArgument(
                "must be greater than 0 (every swap needs a slippage floor)", field=f"{where}.min_amount_out"
            )
        if leg.exact_out != exact_out:
            raise InvalidArgument(
                "must be set exactly when the request is exact-out (amount_out)", field=f"{where}.exact_out"
            )
        if exact_out:
            if leg.min_amount_out != leg.amount_out:
                raise InvalidArgument(
                    "must equal amount_out for an exact-out leg", field=f"{where}.min_amount_out"
                )
            if leg.max_amount_in < leg.amount_in:
                raise InvalidArgument(
                    "must be at least the leg's quoted amount_in", field=f"{where}.max_amount_in"
                )
        legs.append(
            LegPlan(leg.venue, pool, leg.amount_in, leg.min_amount_out, leg.exact_out, leg.max_amount_in)
        )
    if exact_out:
        delivered = sum(leg.min_amount_out for leg in legs)
        if delivered != request.amount_out:
            raise InvalidArgument(
                f"the legs' amount_out sum to {delivered}, not amount_out {request.amount_out}",
                field="route.legs",
            )
    else:
        total = sum(leg.amount_in for leg in legs)
        if total != request.amount_in:
            raise InvalidArgument(
                f"the legs' amount_in sum to {total}, not amount_in {request.amount_in}", field="route.legs"
            )
    return OrderPlan(
        order_id,
        request.attempt,
        input_mint,
        output_mint,
        request.amount_in,
        tuple(legs),
        request.amount_out,
        urgent=request.urgent,
    )


def instruction_roles(tx: VersionedTransaction, programs: dict[str, Pubkey]) -> dict[int, str]:
    """What each instruction of one of our transactions does, from its program ids (for error
    reasons of a stored transaction)."""
    keys = tx.message.account_keys
    venues = {pid: venue for venue, pid in programs.items()}
    roles: dict[int, str] = {}
    for i, ix in enumerate(tx.message.instructions):
        pid = keys[ix.program_id_index]
        if pid in venues:
            roles[i] = f"{venues[pid]} swap"
        elif pid == _COMPUTE_BUDGET_ID:
            roles[i] = "compute budget"
        elif pid == ASSOCIATED_TOKEN_PROGRAM_ID:
            roles[i] = "create a token account"
        elif pid == _SYSTEM_ID:
            roles[i] = "wrap SOL"
        elif pid in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
            roles[i] = "unwrap SOL" if bytes(ix.data)[:1] == b"\x09" else "wrap SOL"
        elif pid == MEMO_PROGRAM_ID:
            roles[i] = "memo"
    return roles


# ------------------------------------------------------------------------------------------------
# the servicer


async def _dropped(*tasks: asyncio.Future[Any]) -> None:
    """Cancels what is left of `tasks` and waits for them, their errors read (a draft or quote
    that a refusal made moot)."""
    left = [t for t in tasks if not t.done()]
    for task in left:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _close_watch(watching: asyncio.Future[Watch | None]) -> None:
    """Done callback of a subscription no longer followed: closes it once it is taken."""
    if not watching.cancelled() and watching.exception() is None:
        watch = watching.result()
        if watch is not None:
            watch.close()


def _failed(reason: str, retryable: bool) -> Any:
    return Update(stage=Stage.STAGE_FAILED, reason=reason, retryable=retryable)


class ExecutorServicer(executor_pb2_grpc.ExecutorServicer):
    def __init__(
        self,
        builder: TxBuilder,
        sender: Sender,
        orders: orders_pb2_grpc.OrdersAsyncStub,
        markets: Markets,
        wallet: Wallet,
        settings: Settings,
        orders_stream: tuple[orders_pb2_grpc.OrdersAsyncStub, tuple[tuple[str, str], ...]] | None = None,
    ) -> None:
        """`orders` for the occasional calls; `orders_stream` (a stub on a channel without
        interceptors, and the metadata its streams carry) for the hot path's two streams
        (default: the `orders` stub, no metadata)."""
        self._builder = builder
        self._sender = sender
        self._orders = orders
        stream_stub, stream_metadata = orders_stream if orders_stream is not None else (orders, ())
        self._recorder = ExecutionRecorder(stream_stub, stream_metadata)
        self._reader = OrderReader(stream_stub, stream_metadata)
        self._markets = markets
        self._wallet = wallet
        self._programs = {venue: markets.program_id(venue) for venue in markets.programs}
        self._quoter = FreshQuoter(builder.chain, self._programs)
        self._quote_tolerance_bps = settings.executor_quote_tolerance_bps
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}

    async def Execute(
        self,
        request: executor_pb2.ExecuteRequest,
        context: grpc.aio.ServicerContext[executor_pb2.ExecuteRequest, executor_pb2.ExecutionUpdate],
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        async for update in self._run(request):
            yield update

    async def ExecuteBatches(
        self,
        request_iterator: AsyncIterator[executor_pb2.ExecuteBatch],
        context: grpc.aio.ServicerContext[executor_pb2.ExecuteBatch, executor_pb2.ExecutionUpdateBatch],
    ) -> AsyncIterator[executor_pb2.ExecutionUpdateBatch]:
        """Many orders on one stream, many per message (the worker's hot path): each request runs
        concurrently as Execute would, its updates tagged with its order_id and attempt; the updates
        ready together leave in one message. When the caller goes away its requests are cancelled
        (stored transactions stay stored: the next attempt resumes them)."""

        async def groups() -> AsyncIterator[list[executor_pb2.ExecuteRequest]]:
            async for batch in request_iterator:
                yield list(batch.requests)

        async for ready in multiplex(groups(), self._execute_one):
            yield executor_pb2.ExecutionUpdateBatch(updates=ready)

    async def _execute_one(
        self, request: executor_pb2.ExecuteRequest, emit: Callable[[executor_pb2.ExecutionUpdate], None]
    ) -> None:
        """One request of a stream, its updates tagged with its order_id and attempt.

        STAGE_BUILDING (the stored order allows the attempt) leaves with the attempt's next update,
        in the same message: on its own it was one message more each way per order, and a caller
        can do nothing with it before that next update (the send, or why there is none) comes."""
        building: executor_pb2.ExecutionUpdate | None = None
        async for update in self._updates(request):
            update.order_id, update.attempt = request.order_id, request.attempt
            if update.stage == Stage.STAGE_BUILDING:
                building = update
                continue
            if building is not None:
                emit(building)
                building = None
            emit(update)
        if building is not None:
            emit(building)

    async def _updates(
        self, request: executor_pb2.ExecuteRequest
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        """The request's updates; a refusal or crash ends them with its own FAILED update."""
        try:
            async for update in self._run(request):
                yield update
        except DomainError as exc:
            yield Update(
                stage=Stage.STAGE_FAILED,
                reason=exc.client_message(),
                retryable=exc.retryable or exc.code in RETRYABLE_CODES,
                code=exc.code.value[0],
            )
        except Exception:  # noqa: BLE001 - one order's crash is that order's alone
            log.exception("execution crashed", extra={"order_id": request.order_id})
            yield Update(
                stage=Stage.STAGE_FAILED,
                reason="executor error: internal",
                retryable=True,
                code=grpc.StatusCode.INTERNAL.value[0],
            )

    async def _run(self, request: executor_pb2.ExecuteRequest) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        plan = validate_request(request, self._markets)
        token = order_id_var.set(plan.order_id)
        try:
            lock = self._locks.setdefault(plan.order_id, asyncio.Lock())
            self._lock_users[plan.order_id] = self._lock_users.get(plan.order_id, 0) + 1
            try:
                # One attempt of an order at a time in this process: a duplicate call waits and
                # then finds (and resumes) what the first one stored.
                async with lock:
                    steps = self._settle(plan) if request.settle_only else self._execute(plan)
                    async for update in steps:
                        yield update
            finally:
                self._lock_users[plan.order_id] -= 1
                if self._lock_users[plan.order_id] == 0:
                    del self._lock_users[plan.order_id]
                    del self._locks[plan.order_id]
        finally:
            try:
                order_id_var.reset(token)
            except ValueError:  # the generator was finished in another context
                pass

    async def close(self) -> None:
        await self._recorder.stop()
        await self._reader.stop()

    # -- persistence ----------------------------------------------------------------------------

    async def _list_executions(self, order_id: str) -> list[orders_pb2.Execution]:
        response = await self._orders.ListExecutions(
            orders_pb2.ListExecutionsRequest(order_id=order_id),
            timeout=PERSISTENCE_TIMEOUT_S,
            wait_for_ready=True,
        )
        return list(response.executions)

    async def _record(
        self, execution: orders_pb2.Execution, state: str, soon: bool = False
    ) -> orders_pb2.Execution:
        record = orders_pb2.Execution()
        record.CopyFrom(execution)
        record.state = state
        record.ClearField("created_at_us")
        record.ClearField("updated_at_us")
        if soon:
            return await self._recorder.record_soon(record)
        return await self._recorder.record(record)

    async def _record_best_effort(
        self, execution: orders_pb2.Execution, state: str, soon: bool = False
    ) -> None:
        """`soon`: a record nothing waits for, stored with the others made around it (record_soon)."""
        try:
            await self._record(execution, state, soon)
        except RecordRefused as exc:
            # Not fatal: a later attempt looks the signature up on chain again.
            log.warning(
                "cannot record execution state",
                extra={"state": state, "code": exc.code.name, "signature": execution.signature},
            )

    # -- the attempt ----------------------------------------------------------------------------

    async def _stored_order(self, order_id: str) -> orders_pb2.Order:
        """The order as persistence stored it (NotFound, or Unavailable when it cannot be read)."""
        try:
            order = await self._reader.get(order_id)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound("order not found", field="order_id") from None
            raise Unavailable(f"cannot read the order (persistence {exc.code().name})") from None
        return order

    async def _execute(self, plan: OrderPlan) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        # 0. Trust no caller's numbers (executor_svc/checks.py): the stored order must allow this
        #    attempt before anything is signed. It is read while the executor quotes the pools and
        #    builds and simulates the transaction (reads only, nothing signed), which would
        #    otherwise wait for it; a refused attempt drops them unsigned.
        # 1. Build, simulate, sign, without reading anything stored first: a fresh order has
        #    nothing stored, and persistence refuses to store a second live execution of an order,
        #    naming the live one instead (step 2), so nothing stored can be overlooked.
        quoting = asyncio.ensure_future(self._quoter.quote(plan))
        drafting = asyncio.ensure_future(self._builder.draft(plan))
        try:
            order = await self._stored_order(plan.order_id)
            check_order(plan, order)
            yield Update(stage=Stage.STAGE_BUILDING)
            try:
                # the floors come from the same per-slot pool state the draft was built on
                fresh = await quoting
                try:
                    check_min_outs(plan.legs, fresh, order.spec.slippage_bps, self._quote_tolerance_bps)
                except OffMarketBound:
                    # the per-slot cache may hold state older than the caller's quote (a chain
                    # whose slots are shorter than the cache's lifetime, swaps landing within a
                    # slot): never refuse on it, look at the chain's state now, judge and build
                    # on that
                    fresh = await self._quoter.quote(plan, max_age_s=0)
                    check_min_outs(plan.legs, fresh, order.spec.slippage_bps, self._quote_tolerance_bps)
                    await _dropped(drafting)
                    drafting = asyncio.ensure_future(self._builder.draft(plan))
                built = self._builder.sign(await drafting)
            except (BuildFailed, ChainError) as exc:
                failure: BuildFailed | ChainError | None = exc
            else:
                failure = None
        finally:
            await _dropped(quoting, drafting)
        if failure is not None:
            # A stored execution that landed or may still land outranks a failed build: a resumed
            # order whose swap already moved the pool may well fail its own simulation.
            resumed = False
            async for update in self._resume_stored(plan):
                resumed = True
                yield update
            if resumed:
                return
            if isinstance(failure, BuildFailed):
                extra = {"reason": failure.reason, "retryable": failure.retryable}
                log.info("attempt not built", extra=extra)
                yield _failed(failure.reason, failure.retryable)
            else:
                yield _failed(f"cannot build the transaction: {failure.message}", failure.retryable)
            return

        execution = orders_pb2.Execution(
            order_id=plan.order_id,
            attempt=plan.attempt,
            signature=str(built.signature),
            signed_tx=built.raw,
            last_valid_block_height=built.last_valid_block_height,
            blockhash=str(built.blockhash),
            state="signed",
        )
        # The subscription to its outcome (pushed confirmation) is taken while it is stored: one
        # round trip to the node fewer before the send.
        watching = asyncio.ensure_future(self._sender.watch(execution.signature))
        try:
            async for update in self._store_and_send(plan, execution, built, watching):
                yield update
        finally:
            # closed once taken, whether it was followed (closing it again is harmless) or nothing
            # was sent (stored elsewhere, refused)
            watching.add_done_callback(_close_watch)

    async def _store_and_send(
        self,
        plan: OrderPlan,
        execution: orders_pb2.Execution,
        built: BuiltTx,
        watching: asyncio.Future[Watch | None],
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        # 2. Stored before the first send, or not sent at all. Refused while another execution of
        #    the order is live (another executor, an earlier attempt, a crashed one): that one is
        #    resumed (reported, or its same bytes re-sent) and ours is dropped unsent; if it turns
        #    out expired, ours is stored instead.
        for _ in range(MAX_RECORD_TRIES):
            try:
                await self._record(execution, "signed")
                break
            except RecordRefused as exc:
                live = exc.live if exc.code == grpc.StatusCode.FAILED_PRECONDITION else None
                if live is None:
                    if exc.code == grpc.StatusCode.NOT_FOUND:
                        raise NotFound("order not found", field="order_id") from None
                    if exc.code == grpc.StatusCode.FAILED_PRECONDITION:
                        # the order ended meanwhile (e.g. failed by its worker): nothing is sent
                        raise FailedPrecondition(exc.message) from None
                    log.warning(
                        "cannot store the signed transaction; not sending", extra={"code": exc.code.name}
                    )
                    reason = f"cannot store the signed transaction (persistence {exc.code.name})"
                    yield _failed(f"{reason}; nothing was sent", True)
                    return
            resumed = False
            async for update in self._resume(plan, live):
                resumed = True
                yield update
            if resumed:
                return
        else:
            yield _failed("another execution of this order is live; nothing was sent", True)
            return

        # 3. Send, then follow.
        if log.isEnabledFor(logging.DEBUG):  # a per-order line: built only when it is shown
            log.debug(
                "transaction signed",
                extra={
                    "signature": execution.signature,
                    "last_valid_block_height": built.last_valid_block_height,
                    "cu_limit": built.compute_unit_limit,
                    "cu_price": built.compute_unit_price,
                },
            )
        async for update in self._send_and_follow(plan, execution, resumed=False, watching=watching):
            yield update

    async def _settle(self, plan: OrderPlan) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        """Follows the order's stored execution that landed or may still land to its end; when
        none can land any more (all provably expired or failed), says so (nothing_live)."""
        resumed = False
        async for update in self._resume_stored(plan):
            resumed = True
            yield update
        if not resumed:
            log.info("nothing left to settle")
            yield Update(
                stage=Stage.STAGE_FAILED,
                reason="no stored swap of this order can land",
                retryable=False,
                nothing_live=True,
            )

    async def _resume_stored(self, plan: OrderPlan) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        """Resumes whatever stored execution of the order landed or may still land; yields nothing
        when there is none (every stored one expired or failed)."""
        try:
            executions = await self._list_executions(plan.order_id)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound("order not found", field="order_id") from None
            yield _failed(f"cannot read the order's stored executions (persistence {exc.code().name})", True)
            return
        ranked = [e for e in executions if e.state == "landed"]
        ranked += [e for e in executions if e.state in MAY_LAND]
        for execution in ranked:
            resumed = False
            async for update in self._resume(plan, execution):
                resumed = True
                yield update
            if resumed:
                return

    async def _resume(
        self, plan: OrderPlan, execution: orders_pb2.Execution
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        """Takes over a stored execution: reports it if it landed, re-sends its very bytes and follows
        them if it may still land. Yields nothing when it expired (and records that)."""
        if execution.state == "landed":
            async for update in self._landed(plan, execution, resumed=True):
                yield update
            return
        try:
            outcome = await self._sender.lookup(execution.signature, execution.last_valid_block_height)
        except ChainError as exc:
            yield _failed(f"cannot check the stored transaction: {exc.message}", True)
            return
        if isinstance(outcome, Expired):
            log.info("stored transaction expired", extra={"signature": execution.signature})
            await self._record_best_effort(execution, "expired")
            return
        log.info(
            "resuming stored transaction",
            extra={"signature": execution.signature, "stored_attempt": execution.attempt},
        )
        if outcome is None:
            async for update in self._send_and_follow(plan, execution, resumed=True):
                yield update
            return
        async for update in self._finish(plan, execution, outcome, resumed=True):
            yield update

    async def _send_and_follow(
        self,
        plan: OrderPlan,
        execution: orders_pb2.Execution,
        resumed: bool,
        watching: asyncio.Future[Watch | None] | None = None,
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        """Subscribes to the signature (pushed confirmation; `watching`: a subscription already
        asked for), sends the stored bytes once the node acknowledged it, reports SUBMITTED and
        follows the transaction to an outcome."""
        watch = await (watching if watching is not None else self._sender.watch(execution.signature))
        try:
            async for update in self._send_watched(plan, execution, resumed, watch):
                yield update
        finally:
            if watch is not None:
                watch.close()

    async def _send_watched(
        self, plan: OrderPlan, execution: orders_pb2.Execution, resumed: bool, watch: Watch | None
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        try:
            await self._sender.send(execution.signed_tx)
        except ChainError as exc:
            if exc.rpc_code in UNSENDABLE_RPC_CODES:
                # The node could not decode or verify the bytes: they can never land.
                await self._record_best_effort(execution, "failed")
                yield Update(
                    stage=Stage.STAGE_FAILED,
                    signature=execution.signature,
                    resumed=resumed,
                    reason=f"the RPC node rejected the transaction: {exc.message}",
                    retryable=False,
                )
                return
            if not exc.maybe_delivered:
                # Definitely not taken by the node (rate limited, refused): it stays stored as
                # "signed", and the next attempt re-sends these same bytes instead of signing anew.
                yield Update(
                    stage=Stage.STAGE_FAILED,
                    signature=execution.signature,
                    resumed=resumed,
                    reason=f"cannot send the transaction: {exc.message}",
                    retryable=True,
                )
                return
            # It may have reached a leader (e.g. a timeout): follow it like a sent one.
            log.info(
                "send outcome unknown; following",
                extra={"signature": execution.signature, "error": exc.message},
            )
        yield Update(
            stage=Stage.STAGE_SUBMITTED,
            signature=execution.signature,
            last_valid_block_height=execution.last_valid_block_height,
            resumed=resumed,
        )
        outcome = await self._sender.follow(
            execution.signed_tx, execution.signature, execution.last_valid_block_height, watch
        )
        async for update in self._finish(plan, execution, outcome, resumed=resumed):
            yield update

    async def _finish(
        self, plan: OrderPlan, execution: orders_pb2.Execution, outcome: Outcome, resumed: bool
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        if isinstance(outcome, Landed):
            # The landed state is stored while the transaction's details are read and the outcome
            # is reported: it is bookkeeping, not a condition of the report. `signed` already keeps
            # the order from being failed or given a second swap, and an order resumed before the
            # record is stored finds its swap landed on the chain. So it leaves with the other
            # landed records made around it (one message and one commit for them all), and the
            # attempt's stream ends once it is stored.
            recorded = asyncio.ensure_future(self._record_best_effort(execution, "landed", soon=True))
            try:
                async for update in self._landed(plan, execution, resumed):
                    yield update
            finally:
                await asyncio.shield(recorded)
        elif isinstance(outcome, LandedWithError):
            await self._record_best_effort(execution, "failed")
            roles = instruction_roles(VersionedTransaction.from_bytes(execution.signed_tx), self._programs)
            # a swap that failed on chain moved nothing (only its fee was charged): a "price moved"
            # failure is retryable, the next attempt quotes again and signs a new transaction
            reason, retryable = describe_transaction_error(outcome.status.err, roles)
            log.info(
                "transaction failed on chain", extra={"signature": execution.signature, "reason": reason}
            )
            yield Update(
                stage=Stage.STAGE_FAILED,
                signature=execution.signature,
                reason=reason,
                retryable=retryable,
                resumed=resumed,
            )
        elif isinstance(outcome, Expired):
            await self._record_best_effort(execution, "expired")
            log.info("transaction expired", extra={"signature": execution.signature})
            yield Update(
                stage=Stage.STAGE_FAILED,
                signature=execution.signature,
                reason="blockhash expired before landing",
                retryable=True,
                resumed=resumed,
            )
        else:
            assert isinstance(outcome, RpcTrouble)
            log.warning(
                "lost track of the transaction",
                extra={"signature": execution.signature, "error": outcome.error.message},
            )
            yield Update(
                stage=Stage.STAGE_FAILED,
                signature=execution.signature,
                reason=f"RPC unavailable while confirming: {outcome.error.message}",
                retryable=True,
                resumed=resumed,
            )

    async def _landed(
        self, plan: OrderPlan, execution: orders_pb2.Execution, resumed: bool
    ) -> AsyncIterator[executor_pb2.ExecutionUpdate]:
        tx = VersionedTransaction.from_bytes(execution.signed_tx)
        roles = instruction_roles(tx, self._programs)
        try:
            info = await self._sender.transaction(execution.signature)
        except ChainError as exc:
            yield Update(
                stage=Stage.STAGE_FAILED,
                signature=execution.signature,
                resumed=resumed,
                retryable=True,
                reason=f"the swap landed but its details cannot be read yet: {exc.message}",
            )
            return
        if info.err is not None:  # stored as landed, but the chain says it failed
            await self._record_best_effort(execution, "failed")
            reason, retryable = describe_transaction_error(info.err, roles)
            yield Update(
                stage=Stage.STAGE_FAILED,
                signature=execution.signature,
                reason=reason,
                retryable=retryable,
                resumed=resumed,
            )
            return
        owner = tx.message.account_keys[0]  # the fee payer: the wallet that signed this swap
        candidates = tuple(
            associated_token_address(owner, mint, program)
            for mint in (plan.input_mint, plan.output_mint)
            for program in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
        )
        amounts = realized_amounts(info, owner, plan.input_mint, plan.output_mint, candidates)
        venues = sorted({role.removesuffix(" swap") for role in roles.values() if role.endswith(" swap")})
        dex = (
            venues[0]
            if len(venues) == 1 and sum(r.endswith(" swap") for r in roles.values()) == 1
            else "split"
        )
        if log.isEnabledFor(logging.DEBUG):  # a per-order line: built only when it is shown
            log.debug(
                "swap confirmed",
                extra={
                    "signature": execution.signature,
                    "slot": info.slot,
                    "amount_in": amounts.amount_in,
                    "amount_out": amounts.amount_out,
                    "dex": dex,
                    "resumed": resumed,
                },
            )
        yield Update(
            stage=Stage.STAGE_CONFIRMED,
            signature=execution.signature,
            amount_in=amounts.amount_in,
            amount_out=amounts.amount_out,
            slot=info.slot,
            dex=dex,
            resumed=resumed,
            cost=trade_cost(info, owner, len(tx.signatures)),
        )
