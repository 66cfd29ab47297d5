"""The System program: CreateAccount, Assign, Transfer, CreateAccountWithSeed, Allocate.

Errors are the program's own: `SystemError` custom codes (0 AccountAlreadyInUse,
1 ResultWithNegativeLamports, 3 InvalidAccountDataLength, 5 AddressWithSeedMismatch) and
MissingRequiredSignature / InvalidArgument / InvalidInstructionData.
"""

from __future__ import annotations

import struct

from solders.pubkey import Pubkey

from simchain.ledger import MAX_PERMITTED_DATA_LENGTH, SYSTEM_PROGRAM_ID, Account
from simchain.runtime import BUILTIN_COST, InstructionError, Invocation, custom

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

CREATE_ACCOUNT = 0
ASSIGN = 1
TRANSFER = 2
CREATE_ACCOUNT_WITH_SEED = 3
ALLOCATE = 8


def create_account_data(lamports: int, space: int, owner: Pubkey) -> bytes:
    return _U32.pack(CREATE_ACCOUNT) + _U64.pack(lamports) + _U64.pack(space) + bytes(owner)


def transfer_data(lamports: int) -> bytes:
    return _U32.pack(TRANSFER) + _U64.pack(lamports)


class SystemProgram:
    program_id = SYSTEM_PROGRAM_ID
    builtin = True

    def process(self, inv: Invocation) -> None:
        inv.tx.consume(BUILTIN_COST)
        data = inv.data
        if len(data) < 4:
            raise InstructionError("InvalidInstructionData")
        tag = _U32.unpack_from(data)[0]
        try:
            if tag == CREATE_ACCOUNT:
                lamports, space = struct.unpack_from("<QQ", data, 4)
                owner = Pubkey.from_bytes(data[20:52])
                self._create(inv, inv.key(0), inv.key(1), lamports, space, owner, inv.key(1))
            elif tag == ASSIGN:
                self._assign(inv, inv.key(0), Pubkey.from_bytes(data[4:36]))
            elif tag == TRANSFER:
                self._transfer(inv, inv.key(0), inv.key(1), _U64.unpack_from(data, 4)[0])
            elif tag == CREATE_ACCOUNT_WITH_SEED:
                self._create_with_seed(inv, data)
            elif tag == ALLOCATE:
                self._allocate(inv, inv.key(0), _U64.unpack_from(data, 4)[0], inv.key(0))
            else:
                raise InstructionError("InvalidInstructionData")
        except (struct.error, ValueError):
            raise InstructionError("InvalidInstructionData") from None

    def _transfer(self, inv: Invocation, src: Pubkey, dst: Pubkey, lamports: int) -> None:
        tx = inv.tx
        if not inv.is_signer(src):
            inv.log(f"Transfer: `from` account {src} must sign")
            raise InstructionError("MissingRequiredSignature")
        from_acct = tx.get(src)
        if from_acct is not None and from_acct.data:
            inv.log("Transfer: `from` must not carry data")
            raise InstructionError("InvalidArgument")
        have = 0 if from_acct is None else from_acct.lamports
        if lamports > have:
            inv.log(f"Transfer: insufficient lamports {have}, need {lamports}")
            raise custom(1)
        if lamports == 0 or src == dst or from_acct is None:
            return
        tx.put(src, from_acct.replace(lamports=have - lamports))
        to_acct = tx.get(dst)
        if to_acct is None:
            tx.put(dst, Account(lamports, SYSTEM_PROGRAM_ID))
        else:
            tx.put(dst, to_acct.replace(lamports=to_acct.lamports + lamports))

    def _allocate(self, inv: Invocation, key: Pubkey, space: int, signer: Pubkey) -> Account:
        tx = inv.tx
        if not inv.is_signer(signer):
            inv.log(f"Allocate: 'to' account {key} must sign")
            raise InstructionError("MissingRequiredSignature")
        acct = tx.get(key)
        if acct is not None and (acct.data or acct.owner != SYSTEM_PROGRAM_ID):
            inv.log(f"Allocate: account {key} already in use")
            raise custom(0)
        if space > MAX_PERMITTED_DATA_LENGTH:
            inv.log(f"Allocate: requested {space}, max allowed {MAX_PERMITTED_DATA_LENGTH}")
            raise custom(3)
        new = Account(0 if acct is None else acct.lamports, SYSTEM_PROGRAM_ID, bytes(space))
        tx.put(key, new)
        return new

    def _assign(self, inv: Invocation, key: Pubkey, owner: Pubkey, signer: Pubkey | None = None) -> None:
        tx = inv.tx
        acct = tx.get(key)
        current = SYSTEM_PROGRAM_ID if acct is None else acct.owner
        if current == owner:
            return
        if not inv.is_signer(signer or key):
            inv.log(f"Assign: account {key} must sign")
            raise InstructionError("MissingRequiredSignature")
        base = acct if acct is not None else Account(0, SYSTEM_PROGRAM_ID)
        tx.put(key, base.replace(owner=owner))

    def _create(
        self,
        inv: Invocation,
        funder: Pubkey,
        to: Pubkey,
        lamports: int,
        space: int,
        owner: Pubkey,
        signer: Pubkey,
    ) -> None:
        existing = inv.tx.get(to)
        if existing is not None and existing.lamports > 0:
            inv.log(f"Create Account: account Address {{ address: {to}, base: None }} already in use")
            raise custom(0)
        self._allocate(inv, to, space, signer)
        self._assign(inv, to, owner, signer)
        self._transfer(inv, funder, to, lamports)

    def _create_with_seed(self, inv: Invocation, data: bytes) -> None:
        base = Pubkey.from_bytes(data[4:36])
        (seed_len,) = _U64.unpack_from(data, 36)
        if seed_len > 32:
            raise InstructionError("InvalidInstructionData")
        seed = data[44 : 44 + seed_len].decode("utf-8")
        off = 44 + seed_len
        lamports, space = struct.unpack_from("<QQ", data, off)
        owner = Pubkey.from_bytes(data[off + 16 : off + 48])
        to = inv.key(1)
        expected = Pubkey.create_with_seed(base, seed, owner)
        if expected != to:
            inv.log(f"Create: address {to} does not match derived address {expected}")
            raise custom(5)
        self._create(inv, inv.key(0), to, lamports, space, owner, base)
