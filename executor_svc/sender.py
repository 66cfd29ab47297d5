"""Sending a stored transaction and following it to an outcome.

The bytes sent are always the stored bytes: a rebroadcast, a resumed attempt and a retried send
all carry the same signature, so at most one of them can land. Status polls go through the chain
client's batcher (one getSignatureStatuses per few milliseconds for every order in flight) and the
expiry check through its shared block height, so following many transactions costs a handful of
RPC calls per poll interval, not one per order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from solders.pubkey import Pubkey

from common.chain import ChainClient, ChainError, SignatureStatus, TransactionInfo
from common.chain_pubsub import FeedUnavailable, SignatureFeed, Watch
from common.dex.spl_token import NATIVE_MINT
from common.metrics import CHAIN_CONFIRMATIONS
from common.settings import Settings

log = logging.getLogger(__name__)

# Send errors that prove the node could not even decode or verify the bytes: such a transaction
# can never land, so it is safe to mark it failed and sign another. Any other error leaves it
# "may still land" until its blockhash expires.
UNSENDABLE_RPC_CODES = frozenset({-32003, -32600, -32602, -32700})
# Consecutive failed status polls (each already retried by the chain client) before giving up.
MAX_POLL_ERRORS = 3
# How long a confirmed transaction may take to show up in getTransaction.
TX_DETAILS_TIMEOUT_S = 5.0
# While a signatureSubscribe is live, a status poll runs only when nothing was pushed for this long
# (it also checks expiry and rebroadcasts).
PUSH_FALLBACK_S = 1.0
_PUSHED = CHAIN_CONFIRMATIONS.labels("push")
_POLLED = CHAIN_CONFIRMATIONS.labels("poll")


@dataclass(frozen=True, slots=True)
class Landed:
    status: SignatureStatus


@dataclass(frozen=True, slots=True)
class LandedWithError:
    status: SignatureStatus


@dataclass(frozen=True, slots=True)
class Expired:
    pass


@dataclass(frozen=True, slots=True)
class RpcTrouble:
    """The chain could not be followed; the transaction may still land (retry resumes it)."""

    error: ChainError


Outcome = Landed | LandedWithError | Expired | RpcTrouble


def _landed(status: SignatureStatus) -> Landed | LandedWithError:
    """A transaction the chain knows: landed, or landed with its error (only the fee was taken)."""
    return LandedWithError(status) if status.err is not None else Landed(status)


class Sender:
    def __init__(self, chain: ChainClient, settings: Settings, feed: SignatureFeed | None = None) -> None:
        self._chain = chain
        self._feed = feed
        self._commitment = settings.commitment
        self._poll_s = settings.confirm_poll_s
        self._rebroadcast_s = settings.rebroadcast_ms / 1000
        self._expiry_margin = settings.expiry_margin_blocks

    async def watch(self, signature: str) -> Watch | None:
        """A pushed-confirmation subscription, taken before the transaction is sent; None when the
        node offers none right now (the transaction is then followed by polls alone)."""
        if self._feed is None:
            return None
        try:
            return await self._feed.watch(signature)
        except FeedUnavailable:
            return None

    async def send(self, raw: bytes) -> None:
        """One send of the stored bytes (transport failures retried with the same bytes)."""
        await self._chain.send_raw_transaction(raw, skip_preflight=True)

    async def lookup(self, signature: str, last_valid_block_height: int) -> Outcome | None:
        """Where a stored transaction stands now: an outcome, or None while it may still land.

        Expired is said only when it is proven: the FINALIZED block height is past the blockhash's
        last valid height by EXPIRY_MARGIN_BLOCKS (no fork can bring the blockhash back), and then a
        status read from a node at least as new as that finalized slot (minContextSlot) does not
        know the signature. A lagging node (it refuses the context slot, or answers from behind)
        never turns a transaction that may still land into an expired one."""
        status = await self._chain.signature_status(signature, search_history=True)
        if status is not None:
            return _landed(status)
        if await self._chain.block_height() <= last_valid_block_height:
            return None  # cheap (cached, confirmed) check first: still valid for leaders
        slot, finalized_height = await self._chain.finalized_position()
        if finalized_height <= last_valid_block_height + self._expiry_margin:
            return None
        status = await self._chain.signature_status_since(signature, min_context_slot=slot)
        if status is None:
            return Expired()
        return _landed(status)

    async def follow(
        self, raw: bytes, signature: str, last_valid_block_height: int, watch: Watch | None = None
    ) -> Outcome:
        """Follows the transaction until it reaches the commitment level, fails on chain or
        expires, rebroadcasting the same bytes every REBROADCAST_MS meanwhile.

        With a live `watch` (subscribed before the send) the node pushes the outcome and a status
        poll runs only after PUSH_FALLBACK_S without one; without, the status is polled every
        CONFIRM_POLL_MS. Expiry is only ever decided by polls (`lookup`)."""
        next_rebroadcast = time.monotonic() + self._rebroadcast_s
        errors = 0
        # Without a watch the first look is at once: a node that executes on receipt (the
        # simulated chain, a fast leader) has the status already, and the look shares a
        # getSignatureStatuses call with every other order's anyway.
        first = watch is None
        while True:
            if not first:
                if watch is not None and not watch.broken:
                    pushed = await watch.wait(PUSH_FALLBACK_S)
                    if pushed is not None:
                        _PUSHED.inc()
                        return _landed(pushed)
                else:
                    await asyncio.sleep(self._poll_s)
            first = False
            try:
                status = await self._chain.signature_status(signature)
                if status is not None:
                    if status.err is not None:
                        _POLLED.inc()
                        return LandedWithError(status)
                    if status.reached(self._commitment):
                        _POLLED.inc()
                        return Landed(status)
                elif await self._chain.block_height() > last_valid_block_height:
                    final = await self.lookup(signature, last_valid_block_height)
                    if final is not None:
                        if isinstance(final, Landed) and not final.status.reached(self._commitment):
                            continue
                        _POLLED.inc()
                        return final
                errors = 0
            except ChainError as exc:
                errors += 1
                if errors >= MAX_POLL_ERRORS or not exc.retryable:
                    return RpcTrouble(exc)
                continue
            if time.monotonic() >= next_rebroadcast:
                next_rebroadcast = time.monotonic() + self._rebroadcast_s
                try:
                    await self._chain.send_raw_transaction(raw, skip_preflight=True, retry=False)
                except ChainError as exc:
                    log.debug("rebroadcast failed", extra={"signature": signature, "error": exc.message})

    async def transaction(self, signature: str) -> TransactionInfo:
        """getTransaction of a landed signature, waiting briefly for the node to index it."""
        deadline = time.monotonic() + TX_DETAILS_TIMEOUT_S
        while True:
            info = await self._chain.get_transaction(signature)
            if info is not None:
                return info
            if time.monotonic() >= deadline:
                raise ChainError(
                    "getTransaction: the landed transaction is not available yet", retryable=True
                )
            await asyncio.sleep(max(self._poll_s, 0.02))


@dataclass(frozen=True, slots=True)
class Amounts:
    amount_in: int
    amount_out: int


def realized_amounts(
    info: TransactionInfo,
    wallet: Pubkey,
    input_mint: Pubkey,
    output_mint: Pubkey,
    wallet_token_accounts: tuple[Pubkey, ...],
) -> Amounts:
    """What the transaction debited from and credited to the wallet, from its balances.

    Tokens: the change of the wallet's token accounts of that mint (pre/postTokenBalances).
    SOL: the wallet's lamport change plus the fee it paid, plus the lamports its own token
    accounts gained or lost (rent of a newly created account, a closed wSOL account), so that only
    what went into or came out of the swap remains."""
    index = {key: i for i, key in enumerate(info.account_keys)}
    wallet_str = str(wallet)
    mine = {str(a) for a in wallet_token_accounts}
    for balance in (*info.pre_token_balances, *info.post_token_balances):
        if balance.owner == wallet_str:
            mine.add(info.account_keys[balance.account_index])
    mine_idx = {index[a] for a in mine if a in index}

    def token_change(mint: Pubkey) -> int:
        m = str(mint)
        pre = sum(b.amount for b in info.pre_token_balances if b.mint == m and b.account_index in mine_idx)
        post = sum(b.amount for b in info.post_token_balances if b.mint == m and b.account_index in mine_idx)
        return post - pre

    def sol_change() -> int:
        w = index[wallet_str]
        net = info.post_balances[w] - info.pre_balances[w] + info.fee
        for i in mine_idx:
            net += info.post_balances[i] - info.pre_balances[i]
        return net

    amount_in = -sol_change() if input_mint == NATIVE_MINT else -token_change(input_mint)
    amount_out = sol_change() if output_mint == NATIVE_MINT else token_change(output_mint)
    return Amounts(max(amount_in, 0), max(amount_out, 0))


def error_text(err: Any) -> str:
    """A TransactionError's JSON as short text."""
    if isinstance(err, str):
        return err
    if isinstance(err, dict) and len(err) == 1:
        ((name, value),) = err.items()
        return f"{name} {value}"
    return str(err)[:200]
