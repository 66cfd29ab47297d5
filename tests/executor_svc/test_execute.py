"""Executor.Execute end to end: the real executor, the real persistence_svc (scratch database) and the
simulated chain in-process, all on port 0, with real signatures."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from common.chain import ChainClient
from common.chain_pubsub import SignatureFeed
from common.dex import meteora_dlmm as dlmm
from common.dex.spl_token import (
    NATIVE_MINT,
    TOKEN_PROGRAM_ID,
    associated_token_address,
    decode_token_account,
)
from common.grpc_client import open_channel
from common.log import JsonFormatter
from common.markets import Markets, load_markets
from common.metrics import CHAIN_CONFIRMATIONS, CHAIN_RPC_CALLS
from common.settings import Settings
from common.stream_link import LinkBroken
from executor_svc import server as executor_server
from executor_svc.wallet import KeySettings
from orderengine.v1 import executor_pb2, executor_pb2_grpc, orders_pb2, orders_pb2_grpc, types_pb2
from persistence_svc import server as persistence_server
from simchain import server as sim_server

Stage = executor_pb2.ExecutionUpdate.Stage
SOL = str(NATIVE_MINT)


@dataclass
class Stack:
    markets: Markets
    executor: executor_pb2_grpc.ExecutorStub
    orders: orders_pb2_grpc.OrdersStub
    chain: ChainClient  # the test's own view of the simulated chain
    running: executor_server.Running
    wallet: Pubkey

    def mint(self, symbol: str) -> str:
        token = self.markets.token(symbol)
        assert token is not None
        return token.mint

    def pool(self, venue: str, name: str) -> str:
        doc = json.loads(self.markets_path.read_text())
        return next(p["address"] for p in doc["pools"] if p["venue"] == venue and p["name"] == name)

    markets_path: Any = None

    async def sim(self, method: str, *params: Any) -> Any:
        return await self.chain.call(method, list(params))

    async def order(self, input_symbol: str, output_symbol: str, amount_in: int) -> str:
        spec = orders_pb2.OrderSpec(
            input_mint=self.mint(input_symbol),
            output_mint=self.mint(output_symbol),
            amount_in=amount_in,
            slippage_bps=100,
            input_decimals=9 if input_symbol == "SOL" else 6,
            output_decimals=9 if output_symbol == "SOL" else 6,
            input_symbol=input_symbol,
            output_symbol=output_symbol,
        )
        response = await self.orders.CreateOrder(orders_pb2.CreateOrderRequest(spec=spec))
        return str(response.order.order_id)

    def request(
        self,
        order_id: str,
        input_symbol: str,
        output_symbol: str,
        legs: list[tuple[str, str, int, int]],
        attempt: int = 1,
    ) -> executor_pb2.ExecuteRequest:
        route = types_pb2.Route(
            legs=[
                types_pb2.RouteLeg(venue=v, pool=self.pool(v, name), amount_in=a, min_amount_out=m)
                for v, name, a, m in legs
            ]
        )
        return executor_pb2.ExecuteRequest(
            order_id=order_id,
            attempt=attempt,
            input_mint=self.mint(input_symbol),
            output_mint=self.mint(output_symbol),
            amount_in=sum(leg[2] for leg in legs),
            route=route,
        )

    async def execute(self, request: executor_pb2.ExecuteRequest) -> list[executor_pb2.ExecutionUpdate]:
        return [u async for u in self.executor.Execute(request)]

    async def executions(self, order_id: str) -> list[orders_pb2.Execution]:
        response = await self.orders.ListExecutions(orders_pb2.ListExecutionsRequest(order_id=order_id))
        return list(response.executions)

    async def token_balance(self, symbol: str) -> int:
        mint = Pubkey.from_string(self.mint(symbol))
        _, (mint_account,) = await self.chain.get_multiple_accounts([mint], max_age_s=0)
        assert mint_account is not None
        ata = associated_token_address(self.wallet, mint, mint_account.owner)
        _, (account,) = await self.chain.get_multiple_accounts([ata], max_age_s=0)
        return 0 if account is None else decode_token_account(ata, account.owner, account.data).amount

    async def sol_value(self) -> int:
        """The wallet's lamports plus what its wSOL account holds."""
        wsol = associated_token_address(self.wallet, NATIVE_MINT, TOKEN_PROGRAM_ID)
        _, (account, wrapped) = await self.chain.get_multiple_accounts([self.wallet, wsol], max_age_s=0)
        assert account is not None
        return account.lamports + (0 if wrapped is None else wrapped.lamports)

    async def swaps(self, order_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.sim("simSwaps", {"memoPrefix": f"oe:{order_id}:"})
        return result


SECRET = Keypair()


@pytest.fixture
async def stack(
    make_settings: Callable[..., Settings], request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    """The executor on a simulated chain; a test may add settings (`indirect` parametrization)."""
    extra: dict[str, str] = getattr(request, "param", {})
    sim_settings = make_settings(CHAIN="sim", SIM_PORT="0", SIM_SLOT_MS="40")
    markets = load_markets(sim_settings.markets_path)
    sim = await sim_server.start(sim_settings, markets=markets)
    persistence = await persistence_server.serve(make_settings(PERSISTENCE_ADDR="127.0.0.1:0"))
    settings = make_settings(
        CHAIN="sim",
        SOLANA_RPC_URL=sim.url,
        PERSISTENCE_ADDR=f"127.0.0.1:{persistence.port}",
        EXECUTOR_ADDR="127.0.0.1:0",
        CONFIRM_POLL_MS="5",
        REBROADCAST_MS="200",
        RPC_TIMEOUT_S="5",
        LOG_LEVEL="debug",
        # these tests send min-outs of 1 to reach the paths after the checks; the checks' own
        # tests are in test_checks.py
        EXECUTOR_QUOTE_TOLERANCE_BPS="10000",
        **extra,
    )
    # a known key, so the tests can look for it in logs
    running = await executor_server.serve(settings, KeySettings(private_key=str(SECRET)))
    executor_channel = open_channel(f"127.0.0.1:{running.port}")
    orders_channel = open_channel(f"127.0.0.1:{persistence.port}")
    chain = ChainClient(sim.url, commitment="confirmed")
    try:
        yield Stack(
            markets,
            executor_pb2_grpc.ExecutorStub(executor_channel),
            orders_pb2_grpc.OrdersStub(orders_channel),
            chain,
            running,
            running.wallet.pubkey,
            sim_settings.markets_path,
        )
    finally:
        await chain.close()
        await executor_channel.close()
        await orders_channel.close()
        await running.stop(0)
        await persistence.stop(0)
        await sim.stop()


def stages(updates: list[executor_pb2.ExecutionUpdate]) -> list[int]:
    return [u.stage for u in updates]


# ------------------------------------------------------------------------------------------------


async def test_sol_to_usdc_confirms_with_the_wallets_balance_change(stack: Stack) -> None:
    order_id = await stack.order("SOL", "USDC", 100_000_000)
    usdc_before = await stack.token_balance("USDC")
    updates = await stack.execute(
        stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**8, 1)])
    )
    assert stages(updates) == [Stage.STAGE_BUILDING, Stage.STAGE_SUBMITTED, Stage.STAGE_CONFIRMED]
    submitted, confirmed = updates[1], updates[2]
    assert submitted.signature and submitted.last_valid_block_height > 0 and not submitted.resumed
    assert confirmed.signature == submitted.signature
    assert confirmed.dex == "raydium_cpmm" and confirmed.slot > 0
    assert confirmed.amount_in == 100_000_000
    assert confirmed.amount_out > 0
    assert confirmed.amount_out == await stack.token_balance("USDC") - usdc_before

    (swap,) = await stack.swaps(order_id)
    assert swap["signature"] == confirmed.signature and swap["memo"] == f"oe:{order_id}:1"
    assert int(swap["amountOut"]) == confirmed.amount_out
    (execution,) = await stack.executions(order_id)
    assert execution.state == "landed" and execution.signature == confirmed.signature
    assert execution.last_valid_block_height == submitted.last_valid_block_height


async def test_usdc_to_sol_on_dlmm(stack: Stack) -> None:
    order_id = await stack.order("USDC", "SOL", 50_000_000)
    sol_before = await stack.sol_value()
    usdc_before = await stack.token_balance("USDC")
    updates = await stack.execute(
        stack.request(order_id, "USDC", "SOL", [("meteora_dlmm", "SOL/USDC", 50_000_000, 1)])
    )
    assert stages(updates)[-1] == Stage.STAGE_CONFIRMED, updates[-1]
    confirmed = updates[-1]
    assert confirmed.dex == "meteora_dlmm"
    assert confirmed.amount_in == 50_000_000 == usdc_before - await stack.token_balance("USDC")
    info = await stack.chain.get_transaction(confirmed.signature)
    assert info is not None
    # the wallet's SOL (its lamports and any wSOL it held, which the unwrap folds back in) grew by
    # amount_out less the fee
    assert await stack.sol_value() - sol_before == confirmed.amount_out - info.fee
    (swap,) = await stack.swaps(order_id)
    assert int(swap["amountOut"]) == confirmed.amount_out


async def test_split_route_reports_split(stack: Stack) -> None:
    order_id = await stack.order("SOL", "USDC", 300_000_000)
    usdc_before = await stack.token_balance("USDC")
    updates = await stack.execute(
        stack.request(
            order_id,
            "SOL",
            "USDC",
            [("raydium_cpmm", "SOL/USDC", 100_000_000, 1), ("meteora_dlmm", "SOL/USDC", 200_000_000, 1)],
        )
    )
    confirmed = updates[-1]
    assert confirmed.stage == Stage.STAGE_CONFIRMED, confirmed
    assert confirmed.dex == "split" and confirmed.amount_in == 300_000_000
    assert confirmed.amount_out == await stack.token_balance("USDC") - usdc_before
    (swap,) = await stack.swaps(order_id)
    assert len(swap["legs"]) == 2


@pytest.mark.parametrize(
    ("venue", "expected"),
    [
        (
            "raydium_cpmm",
            "price moved: slippage exceeded on raydium_cpmm (program error 6005 ExceededSlippage)",
        ),
        (
            "meteora_dlmm",
            "price moved: slippage exceeded on meteora_dlmm (program error 6003 "
            "ExceededAmountSlippageTolerance)",
        ),
    ],
)
async def test_slippage_fails_without_sending(stack: Stack, venue: str, expected: str) -> None:
    order_id = await stack.order("SOL", "USDC", 10**8)
    # the quote (a successful simulation at min-out 1 tells what the pool gives) plus one
    probe = await stack.order("SOL", "USDC", 10**8)
    sends_before = stack.running.chain.calls.get("sendTransaction", 0)
    quote = await _simulated_output(stack, probe, venue)
    updates = await stack.execute(
        stack.request(order_id, "SOL", "USDC", [(venue, "SOL/USDC", 10**8, quote + 1)])
    )
    assert stages(updates) == [Stage.STAGE_BUILDING, Stage.STAGE_FAILED]
    assert updates[-1].reason == expected
    assert updates[-1].retryable is True  # the worker quotes again: the next attempt may fill
    assert await stack.swaps(order_id) == []
    assert await stack.executions(order_id) == []
    assert stack.running.chain.calls.get("sendTransaction", 0) == sends_before


async def _simulated_output(stack: Stack, order_id: str, venue: str) -> int:
    """What the pool pays for 0.1 SOL now: simulate the executor's own transaction at min-out 1."""
    from executor_svc.servicer import validate_request

    plan = validate_request(
        stack.request(order_id, "SOL", "USDC", [(venue, "SOL/USDC", 10**8, 1)]), stack.markets
    )
    built = await stack.running.servicer._builder.build(plan)
    result = await stack.chain.call(
        "simulateTransaction",
        [
            __import__("base64").b64encode(built.raw).decode(),
            {
                "encoding": "base64",
                "commitment": "confirmed",
                "accounts": {"addresses": [str(built.accounts.output_account)], "encoding": "base64"},
            },
        ],
    )
    assert result["value"]["err"] is None
    after = result["value"]["accounts"][0]
    data = __import__("base64").b64decode(after["data"][0])
    out_after = decode_token_account(
        built.accounts.output_account, Pubkey.from_string(after["owner"]), data
    ).amount
    return out_after - await stack.token_balance("USDC")


async def test_execution_is_stored_before_the_first_send(stack: Stack) -> None:
    order_id = await stack.order("SOL", "USDC", 10**7)
    chain = stack.running.chain
    original = chain.send_raw_transaction
    seen: list[list[orders_pb2.Execution]] = []

    async def checking_send(raw: bytes, skip_preflight: bool, retry: bool = True) -> Any:
        seen.append(await stack.executions(order_id))
        return await original(raw, skip_preflight, retry)

    chain.send_raw_transaction = checking_send  # type: ignore[method-assign]
    try:
        updates = await stack.execute(
            stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
        )
    finally:
        del chain.send_raw_transaction
    assert updates[-1].stage == Stage.STAGE_CONFIRMED
    first = seen[0]
    assert len(first) == 1 and first[0].state == "signed"
    assert first[0].signature == updates[-1].signature and len(first[0].signed_tx) > 0


async def test_store_failure_means_nothing_is_sent(stack: Stack) -> None:
    order_id = await stack.order("SOL", "USDC", 10**7)

    class BrokenStream:
        """Persistence's record stream breaks on every try (the database or the link is down)."""

        async def first(self, key: str, request: Any) -> Any:
            raise LinkBroken(grpc.StatusCode.UNAVAILABLE)

    sends_before = stack.running.chain.calls.get("sendTransaction", 0)
    updates = await _execute_recording_through(stack, order_id, BrokenStream())
    assert stages(updates) == [Stage.STAGE_BUILDING, Stage.STAGE_FAILED]
    assert updates[-1].retryable is True and "nothing was sent" in updates[-1].reason
    assert stack.running.chain.calls.get("sendTransaction", 0) == sends_before
    assert await stack.swaps(order_id) == []
    await _no_subscription_left(stack)  # the one taken while it was being stored is closed


async def _execute_recording_through(
    stack: Stack, order_id: str, link: Any
) -> list[executor_pb2.ExecutionUpdate]:
    """Executes a SOL → USDC swap of the order with the executor's record stream replaced by `link`."""
    recorder = stack.running.servicer._recorder
    real = recorder._link
    recorder._link = link
    try:
        return await stack.execute(
            stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
        )
    finally:
        recorder._link = real


async def _no_subscription_left(stack: Stack) -> None:
    feed = stack.running.feed
    assert feed is not None
    async with asyncio.timeout(2):
        while feed._subs or feed._pending or feed._watched:
            await asyncio.sleep(0.01)


async def test_the_outcome_is_subscribed_to_while_the_signed_transaction_is_stored(stack: Stack) -> None:
    """The watch of the outcome is taken while the signed transaction is stored (a signatureSubscribe
    round trip where the wallet's logs subscription is not there): it is asked for before the
    record is made, and the send still waits for both."""
    feed = stack.running.feed
    assert feed is not None
    order_id = await stack.order("SOL", "USDC", 10**7)
    recorder = stack.running.servicer._recorder
    real = recorder._link
    seen: list[int] = []

    class Watching:
        async def first(self, key: str, request: Any) -> Any:
            await asyncio.sleep(0.05)  # a slow store: the subscription is asked for meanwhile
            if request[1].state == "signed":
                seen.append(len(feed._pending) + len(feed._subs) + len(feed._watched))
                assert stack.running.chain.calls.get("sendTransaction", 0) == sends  # not sent yet
            return await real.first(key, request)

    sends = stack.running.chain.calls.get("sendTransaction", 0)
    updates = await _execute_recording_through(stack, order_id, Watching())
    assert stages(updates) == [Stage.STAGE_BUILDING, Stage.STAGE_SUBMITTED, Stage.STAGE_CONFIRMED]
    assert seen == [1]  # subscribed (or asked) before the signed transaction was stored
    await _no_subscription_left(stack)


async def _until_submitted(
    stack: Stack, request: executor_pb2.ExecuteRequest
) -> tuple[executor_pb2.ExecutionUpdate, asyncio.Task[list[executor_pb2.ExecutionUpdate]]]:
    """Starts Execute and returns its SUBMITTED update and the task collecting the rest."""
    submitted: asyncio.Future[executor_pb2.ExecutionUpdate] = asyncio.get_running_loop().create_future()

    async def run() -> list[executor_pb2.ExecutionUpdate]:
        out = []
        async for update in stack.executor.Execute(request):
            out.append(update)
            if update.stage == Stage.STAGE_SUBMITTED and not submitted.done():
                submitted.set_result(update)
        if not submitted.done():
            submitted.set_exception(AssertionError(f"never submitted: {out}"))
        return out

    task = asyncio.create_task(run())
    return await asyncio.wait_for(submitted, 10), task


async def test_stored_unexpired_execution_is_resumed_not_resigned(stack: Stack) -> None:
    order_id = await stack.order("SOL", "USDC", 10**7)
    request = stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    await stack.sim("simSetFaults", {"dropRate": 1.0})  # sent, answered, never lands
    submitted, task = await _until_submitted(stack, request)
    task.cancel()  # the caller goes away (e.g. the worker died) while the transaction is in flight
    with pytest.raises(asyncio.CancelledError):
        await task
    (stored,) = await stack.executions(order_id)
    assert stored.state == "signed" and stored.signature == submitted.signature
    assert await stack.swaps(order_id) == []

    await stack.sim("simSetFaults", {"dropRate": 0.0})
    request.attempt = 2  # the worker's retry
    updates = await stack.execute(request)
    # the new transaction built for attempt 2 is refused by persistence (attempt 1's is live) and
    # dropped unsent; the stored one is re-sent instead
    assert stages(updates) == [Stage.STAGE_BUILDING, Stage.STAGE_SUBMITTED, Stage.STAGE_CONFIRMED]
    assert all(u.resumed for u in updates[1:])
    assert {u.signature for u in updates[1:]} == {submitted.signature}
    (swap,) = await stack.swaps(order_id)
    assert swap["signature"] == submitted.signature
    # and once more: the landed execution is reported, nothing is stored or sent
    sends = stack.running.chain.calls.get("sendTransaction", 0)
    again = await stack.execute(request)
    assert stages(again) == [Stage.STAGE_BUILDING, Stage.STAGE_CONFIRMED] and again[-1].resumed
    assert again[-1].amount_out == updates[-1].amount_out
    assert stack.running.chain.calls.get("sendTransaction", 0) == sends
    assert len(await stack.swaps(order_id)) == 1
    assert [e.state for e in await stack.executions(order_id)] == ["landed"]
    await _no_subscription_left(stack)  # attempt 2's own, never sent, is closed too


class CountingOrders:
    """The executor's persistence stub, counting the calls it makes."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.real, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(*args, **kwargs)

        return counted


async def test_a_fresh_order_is_built_without_reading_stored_executions(stack: Stack) -> None:
    order_id = await stack.order("SOL", "USDC", 10**7)
    servicer = stack.running.servicer
    real = servicer._orders
    counting = CountingOrders(real)
    servicer._orders = counting  # type: ignore[assignment]
    reads, records = servicer._reader._link.requests_written, servicer._recorder._link.requests_written
    try:
        updates = await stack.execute(
            stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
        )
    finally:
        servicer._orders = real
    assert updates[-1].stage == Stage.STAGE_CONFIRMED
    # the stored order on the read stream (executor_svc/checks.py); signed, landed on the record
    # stream; no unary call at all, so no stored execution read
    assert counting.calls == {}
    assert servicer._reader._link.requests_written - reads == 1
    assert servicer._recorder._link.requests_written - records == 2


async def test_two_executors_racing_on_one_order_send_one_swap(stack: Stack) -> None:
    """Two executor processes (replicas; here each with its own wallet, so their transactions
    differ) get the same attempt of the same order at the same moment: persistence stores one
    signed transaction, the other executor resumes that one instead of sending its own."""
    settings = dataclasses.replace(stack.running.settings, executor_addr="127.0.0.1:0")
    second = await executor_server.serve(settings)  # no key: an ephemeral wallet of its own
    channel = open_channel(f"127.0.0.1:{second.port}")
    try:
        other = executor_pb2_grpc.ExecutorStub(channel)
        for _ in range(3):
            order_id = await stack.order("SOL", "USDC", 10**7)
            request = stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
            a, b = await asyncio.gather(stack.execute(request), _collect(other.Execute(request)))
            assert a[-1].stage == b[-1].stage == Stage.STAGE_CONFIRMED, (a, b)
            assert a[-1].signature == b[-1].signature
            assert a[-1].resumed != b[-1].resumed  # one sent its own, the other resumed that one
            (swap,) = await stack.swaps(order_id)
            assert swap["signature"] == a[-1].signature
            (stored,) = await stack.executions(order_id)
            assert stored.signature == swap["signature"] and stored.state == "landed"
    finally:
        await channel.close()
        await second.stop(0)


async def _collect(call: Any) -> list[executor_pb2.ExecutionUpdate]:
    return [u async for u in call]


async def test_expiry_fails_retryable_and_the_next_attempt_signs_anew(stack: Stack) -> None:
    order_id = await stack.order("SOL", "USDC", 10**7)
    request = stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    await stack.sim("simSetFaults", {"dropRate": 1.0})
    submitted, task = await _until_submitted(stack, request)
    await stack.sim("simWarpSlots", {"n": 400})  # far past last_valid_block_height
    updates = await asyncio.wait_for(task, 10)
    assert updates[-1].stage == Stage.STAGE_FAILED
    assert updates[-1].reason == "blockhash expired before landing" and updates[-1].retryable is True
    (stored,) = await stack.executions(order_id)
    assert stored.state == "expired" and stored.signature == submitted.signature

    await stack.sim("simSetFaults", {"dropRate": 0.0})
    request.attempt = 2
    retry = await stack.execute(request)
    assert stages(retry) == [Stage.STAGE_BUILDING, Stage.STAGE_SUBMITTED, Stage.STAGE_CONFIRMED]
    assert retry[-1].signature != submitted.signature and not retry[-1].resumed
    (swap,) = await stack.swaps(order_id)
    assert swap["signature"] == retry[-1].signature and swap["memo"] == f"oe:{order_id}:2"
    assert [e.state for e in await stack.executions(order_id)] == ["expired", "landed"]


async def test_rate_limit_storm_never_lands_two_swaps(stack: Stack) -> None:
    order_id = await stack.order("SOL", "USDC", 10**7)
    request = stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    await stack.sim("simSetFaults", {"failRate": 1.0})  # every sendTransaction answered 429
    first = await stack.execute(request)
    assert first[-1].stage == Stage.STAGE_FAILED and first[-1].retryable is True
    assert "429" in first[-1].reason
    assert await stack.swaps(order_id) == []

    await stack.sim("simSetFaults", {"failRate": 0.5})
    outcomes = [first[-1]]
    for attempt in (2, 3, 4, 5, 6):
        request.attempt = attempt
        updates = await stack.execute(request)
        outcomes.append(updates[-1])
        assert updates[-1].stage in (Stage.STAGE_CONFIRMED, Stage.STAGE_FAILED)
        if updates[-1].stage == Stage.STAGE_FAILED:
            assert updates[-1].retryable is True, updates[-1]
        else:
            break
    await stack.sim("simSetFaults", {"failRate": 0.0})
    assert len(await stack.swaps(order_id)) <= 1
    signatures = {e.signature for e in await stack.executions(order_id)}
    assert len(signatures) == 1  # every attempt resumed the one stored transaction


INVALID: list[tuple[Callable[[Any], None], str]] = [
    (lambda r: setattr(r, "order_id", "not-a-uuid"), "order_id"),
    (lambda r: setattr(r, "attempt", 0), "attempt"),
    (lambda r: setattr(r, "input_mint", "xyz"), "input_mint"),
    (lambda r: setattr(r, "output_mint", ""), "output_mint"),
    (lambda r: setattr(r, "output_mint", r.input_mint), "output_mint"),
    (lambda r: setattr(r, "amount_in", 0), "amount_in"),
    (lambda r: r.route.ClearField("legs"), "route.legs"),
    (lambda r: setattr(r, "amount_in", r.amount_in + 1), "route.legs"),
    (lambda r: setattr(r.route.legs[0], "venue", "orca"), "route.legs[0].venue"),
    (lambda r: setattr(r.route.legs[0], "pool", "not base58 0OIl"), "route.legs[0].pool"),
    (lambda r: setattr(r.route.legs[0], "amount_in", 0), "route.legs[0].amount_in"),
    (lambda r: setattr(r.route.legs[0], "min_amount_out", 0), "route.legs[0].min_amount_out"),
    (lambda r: r.route.legs.extend([r.route.legs[0]] * 2), "route.legs"),
]


async def test_invalid_requests(stack: Stack) -> None:
    order_id = await stack.order("SOL", "USDC", 10**7)
    for mutate, field in INVALID:
        request = stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
        mutate(request)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stack.execute(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert (info.value.details() or "").startswith(f"{field}:"), (field, info.value.details())
    # two legs on two pools, whose amounts do sum up, are fine: the request is valid (and lands)
    ok = stack.request(
        order_id,
        "SOL",
        "USDC",
        [("raydium_cpmm", "SOL/USDC", 4 * 10**6, 1), ("meteora_dlmm", "SOL/USDC", 6 * 10**6, 1)],
    )
    assert (await stack.execute(ok))[-1].stage == Stage.STAGE_CONFIRMED
    assert await stack.executions(order_id) != []  # only the valid request stored anything
    assert len(await stack.executions(order_id)) == 1


async def test_a_pool_that_is_not_on_chain_fails_the_attempt_with_nothing_signed(stack: Stack) -> None:
    """Pools are not limited to the markets file (a sniper's pool appears at runtime): a pool the
    request names is read from the chain, and one that does not exist fails the attempt before
    anything is signed or stored."""
    order_id = await stack.order("SOL", "USDC", 10**7)
    sends_before = stack.running.chain.calls.get("sendTransaction", 0)
    missing = stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    missing.route.legs[0].pool = str(Pubkey.new_unique())
    # a Raydium pool named as a Meteora one: another program's account
    foreign = stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    foreign.route.legs[0].venue = "meteora_dlmm"
    for request, reason in ((missing, "does not exist"), (foreign, "")):
        updates = await stack.execute(request)
        assert updates[-1].stage == Stage.STAGE_FAILED and reason in updates[-1].reason, updates
        assert not updates[-1].retryable
    assert stack.running.chain.calls.get("sendTransaction", 0) == sends_before
    assert await stack.executions(order_id) == [] and await stack.swaps(order_id) == []


async def test_unknown_order_is_not_found(stack: Stack) -> None:
    request = stack.request(str(uuid.uuid4()), "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.execute(request)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_key_never_appears_in_logs_or_answers(stack: Stack) -> None:
    # every log record of a full run, formatted as the services write them (JSON lines)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("executor"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        order_id = await stack.order("SOL", "USDC", 10**7)
        ok = await stack.execute(
            stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
        )
        bad_id = await stack.order("SOL", "USDC", 10**7)
        bad = await stack.execute(
            stack.request(bad_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 2**63)])
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stack.execute(
                stack.request("nope", "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
            )
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert ok[-1].stage == Stage.STAGE_CONFIRMED and bad[-1].stage == Stage.STAGE_FAILED
    logged = out.getvalue()
    assert f'"order_id":"{order_id}"' in logged and "swap confirmed" in logged  # the run was logged
    secret = bytes(SECRET)
    secret_forms = {
        str(SECRET),
        secret.hex(),
        str(list(secret)),
        repr(secret),
        str(SECRET)[:24],
        json.dumps(list(secret[:32]))[1:-1],
        secret[:32].hex(),
    }
    texts = [
        logged,
        str(info.value),
        info.value.details() or "",
        *(str(u) for u in ok + bad),
        repr(stack.running),
        repr(stack.running.settings),
        repr(stack.running.wallet),
    ]
    for text in texts:
        for form in secret_forms:
            assert form not in text
        assert secret[:32] not in text.encode("utf-8", "surrogateescape")


async def test_landed_with_a_slippage_error_fails_retryable_price_moved(stack: Stack) -> None:
    """A transaction that passes simulation but fails its min-out on chain (the pool moved in
    between; simulated here by a simulation that reports success): only its fee was charged and
    nothing swapped, so it is a retryable "price moved" (the next attempt quotes again)."""
    from common.chain import SimulationResult

    order_id = await stack.order("SOL", "USDC", 10**7)
    chain = stack.running.chain

    async def optimistic(tx: Any) -> SimulationResult:
        return SimulationResult(None, [], 60_000)

    chain.simulate = optimistic  # type: ignore[method-assign]
    try:
        updates = await stack.execute(
            stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 2**62)])
        )
    finally:
        del chain.simulate
    assert stages(updates) == [Stage.STAGE_BUILDING, Stage.STAGE_SUBMITTED, Stage.STAGE_FAILED]
    assert updates[-1].reason == (
        "price moved: slippage exceeded on raydium_cpmm (program error 6005 ExceededSlippage)"
    )
    assert updates[-1].retryable is True and updates[-1].signature == updates[1].signature
    assert [e.state for e in await stack.executions(order_id)] == ["failed"]
    assert await stack.swaps(order_id) == []


async def test_concurrent_orders_share_blockhash_statuses_and_pool_reads(stack: Stack) -> None:
    n = 24
    ids = [await stack.order("SOL", "USDC", 10**6) for _ in range(n)]
    chain = stack.running.chain
    before = dict(chain.calls)
    results = await asyncio.gather(
        *(
            stack.execute(stack.request(i, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**6, 1)]))
            for i in ids
        )
    )
    assert all(r[-1].stage == Stage.STAGE_CONFIRMED for r in results)
    assert len({r[-1].signature for r in results}) == n

    def made(method: str) -> int:
        return chain.calls.get(method, 0) - before.get(method, 0)

    # one per order: simulate, send, getTransaction; shared: everything else
    assert made("simulateTransaction") == n and made("sendTransaction") == n and made("getTransaction") == n
    assert made("getLatestBlockhash") <= 3
    assert made("getMultipleAccounts") <= 3
    assert made("getSignatureStatuses") < n  # batched: fewer calls than orders
    assert chain.http_requests < 4 * n  # calls made together travel as JSON-RPC batches


async def test_execute_batches_carries_many_orders_and_refusals_on_one_call(stack: Stack) -> None:
    """ExecuteBatches: several orders (and a refused request) on one call, several per message,
    each update tagged with its order and attempt, each request ending with exactly one CONFIRMED
    or FAILED."""
    ids = [await stack.order("SOL", "USDC", 10**7) for _ in range(4)]
    requests = [stack.request(oid, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)]) for oid in ids]
    bad = stack.request(str(uuid.uuid4()), "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    bad.amount_in = 1  # the legs no longer sum to amount_in: refused before anything is built

    async def feed() -> AsyncIterator[executor_pb2.ExecuteBatch]:
        yield executor_pb2.ExecuteBatch(requests=requests[:2])
        yield executor_pb2.ExecuteBatch(requests=[*requests[2:], bad])

    updates = [u async for batch in stack.executor.ExecuteBatches(feed()) for u in batch.updates]
    by_order: dict[str, list[executor_pb2.ExecutionUpdate]] = {}
    for update in updates:
        assert update.attempt == 1
        by_order.setdefault(update.order_id, []).append(update)
    assert set(by_order) == {*ids, bad.order_id}
    for oid in ids:
        assert stages(by_order[oid]) == [Stage.STAGE_BUILDING, Stage.STAGE_SUBMITTED, Stage.STAGE_CONFIRMED]
        assert len(await stack.swaps(oid)) == 1
    (refused,) = by_order[bad.order_id]
    assert refused.stage == Stage.STAGE_FAILED and refused.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "route.legs" in refused.reason and not refused.retryable


async def test_execute_batches_sends_building_with_the_next_update(stack: Stack) -> None:
    """On the batched stream an order's STAGE_BUILDING leaves in the same message as its next
    update (the send, or why there is none), never in a message of its own; the unary call still
    streams it as it happens."""
    ok = await stack.order("SOL", "USDC", 10**7)
    slipped = await stack.order("SOL", "USDC", 10**7)
    requests = [
        stack.request(ok, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)]),
        # a minimum out no pool pays: the checks pass (BUILDING), the build is refused
        stack.request(slipped, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 10**15)]),
    ]

    async def feed() -> AsyncIterator[executor_pb2.ExecuteBatch]:
        for request in requests:
            yield executor_pb2.ExecuteBatch(requests=[request])

    messages = [list(batch.updates) async for batch in stack.executor.ExecuteBatches(feed())]
    for oid in (ok, slipped):
        (carrying,) = [
            m for m in messages if any(u.order_id == oid and u.stage == Stage.STAGE_BUILDING for u in m)
        ]
        mine = [u.stage for u in carrying if u.order_id == oid]
        assert mine[0] == Stage.STAGE_BUILDING and len(mine) >= 2, mine
    every = [u for m in messages for u in m]
    assert stages([u for u in every if u.order_id == ok])[-1] == Stage.STAGE_CONFIRMED
    assert stages([u for u in every if u.order_id == slipped]) == [Stage.STAGE_BUILDING, Stage.STAGE_FAILED]


# ------------------------------------------------------------------------------------------------
# the pool moves between the snapshot a swap is built from and the slot it lands in


async def _lb_pair(stack: Stack, key: Pubkey) -> dlmm.LbPair:
    _, (account,) = await stack.chain.get_multiple_accounts([key], max_age_s=0)
    assert account is not None
    return dlmm.decode_lb_pair(key, account.owner, account.data, account.owner)


async def test_a_dlmm_swap_lands_after_the_pool_moved_across_a_bin_array_boundary(stack: Stack) -> None:
    """Built (and signed) from the pool as it is, sent after another trader's swap moved the active
    bin into the next bin array the other way: the swap carries the arrays on both sides, so it
    lands; with only the arrays in its own direction from the stale active bin (what the builder
    carried before) the program fails 3005 AccountNotEnoughKeys."""
    from solana.rpc.async_api import AsyncClient

    from executor_svc.servicer import validate_request
    from tests.simchain.helpers import trade

    pair_key = Pubkey.from_string(stack.pool("meteora_dlmm", "SOL/USDC"))
    order_id = await stack.order("SOL", "USDC", 10**9)
    plan = validate_request(
        stack.request(order_id, "SOL", "USDC", [("meteora_dlmm", "SOL/USDC", 10**9, 1)]), stack.markets
    )
    built = await stack.running.servicer._builder.build(plan)
    stale = await _lb_pair(stack, pair_key)
    assert stale.token_x_mint == NATIVE_MINT  # selling SOL: the walk goes down the bin ids
    program = Pubkey.from_string(stack.markets.programs["meteora_dlmm"])
    forward_only = [
        dlmm.bin_array_pda(program, pair_key, i) for i in dlmm.bin_arrays_for_swap(stale, True, 3)
    ]

    # another trader buys SOL: all the SOL left in the active bin's array and a little more, so
    # the active bin moves into the next bin array up
    start = dlmm.bin_array_index(stale.active_id)
    array_key = dlmm.bin_array_pda(program, pair_key, start)
    _, (array_account,) = await stack.chain.get_multiple_accounts([array_key], max_age_s=0)
    assert array_account is not None
    array = dlmm.decode_bin_array(array_key, array_account.owner, array_account.data, program)
    _, upper = dlmm.bin_id_range(start)
    usdc_for_the_rest = sum(
        array.get_bin(b).amount_x * array.get_bin(b).price >> 64 for b in range(stale.active_id, upper + 1)
    )
    trader = Keypair()
    async with AsyncClient(stack.running.settings.solana_rpc_url) as client:
        await client.request_airdrop(trader.pubkey(), 100 * 10**9)
        await trade(client, trader, "meteora_dlmm", pair_key, "USDC", usdc_for_the_rest * 102 // 100)
        moved = await _lb_pair(stack, pair_key)
        assert dlmm.bin_array_index(moved.active_id) == start + 1, (stale.active_id, moved.active_id)

        # the stale swap with only the arrays in its own direction: the program's 3005
        from tests.simchain.helpers import plan_dlmm_swap, sign

        probe = await plan_dlmm_swap(client, pair_key, trader.pubkey(), NATIVE_MINT, 10**9)
        accounts = list(probe.ix.accounts)[:16] + [AccountMeta(k, False, True) for k in forward_only]
        stale_ix = Instruction(program, probe.ix.data, accounts)
        blockhash = (await client.get_latest_blockhash()).value.blockhash
        simulation = await stack.chain.simulate(sign(trader, [stale_ix], blockhash))
        assert simulation.err == {"InstructionError": [0, {"Custom": 3005}]}

    # ours, built before the move, lands
    await stack.chain.send_raw_transaction(built.raw, skip_preflight=False)
    info = None
    for _ in range(200):
        info = await stack.chain.get_transaction(built.signature)
        if info is not None:
            break
        await asyncio.sleep(0.02)
    assert info is not None and info.err is None, info
    (swap,) = await stack.swaps(order_id)
    assert swap["signature"] == str(built.signature) and int(swap["amountOut"]) > 0


@pytest.mark.parametrize(
    ("pair", "legs"),
    [
        (("SOL", "USDC"), [("meteora_dlmm", "SOL/USDC", 10**8)]),
        (("SOL", "USDC"), [("raydium_cpmm", "SOL/USDC", 10**8), ("meteora_dlmm", "SOL/USDC", 10**8)]),
        (("USDC", "SOL"), [("raydium_cpmm", "SOL/USDC", 10**7), ("meteora_dlmm", "SOL/USDC", 10**7)]),
        (("USDT", "USDC"), [("meteora_dlmm", "USDT/USDC", 10**7)]),
    ],
)
async def test_dlmm_swaps_carry_bin_arrays_on_both_sides_and_still_fit_a_packet(
    stack: Stack, pair: tuple[str, str], legs: list[tuple[str, str, int]]
) -> None:
    """Every DLMM leg carries DLMM_BIN_ARRAYS ahead and DLMM_BIN_ARRAYS_BEHIND behind the active
    bin's array (the genesis pools have liquidity on both sides), in its walk's order, and the
    transaction (v0, no lookup tables: ~40 accounts) fits in a packet with the memo kept, even for a
    split with SOL wrapped; within the 64 account locks."""
    from executor_svc.builder import (
        DLMM_BIN_ARRAYS,
        DLMM_BIN_ARRAYS_BEHIND,
        MEMO_PROGRAM_ID,
        PACKET_DATA_SIZE,
    )
    from executor_svc.servicer import validate_request

    order_id = await stack.order(pair[0], pair[1], sum(leg[2] for leg in legs))
    plan = validate_request(
        stack.request(order_id, pair[0], pair[1], [(v, name, a, 1) for v, name, a in legs]), stack.markets
    )
    built = await stack.running.servicer._builder.build(plan)
    assert len(built.raw) <= PACKET_DATA_SIZE
    message = built.tx.message
    keys = message.account_keys
    assert len(keys) <= 64
    program = Pubkey.from_string(stack.markets.programs["meteora_dlmm"])
    dlmm_ixs = [ix for ix in message.instructions if keys[ix.program_id_index] == program]
    assert len(dlmm_ixs) == 1
    (ix,) = dlmm_ixs
    swap = dlmm.parse_swap2(bytes(ix.data), [keys[i] for i in ix.accounts], program)
    pair_key = swap.lb_pair
    lb_pair = await _lb_pair(stack, pair_key)
    active = dlmm.bin_array_index(lb_pair.active_id)
    indexes = [
        next(i for i in range(active - 10, active + 11) if dlmm.bin_array_pda(program, pair_key, i) == key)
        for key in swap.bin_arrays
    ]
    selling_x = plan.input_mint == lb_pair.token_x_mint
    step = -1 if selling_x else 1

    def exists(index: int) -> bool:  # the pair's bitmap marks its initialized bin arrays
        return bool(lb_pair.bin_array_bitmap >> (index + 512) & 1)

    ahead = [active + step * k for k in range(DLMM_BIN_ARRAYS) if exists(active + step * k)]
    behind = [active - step * k for k in range(1, DLMM_BIN_ARRAYS_BEHIND + 1) if exists(active - step * k)]
    assert ahead and behind  # both sides
    assert indexes == dlmm.swap_order([*ahead, *behind], selling_x)
    assert any(keys[i.program_id_index] == MEMO_PROGRAM_ID for i in message.instructions)


# ------------------------------------------------------------------------------------------------
# what a confirmed swap cost


def _compute_budget(tx: Any) -> tuple[int, int]:
    """(unit limit, unit price) of a transaction's ComputeBudget instructions."""
    keys = tx.message.account_keys
    limit = price = 0
    for ix in tx.message.instructions:
        if str(keys[ix.program_id_index]) != "ComputeBudget111111111111111111111111111111":
            continue
        data = bytes(ix.data)
        if data[0] == 2:
            limit = int.from_bytes(data[1:5], "little")
        elif data[0] == 3:
            price = int.from_bytes(data[1:9], "little")
    return limit, price


@pytest.mark.parametrize(
    ("pair", "venue"), [(("SOL", "USDC"), "raydium_cpmm"), (("USDC", "SOL"), "meteora_dlmm")]
)
async def test_the_confirmed_update_carries_exactly_what_the_swap_cost(
    stack: Stack, pair: tuple[str, str], venue: str
) -> None:
    """Network fee, priority fee (here nonzero: another trader paid a compute unit price on the pool
    and the executor takes the 100th percentile), rent and the wallet's balance change per mint,
    each exactly the chain's number: meta.fee split, the compute budget the transaction carried,
    and the wallet's SOL and token balances read before and after."""
    from solana.rpc.async_api import AsyncClient
    from solders.compute_budget import set_compute_unit_price
    from solders.transaction import VersionedTransaction

    from tests.simchain.helpers import blockhash, plan_cpmm_swap, plan_dlmm_swap, send, sign

    stack.running.servicer._builder._fee_percentile = 100
    pool = Pubkey.from_string(stack.pool(venue, "SOL/USDC"))
    trader = Keypair()
    async with AsyncClient(stack.running.settings.solana_rpc_url) as client:
        await client.request_airdrop(trader.pubkey(), 100 * 10**9)
        plan = plan_cpmm_swap if venue == "raydium_cpmm" else plan_dlmm_swap
        planned = await plan(client, pool, trader.pubkey(), NATIVE_MINT, 10**7)
        signature = await send(
            client, sign(trader, [set_compute_unit_price(777_000), planned.ix], await blockhash(client))
        )
        await client.confirm_transaction(signature, sleep_seconds=0.02)

    amount = 10**8 if pair[0] == "SOL" else 20 * 10**6
    order_id = await stack.order(pair[0], pair[1], amount)
    sol_before, usdc_before = await stack.sol_value(), await stack.token_balance("USDC")
    updates = await stack.execute(stack.request(order_id, pair[0], pair[1], [(venue, "SOL/USDC", amount, 1)]))
    confirmed = updates[-1]
    assert confirmed.stage == Stage.STAGE_CONFIRMED, confirmed
    cost = confirmed.cost
    info = await stack.chain.get_transaction(confirmed.signature)
    assert info is not None
    (execution,) = await stack.executions(order_id)
    tx = VersionedTransaction.from_bytes(execution.signed_tx)
    limit, price = _compute_budget(tx)
    assert price == 777_000
    assert cost.network_fee == 5_000 * len(tx.signatures)
    assert cost.priority_fee == -(-price * limit // 1_000_000) > 0
    assert cost.network_fee + cost.priority_fee == info.fee
    changes = {c.mint: c.change for c in cost.balance_changes}
    sol_change = await stack.sol_value() - sol_before
    usdc_change = await stack.token_balance("USDC") - usdc_before
    assert changes == {SOL: sol_change, stack.mint("USDC"): usdc_change}
    fees = cost.network_fee + cost.priority_fee + cost.rent
    if pair[0] == "SOL":  # the SOL swapped, the fees and the rent left the wallet's SOL
        assert -sol_change == confirmed.amount_in + fees and usdc_change == confirmed.amount_out
    else:
        assert sol_change == confirmed.amount_out - fees and -usdc_change == confirmed.amount_in
    # the wallet's USDC account existed before (the simulated chain funds it): no rent paid
    assert cost.rent == 0


# -- pushed confirmations (signatureSubscribe) ----------------------------------------------------


def _count(via: str) -> float:
    return CHAIN_CONFIRMATIONS.labels(via)._value.get()


def _calls(method: str) -> float:
    return CHAIN_RPC_CALLS.labels(method)._value.get()


async def test_the_confirmation_is_pushed_and_no_status_is_polled(stack: Stack) -> None:
    feed = stack.running.feed
    assert feed is not None and feed.url.startswith("ws://")
    pushed, polled, status_calls = _count("push"), _count("poll"), _calls("getSignatureStatuses")
    order_id = await stack.order("SOL", "USDC", 10**7)
    updates = await stack.execute(
        stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    )
    assert stages(updates) == [Stage.STAGE_BUILDING, Stage.STAGE_SUBMITTED, Stage.STAGE_CONFIRMED]
    assert (_count("push"), _count("poll")) == (pushed + 1, polled)
    assert _calls("getSignatureStatuses") == status_calls  # subscribed before the send: nothing to ask
    assert feed.pushed >= 1 and feed.ignored == 0
    # watched on the wallet's one logs subscription: no request per transaction, nothing left over
    assert feed._logs_sub is not None
    assert not feed._subs and not feed._pending and not feed._watched
    requests = next(feed._ids)
    order_ids = [await stack.order("SOL", "USDC", 10**7 + i) for i in range(3)]
    for updates in await asyncio.gather(
        *(
            stack.execute(stack.request(oid, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7 + i, 1)]))
            for i, oid in enumerate(order_ids)
        )
    ):
        assert updates[-1].stage == Stage.STAGE_CONFIRMED
    assert next(feed._ids) == requests + 1 and _count("push") == pushed + 4


@pytest.mark.parametrize("stack", [{"SOLANA_WS_URL": "ws://127.0.0.1:1"}], indirect=True)
async def test_without_a_websocket_the_transaction_is_followed_by_polls(stack: Stack) -> None:
    polled = _count("poll")
    order_id = await stack.order("SOL", "USDC", 10**7)
    updates = await stack.execute(
        stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    )
    assert stages(updates) == [Stage.STAGE_BUILDING, Stage.STAGE_SUBMITTED, Stage.STAGE_CONFIRMED]
    assert _count("poll") == polled + 1
    assert stack.running.feed is not None and stack.running.feed.pushed == 0


@pytest.mark.parametrize("stack", [{"CONFIRM_PUSH": "false"}], indirect=True)
async def test_push_can_be_turned_off(stack: Stack) -> None:
    assert stack.running.feed is None
    status_calls = _calls("getSignatureStatuses")
    order_id = await stack.order("SOL", "USDC", 10**7)
    updates = await stack.execute(
        stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    )
    assert updates[-1].stage == Stage.STAGE_CONFIRMED
    assert _calls("getSignatureStatuses") > status_calls  # followed by polls


async def test_a_socket_lost_while_a_transaction_is_in_flight_falls_back_to_polls(stack: Stack) -> None:
    feed = stack.running.feed
    assert feed is not None
    order_id = await stack.order("SOL", "USDC", 10**7)
    request = stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    await stack.sim("simSetFaults", {"dropRate": 1.0})  # sent, but no leader takes it yet
    submitted, task = await _until_submitted(stack, request)
    assert feed._watched  # it is watched
    polled = _count("poll")
    assert feed._ws is not None
    await feed._ws.close()  # the node's WebSocket goes away
    await stack.sim("simSetFaults", {"dropRate": 0.0})  # a rebroadcast of the same bytes lands
    updates = await asyncio.wait_for(task, 10)
    assert updates[-1].stage == Stage.STAGE_CONFIRMED and updates[-1].signature == submitted.signature
    assert _count("poll") == polled + 1
    (swap,) = await stack.swaps(order_id)
    assert swap["signature"] == submitted.signature
    # the next transaction is watched on a new socket
    order_id = await stack.order("SOL", "USDC", 10**7)
    pushed = _count("push")
    await asyncio.sleep(1.1)  # a lost socket is reconnected after a second
    updates = await stack.execute(
        stack.request(order_id, "SOL", "USDC", [("raydium_cpmm", "SOL/USDC", 10**7, 1)])
    )
    assert updates[-1].stage == Stage.STAGE_CONFIRMED and _count("push") == pushed + 1


async def test_what_the_node_pushes_on_the_wallets_subscription_is_checked_before_it_is_believed(
    stack: Stack,
) -> None:
    feed = stack.running.feed
    assert feed is not None
    signature = str(Keypair().sign_message(b"never sent"))
    watch = await feed.watch(signature)
    assert watch.shared and feed._watched[signature] is watch
    note = {"subscription": feed._logs_sub, "result": {"context": {"slot": 1}, "value": {"err": None}}}
    feed._on_message(json.dumps({"jsonrpc": "2.0", "method": "logsNotification", "params": note}))
    assert not watch.broken and feed.ignored == 1  # no signature: whose?
    value = {"signature": str(Keypair().sign_message(b"other")), "err": None, "logs": []}
    note["result"] = {"context": {"slot": 1}, "value": value}
    feed._on_message(json.dumps({"jsonrpc": "2.0", "method": "logsNotification", "params": note}))
    assert not watch.broken and feed.ignored == 1 and feed.pushed == 0  # another transaction
    note["result"] = {"context": {"slot": -1}, "value": {**value, "signature": signature}}
    feed._on_message(json.dumps({"jsonrpc": "2.0", "method": "logsNotification", "params": note}))
    assert watch.broken and await watch.wait(0.01) is None
    assert feed.pushed == 0 and signature not in feed._watched


async def test_a_node_that_refuses_the_wallets_subscription_gets_one_per_signature(stack: Stack) -> None:
    running = stack.running.feed
    assert running is not None
    feed = SignatureFeed(running.url, "confirmed", "not-an-address")  # the node refuses the filter
    try:
        watch = await feed.watch(str(Keypair().sign_message(b"never sent")))
        assert feed._logs_refused and feed._logs_sub is None
        assert not watch.shared and watch.sub_id is not None and feed._subs[watch.sub_id] is watch
    finally:
        await feed.close()


async def test_what_the_node_pushes_is_checked_before_it_is_believed(stack: Stack) -> None:
    """A malformed or unexpected message never confirms anything: the watch breaks and polls decide
    (a subscription per signature; the wallet's is above)."""
    running = stack.running.feed
    assert running is not None
    feed = SignatureFeed(running.url, "confirmed")
    try:
        watch = await feed.watch(str(Keypair().sign_message(b"never sent")))
        assert watch.sub_id is not None and not watch.shared
        for junk in (
            b"{oops",
            b"[]",
            b'{"jsonrpc":"2.0","id":123456,"result":7}',
            b'{"method":"signatureNotification"}',
        ):
            feed._on_message(junk)
        assert not watch.broken and feed.ignored == 4
        bad = {"subscription": watch.sub_id, "result": {"context": {"slot": -1}, "value": {"err": None}}}
        feed._on_message(json.dumps({"jsonrpc": "2.0", "method": "signatureNotification", "params": bad}))
        assert watch.broken and await watch.wait(0.01) is None
        assert feed.pushed == 0
    finally:
        await feed.close()
