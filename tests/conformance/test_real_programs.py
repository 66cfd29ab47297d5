"""Conformance against the real programs: the swap transactions the executor builds, executed by the
real Raydium CPMM and Meteora DLMM binaries in LiteSVM on the fixture pools.

Runs only when DEX_PROGRAMS_DIR names a directory holding the binaries the vectors were made with
(`tests/fixtures/solana/README.md`, "Programs"): `raydium_cp_swap.so` (metaDAOproject/metaDAO,
`tests/fixtures/raydium_cp_swap.so`) and `lb_clmm_prod.so` (MeteoraAg/dlmm-sdk,
`commons/tests/artifacts/lb_clmm_prod.so`). They are not in this repository.

For every vector of `swap_vectors.json`: a fresh SVM holds both programs at their mainnet ids, the
fixture accounts, the case's clock and a funded wallet (holding `amount_in` of the input token in
its associated account, or SOL to wrap). `executor_svc.builder.TxBuilder` builds the order's whole
transaction — compute budget, SOL wrap, idempotent ATA creation, the DEX instruction from
`common.dex` (`swap_base_input_ix` / `swap2_ix` with the bin arrays it chooses), unwrap, memo —
simulates it and signs it, reading the chain through an adapter over the SVM. Then:

- a case the program accepted: the transaction lands and the wallet receives exactly our quote,
  which is the vector's expected output, with `min_amount_out` set to that very quote;
- a case the program rejected: our quote raises the program's error, the builder's simulation
  fails with that same program error code and name, and nothing is sent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

from common.chain import AccountData, SimulationResult
from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex.errors import QuoteError
from common.dex.spl_token import NATIVE_MINT, TOKEN_PROGRAM_ID, decode_token_account
from common.markets import Markets, Token
from common.settings import load_settings
from executor_svc.builder import (
    SLIPPAGE_CODES,
    BuildFailed,
    LegPlan,
    OrderPlan,
    TxBuilder,
    create_ata_idempotent_ix,
)
from executor_svc.builder import associated_token_address as ata
from executor_svc.wallet import Wallet
from tests.common.dex.conftest import cpmm_fixture, dlmm_fixture, load_account, pools, vectors

PROGRAMS_DIR = os.environ.get("DEX_PROGRAMS_DIR", "")
BINARIES = {"raydium_cpmm": "raydium_cp_swap.so", "meteora_dlmm": "lb_clmm_prod.so"}
PRIORITY_FEE = 1_000  # micro-lamports per compute unit the adapter reports, so the fee is paid too
WALLET_SOL = 10**15  # enough to wrap the largest SOL input of the vectors

pytestmark = pytest.mark.skipif(not PROGRAMS_DIR, reason="DEX_PROGRAMS_DIR is not set")


def _binary(venue: str) -> bytes:
    path = Path(PROGRAMS_DIR) / BINARIES[venue]
    if not path.is_file():
        pytest.fail(f"DEX_PROGRAMS_DIR: {path} not found")
    data = path.read_bytes()
    want = {v["program_sha256"] for v in vectors() if v["venue"] == venue}
    if hashlib.sha256(data).hexdigest() not in want:
        pytest.fail(f"{path} is not the binary the vectors were made with (sha256 {want})")
    return data


def _err_json(err: Any) -> Any:
    """A LiteSVM TransactionError in the JSON-RPC shape the builder reads."""
    if isinstance(err, TransactionErrorInstructionError):
        inner = err.err
        if isinstance(inner, InstructionErrorCustom):
            return {"InstructionError": [err.index, {"Custom": inner.code}]}
        return {"InstructionError": [err.index, str(inner).rsplit(".", 1)[-1]]}
    return str(err).rsplit(".", 1)[-1]


class SvmChain:
    """The part of common.chain.ChainClient the builder uses, answered by a LiteSVM."""

    def __init__(self, svm: LiteSVM, signer: Keypair) -> None:
        self.svm = svm
        self.signer = signer  # simulation runs with signature checks on: sign what is simulated
        self.simulated: list[SimulationResult] = []

    async def get_multiple_accounts(
        self, keys: Sequence[Pubkey], max_age_s: float | None = None
    ) -> tuple[int, list[AccountData | None]]:
        out: list[AccountData | None] = []
        for key in keys:
            acct = self.svm.get_account(key)
            out.append(
                None
                if acct is None or acct.lamports == 0
                else AccountData(acct.lamports, acct.owner, bytes(acct.data), acct.executable)
            )
        return self.svm.get_clock().slot, out

    async def recent_prioritization_fee(self, accounts: Sequence[Pubkey], percentile: int = 75) -> int:
        return PRIORITY_FEE

    async def latest_blockhash(self) -> tuple[Hash, int]:
        return self.svm.latest_blockhash(), 2**63

    def forget_blockhash(self) -> None:
        pass

    async def simulate(self, tx: VersionedTransaction | bytes) -> SimulationResult:
        assert isinstance(tx, VersionedTransaction)
        signed = VersionedTransaction(tx.message, [self.signer])
        result = self.svm.simulate_transaction(signed)
        meta = result.meta()
        err = _err_json(result.err()) if isinstance(result, FailedTransactionMetadata) else None
        sim = SimulationResult(err, list(meta.logs()), meta.compute_units_consumed())
        self.simulated.append(sim)
        return sim


def _put(svm: LiteSVM, address: Pubkey, owner: Pubkey, data: bytes, lamports: int) -> None:
    svm.set_account(address, Account(lamports=lamports, data=data, owner=owner, executable=False))


def _svm(v: dict[str, Any]) -> LiteSVM:
    svm = LiteSVM()
    for venue in BINARIES:
        program = Pubkey.from_string(next(x["program_id"] for x in vectors() if x["venue"] == venue))
        svm.add_program(program, _binary(venue))
    for account in pools()[v["fixture"]]["accounts"].values():
        raw = load_account(account["file"])
        _put(svm, raw.address, raw.owner, raw.data, raw.lamports)
    c = v["clock"]
    svm.set_clock(Clock(c["slot"], c["unix_timestamp"], c["epoch"], c["epoch"], c["unix_timestamp"]))
    return svm


def _token_program(svm: LiteSVM, mint: Pubkey) -> Pubkey:
    acct = svm.get_account(mint)
    assert acct is not None, f"mint {mint} is not in the fixture"
    return acct.owner


def _fund_input(svm: LiteSVM, payer: Keypair, mint: Pubkey, amount: int) -> None:
    """The wallet's associated account of `mint`, created by the real ATA program, holding
    `amount` (as the vectors were made). SOL is wrapped by the transaction itself."""
    if mint == NATIVE_MINT:
        return
    program = _token_program(svm, mint)
    ix = create_ata_idempotent_ix(payer.pubkey(), payer.pubkey(), mint, program)
    message = MessageV0.try_compile(payer.pubkey(), [ix], [], svm.latest_blockhash())
    result = svm.send_transaction(VersionedTransaction(message, [payer]))
    assert isinstance(result, TransactionMetadata), result
    address = ata(payer.pubkey(), mint, program)
    acct = svm.get_account(address)
    assert acct is not None
    data = bytearray(acct.data)
    data[64:72] = amount.to_bytes(8, "little")
    _put(svm, address, acct.owner, bytes(data), acct.lamports)
    svm.expire_blockhash()  # the order's transaction gets a blockhash of its own


def _quote(v: dict[str, Any]) -> int:
    """Our exact quote for the vector (raises QuoteError where the program refuses)."""
    c = v["clock"]
    if v["venue"] == "raydium_cpmm":
        fx = cpmm_fixture()
        zero_for_one = v["direction"] == "token_0_to_token_1"
        fee_in, fee_out = (fx.fee_0, fx.fee_1) if zero_for_one else (fx.fee_1, fx.fee_0)
        return cpmm.quote_exact_in(
            fx.pool,
            fx.config,
            fx.vault_0,
            fx.vault_1,
            v["amount_in"],
            zero_for_one,
            c["unix_timestamp"],
            fee_in,
            fee_out,
            c["epoch"],
            v["minimum_amount_out"],
        ).amount_out
    d = dlmm_fixture(v["fixture"])
    return dlmm.quote_exact_in(
        d.pair,
        d.arrays,
        v["amount_in"],
        v["direction"] == "x_to_y",
        c["slot"],
        c["unix_timestamp"],
        c["epoch"],
        d.fee_x,
        d.fee_y,
        min_amount_out=v["minimum_amount_out"],
    ).amount_out


def _markets(v: dict[str, Any]) -> Markets:
    programs = {x["venue"]: x["program_id"] for x in vectors()}
    tokens = tuple(
        Token(f"T{i}", mint, 6) for i, mint in enumerate(sorted({v["input_mint"], v["output_mint"]}))
    )
    return Markets("conformance", programs, tokens, ())


def _received(svm: LiteSVM, payer: Pubkey, output_mint: Pubkey, lamports_before: int, fee: int) -> int:
    if output_mint == NATIVE_MINT:  # unwrapped into the wallet by the same transaction
        return svm.get_balance(payer) - lamports_before + fee
    address = ata(payer, output_mint, _token_program(svm, output_mint))
    acct = svm.get_account(address)
    assert acct is not None
    return decode_token_account(address, acct.owner, bytes(acct.data)).amount


VECTORS = vectors()


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
async def test_the_program_accepts_our_transaction_and_pays_our_quote(v: dict[str, Any]) -> None:
    svm = _svm(v)
    payer = Keypair()
    _put(svm, payer.pubkey(), SYSTEM_PROGRAM_ID, b"", WALLET_SOL)
    input_mint, output_mint = Pubkey.from_string(v["input_mint"]), Pubkey.from_string(v["output_mint"])
    _fund_input(svm, payer, input_mint, v["amount_in"])
    chain = SvmChain(svm, payer)
    builder = TxBuilder(chain, _markets(v), Wallet(payer), load_settings({}, dotenv=Path("/nonexistent")))  # type: ignore[arg-type]
    try:
        quoted: int | None = _quote(v)
    except QuoteError as exc:
        quoted = None
        assert v["result"] == "error" and exc.code == v["error"]["code"]
    # min-out: the vector's when it tests slippage, else exactly our quote (nothing less accepted)
    min_out = v["minimum_amount_out"] or quoted or 0
    pool = Pubkey.from_string(v["pool"])
    plan = OrderPlan(
        str(uuid.uuid4()),
        1,
        input_mint,
        output_mint,
        v["amount_in"],
        (LegPlan(v["venue"], pool, v["amount_in"], min_out),),
    )

    if v["result"] == "error":
        with pytest.raises(BuildFailed) as failed:
            await builder.build(plan)
        code, name = v["error"]["code"], v["error"]["name"]
        assert f"program error {code} {name}" in failed.value.reason, (failed.value.reason, chain.simulated)
        # the min-out check is a retryable "price moved" (a fresh quote may fill it), any other not
        assert failed.value.retryable == (code in SLIPPAGE_CODES[v["venue"]])
        # the program itself refused it, in the simulation, with that code (so nothing is signed or sent)
        rejected = chain.simulated[-1]
        assert rejected.err["InstructionError"][1] == {"Custom": code}
        failing = v["error"]["failing_program"]
        assert any(line.startswith(f"Program {failing} failed") for line in rejected.logs)
        return

    assert quoted == v["expected_amount_out"]
    built = await builder.build(plan)
    assert chain.simulated[-1].err is None
    lamports_before = svm.get_balance(payer.pubkey())
    result = svm.send_transaction(built.tx)
    assert isinstance(result, TransactionMetadata), (result, chain.simulated[-1].logs)
    fee = 5000 + math.ceil(built.compute_unit_limit * built.compute_unit_price / 10**6)
    assert result.fee() == fee
    assert result.compute_units_consumed() <= built.compute_unit_limit
    assert _received(svm, payer.pubkey(), output_mint, lamports_before, fee) == quoted
    # the program touched nothing but what we named: every leftover wSOL went back to the wallet
    wsol = svm.get_account(ata(payer.pubkey(), NATIVE_MINT, TOKEN_PROGRAM_ID))
    assert wsol is None or wsol.lamports == 0
    logs = "\n".join(result.logs())
    assert f"Program {v['program_id']} success" in logs
    assert "Program MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr success" in logs


async def test_a_dlmm_swap_built_before_the_pool_moved_into_another_bin_array_lands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 11 item 6 against the real program: our order buys X (the walk goes up the bin ids)
    from the fixture pair whose active bin is the first of bin array 0; both transactions are built
    and signed from that state, then another trader sells X and moves the active bin down into
    array -1. The transaction carrying only the arrays in its own direction from the stale active
    bin (what the builder did before: array 0) fails 3005 AccountNotEnoughKeys in the program; ours,
    carrying the array behind too, lands and pays at least its quote (the price moved our way)."""
    from executor_svc import builder as builder_module

    v = next(x for x in VECTORS if x["id"] == "dlmm-pub-04")  # SOL (Y) in, X out, on pair B5Eia…
    svm = _svm(v)
    pool = Pubkey.from_string(v["pool"])
    input_mint, output_mint = Pubkey.from_string(v["input_mint"]), Pubkey.from_string(v["output_mint"])
    settings = load_settings({}, dotenv=Path("/nonexistent"))

    def wallet(sol: int) -> tuple[Keypair, TxBuilder]:
        kp = Keypair()
        _put(svm, kp.pubkey(), SYSTEM_PROGRAM_ID, b"", sol)
        return kp, TxBuilder(SvmChain(svm, kp), _markets(v), Wallet(kp), settings)  # type: ignore[arg-type]

    def pair() -> dlmm.LbPair:
        acct = svm.get_account(pool)
        assert acct is not None
        return dlmm.decode_lb_pair(pool, acct.owner, bytes(acct.data), acct.owner)

    stale = pair()
    assert stale.active_id == 0 and stale.token_y_mint == input_mint  # buying X: up from bin 0
    payer, ours = wallet(WALLET_SOL)
    trader, theirs = wallet(10**12)
    _fund_input(svm, trader, output_mint, 500_000_000)  # (a new blockhash: before ours are signed)
    quoted = _quote(v)
    plan = OrderPlan(
        str(uuid.uuid4()),
        1,
        input_mint,
        output_mint,
        v["amount_in"],
        (LegPlan(v["venue"], pool, v["amount_in"], quoted),),
    )
    built = await ours.build(plan)
    with monkeypatch.context() as before:
        before.setattr(builder_module, "DLMM_BIN_ARRAYS_BEHIND", 0)
        old = await ours.build(dataclasses.replace(plan, attempt=2))  # the same order as built before
    behind = dlmm.bin_array_pda(Pubkey.from_string(v["program_id"]), pool, -1)
    assert behind in built.tx.message.account_keys and behind not in old.tx.message.account_keys

    # another trader sells X: the active bin moves down into bin array -1
    sell = OrderPlan(
        str(uuid.uuid4()),
        1,
        output_mint,
        input_mint,
        500_000_000,
        (LegPlan(v["venue"], pool, 500_000_000, 1),),
    )
    result = svm.send_transaction((await theirs.build(sell)).tx)
    assert isinstance(result, TransactionMetadata), result
    assert dlmm.bin_array_index(pair().active_id) == -1

    failed = svm.send_transaction(old.tx)
    assert isinstance(failed, FailedTransactionMetadata)
    assert _err_json(failed.err()) == {"InstructionError": [_swap_index(old), {"Custom": 3005}]}
    assert any("AccountNotEnoughKeys" in line for line in failed.meta().logs())

    landed = svm.send_transaction(built.tx)
    assert isinstance(landed, TransactionMetadata), landed
    address = ata(payer.pubkey(), output_mint, _token_program(svm, output_mint))
    account = svm.get_account(address)
    assert account is not None
    assert decode_token_account(address, account.owner, bytes(account.data)).amount >= quoted


def _swap_index(built: Any) -> int:
    """The index of the DEX instruction in one of our transactions."""
    return next(i for i, role in built.roles.items() if role.endswith(" swap"))


def _quote_exact_out(v: dict[str, Any], amount_out: int, max_amount_in: int = 2**64 - 1) -> int:
    """Our exact-out quote: the input the program takes to pay exactly `amount_out` (raises
    QuoteError where the program refuses, e.g. a max-in below it)."""
    c = v["clock"]
    if v["venue"] == "raydium_cpmm":
        fx = cpmm_fixture()
        zero_for_one = v["direction"] == "token_0_to_token_1"
        fee_in, fee_out = (fx.fee_0, fx.fee_1) if zero_for_one else (fx.fee_1, fx.fee_0)
        return cpmm.quote_exact_out(
            fx.pool,
            fx.config,
            fx.vault_0,
            fx.vault_1,
            amount_out,
            zero_for_one,
            c["unix_timestamp"],
            fee_in,
            fee_out,
            c["epoch"],
            max_amount_in,
        ).amount_in
    d = dlmm_fixture(v["fixture"])
    return dlmm.quote_exact_out(
        d.pair,
        d.arrays,
        amount_out,
        v["direction"] == "x_to_y",
        c["slot"],
        c["unix_timestamp"],
        c["epoch"],
        d.fee_x,
        d.fee_y,
        max_amount_in=max_amount_in,
    ).amount_in


ACCEPTED = [v for v in VECTORS if v["result"] != "error"]


@pytest.mark.parametrize("v", ACCEPTED, ids=[v["id"] for v in ACCEPTED])
async def test_exact_out_lands_exactly_and_takes_exactly_our_quote(v: dict[str, Any]) -> None:
    """Exact-out through the real programs: the executor's swap_base_output / swap_exact_out2 for
    the vector's output, with max-in set to exactly our exact-out quote, lands; the wallet receives
    exactly that output and is debited exactly our quote; one unit less of max-in is refused by the
    program in simulation with the error our quote raises, and nothing is sent."""
    want = v["expected_amount_out"]
    needed = _quote_exact_out(v, want)
    assert 0 < needed <= v["amount_in"]  # exact-in of amount_in paid `want`: buying it costs no more
    input_mint, output_mint = Pubkey.from_string(v["input_mint"]), Pubkey.from_string(v["output_mint"])
    pool = Pubkey.from_string(v["pool"])

    def plan(max_in: int) -> OrderPlan:
        leg = LegPlan(v["venue"], pool, needed, want, True, max_in)
        return OrderPlan(str(uuid.uuid4()), 1, input_mint, output_mint, 0, (leg,), want)

    with pytest.raises(QuoteError) as too_little:
        _quote_exact_out(v, want, needed - 1)
    svm = _svm(v)
    payer = Keypair()
    _put(svm, payer.pubkey(), SYSTEM_PROGRAM_ID, b"", WALLET_SOL)
    spare = 1_000  # the wallet holds more than the swap may take
    _fund_input(svm, payer, input_mint, needed + spare)
    chain = SvmChain(svm, payer)
    builder = TxBuilder(chain, _markets(v), Wallet(payer), load_settings({}, dotenv=Path("/nonexistent")))  # type: ignore[arg-type]

    with pytest.raises(BuildFailed) as refused:
        await builder.build(plan(needed - 1))
    code = too_little.value.code
    assert f"program error {code} {too_little.value.name}" in refused.value.reason, (
        refused.value.reason,
        chain.simulated[-1].logs,
    )
    assert chain.simulated[-1].err["InstructionError"][1] == {"Custom": code}

    built = await builder.build(plan(needed))
    assert chain.simulated[-1].err is None, chain.simulated[-1].logs
    lamports_before = svm.get_balance(payer.pubkey())
    result = svm.send_transaction(built.tx)
    assert isinstance(result, TransactionMetadata), (result, chain.simulated[-1].logs)
    fee = 5000 + math.ceil(built.compute_unit_limit * built.compute_unit_price / 10**6)
    assert result.fee() == fee
    out_rent = 0
    if output_mint != NATIVE_MINT:
        out_account = svm.get_account(ata(payer.pubkey(), output_mint, _token_program(svm, output_mint)))
        assert out_account is not None
        out_rent = out_account.lamports  # the output account the transaction created
        assert _received(svm, payer.pubkey(), output_mint, lamports_before, fee) == want
    if input_mint == NATIVE_MINT:
        spent = lamports_before - svm.get_balance(payer.pubkey()) - fee - out_rent
    else:
        address = ata(payer.pubkey(), input_mint, _token_program(svm, input_mint))
        acct = svm.get_account(address)
        assert acct is not None
        spent = needed + spare - decode_token_account(address, acct.owner, bytes(acct.data)).amount
    assert spent == needed
    if output_mint == NATIVE_MINT:  # unwrapped into the wallet by the same transaction
        assert _received(svm, payer.pubkey(), output_mint, lamports_before, fee) == want
    wsol = svm.get_account(ata(payer.pubkey(), NATIVE_MINT, TOKEN_PROGRAM_ID))
    assert wsol is None or wsol.lamports == 0
    assert f"Program {v['program_id']} success" in "\n".join(result.logs())
