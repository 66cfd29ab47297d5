"""What a landed swap cost the wallet (orderengine.v1.TradeCost), from its getTransaction meta.

- network fee: the signature fee, LAMPORTS_PER_SIGNATURE for each signature (never more than
  `meta.fee`);
- priority fee: the rest of `meta.fee` (compute unit price x limit, rounded up, as the runtime
  charges it);
- rent: the lamports put into the wallet's token accounts of other mints than SOL that the
  transaction created and left open (the output's associated token account): SOL that left the
  wallet's SOL balance for good (until the account is closed);
- balance changes: per mint, post minus pre of the wallet's balance. SOL (the native mint) is the
  wallet's lamports plus its wSOL accounts' lamports (a wSOL account's rent stays the wallet's SOL:
  created and closed in one transaction it costs nothing), so with SOL in or out
  `SOL change = ±SOL swapped − network fee − priority fee − rent`, exactly; any other mint is the
  change of the wallet's token accounts of that mint (`pre/postTokenBalances` whose owner is the
  wallet).

Every number is an integer in base units (lamports for SOL); decimals are for the views.
"""

from __future__ import annotations

from typing import Final

from solders.pubkey import Pubkey

from common.chain import TransactionInfo
from common.dex.spl_token import NATIVE_MINT
from orderengine.v1 import types_pb2

# The base fee per signature: fixed at 5,000 lamports on every cluster (the fee-rate governor's
# target, unchanged since launch); the simulated chain charges the same.
LAMPORTS_PER_SIGNATURE: Final = 5_000
_NATIVE: Final = str(NATIVE_MINT)


def trade_cost(info: TransactionInfo, wallet: Pubkey, signatures: int) -> types_pb2.TradeCost:
    """The TradeCost of the landed transaction `info`, signed by `wallet` (its fee payer) with
    `signatures` signatures."""
    owner = str(wallet)
    index = {key: i for i, key in enumerate(info.account_keys)}
    mints: dict[int, str] = {}  # the wallet's token accounts: account index -> mint
    for balance in (*info.pre_token_balances, *info.post_token_balances):
        if balance.owner == owner:
            mints[balance.account_index] = balance.mint
    pre_tokens = {b.account_index: b.amount for b in info.pre_token_balances}
    post_tokens = {b.account_index: b.amount for b in info.post_token_balances}

    network_fee = min(info.fee, LAMPORTS_PER_SIGNATURE * signatures)
    rent = 0
    payer = index[owner]
    sol = info.post_balances[payer] - info.pre_balances[payer]
    changes: dict[str, int] = {}
    for i, mint in sorted(mints.items()):
        pre_lamports, post_lamports = info.pre_balances[i], info.post_balances[i]
        if mint == _NATIVE:
            sol += post_lamports - pre_lamports
            continue
        if pre_lamports == 0 and post_lamports > 0:  # created by this transaction and left open
            rent += post_lamports
        changes[mint] = changes.get(mint, 0) + post_tokens.get(i, 0) - pre_tokens.get(i, 0)
    cost = types_pb2.TradeCost(network_fee=network_fee, priority_fee=info.fee - network_fee, rent=rent)
    if sol:
        cost.balance_changes.add(mint=_NATIVE, change=sol)
    for mint, change in sorted(changes.items()):
        if change:
            cost.balance_changes.add(mint=mint, change=change)
    return cost
