"""executor_svc.builder and sender helpers that need no chain: error reasons, amounts."""

from __future__ import annotations

from solders.pubkey import Pubkey

from common.chain import TokenBalance, TransactionInfo
from common.dex.spl_token import NATIVE_MINT, TOKEN_PROGRAM_ID
from executor_svc.builder import associated_token_address, describe_transaction_error
from executor_svc.sender import realized_amounts

ROLES = {
    0: "compute budget",
    1: "compute budget",
    2: "wrap SOL",
    3: "wrap SOL",
    4: "wrap SOL",
    5: "create the output token account",
    6: "raydium_cpmm swap",
    7: "meteora_dlmm swap",
    8: "unwrap SOL",
    9: "memo",
}


def test_error_reasons() -> None:
    # the program's min-out check: the price moved; a fresh quote may fill it (retryable)
    assert describe_transaction_error({"InstructionError": [6, {"Custom": 6005}]}, ROLES) == (
        "price moved: slippage exceeded on raydium_cpmm (program error 6005 ExceededSlippage)",
        True,
    )
    assert describe_transaction_error({"InstructionError": [7, {"Custom": 6003}]}, ROLES) == (
        "price moved: slippage exceeded on meteora_dlmm (program error 6003 ExceededAmountSlippageTolerance)",
        True,
    )
    # a DLMM pool that moved beyond every bin array the swap carried: built again from fresh state
    assert describe_transaction_error({"InstructionError": [7, {"Custom": 3005}]}, ROLES) == (
        "price moved: meteora_dlmm needs a bin array the swap did not carry "
        "(program error 3005 AccountNotEnoughKeys)",
        True,
    )
    # the pair's liquidity on that side ran out since the quote: routed again (another pool, or none)
    assert describe_transaction_error({"InstructionError": [7, {"Custom": 6036}]}, ROLES) == (
        "price moved: meteora_dlmm ran out of liquidity for the swap "
        "(program error 6036 BitmapExtensionAccountIsNotProvided)",
        True,
    )
    # the same codes from the other venue are no such thing
    assert describe_transaction_error({"InstructionError": [6, {"Custom": 3005}]}, ROLES)[1] is False
    assert describe_transaction_error({"InstructionError": [6, {"Custom": 6036}]}, ROLES)[1] is False
    assert describe_transaction_error({"InstructionError": [7, {"Custom": 6042}]}, ROLES) == (
        "meteora_dlmm rejected the swap (program error 6042 PoolDisabled)",
        False,
    )
    assert describe_transaction_error({"InstructionError": [6, {"Custom": 1}]}, ROLES) == (
        "raydium_cpmm swap failed in the token program (error 1 InsufficientFunds)",
        False,
    )
    assert describe_transaction_error({"InstructionError": [3, {"Custom": 1}]}, ROLES) == (
        "wrap SOL failed (program error 1 InsufficientFunds)",
        False,
    )
    assert describe_transaction_error({"InstructionError": [3, "InsufficientFunds"]}, ROLES) == (
        "wrap SOL failed (InsufficientFunds)",
        False,
    )
    assert describe_transaction_error("BlockhashNotFound", ROLES)[1] is True
    assert describe_transaction_error("InsufficientFundsForFee", ROLES) == (
        "the wallet cannot pay the transaction fee (InsufficientFundsForFee)",
        False,
    )


def test_realized_amounts_sol_in_with_a_prefunded_wsol_account() -> None:
    wallet, usdc = Pubkey.new_unique(), Pubkey.new_unique()
    wsol = associated_token_address(wallet, NATIVE_MINT, TOKEN_PROGRAM_ID)
    usdc_ata = associated_token_address(wallet, usdc, TOKEN_PROGRAM_ID)
    vault = Pubkey.new_unique()
    rent, fee, swapped, held = 2_039_280, 5_000, 1_000_000, 7_000_000
    keys = (str(wallet), str(wsol), str(usdc_ata), str(vault))
    # the wallet wraps 1_000_000 into a wSOL account already holding 7_000_000, swaps it, creates
    # the USDC account (paying its rent) and closes the wSOL account (getting rent + 7_000_000 back)
    info = TransactionInfo(
        slot=5,
        err=None,
        fee=fee,
        account_keys=keys,
        pre_balances=(10**9, rent + held, 0, 50 * 10**9),
        post_balances=(10**9 - fee - swapped - rent + rent + held, 0, rent, 50 * 10**9 + swapped),
        pre_token_balances=(TokenBalance(1, str(NATIVE_MINT), str(wallet), held),),
        post_token_balances=(TokenBalance(2, str(usdc), str(wallet), 123_456),),
        log_messages=(),
    )
    amounts = realized_amounts(info, wallet, NATIVE_MINT, usdc, (wsol, usdc_ata))
    assert (amounts.amount_in, amounts.amount_out) == (swapped, 123_456)


def test_program_errors_come_from_the_dex_modules() -> None:
    # any code of the venue's program, not only those the quote math raises
    assert describe_transaction_error({"InstructionError": [6, {"Custom": 6012}]}, ROLES) == (
        "raydium_cpmm rejected the swap (program error 6012 InsufficientVault)",
        False,
    )
    assert describe_transaction_error({"InstructionError": [7, {"Custom": 6028}]}, ROLES) == (
        "meteora_dlmm rejected the swap (program error 6028 NonContinuousBinArrays)",
        False,
    )
    # Anchor's own errors inside either program
    assert describe_transaction_error({"InstructionError": [7, {"Custom": 3012}]}, ROLES) == (
        "meteora_dlmm rejected the swap (program error 3012 AccountNotInitialized)",
        False,
    )
    assert describe_transaction_error({"InstructionError": [6, {"Custom": 9999}]}, ROLES) == (
        "raydium_cpmm rejected the swap (program error 9999)",
        False,
    )


async def test_priority_fee_percentile_and_cap_come_from_settings() -> None:
    from pathlib import Path

    from solders.keypair import Keypair

    from common.markets import load_markets
    from common.settings import REPO_ROOT, load_settings
    from executor_svc.builder import LegPlan, TxBuilder, _Leg
    from executor_svc.wallet import Wallet

    asked: list[int] = []

    class Chain:
        async def recent_prioritization_fee(self, accounts: list[Pubkey], percentile: int) -> int:
            asked.append(percentile)
            return 5_000

    def builder(**env: str) -> TxBuilder:
        settings = load_settings(env, dotenv=Path("/nonexistent"))
        markets = load_markets(REPO_ROOT / "markets" / "sim.json")
        return TxBuilder(Chain(), markets, Wallet(Keypair()), settings)  # type: ignore[arg-type]

    pool = Pubkey.new_unique()
    plan = LegPlan("raydium_cpmm", pool, 1, 1)
    leg = _Leg(plan, TOKEN_PROGRAM_ID, TOKEN_PROGRAM_ID, (pool,), lambda *a: None)  # type: ignore[arg-type,return-value]
    assert await builder()._priority_fee([leg]) == 5_000
    assert await builder(PRIORITY_FEE_PERCENTILE="90", PRIORITY_FEE_MAX="1000")._priority_fee([leg]) == 1_000
    assert asked == [75, 90]
