"""Errors raised by the DEX modules.

:class:`QuoteError` mirrors an on-chain program error: the same numeric code and name the program
would return (Anchor custom errors from 6000, Anchor framework errors such as 2505
``RequireGtViolated``), so a quote that fails here fails for the same reason on chain, and the
simulated chain can return the very error a real cluster would.

:class:`LayoutError` means an account's bytes are not what the caller said they are (wrong owner,
size or Anchor discriminator): a configuration or data problem, never a market condition.
"""

from __future__ import annotations

__all__ = ["LayoutError", "QuoteError"]


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
