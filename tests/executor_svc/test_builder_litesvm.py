"""The real-chain guard: the builder's SOL wrap, idempotent ATA creation, unwrap, compute budget and
memo instructions executed by the real System, SPL Token, Associated Token Account, ComputeBudget
and Memo programs (LiteSVM), without the DEX instruction."""

from __future__ import annotations

import uuid

from solders.account import Account
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from common.dex.spl_token import (
    MINT_SIZE,
    NATIVE_MINT,
    TOKEN_PROGRAM_ID,
    Mint,
    TokenAccount,
    associated_token_address,
    decode_token_account,
    encode_mint,
    encode_token_account,
)
from executor_svc.builder import LegPlan, OrderPlan, WalletAccounts, compose_instructions

USDC = Pubkey.new_unique()
POOL = Pubkey.new_unique()


def _svm_with_mints() -> LiteSVM:
    svm = LiteSVM()
    rent = svm.minimum_balance_for_rent_exemption(MINT_SIZE)
    for mint, decimals in ((NATIVE_MINT, 9), (USDC, 6)):
        data = encode_mint(Mint(TOKEN_PROGRAM_ID, None, 0, decimals, True, None))
        svm.set_account(mint, Account(lamports=rent, data=data, owner=TOKEN_PROGRAM_ID, executable=False))
    return svm


def _plan(input_mint: Pubkey, output_mint: Pubkey, amount_in: int) -> OrderPlan:
    return OrderPlan(
        str(uuid.uuid4()),
        1,
        input_mint,
        output_mint,
        amount_in,
        (LegPlan("raydium_cpmm", POOL, amount_in, 1),),
    )


def _accounts(owner: Pubkey, plan: OrderPlan) -> WalletAccounts:
    return WalletAccounts(
        TOKEN_PROGRAM_ID,
        TOKEN_PROGRAM_ID,
        associated_token_address(owner, plan.input_mint, TOKEN_PROGRAM_ID),
        associated_token_address(owner, plan.output_mint, TOKEN_PROGRAM_ID),
    )


def _send(svm: LiteSVM, payer: Keypair, plan: OrderPlan, drop_unwrap: bool = False) -> TransactionMetadata:
    ixs, roles = compose_instructions(
        payer.pubkey(), plan, _accounts(payer.pubkey(), plan), [], 200_000, 1_000
    )
    if drop_unwrap:
        ixs = [ix for i, ix in enumerate(ixs) if roles[i] != "unwrap SOL"]
    message = MessageV0.try_compile(payer.pubkey(), ixs, [], svm.latest_blockhash())
    result = svm.send_transaction(VersionedTransaction(message, [payer]))
    assert not isinstance(result, FailedTransactionMetadata), result
    assert isinstance(result, TransactionMetadata)
    return result


def test_sol_in_wraps_creates_output_account_and_unwraps() -> None:
    svm = _svm_with_mints()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10 * 10**9)
    wsol = associated_token_address(payer.pubkey(), NATIVE_MINT, TOKEN_PROGRAM_ID)
    usdc_ata = associated_token_address(payer.pubkey(), USDC, TOKEN_PROGRAM_ID)
    plan = _plan(NATIVE_MINT, USDC, 1_500_000_000)

    # Without the closing unwrap, the wSOL account holds exactly the wrapped amount.
    before = svm.get_balance(payer.pubkey())
    meta = _send(svm, payer, plan, drop_unwrap=True)
    account = svm.get_account(wsol)
    assert account is not None and account.owner == TOKEN_PROGRAM_ID
    token = decode_token_account(wsol, account.owner, bytes(account.data))
    assert token.mint == NATIVE_MINT and token.owner == payer.pubkey() and token.amount == 1_500_000_000
    assert token.is_native is not None  # a native account: SyncNative counted the lamports
    out = svm.get_account(usdc_ata)
    assert out is not None
    assert decode_token_account(usdc_ata, out.owner, bytes(out.data)).amount == 0
    logs = meta.logs()
    assert f"Program log: Memo (len {len(plan.memo)})" in logs
    assert "Program MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr success" in logs

    # The full set again: creation is idempotent (both accounts exist), then the unwrap closes wSOL
    # and everything in it (both wraps) comes back to the wallet.
    mid = svm.get_balance(payer.pubkey())
    _send(svm, payer, _plan(NATIVE_MINT, USDC, 2_000_000_000))
    closed = svm.get_account(wsol)
    assert closed is None or closed.lamports == 0
    after = svm.get_balance(payer.pubkey())
    fee = 5000 + (200_000 * 1_000 + 999_999) // 1_000_000  # base fee + priority fee
    wsol_rent = svm.minimum_balance_for_rent_exemption(165)
    assert after == mid - fee + 1_500_000_000 + wsol_rent
    # Over both transactions the wallet paid fees and the output account's rent only.
    usdc_account_rent = svm.minimum_balance_for_rent_exemption(165)
    assert before - after == 2 * fee + usdc_account_rent


def test_token_in_sol_out_creates_wsol_and_unwraps() -> None:
    svm = _svm_with_mints()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10 * 10**9)
    # The wallet already holds USDC in its associated account.
    usdc_ata = associated_token_address(payer.pubkey(), USDC, TOKEN_PROGRAM_ID)
    rent = svm.minimum_balance_for_rent_exemption(165)
    svm.set_account(
        usdc_ata,
        Account(
            lamports=rent,
            owner=TOKEN_PROGRAM_ID,
            executable=False,
            data=encode_token_account(TokenAccount(TOKEN_PROGRAM_ID, USDC, payer.pubkey(), 5_000_000)),
        ),
    )
    before = svm.get_balance(payer.pubkey())
    _send(svm, payer, _plan(USDC, NATIVE_MINT, 5_000_000))
    # input account left as it was (idempotent create), the wSOL account created and closed again
    usdc = svm.get_account(usdc_ata)
    assert (
        usdc is not None and decode_token_account(usdc_ata, usdc.owner, bytes(usdc.data)).amount == 5_000_000
    )
    wsol = svm.get_account(associated_token_address(payer.pubkey(), NATIVE_MINT, TOKEN_PROGRAM_ID))
    assert wsol is None or wsol.lamports == 0
    assert before - svm.get_balance(payer.pubkey()) == 5000 + 200


def test_insufficient_sol_to_wrap_fails_atomically() -> None:
    svm = _svm_with_mints()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**9)
    plan = _plan(NATIVE_MINT, USDC, 5 * 10**9)
    ixs, _ = compose_instructions(payer.pubkey(), plan, _accounts(payer.pubkey(), plan), [], 200_000, 0)
    message = MessageV0.try_compile(payer.pubkey(), ixs, [], svm.latest_blockhash())
    result = svm.send_transaction(VersionedTransaction(message, [payer]))
    assert isinstance(result, FailedTransactionMetadata)
    assert svm.get_account(associated_token_address(payer.pubkey(), USDC, TOKEN_PROGRAM_ID)) is None
