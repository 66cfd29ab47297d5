"""SPL Token and Token-2022 mints and token accounts, transfer fees and associated token accounts.

Layouts are the programs' ``Pack`` layouts (``spl_token::state::{Mint, Account}``); Token-2022
accounts may carry a TLV extension area after the base state (base state padded to 165 bytes,
one ``AccountType`` byte, then ``u16 type, u16 length, value`` entries). Every decoder keeps every
byte so that ``encode(decode(x)) == x``.

Transfer fees mirror ``spl_token_2022::extension::transfer_fee``: ``TransferFee::calculate_fee``
(ceil(amount * bps / 10_000), capped at ``maximum_fee``), ``calculate_pre_fee_amount`` and
``calculate_inverse_fee``, and ``TransferFeeConfig::get_epoch_fee`` (the newer fee applies from its
epoch on).

The program ids below are protocol constants of the Solana runtime's token programs, not DEX
program ids (those are always passed in).
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from dataclasses import dataclass
from typing import Final

from solders.pubkey import Pubkey

from common.dex.errors import LayoutError

__all__ = [
    "ACCOUNT_TYPE_ACCOUNT",
    "ACCOUNT_TYPE_MINT",
    "ASSOCIATED_TOKEN_PROGRAM_ID",
    "EXT_TRANSFER_FEE_AMOUNT",
    "EXT_TRANSFER_FEE_CONFIG",
    "MAX_FEE_BASIS_POINTS",
    "MINT_SIZE",
    "NATIVE_MINT",
    "TOKEN_2022_PROGRAM_ID",
    "TOKEN_ACCOUNT_SIZE",
    "TOKEN_PROGRAM_ID",
    "Mint",
    "TokenAccount",
    "TransferFee",
    "TransferFeeConfig",
    "associated_token_address",
    "decode_mint",
    "decode_token_account",
    "encode_mint",
    "encode_token_account",
    "transfer_fee_excluded_amount",
    "transfer_fee_included_amount",
]

TOKEN_PROGRAM_ID: Final = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM_ID: Final = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
ASSOCIATED_TOKEN_PROGRAM_ID: Final = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
NATIVE_MINT: Final = Pubkey.from_string("So11111111111111111111111111111111111111112")

MINT_SIZE: Final = 82
TOKEN_ACCOUNT_SIZE: Final = 165
ACCOUNT_TYPE_MINT: Final = 1
ACCOUNT_TYPE_ACCOUNT: Final = 2
EXT_TRANSFER_FEE_CONFIG: Final = 1
EXT_TRANSFER_FEE_AMOUNT: Final = 2
MAX_FEE_BASIS_POINTS: Final = 10_000

_TOKEN_PROGRAMS: Final = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
_U64_MAX: Final = (1 << 64) - 1

# COption<Pubkey> is a u32 tag followed by 32 bytes.
_MINT = struct.Struct("<I32sQBBI32s")
_ACCOUNT = struct.Struct("<32s32sQI32sBIQQI32s")
_TLV_HEADER = struct.Struct("<HH")
_TRANSFER_FEE = struct.Struct("<QQH")
_TRANSFER_FEE_CONFIG = struct.Struct("<32s32sQQQHQQH")
_U64 = struct.Struct("<Q")
_ZERO32: Final = bytes(32)


# --------------------------------------------------------------------------------------------
# transfer fees


@dataclass(frozen=True, slots=True)
class TransferFee:
    """``spl_token_2022::extension::transfer_fee::TransferFee``."""

    epoch: int
    maximum_fee: int
    transfer_fee_basis_points: int

    def calculate_fee(self, pre_fee_amount: int) -> int:
        """``TransferFee::calculate_fee``: ceil(amount * bps / 10_000), at most ``maximum_fee``."""
        bps = self.transfer_fee_basis_points
        if bps == 0 or pre_fee_amount == 0:
            return 0
        raw = -(-(pre_fee_amount * bps) // MAX_FEE_BASIS_POINTS)
        return raw if raw < self.maximum_fee else self.maximum_fee

    def calculate_pre_fee_amount(self, post_fee_amount: int) -> int | None:
        """``TransferFee::calculate_pre_fee_amount``: the smallest gross amount netting ``post``.

        ``None`` where the program's checked arithmetic would fail (overflow of u64).
        """
        bps = self.transfer_fee_basis_points
        maximum_fee = self.maximum_fee
        if bps == 0:
            return post_fee_amount
        if post_fee_amount == 0:
            return 0
        if bps == MAX_FEE_BASIS_POINTS:
            total = maximum_fee + post_fee_amount
            return total if total <= _U64_MAX else None
        denominator = MAX_FEE_BASIS_POINTS - bps
        raw_pre = -(-(post_fee_amount * MAX_FEE_BASIS_POINTS) // denominator)
        if raw_pre - post_fee_amount >= maximum_fee:
            total = post_fee_amount + maximum_fee
            return total if total <= _U64_MAX else None
        return raw_pre if raw_pre <= _U64_MAX else None

    def calculate_inverse_fee(self, post_fee_amount: int) -> int | None:
        """``TransferFee::calculate_inverse_fee``: the fee charged on the pre-fee amount."""
        pre = self.calculate_pre_fee_amount(post_fee_amount)
        return None if pre is None else self.calculate_fee(pre)


@dataclass(frozen=True, slots=True)
class TransferFeeConfig:
    """Token-2022 ``TransferFeeConfig`` mint extension (type 1)."""

    transfer_fee_config_authority: Pubkey | None
    withdraw_withheld_authority: Pubkey | None
    withheld_amount: int
    older_transfer_fee: TransferFee
    newer_transfer_fee: TransferFee

    def get_epoch_fee(self, epoch: int) -> TransferFee:
        """``TransferFeeConfig::get_epoch_fee``: the newer fee from its epoch on."""
        if epoch >= self.newer_transfer_fee.epoch:
            return self.newer_transfer_fee
        return self.older_transfer_fee

    def calculate_epoch_fee(self, epoch: int, pre_fee_amount: int) -> int:
        """Fee withheld when ``pre_fee_amount`` is transferred in ``epoch``."""
        return self.get_epoch_fee(epoch).calculate_fee(pre_fee_amount)

    def calculate_inverse_epoch_fee(self, epoch: int, post_fee_amount: int) -> int | None:
        """Fee on the gross amount that nets ``post_fee_amount`` in ``epoch``."""
        return self.get_epoch_fee(epoch).calculate_inverse_fee(post_fee_amount)

    @classmethod
    def constant(cls, basis_points: int, maximum_fee: int) -> TransferFeeConfig:
        """A config charging the same fee in every epoch (for tests and synthetic mints)."""
        fee = TransferFee(0, maximum_fee, basis_points)
        return cls(None, None, 0, fee, fee)


def transfer_fee_excluded_amount(fee: TransferFeeConfig | None, epoch: int, amount: int) -> int:
    """What arrives when ``amount`` is sent (``calculate_transfer_fee_excluded_amount``)."""
    if fee is None:
        return amount
    return amount - fee.calculate_epoch_fee(epoch, amount)


def transfer_fee_included_amount(fee: TransferFeeConfig | None, epoch: int, amount: int) -> int | None:
    """What must be sent so that ``amount`` arrives (``calculate_transfer_fee_included_amount``).

    ``None`` if the gross amount overflows u64.
    """
    if fee is None or amount == 0:
        return amount
    epoch_fee = fee.get_epoch_fee(epoch)
    if epoch_fee.transfer_fee_basis_points == MAX_FEE_BASIS_POINTS:
        extra: int | None = epoch_fee.maximum_fee
    else:
        extra = epoch_fee.calculate_inverse_fee(amount)
    if extra is None or amount + extra > _U64_MAX:
        return None
    return amount + extra


def _decode_transfer_fee_config(value: bytes) -> TransferFeeConfig:
    (auth, withdraw, withheld, o_epoch, o_max, o_bps, n_epoch, n_max, n_bps) = (
        _TRANSFER_FEE_CONFIG.unpack_from(value)
    )
    return TransferFeeConfig(
        None if auth == _ZERO32 else Pubkey.from_bytes(auth),
        None if withdraw == _ZERO32 else Pubkey.from_bytes(withdraw),
        withheld,
        TransferFee(o_epoch, o_max, o_bps),
        TransferFee(n_epoch, n_max, n_bps),
    )


def _encode_transfer_fee_config(cfg: TransferFeeConfig) -> bytes:
    o, n = cfg.older_transfer_fee, cfg.newer_transfer_fee
    return _TRANSFER_FEE_CONFIG.pack(
        _ZERO32 if cfg.transfer_fee_config_authority is None else bytes(cfg.transfer_fee_config_authority),
        _ZERO32 if cfg.withdraw_withheld_authority is None else bytes(cfg.withdraw_withheld_authority),
        cfg.withheld_amount,
        o.epoch,
        o.maximum_fee,
        o.transfer_fee_basis_points,
        n.epoch,
        n.maximum_fee,
        n.transfer_fee_basis_points,
    )


# --------------------------------------------------------------------------------------------
# TLV extensions


def _parse_tlv(
    address: object, what: str, data: bytes, start: int
) -> tuple[tuple[tuple[int, bytes], ...], bytes]:
    """Split a TLV area into entries and the trailing bytes after the last entry.

    The Token-2022 program stops at a zero type (``ExtensionType::Uninitialized``); whatever follows
    is kept verbatim as the tail so encoding is exact.
    """
    entries: list[tuple[int, bytes]] = []
    pos = start
    end = len(data)
    while pos + 4 <= end:
        ext_type, length = _TLV_HEADER.unpack_from(data, pos)
        if ext_type == 0:
            break
        if pos + 4 + length > end:
            raise LayoutError(address, what, f"extension {ext_type} overruns the account ({length} bytes)")
        entries.append((ext_type, bytes(data[pos + 4 : pos + 4 + length])))
        pos += 4 + length
    return tuple(entries), bytes(data[pos:])


def _encode_tlv(entries: tuple[tuple[int, bytes], ...], tail: bytes) -> bytes:
    out = bytearray()
    for ext_type, value in entries:
        out += _TLV_HEADER.pack(ext_type, len(value))
        out += value
    out += tail
    return bytes(out)


def _opt_key(tag: int, key: bytes) -> Pubkey | None:
    return Pubkey.from_bytes(key) if tag else None


def _key_tag(key: Pubkey | None) -> tuple[int, bytes]:
    return (0, _ZERO32) if key is None else (1, bytes(key))


def _check_owner(address: object, what: str, owner: Pubkey) -> None:
    if owner not in _TOKEN_PROGRAMS:
        raise LayoutError(address, what, f"owner {owner} is not the Token or Token-2022 program")


# --------------------------------------------------------------------------------------------
# mints


@dataclass(frozen=True, slots=True)
class Mint:
    """An SPL Token or Token-2022 mint.

    ``extensions`` are the raw TLV entries in account order (Token-2022 only) and ``tlv_tail``
    whatever follows them; ``transfer_fee_config`` is the parsed ``TransferFeeConfig`` entry and
    takes precedence over its raw copy when encoding.
    """

    program_id: Pubkey
    mint_authority: Pubkey | None
    supply: int
    decimals: int
    is_initialized: bool
    freeze_authority: Pubkey | None
    transfer_fee_config: TransferFeeConfig | None = None
    extensions: tuple[tuple[int, bytes], ...] = ()
    tlv_tail: bytes = b""
    has_extension_area: bool = False


def decode_mint(address: Pubkey, owner: Pubkey, data: bytes) -> Mint:
    """Decode a mint owned by the Token or Token-2022 program."""
    what = "token mint"
    _check_owner(address, what, owner)
    n = len(data)
    if n < MINT_SIZE:
        raise LayoutError(address, what, f"size {n} < {MINT_SIZE}")
    auth_tag, auth, supply, decimals, initialized, freeze_tag, freeze = _MINT.unpack_from(data)
    transfer_fee_config = None
    extensions: tuple[tuple[int, bytes], ...] = ()
    tail = b""
    has_ext = n > MINT_SIZE
    if has_ext:
        if owner != TOKEN_2022_PROGRAM_ID:
            raise LayoutError(address, what, f"size {n} != {MINT_SIZE} for an SPL Token mint")
        if n <= TOKEN_ACCOUNT_SIZE or any(data[MINT_SIZE:TOKEN_ACCOUNT_SIZE]):
            raise LayoutError(address, what, "malformed Token-2022 extension padding")
        if data[TOKEN_ACCOUNT_SIZE] != ACCOUNT_TYPE_MINT:
            raise LayoutError(address, what, f"account type {data[TOKEN_ACCOUNT_SIZE]} is not Mint")
        extensions, tail = _parse_tlv(address, what, data, TOKEN_ACCOUNT_SIZE + 1)
        for ext_type, value in extensions:
            if ext_type == EXT_TRANSFER_FEE_CONFIG:
                if len(value) != _TRANSFER_FEE_CONFIG.size:
                    raise LayoutError(address, what, f"TransferFeeConfig of {len(value)} bytes")
                transfer_fee_config = _decode_transfer_fee_config(value)
    return Mint(
        program_id=owner,
        mint_authority=_opt_key(auth_tag, auth),
        supply=supply,
        decimals=decimals,
        is_initialized=bool(initialized),
        freeze_authority=_opt_key(freeze_tag, freeze),
        transfer_fee_config=transfer_fee_config,
        extensions=extensions,
        tlv_tail=tail,
        has_extension_area=has_ext,
    )


def encode_mint(mint: Mint) -> bytes:
    """Encode a mint; exact inverse of :func:`decode_mint`."""
    auth_tag, auth = _key_tag(mint.mint_authority)
    freeze_tag, freeze = _key_tag(mint.freeze_authority)
    base = _MINT.pack(
        auth_tag, auth, mint.supply, mint.decimals, int(mint.is_initialized), freeze_tag, freeze
    )
    entries = mint.extensions
    if mint.transfer_fee_config is not None:
        value = _encode_transfer_fee_config(mint.transfer_fee_config)
        if any(t == EXT_TRANSFER_FEE_CONFIG for t, _ in entries):
            entries = tuple((t, value if t == EXT_TRANSFER_FEE_CONFIG else v) for t, v in entries)
        else:
            entries = ((EXT_TRANSFER_FEE_CONFIG, value), *entries)
    if not (mint.has_extension_area or entries):
        return base
    pad = bytes(TOKEN_ACCOUNT_SIZE - MINT_SIZE)
    return base + pad + bytes([ACCOUNT_TYPE_MINT]) + _encode_tlv(entries, mint.tlv_tail)


# --------------------------------------------------------------------------------------------
# token accounts


@dataclass(frozen=True, slots=True)
class TokenAccount:
    """An SPL Token or Token-2022 token account.

    ``state``: 0 uninitialized, 1 initialized, 2 frozen. ``is_native``: the rent-exempt reserve of a
    native (wSOL) account, else ``None``. ``withheld_amount``: Token-2022 ``TransferFeeAmount``
    extension (``None`` when absent); takes precedence over its raw entry when encoding.
    """

    program_id: Pubkey
    mint: Pubkey
    owner: Pubkey
    amount: int
    delegate: Pubkey | None = None
    state: int = 1
    is_native: int | None = None
    delegated_amount: int = 0
    close_authority: Pubkey | None = None
    withheld_amount: int | None = None
    extensions: tuple[tuple[int, bytes], ...] = ()
    tlv_tail: bytes = b""
    has_extension_area: bool = False

    def with_amount(self, amount: int) -> TokenAccount:
        """A copy holding ``amount``."""
        return dataclasses.replace(self, amount=amount)


def decode_token_account(address: Pubkey, owner: Pubkey, data: bytes) -> TokenAccount:
    """Decode a token account owned by the Token or Token-2022 program."""
    what = "token account"
    _check_owner(address, what, owner)
    n = len(data)
    if n < TOKEN_ACCOUNT_SIZE:
        raise LayoutError(address, what, f"size {n} < {TOKEN_ACCOUNT_SIZE}")
    (mint, acct_owner, amount, del_tag, delegate, state, native_tag, native, delegated, close_tag, close) = (
        _ACCOUNT.unpack_from(data)
    )
    extensions: tuple[tuple[int, bytes], ...] = ()
    tail = b""
    withheld = None
    has_ext = n > TOKEN_ACCOUNT_SIZE
    if has_ext:
        if owner != TOKEN_2022_PROGRAM_ID:
            raise LayoutError(address, what, f"size {n} != {TOKEN_ACCOUNT_SIZE} for an SPL Token account")
        if data[TOKEN_ACCOUNT_SIZE] != ACCOUNT_TYPE_ACCOUNT:
            raise LayoutError(address, what, f"account type {data[TOKEN_ACCOUNT_SIZE]} is not Account")
        extensions, tail = _parse_tlv(address, what, data, TOKEN_ACCOUNT_SIZE + 1)
        for ext_type, value in extensions:
            if ext_type == EXT_TRANSFER_FEE_AMOUNT and len(value) == 8:
                withheld = _U64.unpack(value)[0]
    return TokenAccount(
        program_id=owner,
        mint=Pubkey.from_bytes(mint),
        owner=Pubkey.from_bytes(acct_owner),
        amount=amount,
        delegate=_opt_key(del_tag, delegate),
        state=state,
        is_native=native if native_tag else None,
        delegated_amount=delegated,
        close_authority=_opt_key(close_tag, close),
        withheld_amount=withheld,
        extensions=extensions,
        tlv_tail=tail,
        has_extension_area=has_ext,
    )


def encode_token_account(acct: TokenAccount) -> bytes:
    """Encode a token account; exact inverse of :func:`decode_token_account`."""
    del_tag, delegate = _key_tag(acct.delegate)
    close_tag, close = _key_tag(acct.close_authority)
    base = _ACCOUNT.pack(
        bytes(acct.mint),
        bytes(acct.owner),
        acct.amount,
        del_tag,
        delegate,
        acct.state,
        0 if acct.is_native is None else 1,
        0 if acct.is_native is None else acct.is_native,
        acct.delegated_amount,
        close_tag,
        close,
    )
    entries = acct.extensions
    if acct.withheld_amount is not None:
        value = _U64.pack(acct.withheld_amount)
        if any(t == EXT_TRANSFER_FEE_AMOUNT for t, _ in entries):
            entries = tuple((t, value if t == EXT_TRANSFER_FEE_AMOUNT else v) for t, v in entries)
        else:
            entries = ((EXT_TRANSFER_FEE_AMOUNT, value), *entries)
    if not (acct.has_extension_area or entries):
        return base
    return base + bytes([ACCOUNT_TYPE_ACCOUNT]) + _encode_tlv(entries, acct.tlv_tail)


# --------------------------------------------------------------------------------------------
# associated token accounts


@functools.lru_cache(maxsize=4096)
def associated_token_address(owner: Pubkey, mint: Pubkey, token_program: Pubkey) -> Pubkey:
    """``get_associated_token_address_with_program_id``: PDA of [owner, token_program, mint]
    (remembered: a PDA search hashes until it leaves the curve, and every swap asks for the same
    few)."""
    return Pubkey.find_program_address(
        [bytes(owner), bytes(token_program), bytes(mint)], ASSOCIATED_TOKEN_PROGRAM_ID
    )[0]
