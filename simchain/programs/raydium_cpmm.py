"""Raydium CPMM (`raydium-cp-swap`): `swap_base_input` and `swap_base_output`.

The instruction is decoded with `common.dex.raydium_cpmm`'s parsers, its accounts validated as the
program's Anchor `Swap` context does (signer, vault authority PDA, `amm_config` and
`observation_state` addresses from the pool, vaults of the pool, mints of the vaults), then quoted
with the exact math on the accounts' current state. The user's tokens go to the input vault and
the output vault pays the user, both through `transfer_checked` CPIs into the token programs (so
Token-2022 transfer fees are withheld exactly as on chain), and the pool state is written back in
its real layout with the fees it accrued. A breached minimum fails with the program's error, e.g.
``{"Custom": 6005}`` ExceededSlippage. The observation (TWAP) account is checked, not updated.
"""

from __future__ import annotations

from typing import Final

from solders.pubkey import Pubkey

from common.dex import raydium_cpmm as cpmm
from common.dex.errors import LayoutError, QuoteError
from simchain.programs import anchor
from simchain.runtime import Invocation

VENUE: Final = "raydium_cpmm"
SWAP_UNITS: Final = 22_000
INSTRUCTION_MISSING: Final = (100, "InstructionMissing", "8 byte instruction identifier not provided")
INVALID_VAULT: Final = (6008, "InvalidVault", "invaild vault")


class RaydiumCpmmProgram:
    builtin = False

    def __init__(self, program_id: Pubkey) -> None:
        self.program_id = program_id
        self.authority = cpmm.authority_pda(program_id)

    def process(self, inv: Invocation) -> None:
        inv.tx.consume(SWAP_UNITS)
        data = inv.data
        if len(data) < 8:
            raise anchor.anchor_error(inv, INSTRUCTION_MISSING)
        disc = data[:8]
        if disc == cpmm.DISC_SWAP_BASE_INPUT:
            inv.log("Instruction: SwapBaseInput")
            self.swap(inv, base_output=False)
        elif disc == cpmm.DISC_SWAP_BASE_OUTPUT:
            inv.log("Instruction: SwapBaseOutput")
            self.swap(inv, base_output=True)
        else:
            raise anchor.anchor_error(inv, anchor.INSTRUCTION_FALLBACK_NOT_FOUND)

    def swap(self, inv: Invocation, *, base_output: bool) -> None:
        tx = inv.tx
        if len(inv.data) < 24:
            raise anchor.anchor_error(inv, anchor.INSTRUCTION_DID_NOT_DESERIALIZE)
        if len(inv.keys) < 13:
            raise anchor.anchor_error(inv, anchor.ACCOUNT_NOT_ENOUGH_KEYS)
        parse = cpmm.parse_swap_base_output if base_output else cpmm.parse_swap_base_input
        ix = parse(inv.data[:24], inv.keys)

        # Anchor account validation, in the order of the `Swap` context
        anchor.require_signer(inv, ix.payer)
        if ix.authority != self.authority:
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_SEEDS)
        config_acct = anchor.program_account(inv, ix.amm_config)
        pool_acct = anchor.program_account(inv, ix.pool_state)
        try:
            config = config_acct.decoded(
                cpmm.AmmConfig, cpmm.decode_amm_config, ix.amm_config, self.program_id
            )
            pool = pool_acct.decoded(cpmm.PoolState, cpmm.decode_pool_state, ix.pool_state, self.program_id)
        except LayoutError:
            raise anchor.anchor_error(inv, anchor.ACCOUNT_DISCRIMINATOR_MISMATCH) from None
        if ix.amm_config != pool.amm_config:
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_ADDRESS)
        anchor.require_writable(inv, ix.pool_state)
        for key in (ix.input_token_account, ix.output_token_account):
            anchor.token_account(inv, key)
            anchor.require_writable(inv, key)
        vaults = (pool.token_0_vault, pool.token_1_vault)
        _, input_vault = anchor.token_account(inv, ix.input_vault)
        anchor.require_writable(inv, ix.input_vault)
        if ix.input_vault not in vaults:
            raise anchor.anchor_error(inv, INVALID_VAULT)
        _, output_vault = anchor.token_account(inv, ix.output_vault)
        anchor.require_writable(inv, ix.output_vault)
        if ix.output_vault not in vaults:
            raise anchor.anchor_error(inv, INVALID_VAULT)
        anchor.token_program(inv, ix.input_token_program)
        anchor.token_program(inv, ix.output_token_program)
        if ix.input_token_mint != input_vault.mint or ix.output_token_mint != output_vault.mint:
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_ADDRESS)
        mint_in = anchor.mint_account(inv, ix.input_token_mint)
        mint_out = anchor.mint_account(inv, ix.output_token_mint)
        if ix.observation_state != pool.observation_key:
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_ADDRESS)
        anchor.require_writable(inv, ix.observation_state)

        if ix.input_vault == pool.token_0_vault and ix.output_vault == pool.token_1_vault:
            zero_for_one = True
        elif ix.input_vault == pool.token_1_vault and ix.output_vault == pool.token_0_vault:
            zero_for_one = False
        else:
            raise anchor.anchor_error(inv, INVALID_VAULT)
        vault_0, vault_1 = (input_vault, output_vault) if zero_for_one else (output_vault, input_vault)
        try:
            if base_output:
                result = cpmm.quote_exact_out(
                    pool,
                    config,
                    vault_0.amount,
                    vault_1.amount,
                    ix.minimum_amount_out,
                    zero_for_one,
                    tx.unix_timestamp,
                    mint_in.transfer_fee_config,
                    mint_out.transfer_fee_config,
                    tx.epoch,
                    max_amount_in=ix.amount_in,
                )
            else:
                result = cpmm.quote_exact_in(
                    pool,
                    config,
                    vault_0.amount,
                    vault_1.amount,
                    ix.amount_in,
                    zero_for_one,
                    tx.unix_timestamp,
                    mint_in.transfer_fee_config,
                    mint_out.transfer_fee_config,
                    tx.epoch,
                    minimum_amount_out=ix.minimum_amount_out,
                )
        except QuoteError as exc:
            raise anchor.quote_failure(inv, exc) from None

        anchor.transfer_checked(
            inv,
            ix.input_token_program,
            ix.input_token_account,
            ix.input_token_mint,
            ix.input_vault,
            ix.payer,
            result.amount_in,
            mint_in.decimals,
        )
        anchor.transfer_checked(
            inv,
            ix.output_token_program,
            ix.output_vault,
            ix.output_token_mint,
            ix.output_token_account,
            self.authority,
            result.amount_out_before_transfer_fee,
            mint_out.decimals,
            pda_signer=self.authority,
        )
        # written lazily: encoded when first read (see Account), not once per swap
        tx.put(ix.pool_state, pool_acct.replace(decoded=result.pool, encode=cpmm.encode_pool_state))
        tx.swaps.append(
            {
                "venue": VENUE,
                "pool": str(ix.pool_state),
                "inputMint": str(ix.input_token_mint),
                "outputMint": str(ix.output_token_mint),
                "amountIn": result.amount_in,
                "amountOut": result.amount_out,
            }
        )
