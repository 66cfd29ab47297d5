"""What the two DEX programs share as Anchor programs: errors and typed account loading.

Anchor validates accounts before the handler runs, each failure with its framework error code
(3xxx account errors, 2xxx constraint errors); handler errors are the program's own codes from
6000. Either way the transaction fails with ``{"InstructionError": [i, {"Custom": code}]}`` and the
log line ``AnchorError occurred. Error Code: <name>. Error Number: <code>. Error Message: <msg>.``
"""

from __future__ import annotations

from typing import Final

from solders.pubkey import Pubkey

from common.dex.errors import LayoutError, QuoteError
from common.dex.spl_token import (
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    Mint,
    TokenAccount,
    decode_mint,
    decode_token_account,
)
from simchain.ledger import Account
from simchain.runtime import InstructionError, Invocation, custom

INSTRUCTION_FALLBACK_NOT_FOUND: Final = (
    101,
    "InstructionFallbackNotFound",
    "Fallback functions are not supported",
)
INSTRUCTION_DID_NOT_DESERIALIZE: Final = (
    102,
    "InstructionDidNotDeserialize",
    "The program could not deserialize the given instruction",
)
CONSTRAINT_MUT: Final = (2000, "ConstraintMut", "A mut constraint was violated")
CONSTRAINT_HAS_ONE: Final = (2001, "ConstraintHasOne", "A has one constraint was violated")
CONSTRAINT_SEEDS: Final = (2006, "ConstraintSeeds", "A seeds constraint was violated")
CONSTRAINT_ADDRESS: Final = (2012, "ConstraintAddress", "An address constraint was violated")
CONSTRAINT_RAW: Final = (2003, "ConstraintRaw", "A raw constraint was violated")
ACCOUNT_DISCRIMINATOR_MISMATCH: Final = (
    3002,
    "AccountDiscriminatorMismatch",
    "8 byte discriminator did not match what was expected",
)
ACCOUNT_DID_NOT_DESERIALIZE: Final = (
    3003,
    "AccountDidNotDeserialize",
    "Failed to deserialize the account",
)
ACCOUNT_NOT_ENOUGH_KEYS: Final = (
    3005,
    "AccountNotEnoughKeys",
    "Not enough account keys given to the instruction",
)
ACCOUNT_OWNED_BY_WRONG_PROGRAM: Final = (
    3007,
    "AccountOwnedByWrongProgram",
    "The given account is owned by a different program than expected",
)
INVALID_PROGRAM_ID: Final = (3008, "InvalidProgramId", "Program ID was not as expected")
ACCOUNT_NOT_SIGNER: Final = (3010, "AccountNotSigner", "The given account did not sign")
ACCOUNT_NOT_INITIALIZED: Final = (
    3012,
    "AccountNotInitialized",
    "The program expected this account to be already initialized",
)

_TOKEN_PROGRAMS: Final = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)


def anchor_error(inv: Invocation, error: tuple[int, str, str]) -> InstructionError:
    code, name, message = error
    inv.log(f"AnchorError occurred. Error Code: {name}. Error Number: {code}. Error Message: {message}.")
    return custom(code)


def quote_failure(inv: Invocation, exc: QuoteError) -> InstructionError:
    """The instruction error a program returns where common.dex's math raised `exc`."""
    if exc.code is None:
        inv.log("panicked: arithmetic overflow")
        return InstructionError("ProgramFailedToComplete")
    return anchor_error(inv, (exc.code, exc.name, exc.message))


def require_signer(inv: Invocation, key: Pubkey) -> None:
    if not inv.is_signer(key):
        raise anchor_error(inv, ACCOUNT_NOT_SIGNER)


def require_writable(inv: Invocation, key: Pubkey) -> None:
    if key not in inv.tx.writable:
        raise anchor_error(inv, CONSTRAINT_MUT)


def program_account(inv: Invocation, key: Pubkey) -> Account:
    """An account the executing program must own (Anchor `Account`/`AccountLoader`)."""
    acct = inv.tx.get(key)
    if acct is None:
        raise anchor_error(inv, ACCOUNT_NOT_INITIALIZED)
    if acct.owner != inv.program_id:
        raise anchor_error(inv, ACCOUNT_OWNED_BY_WRONG_PROGRAM)
    return acct


def token_account(inv: Invocation, key: Pubkey) -> tuple[Account, TokenAccount]:
    """Anchor `InterfaceAccount<TokenAccount>`."""
    acct = inv.tx.get(key)
    if acct is None:
        raise anchor_error(inv, ACCOUNT_NOT_INITIALIZED)
    if acct.owner not in _TOKEN_PROGRAMS:
        raise anchor_error(inv, ACCOUNT_OWNED_BY_WRONG_PROGRAM)
    try:
        token = acct.decoded(TokenAccount, decode_token_account, key)
    except LayoutError:
        raise anchor_error(inv, ACCOUNT_DID_NOT_DESERIALIZE) from None
    if token.state == 0:
        raise anchor_error(inv, ACCOUNT_DID_NOT_DESERIALIZE)
    return acct, token


def mint_account(inv: Invocation, key: Pubkey) -> Mint:
    """Anchor `InterfaceAccount<Mint>`."""
    acct = inv.tx.get(key)
    if acct is None:
        raise anchor_error(inv, ACCOUNT_NOT_INITIALIZED)
    if acct.owner not in _TOKEN_PROGRAMS:
        raise anchor_error(inv, ACCOUNT_OWNED_BY_WRONG_PROGRAM)
    try:
        return acct.decoded(Mint, decode_mint, key)
    except LayoutError:
        raise anchor_error(inv, ACCOUNT_DID_NOT_DESERIALIZE) from None


def token_program(inv: Invocation, key: Pubkey) -> Pubkey:
    """Anchor `Interface<TokenInterface>`."""
    if key not in _TOKEN_PROGRAMS:
        raise anchor_error(inv, INVALID_PROGRAM_ID)
    return key


def transfer_checked(
    inv: Invocation,
    token_program_id: Pubkey,
    source: Pubkey,
    mint: Pubkey,
    destination: Pubkey,
    authority: Pubkey,
    amount: int,
    decimals: int,
    pda_signer: Pubkey | None = None,
) -> None:
    """CPI `transfer_checked` (what `anchor_spl::token_interface::transfer_checked` does)."""
    data = bytes([12]) + amount.to_bytes(8, "little") + bytes([decimals])
    inv.tx.invoke(
        token_program_id,
        [source, mint, destination, authority],
        data,
        () if pda_signer is None else (pda_signer,),
    )
