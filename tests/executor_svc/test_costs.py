"""executor_svc.costs: what a landed swap cost, from a transaction's meta, on shapes a real node
returns (the simulated chain's own numbers are checked in test_execute.py and tests/test_e2e.py)."""

from __future__ import annotations

from solders.pubkey import Pubkey

from common.chain import TokenBalance, TransactionInfo
from common.dex.spl_token import NATIVE_MINT, TOKEN_PROGRAM_ID
from executor_svc.builder import associated_token_address
from executor_svc.costs import trade_cost

RENT = 2_039_280


def test_sol_in_wrapped_and_closed_with_the_output_account_created() -> None:
    """SOL → USDC: wSOL created, funded and closed in the transaction (no rent left in it), the
    USDC account created (its rent is paid) and the fee of one signature plus the priority fee."""
    wallet, usdc, vault = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
    wsol = associated_token_address(wallet, NATIVE_MINT, TOKEN_PROGRAM_ID)
    usdc_ata = associated_token_address(wallet, usdc, TOKEN_PROGRAM_ID)
    fee, swapped = 5_000 + 1_700, 10**9
    info = TransactionInfo(
        slot=9,
        err=None,
        fee=fee,
        account_keys=(str(wallet), str(wsol), str(usdc_ata), str(vault)),
        pre_balances=(50 * 10**9, 0, 0, 7 * 10**9),
        post_balances=(50 * 10**9 - fee - swapped - RENT, 0, RENT, 8 * 10**9),
        pre_token_balances=(),
        post_token_balances=(TokenBalance(2, str(usdc), str(wallet), 150_000_000),),
        log_messages=(),
    )
    cost = trade_cost(info, wallet, 1)
    assert (cost.network_fee, cost.priority_fee, cost.rent) == (5_000, 1_700, RENT)
    changes = {c.mint: c.change for c in cost.balance_changes}
    assert changes == {str(NATIVE_MINT): -(swapped + fee + RENT), str(usdc): 150_000_000}
    # what the wallet's SOL went down by is the swap, the fees and the rent, exactly
    assert -changes[str(NATIVE_MINT)] - swapped == cost.network_fee + cost.priority_fee + cost.rent


def test_sol_out_into_an_existing_wsol_account_and_a_token_spent() -> None:
    """USDC → SOL with a wSOL account the wallet already held (closed: its rent and wrapped SOL come
    back); no account created, so no rent; the USDC account's balance falls."""
    wallet, usdc = Pubkey.new_unique(), Pubkey.new_unique()
    wsol = associated_token_address(wallet, NATIVE_MINT, TOKEN_PROGRAM_ID)
    usdc_ata = associated_token_address(wallet, usdc, TOKEN_PROGRAM_ID)
    held, out, fee = 3_000_000, 990_000_000, 10_000
    info = TransactionInfo(
        slot=9,
        err=None,
        fee=fee,
        account_keys=(str(wallet), str(usdc_ata), str(wsol)),
        pre_balances=(10**9, RENT, RENT + held),
        post_balances=(10**9 - fee + RENT + held + out, RENT, 0),
        pre_token_balances=(
            TokenBalance(1, str(usdc), str(wallet), 200_000_000),
            TokenBalance(2, str(NATIVE_MINT), str(wallet), held),
        ),
        post_token_balances=(TokenBalance(1, str(usdc), str(wallet), 50_000_000),),
        log_messages=(),
    )
    cost = trade_cost(info, wallet, 2)
    assert (cost.network_fee, cost.priority_fee, cost.rent) == (10_000, 0, 0)
    assert [(c.mint, c.change) for c in cost.balance_changes] == [
        (str(NATIVE_MINT), out - fee),
        (str(usdc), -150_000_000),
    ]


def test_a_wsol_account_left_open_keeps_its_rent_in_the_wallets_sol() -> None:
    """A wSOL account created and left open: its lamports (rent and wrapped SOL) are still the
    wallet's SOL, so no rent is counted and only the fee left the SOL balance."""
    wallet, usdc = Pubkey.new_unique(), Pubkey.new_unique()
    wsol = associated_token_address(wallet, NATIVE_MINT, TOKEN_PROGRAM_ID)
    info = TransactionInfo(
        slot=9,
        err=None,
        fee=5_000,
        account_keys=(str(wallet), str(wsol), str(usdc)),
        pre_balances=(10**9, 0, 0),
        post_balances=(10**9 - 5_000 - RENT - 40, RENT + 40, 0),
        pre_token_balances=(),
        post_token_balances=(TokenBalance(1, str(NATIVE_MINT), str(wallet), 40),),
        log_messages=(),
    )
    cost = trade_cost(info, wallet, 1)
    assert cost.rent == 0
    assert [(c.mint, c.change) for c in cost.balance_changes] == [(str(NATIVE_MINT), -5_000)]
