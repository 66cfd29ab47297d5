"""SPL Token and Token-2022: the instructions a swap transaction uses.

Supported: InitializeAccount (1), Transfer (3), MintTo (7), CloseAccount (9), TransferChecked (12),
InitializeAccount2 (16), SyncNative (17), InitializeAccount3 (18), InitializeMint2 (20, a mint
without extensions) and, for Token-2022, InitializeImmutableOwner (22). Any other instruction
fails with `InvalidInstruction` (custom 12) and a log line saying the simulated chain does not
implement it.

Checks follow the programs' processors in order (frozen, funds, mint, decimals, owner or delegate,
signature) with the same `TokenError` custom codes. Token-2022 transfer fees are honoured as the
program does: `TransferChecked` on a mint with a `TransferFeeConfig` debits the full amount,
credits the amount less the epoch's fee, and adds the fee to the destination's withheld amount; a
plain `Transfer` out of such an account fails with `MintRequiredForTransfer` (31). Native (wSOL)
accounts move lamports with their tokens; SyncNative sets the amount to lamports above the reserve.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Final

from solders.pubkey import Pubkey

from common.dex.errors import LayoutError
from common.dex.spl_token import (
    MINT_SIZE,
    NATIVE_MINT,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_ACCOUNT_SIZE,
    Mint,
    TokenAccount,
    decode_mint,
    decode_token_account,
    encode_mint,
    encode_token_account,
)
from simchain.ledger import SYSTEM_PROGRAM_ID, Account, minimum_balance
from simchain.runtime import InstructionError, Invocation, custom

# TokenError codes
NOT_RENT_EXEMPT: Final = 0
INSUFFICIENT_FUNDS: Final = 1
INVALID_MINT: Final = 2
MINT_MISMATCH: Final = 3
OWNER_MISMATCH: Final = 4
ALREADY_IN_USE: Final = 6
FIXED_SUPPLY: Final = 5
NON_NATIVE_HAS_BALANCE: Final = 11
NATIVE_NOT_SUPPORTED: Final = 10
INVALID_INSTRUCTION: Final = 12
INVALID_STATE: Final = 13
OVERFLOW: Final = 14
ACCOUNT_FROZEN: Final = 17
MINT_DECIMALS_MISMATCH: Final = 18
NON_NATIVE_NOT_SUPPORTED: Final = 19
MINT_REQUIRED_FOR_TRANSFER: Final = 31
ACCOUNT_HAS_WITHHELD_TRANSFER_FEES: Final = 35

_ERROR_LOG: Final = {
    NOT_RENT_EXEMPT: "Lamport balance below rent-exempt threshold",
    INSUFFICIENT_FUNDS: "insufficient funds",
    INVALID_MINT: "Invalid Mint",
    MINT_MISMATCH: "Account not associated with this Mint",
    OWNER_MISMATCH: "owner does not match",
    FIXED_SUPPLY: "Fixed supply",
    ALREADY_IN_USE: "account or token already in use",
    NATIVE_NOT_SUPPORTED: "Instruction does not support native tokens",
    NON_NATIVE_HAS_BALANCE: "Non-native account can only be closed if its balance is zero",
    INVALID_INSTRUCTION: "Invalid instruction",
    INVALID_STATE: "State is invalid for requested operation",
    OVERFLOW: "Operation overflowed",
    ACCOUNT_FROZEN: "Account is frozen",
    MINT_DECIMALS_MISMATCH: "The provided decimals value different from the Mint decimals",
    NON_NATIVE_NOT_SUPPORTED: "Instruction does not support non-native tokens",
    MINT_REQUIRED_FOR_TRANSFER: "Mint required for this account to transfer tokens, use `transfer_checked` "
    "or `transfer_checked_with_fee`",
    ACCOUNT_HAS_WITHHELD_TRANSFER_FEES: "An account can only be closed if its withheld fee balance is zero, "
    "harvest fees to the mint and try again",
}

EXT_IMMUTABLE_OWNER: Final = 7
EXT_TRANSFER_FEE_AMOUNT: Final = 2
ACCOUNT_TYPE_ACCOUNT: Final = 2
_U64_MAX: Final = (1 << 64) - 1

_TLV = struct.Struct("<HH")

INITIALIZE_ACCOUNT: Final = 1
TRANSFER: Final = 3
MINT_TO: Final = 7
CLOSE_ACCOUNT: Final = 9
TRANSFER_CHECKED: Final = 12
INITIALIZE_ACCOUNT_2: Final = 16
SYNC_NATIVE: Final = 17
INITIALIZE_ACCOUNT_3: Final = 18
INITIALIZE_MINT_2: Final = 20
INITIALIZE_IMMUTABLE_OWNER: Final = 22

_NAMES: Final = {
    INITIALIZE_ACCOUNT: "InitializeAccount",
    TRANSFER: "Transfer",
    MINT_TO: "MintTo",
    CLOSE_ACCOUNT: "CloseAccount",
    TRANSFER_CHECKED: "TransferChecked",
    INITIALIZE_ACCOUNT_2: "InitializeAccount2",
    SYNC_NATIVE: "SyncNative",
    INITIALIZE_ACCOUNT_3: "InitializeAccount3",
    INITIALIZE_MINT_2: "InitializeMint2",
    INITIALIZE_IMMUTABLE_OWNER: "InitializeImmutableOwner",
}
# Compute units, close to what the deployed programs use.
_COST: Final = {
    INITIALIZE_ACCOUNT: 3_500,
    TRANSFER: 4_645,
    MINT_TO: 4_538,
    CLOSE_ACCOUNT: 2_916,
    TRANSFER_CHECKED: 6_200,
    INITIALIZE_ACCOUNT_2: 3_400,
    SYNC_NATIVE: 3_045,
    INITIALIZE_ACCOUNT_3: 3_158,
    INITIALIZE_MINT_2: 2_828,
    INITIALIZE_IMMUTABLE_OWNER: 1_405,
}


def token_error(inv: Invocation, code: int) -> InstructionError:
    inv.log(f"Error: {_ERROR_LOG.get(code, 'token error')}")
    return custom(code)


def transfer_checked_data(amount: int, decimals: int) -> bytes:
    return bytes([TRANSFER_CHECKED]) + amount.to_bytes(8, "little") + bytes([decimals])


def account_size(mint: Mint, immutable_owner: bool) -> int:
    """Space for a token account of `mint` (what GetAccountDataSize answers)."""
    if mint.program_id != TOKEN_2022_PROGRAM_ID:
        return TOKEN_ACCOUNT_SIZE
    extra = 4 if immutable_owner else 0
    if mint.transfer_fee_config is not None:
        extra += 4 + 8
    return TOKEN_ACCOUNT_SIZE + 1 + extra if extra else TOKEN_ACCOUNT_SIZE


_UNSET: Final = object()


def _copy(
    t: TokenAccount,
    *,
    amount: int | None = None,
    withheld_amount: object = _UNSET,
    delegated_amount: int | None = None,
    delegate: object = _UNSET,
) -> TokenAccount:
    """`dataclasses.replace` for the hot path (several times faster for this frozen class)."""
    return TokenAccount(
        program_id=t.program_id,
        mint=t.mint,
        owner=t.owner,
        amount=t.amount if amount is None else amount,
        delegate=t.delegate if delegate is _UNSET else delegate,  # type: ignore[arg-type]
        state=t.state,
        is_native=t.is_native,
        delegated_amount=t.delegated_amount if delegated_amount is None else delegated_amount,
        close_authority=t.close_authority,
        withheld_amount=t.withheld_amount if withheld_amount is _UNSET else withheld_amount,  # type: ignore[arg-type]
        extensions=t.extensions,
        tlv_tail=t.tlv_tail,
        has_extension_area=t.has_extension_area,
    )


class TokenProgram:
    builtin = False

    def __init__(self, program_id: Pubkey) -> None:
        self.program_id = program_id
        self.is_2022 = program_id == TOKEN_2022_PROGRAM_ID

    # -- loading --------------------------------------------------------------------------

    def _raw(self, inv: Invocation, key: Pubkey) -> Account:
        acct = inv.tx.get(key)
        if acct is None or not acct.data:
            raise InstructionError("InvalidAccountData")
        if acct.owner != self.program_id:
            raise InstructionError("IncorrectProgramId")
        return acct

    def _account(self, inv: Invocation, key: Pubkey) -> tuple[Account, TokenAccount]:
        acct = self._raw(inv, key)
        try:
            token = acct.decoded(TokenAccount, decode_token_account, key)
        except LayoutError:
            raise InstructionError("InvalidAccountData") from None
        if token.state == 0:
            raise InstructionError("UninitializedAccount")
        return acct, token

    def _mint(self, inv: Invocation, key: Pubkey) -> Mint:
        acct = self._raw(inv, key)
        try:
            mint = acct.decoded(Mint, decode_mint, key)
        except LayoutError:
            raise InstructionError("InvalidAccountData") from None
        if not mint.is_initialized:
            raise InstructionError("UninitializedAccount")
        return mint

    def _store(
        self, inv: Invocation, key: Pubkey, acct: Account, token: TokenAccount, lamports: int | None = None
    ) -> None:
        inv.tx.put(key, acct.replace(data=encode_token_account(token), lamports=lamports, decoded=token))

    def _validate_owner(self, inv: Invocation, expected: Pubkey, authority: Pubkey) -> None:
        if expected != authority:
            raise token_error(inv, OWNER_MISMATCH)
        inv.require_signer(authority)

    # -- dispatch -------------------------------------------------------------------------

    def process(self, inv: Invocation) -> None:
        data = inv.data
        tag = data[0] if data else -1
        name = _NAMES.get(tag)
        if name is None or (tag == INITIALIZE_IMMUTABLE_OWNER and not self.is_2022):
            inv.tx.consume(1_000)
            inv.log(f"simchain: token instruction {tag} is not implemented by the simulated chain")
            raise token_error(inv, INVALID_INSTRUCTION)
        inv.tx.consume(_COST[tag] + (1_000 if self.is_2022 else 0))
        inv.log(f"Instruction: {name}")
        if tag == TRANSFER:
            if len(data) < 9:
                raise token_error(inv, INVALID_INSTRUCTION)
            amount = int.from_bytes(data[1:9], "little")
            self.transfer(inv, inv.key(0), inv.key(1), inv.key(2), amount, None, None)
        elif tag == TRANSFER_CHECKED:
            if len(data) < 10:
                raise token_error(inv, INVALID_INSTRUCTION)
            amount = int.from_bytes(data[1:9], "little")
            self.transfer(inv, inv.key(0), inv.key(2), inv.key(3), amount, inv.key(1), data[9])
        elif tag == SYNC_NATIVE:
            self.sync_native(inv, inv.key(0))
        elif tag == CLOSE_ACCOUNT:
            self.close_account(inv, inv.key(0), inv.key(1), inv.key(2))
        elif tag == INITIALIZE_ACCOUNT:
            self.initialize_account(inv, inv.key(0), inv.key(1), inv.key(2))
        elif tag in (INITIALIZE_ACCOUNT_2, INITIALIZE_ACCOUNT_3):
            if len(data) < 33:
                raise token_error(inv, INVALID_INSTRUCTION)
            self.initialize_account(inv, inv.key(0), inv.key(1), Pubkey.from_bytes(data[1:33]))
        elif tag == INITIALIZE_IMMUTABLE_OWNER:
            self.initialize_immutable_owner(inv, inv.key(0))
        elif tag == MINT_TO:
            if len(data) < 9:
                raise token_error(inv, INVALID_INSTRUCTION)
            self.mint_to(inv, inv.key(0), inv.key(1), inv.key(2), int.from_bytes(data[1:9], "little"))
        elif tag == INITIALIZE_MINT_2:
            self.initialize_mint(inv, inv.key(0), data[1:])

    # -- instructions ---------------------------------------------------------------------

    def transfer(
        self,
        inv: Invocation,
        src_key: Pubkey,
        dst_key: Pubkey,
        authority: Pubkey,
        amount: int,
        mint_key: Pubkey | None,
        decimals: int | None,
    ) -> None:
        src_acct, src = self._account(inv, src_key)
        dst_acct, dst = self._account(inv, dst_key)
        if src.state == 2 or dst.state == 2:
            raise token_error(inv, ACCOUNT_FROZEN)
        if src.amount < amount:
            raise token_error(inv, INSUFFICIENT_FUNDS)
        if src.mint != dst.mint:
            raise token_error(inv, MINT_MISMATCH)
        fee = 0
        if mint_key is not None:
            if mint_key != src.mint:
                raise token_error(inv, MINT_MISMATCH)
            mint = self._mint(inv, mint_key)
            if decimals != mint.decimals:
                raise token_error(inv, MINT_DECIMALS_MISMATCH)
            if self.is_2022 and mint.transfer_fee_config is not None:
                fee = mint.transfer_fee_config.calculate_epoch_fee(inv.tx.epoch, amount)
        elif self.is_2022 and src.withheld_amount is not None:
            raise token_error(inv, MINT_REQUIRED_FOR_TRANSFER)
        if src.delegate is not None and src.delegate == authority and authority != src.owner:
            inv.require_signer(authority)
            if src.delegated_amount < amount:
                raise token_error(inv, INSUFFICIENT_FUNDS)
            left = src.delegated_amount - amount
            src = _copy(src, delegated_amount=left, delegate=src.delegate if left else None)
        else:
            self._validate_owner(inv, src.owner, authority)
        if src_key == dst_key:
            return
        if fee and dst.withheld_amount is None:
            raise InstructionError("InvalidAccountData")
        credited = amount - fee
        if dst.amount + credited > _U64_MAX:
            raise token_error(inv, OVERFLOW)
        src = _copy(src, amount=src.amount - amount)
        dst = _copy(
            dst,
            amount=dst.amount + credited,
            withheld_amount=None if dst.withheld_amount is None else dst.withheld_amount + fee,
        )
        if src.is_native is not None:
            if src_acct.lamports < amount:
                raise token_error(inv, OVERFLOW)
            self._store(inv, src_key, src_acct, src, src_acct.lamports - amount)
            self._store(inv, dst_key, dst_acct, dst, dst_acct.lamports + amount)
        else:
            self._store(inv, src_key, src_acct, src)
            self._store(inv, dst_key, dst_acct, dst)

    def sync_native(self, inv: Invocation, key: Pubkey) -> None:
        acct, token = self._account(inv, key)
        if token.is_native is None:
            raise token_error(inv, NON_NATIVE_NOT_SUPPORTED)
        new_amount = acct.lamports - token.is_native
        if new_amount < token.amount:
            raise token_error(inv, INVALID_STATE)
        if new_amount != token.amount:
            self._store(inv, key, acct, _copy(token, amount=new_amount))

    def close_account(self, inv: Invocation, key: Pubkey, dest: Pubkey, authority: Pubkey) -> None:
        tx = inv.tx
        acct, token = self._account(inv, key)
        if key == dest:
            raise InstructionError("InvalidAccountData")
        if token.is_native is None and token.amount != 0:
            raise token_error(inv, NON_NATIVE_HAS_BALANCE)
        self._validate_owner(inv, token.close_authority or token.owner, authority)
        if token.withheld_amount:
            raise token_error(inv, ACCOUNT_HAS_WITHHELD_TRANSFER_FEES)
        dest_acct = tx.get(dest)
        if dest_acct is None:
            tx.put(dest, Account(acct.lamports, SYSTEM_PROGRAM_ID))
        else:
            tx.put(dest, dest_acct.replace(lamports=dest_acct.lamports + acct.lamports))
        tx.put(key, None)

    def initialize_account(self, inv: Invocation, key: Pubkey, mint_key: Pubkey, owner: Pubkey) -> None:
        acct = self._raw(inv, key)
        data = acct.data
        if len(data) < TOKEN_ACCOUNT_SIZE or (not self.is_2022 and len(data) != TOKEN_ACCOUNT_SIZE):
            raise InstructionError("InvalidAccountData")
        if data[108] != 0:
            raise token_error(inv, ALREADY_IN_USE)
        if acct.lamports < minimum_balance(len(data)):
            raise token_error(inv, NOT_RENT_EXEMPT)
        try:
            mint = self._mint(inv, mint_key)
        except InstructionError:
            raise token_error(inv, INVALID_MINT) from None
        is_native = None
        amount = 0
        if mint_key == NATIVE_MINT:
            is_native = minimum_balance(len(data))
            amount = acct.lamports - is_native
        extensions: tuple[tuple[int, bytes], ...] = ()
        withheld = None
        if len(data) > TOKEN_ACCOUNT_SIZE:
            extensions = self._tlv(data)
            if mint.transfer_fee_config is not None:
                withheld = 0
        token = TokenAccount(
            program_id=self.program_id,
            mint=mint_key,
            owner=owner,
            amount=amount,
            state=1,
            is_native=is_native,
            withheld_amount=withheld,
            extensions=extensions,
            has_extension_area=len(data) > TOKEN_ACCOUNT_SIZE,
        )
        encoded = encode_token_account(token)
        if len(encoded) > len(data):
            raise InstructionError("InvalidAccountData")
        inv.tx.put(key, acct.replace(data=encoded + bytes(len(data) - len(encoded))))

    def initialize_mint(self, inv: Invocation, key: Pubkey, args: bytes) -> None:
        """InitializeMint2: decimals, mint authority, optional freeze authority (COption)."""
        if len(args) < 34 or args[33] not in (0, 1) or (args[33] == 1 and len(args) < 66):
            raise token_error(inv, INVALID_INSTRUCTION)
        acct = self._raw(inv, key)
        if len(acct.data) != MINT_SIZE:
            raise InstructionError("InvalidAccountData")
        if acct.data[45]:  # is_initialized
            raise token_error(inv, ALREADY_IN_USE)
        if acct.lamports < minimum_balance(len(acct.data)):
            raise token_error(inv, NOT_RENT_EXEMPT)
        freeze = Pubkey.from_bytes(args[34:66]) if args[33] == 1 else None
        mint = Mint(self.program_id, Pubkey.from_bytes(args[1:33]), 0, args[0], True, freeze)
        inv.tx.put(key, acct.replace(data=encode_mint(mint)))

    def mint_to(
        self, inv: Invocation, mint_key: Pubkey, dst_key: Pubkey, authority: Pubkey, amount: int
    ) -> None:
        mint_acct = self._raw(inv, mint_key)
        mint = self._mint(inv, mint_key)
        dst_acct, dst = self._account(inv, dst_key)
        if dst.state == 2:
            raise token_error(inv, ACCOUNT_FROZEN)
        if dst.is_native is not None:
            raise token_error(inv, NATIVE_NOT_SUPPORTED)
        if dst.mint != mint_key:
            raise token_error(inv, MINT_MISMATCH)
        if mint.mint_authority is None:
            raise token_error(inv, FIXED_SUPPLY)
        self._validate_owner(inv, mint.mint_authority, authority)
        if mint.supply + amount > _U64_MAX:
            raise token_error(inv, OVERFLOW)
        self._store(inv, dst_key, dst_acct, _copy(dst, amount=dst.amount + amount))
        new_mint = dataclasses.replace(mint, supply=mint.supply + amount)
        inv.tx.put(mint_key, mint_acct.replace(data=encode_mint(new_mint)))

    def initialize_immutable_owner(self, inv: Invocation, key: Pubkey) -> None:
        acct = self._raw(inv, key)
        data = acct.data
        if len(data) <= TOKEN_ACCOUNT_SIZE + 4 or data[108] != 0:
            raise InstructionError("InvalidAccountData")
        entries = self._tlv(data)
        if any(t == EXT_IMMUTABLE_OWNER for t, _ in entries):
            return
        body = b"".join(_TLV.pack(t, len(v)) + v for t, v in entries)
        body += _TLV.pack(EXT_IMMUTABLE_OWNER, 0)
        new = data[:TOKEN_ACCOUNT_SIZE] + bytes([ACCOUNT_TYPE_ACCOUNT]) + body
        if len(new) > len(data):
            raise InstructionError("InvalidAccountData")
        inv.tx.put(key, acct.replace(data=new + bytes(len(data) - len(new))))

    @staticmethod
    def _tlv(data: bytes) -> tuple[tuple[int, bytes], ...]:
        entries = []
        pos = TOKEN_ACCOUNT_SIZE + 1
        while pos + 4 <= len(data):
            ext_type, length = _TLV.unpack_from(data, pos)
            if ext_type == 0:
                break
            entries.append((ext_type, bytes(data[pos + 4 : pos + 4 + length])))
            pos += 4 + length
        return tuple(entries)
