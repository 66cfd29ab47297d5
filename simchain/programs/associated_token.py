"""The Associated Token Account program: Create (data empty or [0]) and CreateIdempotent ([1]).

Accounts: funder (signer, writable), associated account (writable), wallet, mint, system program,
token program. As the real program: CreateIdempotent on an existing account of the wallet is a
no-op (another owner: `InvalidOwner`, custom 0); an address that is not the PDA of
[wallet, token program, mint] fails with InvalidSeeds; the account is created through the System
program (so a funder short of rent fails with custom 1), then initialised through the token
program (Token-2022 accounts get ImmutableOwner, and TransferFeeAmount for a fee-bearing mint).
"""

from __future__ import annotations

from typing import Final

from common.dex.errors import LayoutError
from common.dex.spl_token import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    associated_token_address,
    decode_mint,
    decode_token_account,
)
from simchain.ledger import SYSTEM_PROGRAM_ID, minimum_balance
from simchain.programs import system
from simchain.programs.token import INITIALIZE_ACCOUNT_3, INITIALIZE_IMMUTABLE_OWNER, account_size
from simchain.runtime import InstructionError, Invocation, custom

INVALID_OWNER: Final = 0


class AssociatedTokenProgram:
    program_id = ASSOCIATED_TOKEN_PROGRAM_ID
    builtin = False

    def process(self, inv: Invocation) -> None:
        data = inv.data
        if data in (b"", b"\x00"):
            idempotent = False
        elif data == b"\x01":
            idempotent = True
        else:
            inv.tx.consume(1_000)
            raise InstructionError("InvalidInstructionData")
        inv.log("CreateIdempotent" if idempotent else "Create")
        inv.tx.consume(4_000)
        inv.need_accounts(6)
        funder, ata, wallet, mint_key, system_id, token_program = inv.keys[:6]
        tx = inv.tx
        existing = tx.get(ata)
        if idempotent and existing is not None and existing.owner == token_program:
            try:
                token = decode_token_account(ata, existing.owner, existing.data)
            except LayoutError:
                raise InstructionError("InvalidAccountData") from None
            if token.owner != wallet:
                inv.log("Error: owner of associated token account is not the wallet")
                raise custom(INVALID_OWNER)
            if token.mint != mint_key:
                raise InstructionError("InvalidAccountData")
            return
        if token_program not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID) or system_id != SYSTEM_PROGRAM_ID:
            raise InstructionError("IncorrectProgramId")
        if associated_token_address(wallet, mint_key, token_program) != ata:
            inv.log("Error: Associated address does not match seed derivation")
            raise InstructionError("InvalidSeeds")
        if existing is not None and existing.owner != SYSTEM_PROGRAM_ID:
            raise InstructionError("IllegalOwner")
        mint_acct = tx.get(mint_key)
        if mint_acct is None or mint_acct.owner != token_program:
            raise InstructionError("IncorrectProgramId")
        try:
            mint = decode_mint(mint_key, mint_acct.owner, mint_acct.data)
        except LayoutError:
            raise InstructionError("InvalidAccountData") from None
        is_2022 = token_program == TOKEN_2022_PROGRAM_ID
        space = account_size(mint, immutable_owner=is_2022)
        rent = minimum_balance(space)
        if existing is not None and existing.lamports > 0:
            # pre-funded address: top up, allocate and assign (as create_pda_account does)
            top_up = max(0, rent - existing.lamports)
            if top_up:
                tx.invoke(SYSTEM_PROGRAM_ID, [funder, ata], system.transfer_data(top_up))
            tx.invoke(
                SYSTEM_PROGRAM_ID, [ata], (8).to_bytes(4, "little") + space.to_bytes(8, "little"), [ata]
            )
            tx.invoke(SYSTEM_PROGRAM_ID, [ata], (1).to_bytes(4, "little") + bytes(token_program), [ata])
        else:
            tx.invoke(
                SYSTEM_PROGRAM_ID,
                [funder, ata],
                system.create_account_data(rent, space, token_program),
                [ata],
            )
        if is_2022:
            inv.log("Initialize the associated token account")
            tx.invoke(token_program, [ata], bytes([INITIALIZE_IMMUTABLE_OWNER]))
        tx.invoke(token_program, [ata, mint_key], bytes([INITIALIZE_ACCOUNT_3]) + bytes(wallet))
