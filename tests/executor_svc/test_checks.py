"""The executor checks each attempt against the stored order and its own fresh quote before it
signs anything (executor_svc/checks.py): the pure checks, then the real executor refusing a
terminal order, another amount or pair, and a min-out of 1, with nothing stored, sent or swapped."""

from __future__ import annotations

import uuid

import grpc
import pytest
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from common.errors import FailedPrecondition, InvalidArgument
from executor_svc.builder import LegPlan, OrderPlan
from executor_svc.checks import FreshQuoter, check_min_outs, check_order, min_out_floor
from executor_svc.wallet import Wallet
from orderengine.v1 import executor_pb2, orders_pb2
from tests.executor_svc import test_execute
from tests.executor_svc.test_execute import SOL, Stack, stages

stack = test_execute.stack  # the real executor, persistence and simulated chain (a fixture)

USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
POOL = Pubkey.from_string("11111111111111111111111111111112")
Stage = executor_pb2.ExecutionUpdate.Stage


def plan_of(
    amount_in: int = 1_000, input_mint: str = SOL, output_mint: str = USDC, min_out: int = 90
) -> OrderPlan:
    leg = LegPlan("raydium_cpmm", POOL, amount_in, min_out)
    return OrderPlan(
        str(uuid.uuid4()),
        1,
        Pubkey.from_string(input_mint),
        Pubkey.from_string(output_mint),
        amount_in,
        (leg,),
    )


def order_of(status: int = orders_pb2.ORDER_STATUS_ROUTING, amount_in: int = 1_000) -> orders_pb2.Order:
    spec = orders_pb2.OrderSpec(input_mint=SOL, output_mint=USDC, amount_in=amount_in, slippage_bps=100)
    return orders_pb2.Order(order_id=str(uuid.uuid4()), spec=spec, status=status)


def test_check_order() -> None:
    check_order(plan_of(), order_of())
    for status in (orders_pb2.ORDER_STATUS_CONFIRMED, orders_pb2.ORDER_STATUS_FAILED):
        with pytest.raises(FailedPrecondition) as ended:
            check_order(plan_of(), order_of(status))
        assert ended.value.retryable is False  # an ended order is never executed again
    with pytest.raises(InvalidArgument) as bad:
        check_order(plan_of(amount_in=1_001), order_of())
    assert bad.value.field == "amount_in"
    with pytest.raises(InvalidArgument) as bad:
        check_order(plan_of(input_mint=USDC, output_mint=SOL), order_of())
    assert bad.value.field == "input_mint"


def test_min_out_floor_rounds_like_the_router() -> None:
    assert min_out_floor(10_000, 100, 0) == 9_900
    assert min_out_floor(10_001, 100, 0) == 9_900  # floor(10_001 * 0.99) = 9_900
    assert min_out_floor(10_000, 100, 100) == 9_801
    assert min_out_floor(10_000, 100, 10_000) == 0
    check_min_outs(plan_of(min_out=9_801).legs, [10_000], 100, 100)
    with pytest.raises(FailedPrecondition) as low:
        check_min_outs(plan_of(min_out=9_800).legs, [10_000], 100, 100)
    assert low.value.field == "route.legs[0].min_amount_out"
    # retryable: the caller's quote is most likely older than the executor's (the worker quotes again)
    assert low.value.retryable is True
    with pytest.raises(FailedPrecondition):
        check_min_outs(plan_of(min_out=1).legs, [10_000], 100, 100)


# ------------------------------------------------------------------------------------------------
# the real executor


async def strict(stack: Stack) -> None:
    """The stack's executor with the default tolerance (test_execute's fixture turns the floor off)."""
    stack.running.servicer._quote_tolerance_bps = 100


async def refused(stack: Stack, request: executor_pb2.ExecuteRequest) -> grpc.aio.AioRpcError:
    sends = stack.running.chain.calls.get("sendTransaction", 0)
    simulations = stack.running.chain.calls.get("simulateTransaction", 0)
    signs: list[object] = []
    sign = Wallet.sign

    def counted(wallet: Wallet, message: MessageV0) -> VersionedTransaction:
        signs.append(message)
        return sign(wallet, message)

    Wallet.sign = counted  # type: ignore[method-assign]
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.execute(request)
    finally:
        Wallet.sign = sign  # type: ignore[method-assign]
    # nothing signed, stored, sent or swapped; at most the one unsigned simulation of the draft
    # built while the stored order was read
    assert signs == []
    assert stack.running.chain.calls.get("simulateTransaction", 0) - simulations <= 1
    assert stack.running.chain.calls.get("sendTransaction", 0) == sends
    try:
        assert await stack.executions(request.order_id) == []
    except grpc.aio.AioRpcError as exc:  # an order persistence does not know has none
        assert exc.code() == grpc.StatusCode.NOT_FOUND
    assert await stack.swaps(request.order_id) == []
    return err.value


async def test_a_terminal_order_is_refused(stack: Stack) -> None:
    await strict(stack)
    order_id = await stack.order("SOL", "USDC", 10**8)
    failed = orders_pb2.NewEvent(
        order_id=order_id,
        seq=2,
        status=orders_pb2.ORDER_STATUS_FAILED,
        update=orders_pb2.OrderUpdate(failure_reason="test"),
    )
    result = await stack.orders.AppendEvents(orders_pb2.AppendEventsRequest(events=[failed]))
    assert result.results[0].code == 0
    err = await refused(
        stack, stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**8, 1)])
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "failed" in (err.details() or "")


async def test_another_amount_or_an_unknown_order_is_refused(stack: Stack) -> None:
    await strict(stack)
    order_id = await stack.order("SOL", "USDC", 10**8)
    err = await refused(
        stack, stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 2 * 10**8, 1)])
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "amount_in" in (err.details() or "")
    err = await refused(
        stack, stack.request(order_id, "USDC", "SOL", [("raydium_cpmm", "SOL/USDC", 10**8, 1)])
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown = str(uuid.uuid4())
    err = await refused(
        stack, stack.request(unknown, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**8, 1)])
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


def sell_plan(stack: Stack, order_id: str, amount_in: int, venue: str = "raydium_cpmm") -> OrderPlan:
    """A one-leg SOL → USDC plan on the venue's SOL/USDC pool (what FreshQuoter quotes)."""
    pool = Pubkey.from_string(stack.pool(venue, "SOL/USDC"))
    return OrderPlan(
        order_id,
        1,
        Pubkey.from_string(SOL),
        Pubkey.from_string(USDC),
        amount_in,
        (LegPlan(venue, pool, amount_in, 1),),
    )


def own_quoter(stack: Stack) -> FreshQuoter:
    """The executor's quoter on the test's own chain client (not the executor's cache)."""
    return FreshQuoter(stack.chain, {v: stack.markets.program_id(v) for v in stack.markets.programs})


@pytest.mark.parametrize("venue", ["raydium_cpmm", "meteora_dlmm"])
async def test_a_min_out_below_the_fresh_quote_is_refused_and_the_floor_is_accepted(
    stack: Stack, venue: str
) -> None:
    await strict(stack)
    order_id = await stack.order("SOL", "USDC", 10**8)
    err = await refused(stack, stack.request(order_id, "SOL", "USDC", [(venue, "SOL/USDC", 10**8, 1)]))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "route.legs[0].min_amount_out" in (err.details() or "")

    # the executor's own floor (its quote less the order's 100 bps and the tolerance) is accepted
    request = stack.request(order_id, "SOL", "USDC", [(venue, "SOL/USDC", 10**8, 1)])
    (fresh,) = await own_quoter(stack).quote(sell_plan(stack, order_id, 10**8, venue))
    assert fresh > 0
    request.route.legs[0].min_amount_out = min_out_floor(fresh, 100, 0)  # what the router would ask
    updates = await stack.execute(request)
    assert stages(updates)[-1] == Stage.STAGE_CONFIRMED, updates[-1]
    assert updates[-1].amount_out >= request.route.legs[0].min_amount_out


async def test_a_bound_refused_on_cached_state_is_judged_again_on_the_chain_state_now(stack: Stack) -> None:
    """The executor's per-slot pool cache can be older than the caller's quote (other swaps landed
    since): a min-out below the floor of the cached state is judged again on the state read now,
    and accepted when it holds there (before, the order failed on every attempt)."""
    await strict(stack)
    stack.running.chain._slot_ttl_s = 60.0  # the cache outlives every swap of this test
    now = own_quoter(stack)  # the test's own reads, never cached (max_age_s=0 below)
    amount = 10**11  # 100 SOL
    cached_floor = fresh = 0
    for _ in range(20):  # other traders' sells move the pool away from the executor's cache
        order_id = await stack.order("SOL", "USDC", amount)
        (fresh,) = await now.quote(sell_plan(stack, order_id, amount), max_age_s=0)
        (cached,) = await stack.running.servicer._quoter.quote(sell_plan(stack, order_id, amount))
        cached_floor = min_out_floor(cached, 100, 100)
        if min_out_floor(fresh, 100, 0) < cached_floor:
            break
        request = stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", amount, 1)])
        request.route.legs[0].min_amount_out = min_out_floor(fresh, 100, 0)
        assert stages(await stack.execute(request))[-1] == Stage.STAGE_CONFIRMED
        amount *= 2
    # the router's min-out from the state now is below the floor of the executor's cached state
    assert 0 < min_out_floor(fresh, 100, 0) < cached_floor
    request = stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", amount, 1)])
    request.route.legs[0].min_amount_out = min_out_floor(fresh, 100, 0)
    updates = await stack.execute(request)
    assert stages(updates)[-1] == Stage.STAGE_CONFIRMED, updates[-1]
    assert updates[-1].amount_out >= request.route.legs[0].min_amount_out


@pytest.mark.parametrize("venue", ["raydium_cpmm", "meteora_dlmm"])
async def test_the_quoter_decodes_a_pool_once_per_state_it_is_served(
    stack: Stack, venue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many orders quoted on one slot's cached accounts: the pool is decoded (and the accounts its
    quote needs derived) once, not once per order; a new state of the pool is decoded again."""
    from common.dex import meteora_dlmm, raydium_cpmm

    module, name = (
        (raydium_cpmm, "decode_pool_state") if venue == "raydium_cpmm" else (meteora_dlmm, "decode_lb_pair")
    )
    calls: list[object] = []
    real = getattr(module, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    quoter = own_quoter(stack)
    plan = sell_plan(stack, str(uuid.uuid4()), 10**8, venue)
    await quoter.quote(plan)
    once = len(calls)  # its dependencies, its state
    assert once >= 1
    for _ in range(4):  # more orders on one slot's cache: the same account objects
        await quoter.quote(plan)
    # decoded again only if the cache moved to a new slot meanwhile (at most once in these few ms);
    # a decode per order would be 4 more
    assert len(calls) <= 2 * once, calls
    before = len(calls)
    await quoter.quote(plan, max_age_s=0)  # read anew: other account objects, decoded again
    assert len(calls) > before, calls
