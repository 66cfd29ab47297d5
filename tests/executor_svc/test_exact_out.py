"""Exact-out attempts through the real executor, persistence and simulated chain: CPMM
`swap_base_output` and DLMM `swap_exact_out2` deliver exactly the amount out, spend the executor's own
quote (never more than the max-in), a max-in below what the pool needs fails without sending, and the
checks refuse a max-in above the executor's fresh quote plus slippage and tolerance, or an amount out
that is not the stored order's."""

from __future__ import annotations

import grpc
import pytest
from solders.pubkey import Pubkey

from common.amounts import max_in
from common.errors import FailedPrecondition
from executor_svc.builder import LegPlan, OrderPlan
from executor_svc.checks import FreshQuoter, check_min_outs, max_in_ceiling
from orderengine.v1 import executor_pb2, orders_pb2, types_pb2
from tests.executor_svc import test_execute
from tests.executor_svc.test_checks import refused, strict
from tests.executor_svc.test_execute import Stack, stages

stack = test_execute.stack  # the real executor, persistence and simulated chain (a fixture)
Stage = executor_pb2.ExecutionUpdate.Stage
DECIMALS = {"SOL": 9, "USDC": 6}


async def exact_order(stack: Stack, input_symbol: str, output_symbol: str, amount_out: int) -> str:
    spec = orders_pb2.OrderSpec(
        input_mint=stack.mint(input_symbol),
        output_mint=stack.mint(output_symbol),
        amount_out=amount_out,
        slippage_bps=100,
        input_decimals=DECIMALS[input_symbol],
        output_decimals=DECIMALS[output_symbol],
        input_symbol=input_symbol,
        output_symbol=output_symbol,
    )
    response = await stack.orders.CreateOrder(orders_pb2.CreateOrderRequest(spec=spec))
    return str(response.order.order_id)


async def fresh_inputs(
    stack: Stack, order_id: str, input_symbol: str, output_symbol: str, legs: list[tuple[str, int]]
) -> list[int]:
    """The executor's own quote of the input each exact-out leg needs now."""
    plan = OrderPlan(
        order_id,
        1,
        Pubkey.from_string(stack.mint(input_symbol)),
        Pubkey.from_string(stack.mint(output_symbol)),
        0,
        tuple(
            LegPlan(venue, Pubkey.from_string(stack.pool(venue, "SOL/USDC")), 1, out, True, 1)
            for venue, out in legs
        ),
        sum(out for _, out in legs),
    )
    programs = {v: stack.markets.program_id(v) for v in stack.markets.programs}
    return await FreshQuoter(stack.chain, programs).quote(plan)


def exact_request(
    stack: Stack,
    order_id: str,
    input_symbol: str,
    output_symbol: str,
    legs: list[tuple[str, int, int, int]],  # (venue, amount_out, quoted amount_in, max_amount_in)
) -> executor_pb2.ExecuteRequest:
    route_legs = [
        types_pb2.RouteLeg(
            venue=venue,
            pool=stack.pool(venue, "SOL/USDC"),
            amount_in=quoted,
            amount_out=out,
            min_amount_out=out,
            exact_out=True,
            max_amount_in=bound,
        )
        for venue, out, quoted, bound in legs
    ]
    return executor_pb2.ExecuteRequest(
        order_id=order_id,
        attempt=1,
        input_mint=stack.mint(input_symbol),
        output_mint=stack.mint(output_symbol),
        amount_out=sum(leg[1] for leg in legs),
        route=types_pb2.Route(
            legs=route_legs,
            amount_out=sum(leg[1] for leg in legs),
            min_amount_out=sum(leg[1] for leg in legs),
            exact_out=True,
            max_amount_in=sum(leg[3] for leg in legs),
        ),
    )


@pytest.mark.parametrize("venue", ["raydium_cpmm", "meteora_dlmm"])
async def test_sol_in_delivers_exactly_the_amount_out(stack: Stack, venue: str) -> None:
    await strict(stack)
    want = 7_654_321  # exactly 7.654321 USDC
    order_id = await exact_order(stack, "SOL", "USDC", want)
    (needs,) = await fresh_inputs(stack, order_id, "SOL", "USDC", [(venue, want)])
    assert needs > 0
    usdc_before, sol_before = await stack.token_balance("USDC"), await stack.sol_value()
    bound = max_in(needs, 100)
    updates = await stack.execute(
        exact_request(stack, order_id, "SOL", "USDC", [(venue, want, needs, bound)])
    )
    assert stages(updates) == [Stage.STAGE_BUILDING, Stage.STAGE_SUBMITTED, Stage.STAGE_CONFIRMED], updates[
        -1
    ]
    confirmed = updates[-1]
    assert confirmed.amount_out == want == await stack.token_balance("USDC") - usdc_before
    # the pool did not move: the swap took exactly the quote, below the bound (the wrapped rest
    # came back when the wSOL account was closed)
    assert confirmed.amount_in == needs < bound
    info = await stack.chain.get_transaction(confirmed.signature)
    assert info is not None
    assert sol_before - await stack.sol_value() == needs + info.fee
    (swap,) = await stack.swaps(order_id)
    assert int(swap["amountOut"]) == want


async def test_usdc_in_on_dlmm_and_a_split(stack: Stack) -> None:
    await strict(stack)
    want = 25_000_000  # exactly 0.025 SOL
    order_id = await exact_order(stack, "USDC", "SOL", want)
    (needs,) = await fresh_inputs(stack, order_id, "USDC", "SOL", [("meteora_dlmm", want)])
    usdc_before = await stack.token_balance("USDC")
    updates = await stack.execute(
        exact_request(stack, order_id, "USDC", "SOL", [("meteora_dlmm", want, needs, max_in(needs, 100))])
    )
    confirmed = updates[-1]
    assert confirmed.stage == Stage.STAGE_CONFIRMED, confirmed
    assert confirmed.amount_out == want and confirmed.amount_in == needs
    assert usdc_before - await stack.token_balance("USDC") == needs

    split_id = await exact_order(stack, "SOL", "USDC", 30_000_000)
    outs = [("raydium_cpmm", 10_000_000), ("meteora_dlmm", 20_000_000)]
    fresh = await fresh_inputs(stack, split_id, "SOL", "USDC", outs)
    legs = [(v, out, f, max_in(f, 100)) for (v, out), f in zip(outs, fresh, strict=True)]
    usdc_before = await stack.token_balance("USDC")
    updates = await stack.execute(exact_request(stack, split_id, "SOL", "USDC", legs))
    confirmed = updates[-1]
    assert confirmed.stage == Stage.STAGE_CONFIRMED, confirmed
    assert confirmed.dex == "split" and confirmed.amount_out == 30_000_000
    assert await stack.token_balance("USDC") - usdc_before == 30_000_000
    assert confirmed.amount_in == sum(fresh)
    (swap,) = await stack.swaps(split_id)
    assert len(swap["legs"]) == 2


@pytest.mark.parametrize(
    ("venue", "expected"),
    [
        ("raydium_cpmm", "slippage exceeded on raydium_cpmm (program error 6005 ExceededSlippage)"),
        ("meteora_dlmm", "slippage exceeded on meteora_dlmm (program error 6104 InsufficientInAmount)"),
    ],
)
async def test_a_max_in_below_what_the_pool_needs_fails_without_sending(
    stack: Stack, venue: str, expected: str
) -> None:
    # the test fixture turns the executor's ceiling off: this reaches the program's own check
    want = 5_000_000
    order_id = await exact_order(stack, "SOL", "USDC", want)
    (needs,) = await fresh_inputs(stack, order_id, "SOL", "USDC", [(venue, want)])
    sends = stack.running.chain.calls.get("sendTransaction", 0)
    updates = await stack.execute(
        exact_request(stack, order_id, "SOL", "USDC", [(venue, want, needs - 1, needs - 1)])
    )
    assert stages(updates) == [Stage.STAGE_BUILDING, Stage.STAGE_FAILED]
    assert expected in updates[-1].reason
    assert await stack.swaps(order_id) == [] and await stack.executions(order_id) == []
    assert stack.running.chain.calls.get("sendTransaction", 0) == sends


def test_the_max_in_ceiling_rounds_up() -> None:
    assert max_in_ceiling(10_000, 100, 0) == 10_100
    assert max_in_ceiling(10_001, 100, 100) == 10_204  # 10101.01 → 10102; × 1.01 = 10203.02 → 10204
    leg = LegPlan("raydium_cpmm", Pubkey.default(), 10_000, 5, True, 10_101)
    with pytest.raises(FailedPrecondition) as refused_leg:
        check_min_outs([leg], [10_000], 100, 0)
    assert refused_leg.value.field == "route.legs[0].max_amount_in"
    check_min_outs([leg], [10_001], 100, 0)  # 10_001 × 1.01 = 10101.01 → 10102 ≥ 10_101
    check_min_outs([leg], [0], 100, 0)  # unquotable: the build fails with the program's reason


async def test_the_checks_refuse_a_max_in_above_the_ceiling_or_another_amount_out(stack: Stack) -> None:
    await strict(stack)
    want = 5_000_000
    order_id = await exact_order(stack, "SOL", "USDC", want)
    (needs,) = await fresh_inputs(stack, order_id, "SOL", "USDC", [("raydium_cpmm", want)])
    greedy = max_in_ceiling(needs, 100, 100) + 1
    err = await refused(
        stack, exact_request(stack, order_id, "SOL", "USDC", [("raydium_cpmm", want, needs, greedy)])
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "route.legs[0].max_amount_in" in (err.details() or "")
    err = await refused(
        stack,
        exact_request(
            stack, order_id, "SOL", "USDC", [("raydium_cpmm", want + 1, needs, max_in(needs, 100))]
        ),
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "amount_out" in (err.details() or "")
    # an exact-out leg in an exact-in request, and an exact-out leg whose floor is not its output
    request = exact_request(stack, order_id, "SOL", "USDC", [("raydium_cpmm", want, needs, needs)])
    request.amount_out, request.amount_in = 0, needs
    err = await refused(stack, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "exact_out" in (err.details() or "")
    request = exact_request(stack, order_id, "SOL", "USDC", [("raydium_cpmm", want, needs, needs)])
    request.route.legs[0].min_amount_out = want - 1
    err = await refused(stack, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "min_amount_out" in (err.details() or "")


def test_exact_out_instruction_layouts_follow_the_idls() -> None:
    """Anchor: data = sha256("global:<name>")[:8] + the args in the IDL's order, little-endian.
    Raydium CPMM swap_base_output(max_amount_in: u64, amount_out: u64); Meteora DLMM
    swap_exact_out2(max_in_amount: u64, out_amount: u64, remaining_accounts_info: {slices: []})."""
    import hashlib
    import struct

    from common.dex import meteora_dlmm, raydium_cpmm

    def disc(name: str) -> bytes:
        return hashlib.sha256(f"global:{name}".encode()).digest()[:8]

    keys = [Pubkey.new_unique() for _ in range(16)]
    leg = LegPlan("raydium_cpmm", keys[0], 1_000, 150, True, 1_010)
    assert leg.ix_amounts == (1_010, 150)  # (max in, exact out): the order both programs take
    assert LegPlan("raydium_cpmm", keys[0], 1_000, 150).ix_amounts == (1_000, 150)
    cpmm_ix = raydium_cpmm.swap_base_output_ix(*keys[:13], *leg.ix_amounts)
    assert bytes(cpmm_ix.data) == disc("swap_base_output") + struct.pack("<QQ", 1_010, 150)
    assert len(cpmm_ix.accounts) == 13 and cpmm_ix.accounts[0].is_signer
    dlmm_ix = meteora_dlmm.swap_exact_out2_ix(*keys[:15], [keys[15]], *leg.ix_amounts)
    assert bytes(dlmm_ix.data) == disc("swap_exact_out2") + struct.pack("<QQI", 1_010, 150, 0)
    assert len(dlmm_ix.accounts) == 17  # the 16 of the IDL's Swap2 context, then the bin array
