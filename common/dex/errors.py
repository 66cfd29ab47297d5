"""Errors raised by the DEX modules.

:class:`QuoteError` mirrors an on-chain program error: the same numeric code and name the program
would return (Anchor custom errors from 6000, Anchor framework errors such as 2505
``RequireGtViolated``), so a quote that fails here fails for the same reason on chain, and the
simulated chain can return the very error a real cluster would.

:class:`LayoutError` means an account's bytes are not what the caller said they are (wrong owner,
size or Anchor discriminator): a configuration or data problem, never a market condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["ANCHOR_ERRORS", "LayoutError", "QuoteError", "lookup_error"]

# Errors raised by the Anchor framework itself inside any Anchor program (``anchor_lang::error``),
# by code: (name, message). Programs' own errors start at 6000. Both DEX programs are Anchor
# programs, so a `Custom(n)` below 6000 from either of them is one of these.
ANCHOR_ERRORS: Final[Mapping[int, tuple[str, str]]] = {
    100: ("InstructionMissing", "8 byte instruction identifier not provided"),
    101: ("InstructionFallbackNotFound", "Fallback functions are not supported"),
    102: ("InstructionDidNotDeserialize", "The program could not deserialize the given instruction"),
    103: ("InstructionDidNotSerialize", "The program could not serialize the given instruction"),
    2000: ("ConstraintMut", "A mut constraint was violated"),
    2001: ("ConstraintHasOne", "A has one constraint was violated"),
    2002: ("ConstraintSigner", "A signer constraint was violated"),
    2003: ("ConstraintRaw", "A raw constraint was violated"),
    2004: ("ConstraintOwner", "An owner constraint was violated"),
    2005: ("ConstraintRentExempt", "A rent exemption constraint was violated"),
    2006: ("ConstraintSeeds", "A seeds constraint was violated"),
    2007: ("ConstraintExecutable", "An executable constraint was violated"),
    2009: ("ConstraintAssociated", "An associated constraint was violated"),
    2010: ("ConstraintAssociatedInit", "An associated init constraint was violated"),
    2011: ("ConstraintClose", "A close constraint was violated"),
    2012: ("ConstraintAddress", "An address constraint was violated"),
    2013: ("ConstraintZero", "Expected zero account discriminant"),
    2014: ("ConstraintTokenMint", "A token mint constraint was violated"),
    2015: ("ConstraintTokenOwner", "A token owner constraint was violated"),
    2016: ("ConstraintMintMintAuthority", "A mint mint authority constraint was violated"),
    2017: ("ConstraintMintFreezeAuthority", "A mint freeze authority constraint was violated"),
    2018: ("ConstraintMintDecimals", "A mint decimals constraint was violated"),
    2019: ("ConstraintSpace", "A space constraint was violated"),
    2020: ("ConstraintAccountIsNone", "A required account for the constraint is None"),
    2021: ("ConstraintTokenTokenProgram", "A token account token program constraint was violated"),
    2022: ("ConstraintMintTokenProgram", "A mint token program constraint was violated"),
    2023: (
        "ConstraintAssociatedTokenTokenProgram",
        "An associated token account token program constraint was violated",
    ),
    2500: ("RequireViolated", "A require expression was violated"),
    2501: ("RequireEqViolated", "A require_eq expression was violated"),
    2502: ("RequireKeysEqViolated", "A require_keys_eq expression was violated"),
    2503: ("RequireNeqViolated", "A require_neq expression was violated"),
    2504: ("RequireKeysNeqViolated", "A require_keys_neq expression was violated"),
    2505: ("RequireGtViolated", "A require_gt expression was violated"),
    2506: ("RequireGteViolated", "A require_gte expression was violated"),
    3000: ("AccountDiscriminatorAlreadySet", "The account discriminator was already set on this account"),
    3001: ("AccountDiscriminatorNotFound", "No 8 byte discriminator was found on the account"),
    3002: ("AccountDiscriminatorMismatch", "8 byte discriminator did not match what was expected"),
    3003: ("AccountDidNotDeserialize", "Failed to deserialize the account"),
    3004: ("AccountDidNotSerialize", "Failed to serialize the account"),
    3005: ("AccountNotEnoughKeys", "Not enough account keys given to the instruction"),
    3006: ("AccountNotMutable", "The given account is not mutable"),
    3007: ("AccountOwnedByWrongProgram", "The given account is owned by a different program than expected"),
    3008: ("InvalidProgramId", "Program ID was not as expected"),
    3009: ("InvalidProgramExecutable", "Program account is not executable"),
    3010: ("AccountNotSigner", "The given account did not sign"),
    3011: ("AccountNotSystemOwned", "The given account is not owned by the system program"),
    3012: ("AccountNotInitialized", "The program expected this account to be already initialized"),
    3013: ("AccountNotProgramData", "The given account is not a program data account"),
    3014: ("AccountNotAssociatedTokenAccount", "The given account is not the associated token account"),
    3015: ("AccountSysvarMismatch", "The given public key does not match the required sysvar"),
    3016: (
        "AccountReallocExceedsLimit",
        "The account reallocation exceeds the MAX_PERMITTED_DATA_INCREASE limit",
    ),
    3017: ("AccountDuplicateReallocs", "The account was duplicated for more than one reallocation"),
    4100: ("DeclaredProgramIdMismatch", "The declared program id does not match the actual program id"),
    4101: (
        "TryingToInitPayerAsProgramAccount",
        "You cannot/should not initialize the payer account as a program account",
    ),
    4102: ("InvalidNumericConversion", "The program could not perform the numeric conversion"),
    5000: ("Deprecated", "The API being used is deprecated and should no longer be used"),
}


def lookup_error(program_errors: Mapping[int, tuple[str, str]], code: int) -> tuple[str, str] | None:
    """(name, message) of a program's `Custom(code)`: its own errors, then Anchor's; None if unknown."""
    found = program_errors.get(code)
    if found is None:
        found = ANCHOR_ERRORS.get(code)
    return found


class QuoteError(Exception):
    """A swap the program would reject.

    Attributes:
        code: the program's error code (e.g. 6005), or ``None`` for a failure that has no code
            (a math overflow inside the program surfaces as a panic, not a custom error).
        name: the program's error name, e.g. ``"ExceededSlippage"``.
        message: the program's error message, e.g. ``"Exceeds desired slippage limit"``.
        venue: ``"raydium_cpmm"`` or ``"meteora_dlmm"``.
    """

    code: int | None
    name: str
    message: str
    venue: str

    def __init__(self, code: int | None, name: str, message: str, venue: str) -> None:
        super().__init__(f"{venue}: {name} ({code}): {message}")
        self.code = code
        self.name = name
        self.message = message
        self.venue = venue

    def __reduce__(self) -> tuple[type[QuoteError], tuple[int | None, str, str, str]]:
        return (QuoteError, (self.code, self.name, self.message, self.venue))


class LayoutError(Exception):
    """Account data that cannot be decoded as the expected account.

    Attributes:
        address: base58 address of the account.
        account: what it was expected to be, e.g. ``"raydium_cpmm PoolState"``.
        reason: what was wrong (owner, size, discriminator, a field value).
    """

    address: str
    account: str
    reason: str

    def __init__(self, address: object, account: str, reason: str) -> None:
        super().__init__(f"{account} {address}: {reason}")
        self.address = str(address)
        self.account = account
        self.reason = reason

    def __reduce__(self) -> tuple[type[LayoutError], tuple[str, str, str]]:
        return (LayoutError, (self.address, self.account, self.reason))
