"""Meteora DLMM (`lb_clmm` 0.12): `swap2` and `swap_exact_out2`.

The instruction is decoded with `common.dex.meteora_dlmm.parse_swap2`, its accounts validated as
the program's Anchor `Swap2` context does (the pair's reserves, mints and oracle by `has_one`, the
event-CPI authority and program, the user's signature), and the bin arrays passed as remaining
accounts (in the order the program takes them) are decoded and handed to the exact swap walk with
the chain's slot, unix timestamp and epoch. Tokens move through `transfer_checked` CPIs (user to
the input reserve; the output reserve, signed by the pair, to the user; a host fee, if a host
account is passed, from the user to the host), then the pair, every bin array the walk changed
and the oracle are written back in their real layouts. A breached minimum fails with
``{"Custom": 6003}`` ExceededAmountSlippageTolerance, as the program does.
"""

from __future__ import annotations

from typing import Final

from solders.pubkey import Pubkey

from common.dex import meteora_dlmm as dlmm
from common.dex.errors import LayoutError, QuoteError
from simchain.programs import anchor
from simchain.runtime import Invocation

VENUE: Final = "meteora_dlmm"
SWAP_UNITS: Final = 45_000
UNITS_PER_BIN: Final = 1_500
INSTRUCTION_MISSING: Final = (100, "InstructionMissing", "8 byte instruction identifier not provided")
INVALID_TOKEN_MINT: Final = (6010, "InvalidTokenMint", "Invalid token mint")
INVALID_BIN_ARRAY: Final = (6027, "InvalidBinArray", "Invalid bin array")
_FIXED_ACCOUNTS: Final = 16


class MeteoraDlmmProgram:
    builtin = False

    def __init__(self, program_id: Pubkey) -> None:
        self.program_id = program_id
        self.event_authority = dlmm.event_authority_pda(program_id)

    def process(self, inv: Invocation) -> None:
        inv.tx.consume(SWAP_UNITS)
        data = inv.data
        if len(data) < 8:
            raise anchor.anchor_error(inv, INSTRUCTION_MISSING)
        disc = data[:8]
        if disc == dlmm.DISC_SWAP2:
            inv.log("Instruction: Swap2")
        elif disc == dlmm.DISC_SWAP_EXACT_OUT2:
            inv.log("Instruction: SwapExactOut2")
        else:
            raise anchor.anchor_error(inv, anchor.INSTRUCTION_FALLBACK_NOT_FOUND)
        self.swap(inv)

    def swap(self, inv: Invocation) -> None:
        tx = inv.tx
        if len(inv.keys) < _FIXED_ACCOUNTS:
            raise anchor.anchor_error(inv, anchor.ACCOUNT_NOT_ENOUGH_KEYS)
        if inv.keys[14] != self.event_authority:
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_SEEDS)
        if inv.keys[15] != self.program_id:
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_ADDRESS)
        try:
            ix = dlmm.parse_swap2(inv.data, inv.keys, self.program_id)
        except ValueError:
            raise anchor.anchor_error(inv, anchor.INSTRUCTION_DID_NOT_DESERIALIZE) from None

        # Anchor account validation (`Swap2` context)
        pair_acct = anchor.program_account(inv, ix.lb_pair)
        try:
            pair = pair_acct.decoded(dlmm.LbPair, dlmm.decode_lb_pair, ix.lb_pair, self.program_id)
        except LayoutError:
            raise anchor.anchor_error(inv, anchor.ACCOUNT_DISCRIMINATOR_MISMATCH) from None
        anchor.require_writable(inv, ix.lb_pair)
        if (
            ix.reserve_x != pair.reserve_x
            or ix.reserve_y != pair.reserve_y
            or ix.token_x_mint != pair.token_x_mint
            or ix.token_y_mint != pair.token_y_mint
            or ix.oracle != pair.oracle
        ):
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_HAS_ONE)
        extension = None
        if ix.bin_array_bitmap_extension is not None:
            ext_acct = anchor.program_account(inv, ix.bin_array_bitmap_extension)
            try:
                extension = dlmm.decode_bin_array_bitmap_extension(
                    ix.bin_array_bitmap_extension, ext_acct.owner, ext_acct.data, self.program_id
                )
            except LayoutError:
                raise anchor.anchor_error(inv, anchor.ACCOUNT_DISCRIMINATOR_MISMATCH) from None
            if extension.lb_pair != ix.lb_pair:
                raise anchor.anchor_error(inv, anchor.CONSTRAINT_HAS_ONE)
        for key in (ix.reserve_x, ix.reserve_y, ix.user_token_in, ix.user_token_out):
            anchor.require_writable(inv, key)
        _, reserve_x = anchor.token_account(inv, ix.reserve_x)
        _, reserve_y = anchor.token_account(inv, ix.reserve_y)
        _, user_in = anchor.token_account(inv, ix.user_token_in)
        _, user_out = anchor.token_account(inv, ix.user_token_out)
        mint_x = anchor.mint_account(inv, ix.token_x_mint)
        mint_y = anchor.mint_account(inv, ix.token_y_mint)
        oracle_acct = anchor.program_account(inv, ix.oracle)
        try:
            oracle = oracle_acct.decoded(dlmm.Oracle, dlmm.decode_oracle, ix.oracle, self.program_id)
        except LayoutError:
            raise anchor.anchor_error(inv, anchor.ACCOUNT_DISCRIMINATOR_MISMATCH) from None
        anchor.require_writable(inv, ix.oracle)
        if ix.host_fee_in is not None:
            anchor.token_account(inv, ix.host_fee_in)
            anchor.require_writable(inv, ix.host_fee_in)
        anchor.require_signer(inv, ix.user)
        anchor.token_program(inv, ix.token_x_program)
        anchor.token_program(inv, ix.token_y_program)

        if user_in.mint == pair.token_x_mint and user_out.mint == pair.token_y_mint:
            swap_for_y = True
        elif user_in.mint == pair.token_y_mint and user_out.mint == pair.token_x_mint:
            swap_for_y = False
        else:
            raise anchor.anchor_error(inv, INVALID_TOKEN_MINT)

        arrays: dict[int, dlmm.BinArray] = {}
        keys_by_index: dict[int, Pubkey] = {}
        order: list[int] = []
        for key in ix.bin_arrays:
            acct = tx.get(key)
            if acct is None or acct.owner != self.program_id:
                raise anchor.anchor_error(inv, INVALID_BIN_ARRAY)
            try:
                array = acct.decoded(dlmm.BinArray, dlmm.decode_bin_array, key, self.program_id)
            except LayoutError:
                raise anchor.anchor_error(inv, INVALID_BIN_ARRAY) from None
            if array.lb_pair != ix.lb_pair:
                raise anchor.anchor_error(inv, INVALID_BIN_ARRAY)
            arrays.setdefault(array.index, array)
            keys_by_index.setdefault(array.index, key)
            order.append(array.index)

        try:
            if ix.exact_out:
                result = dlmm.quote_exact_out(
                    pair,
                    arrays,
                    ix.min_amount_out,
                    swap_for_y,
                    tx.slot,
                    tx.unix_timestamp,
                    tx.epoch,
                    mint_x.transfer_fee_config,
                    mint_y.transfer_fee_config,
                    max_amount_in=ix.amount_in,
                    bitmap_extension=extension,
                    host_fee=ix.host_fee_in is not None,
                    bin_array_order=order,
                )
            else:
                result = dlmm.quote_exact_in(
                    pair,
                    arrays,
                    ix.amount_in,
                    swap_for_y,
                    tx.slot,
                    tx.unix_timestamp,
                    tx.epoch,
                    mint_x.transfer_fee_config,
                    mint_y.transfer_fee_config,
                    min_amount_out=ix.min_amount_out,
                    bitmap_extension=extension,
                    host_fee=ix.host_fee_in is not None,
                    bin_array_order=order,
                )
        except QuoteError as exc:
            raise anchor.quote_failure(inv, exc) from None
        tx.consume(UNITS_PER_BIN * len(result.bins))

        if swap_for_y:
            in_mint, in_program, in_decimals, reserve_in = (
                ix.token_x_mint,
                ix.token_x_program,
                mint_x.decimals,
                ix.reserve_x,
            )
            out_mint, out_program, out_decimals, reserve_out = (
                ix.token_y_mint,
                ix.token_y_program,
                mint_y.decimals,
                ix.reserve_y,
            )
        else:
            in_mint, in_program, in_decimals, reserve_in = (
                ix.token_y_mint,
                ix.token_y_program,
                mint_y.decimals,
                ix.reserve_y,
            )
            out_mint, out_program, out_decimals, reserve_out = (
                ix.token_x_mint,
                ix.token_x_program,
                mint_x.decimals,
                ix.reserve_x,
            )
        to_reserve = result.amount_in - result.host_fee
        anchor.transfer_checked(
            inv, in_program, ix.user_token_in, in_mint, reserve_in, ix.user, to_reserve, in_decimals
        )
        if ix.host_fee_in is not None and result.host_fee:
            anchor.transfer_checked(
                inv,
                in_program,
                ix.user_token_in,
                in_mint,
                ix.host_fee_in,
                ix.user,
                result.host_fee,
                in_decimals,
            )
        anchor.transfer_checked(
            inv,
            out_program,
            reserve_out,
            out_mint,
            ix.user_token_out,
            ix.lb_pair,
            result.amount_out_before_transfer_fee,
            out_decimals,
            pda_signer=ix.lb_pair,
        )
        # written lazily: encoded when first read (see Account), not once per swap
        tx.put(ix.lb_pair, pair_acct.replace(decoded=result.lb_pair, encode=dlmm.encode_lb_pair))
        for index, array in result.bin_arrays.items():
            key = keys_by_index[index]
            acct = tx.get(key)
            assert acct is not None
            tx.put(key, acct.replace(decoded=array, encode=dlmm.encode_bin_array))
        new_oracle = dlmm.update_oracle(oracle, result.start_bin_id, tx.unix_timestamp)
        tx.put(ix.oracle, oracle_acct.replace(decoded=new_oracle, encode=dlmm.encode_oracle))
        tx.swaps.append(
            {
                "venue": VENUE,
                "pool": str(ix.lb_pair),
                "inputMint": str(in_mint),
                "outputMint": str(out_mint),
                "amountIn": result.amount_in,
                "amountOut": result.amount_out,
            }
        )
