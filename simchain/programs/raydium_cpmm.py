"""Raydium CPMM (`raydium-cp-swap`): `swap_base_input`, `swap_base_output` and `initialize`.

The instruction is decoded with `common.dex.raydium_cpmm`'s parsers, its accounts validated as the
program's Anchor `Swap` context does (signer, vault authority PDA, `amm_config` and
`observation_state` addresses from the pool, vaults of the pool, mints of the vaults), then quoted
with the exact math on the accounts' current state. The user's tokens go to the input vault and
the output vault pays the user, both through `transfer_checked` CPIs into the token programs (so
Token-2022 transfer fees are withheld exactly as on chain), and the pool state is written back in
its real layout with the fees it accrued. A breached minimum fails with the program's error, e.g.
``{"Custom": 6005}`` ExceededSlippage. The observation (TWAP) account is checked, not updated.

`initialize(init_amount_0, init_amount_1, open_time)` creates a pool as the program's
`Initialize` context and handler do, with the same accounts in the same order: the LP mint (9
decimals, the authority PDA its mint authority), the creator's LP token account and the
observation account are Anchor `init`s; the handler creates both vaults (token accounts at the
PDAs [b"pool_vault", pool, mint], owned by the authority), the pool state (at the PDA [b"pool",
amm_config, token_0_mint, token_1_mint], or a keypair address that signs), moves the opening
amounts from the creator's accounts, mints isqrt(vault_0 * vault_1) - 100 LP to the creator (100
stay locked), charges the config's `create_pool_fee` in lamports into the deployment's fee
account (wSOL, then SyncNative), and writes the pool: open at `open_time`, but never before one
second after the creating block (an earlier `open_time` becomes block time + 1). Every account is
created through the System and Token programs (CPI), so rent, sizes and owners are as on chain.
"""

from __future__ import annotations

from math import isqrt
from typing import Final

from solders.pubkey import Pubkey

from common.dex import raydium_cpmm as cpmm
from common.dex.errors import LayoutError, QuoteError
from common.dex.spl_token import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    MINT_SIZE,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    Mint,
    associated_token_address,
    decode_token_account,
)
from simchain.ledger import SYSTEM_PROGRAM_ID, SYSVAR_RENT, minimum_balance
from simchain.programs import anchor, system
from simchain.programs.token import (
    INITIALIZE_ACCOUNT_3,
    INITIALIZE_IMMUTABLE_OWNER,
    INITIALIZE_MINT_2,
    MINT_TO,
    SYNC_NATIVE,
    account_size,
)
from simchain.runtime import Invocation

VENUE: Final = "raydium_cpmm"
SWAP_UNITS: Final = 22_000
INSTRUCTION_MISSING: Final = (100, "InstructionMissing", "8 byte instruction identifier not provided")
INVALID_VAULT: Final = (6008, "InvalidVault", "invaild vault")
INITIALIZE_UNITS: Final = 60_000
NOT_APPROVED: Final = (6000, "NotApproved", "Not approved")
EMPTY_SUPPLY: Final = (6002, "EmptySupply", "Input token account empty")
NOT_SUPPORT_MINT: Final = (6007, "NotSupportMint", "Not support token_2022 mint extension")
INIT_LP_AMOUNT_TOO_LESS: Final = (
    6009,
    "InitLpAmountTooLess",
    "Init lp amount is too less(Because 100 amount lp will be locked)",
)
CONSTRAINT_TOKEN_MINT: Final = (2014, "ConstraintTokenMint", "A token mint constraint was violated")
CONSTRAINT_TOKEN_OWNER: Final = (2015, "ConstraintTokenOwner", "A token owner constraint was violated")
CONSTRAINT_MINT_TOKEN_PROGRAM: Final = (
    2022,
    "ConstraintMintTokenProgram",
    "A mint token program constraint was violated",
)
REQUIRE_EQ_VIOLATED: Final = (2501, "RequireEqViolated", "A require_eq expression was violated")
ACCOUNT_NOT_ASSOCIATED: Final = (
    3014,
    "AccountNotAssociatedTokenAccount",
    "The given account is not the associated token account",
)
ACCOUNT_SYSVAR_MISMATCH: Final = (
    3015,
    "AccountSysvarMismatch",
    "The given public key does not match the required sysvar",
)
# Token-2022 mint extensions `is_supported_mint` accepts: TransferFeeConfig, MetadataPointer,
# TokenMetadata, InterestBearingConfig.
_SUPPORTED_EXTENSIONS: Final = frozenset({1, 10, 18, 19})


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
        elif disc == cpmm.DISC_INITIALIZE:
            inv.log("Instruction: Initialize")
            inv.tx.consume(INITIALIZE_UNITS)
            self.initialize(inv)
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

    # -- initialize -----------------------------------------------------------------------------

    def _pda(self, *seeds: bytes) -> Pubkey:
        return Pubkey.find_program_address(list(seeds), self.program_id)[0]

    def _create(self, inv: Invocation, payer: Pubkey, key: Pubkey, space: int, owner: Pubkey) -> None:
        """System `create_account` of `key` (signed by this program as the PDA it is)."""
        data = system.create_account_data(minimum_balance(space), space, owner)
        inv.tx.invoke(SYSTEM_PROGRAM_ID, [payer, key], data, [key])

    def _creator_token(self, inv: Invocation, key: Pubkey, mint: Pubkey, creator: Pubkey) -> None:
        _, token = anchor.token_account(inv, key)
        anchor.require_writable(inv, key)
        if token.mint != mint:
            raise anchor.anchor_error(inv, CONSTRAINT_TOKEN_MINT)
        if token.owner != creator:
            raise anchor.anchor_error(inv, CONSTRAINT_TOKEN_OWNER)

    def _supported(self, mint: Mint) -> bool:
        if mint.program_id == TOKEN_PROGRAM_ID:
            return True
        return all(kind in _SUPPORTED_EXTENSIONS for kind, _ in mint.extensions)

    def initialize(self, inv: Invocation) -> None:
        tx = inv.tx
        if len(inv.data) < 32:
            raise anchor.anchor_error(inv, anchor.INSTRUCTION_DID_NOT_DESERIALIZE)
        if len(inv.keys) < cpmm.INITIALIZE_ACCOUNTS:
            raise anchor.anchor_error(inv, anchor.ACCOUNT_NOT_ENOUGH_KEYS)
        ix = cpmm.parse_initialize(inv.data, inv.keys)

        # Anchor account validation, in the order of the `Initialize` context
        anchor.require_signer(inv, ix.creator)
        anchor.require_writable(inv, ix.creator)
        try:
            config = anchor.program_account(inv, ix.amm_config).decoded(
                cpmm.AmmConfig, cpmm.decode_amm_config, ix.amm_config, self.program_id
            )
        except LayoutError:
            raise anchor.anchor_error(inv, anchor.ACCOUNT_DISCRIMINATOR_MISMATCH) from None
        if ix.authority != self.authority:
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_SEEDS)
        anchor.require_writable(inv, ix.pool_state)
        mint_0 = anchor.mint_account(inv, ix.token_0_mint)
        if bytes(ix.token_0_mint) >= bytes(ix.token_1_mint):
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_RAW)
        if mint_0.program_id != ix.token_0_program:
            raise anchor.anchor_error(inv, CONSTRAINT_MINT_TOKEN_PROGRAM)
        mint_1 = anchor.mint_account(inv, ix.token_1_mint)
        if mint_1.program_id != ix.token_1_program:
            raise anchor.anchor_error(inv, CONSTRAINT_MINT_TOKEN_PROGRAM)
        derived = cpmm.pool_account_pdas(self.program_id, ix.pool_state, ix.token_0_mint, ix.token_1_mint)
        if ix.lp_mint != derived["lp_mint"]:
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_SEEDS)
        if ix.token_program != TOKEN_PROGRAM_ID:
            raise anchor.anchor_error(inv, anchor.INVALID_PROGRAM_ID)
        anchor.require_writable(inv, ix.lp_mint)
        self._create(inv, ix.creator, ix.lp_mint, MINT_SIZE, TOKEN_PROGRAM_ID)  # init lp_mint
        mint_args = bytes([INITIALIZE_MINT_2, cpmm.LP_MINT_DECIMALS]) + bytes(self.authority) + bytes([0])
        tx.invoke(TOKEN_PROGRAM_ID, [ix.lp_mint], mint_args)
        self._creator_token(inv, ix.creator_token_0, ix.token_0_mint, ix.creator)
        self._creator_token(inv, ix.creator_token_1, ix.token_1_mint, ix.creator)
        if ix.creator_lp_token != associated_token_address(ix.creator, ix.lp_mint, TOKEN_PROGRAM_ID):
            raise anchor.anchor_error(inv, ACCOUNT_NOT_ASSOCIATED)
        anchor.require_writable(inv, ix.creator_lp_token)
        tx.invoke(  # init creator_lp_token (associated token account)
            ASSOCIATED_TOKEN_PROGRAM_ID,
            [ix.creator, ix.creator_lp_token, ix.creator, ix.lp_mint, SYSTEM_PROGRAM_ID, TOKEN_PROGRAM_ID],
            b"",
        )
        for vault, name in ((ix.token_0_vault, "token_0_vault"), (ix.token_1_vault, "token_1_vault")):
            if vault != derived[name]:
                raise anchor.anchor_error(inv, anchor.CONSTRAINT_SEEDS)
            anchor.require_writable(inv, vault)
        receiver = cpmm.CREATE_POOL_FEE_RECEIVERS.get(str(self.program_id))
        if receiver is None or str(ix.create_pool_fee) != receiver:
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_ADDRESS)
        anchor.token_account(inv, ix.create_pool_fee)
        anchor.require_writable(inv, ix.create_pool_fee)
        if ix.observation_state != derived["observation_state"]:
            raise anchor.anchor_error(inv, anchor.CONSTRAINT_SEEDS)
        anchor.require_writable(inv, ix.observation_state)
        self._create(inv, ix.creator, ix.observation_state, cpmm.OBSERVATION_STATE_SIZE, self.program_id)
        anchor.token_program(inv, ix.token_0_program)
        anchor.token_program(inv, ix.token_1_program)
        if (
            ix.associated_token_program != ASSOCIATED_TOKEN_PROGRAM_ID
            or ix.system_program != SYSTEM_PROGRAM_ID
        ):
            raise anchor.anchor_error(inv, anchor.INVALID_PROGRAM_ID)
        if ix.rent != SYSVAR_RENT:
            raise anchor.anchor_error(inv, ACCOUNT_SYSVAR_MISMATCH)

        # the handler
        if not (self._supported(mint_0) and self._supported(mint_1)):
            raise anchor.anchor_error(inv, NOT_SUPPORT_MINT)
        if config.disable_create_pool:
            raise anchor.anchor_error(inv, NOT_APPROVED)
        open_time = ix.open_time
        if open_time <= tx.unix_timestamp:
            open_time = tx.unix_timestamp + 1
        for vault, mint_key, mint, program in (
            (ix.token_0_vault, ix.token_0_mint, mint_0, ix.token_0_program),
            (ix.token_1_vault, ix.token_1_mint, mint_1, ix.token_1_program),
        ):
            space = account_size(mint, immutable_owner=program == TOKEN_2022_PROGRAM_ID)
            self._create(inv, ix.creator, vault, space, program)
            if program == TOKEN_2022_PROGRAM_ID:
                tx.invoke(program, [vault], bytes([INITIALIZE_IMMUTABLE_OWNER]))
            tx.invoke(program, [vault, mint_key], bytes([INITIALIZE_ACCOUNT_3]) + bytes(self.authority))
        pool_pda = cpmm.pool_pda(self.program_id, ix.amm_config, ix.token_0_mint, ix.token_1_mint)
        existing = tx.get(ix.pool_state)
        if existing is not None and (existing.owner != SYSTEM_PROGRAM_ID or existing.lamports != 0):
            raise anchor.anchor_error(inv, NOT_APPROVED)
        if ix.pool_state != pool_pda and not inv.is_signer(ix.pool_state):
            raise anchor.anchor_error(inv, REQUIRE_EQ_VIOLATED)
        self._create(inv, ix.creator, ix.pool_state, cpmm.POOL_STATE_SIZE, self.program_id)
        observation = tx.get(ix.observation_state)
        assert observation is not None  # created above
        tx.put(ix.observation_state, observation.replace(data=cpmm.observation_data(ix.pool_state)))

        anchor.transfer_checked(
            inv, ix.token_0_program, ix.creator_token_0, ix.token_0_mint, ix.token_0_vault, ix.creator,
            ix.init_amount_0, mint_0.decimals,
        )  # fmt: skip
        anchor.transfer_checked(
            inv, ix.token_1_program, ix.creator_token_1, ix.token_1_mint, ix.token_1_vault, ix.creator,
            ix.init_amount_1, mint_1.decimals,
        )  # fmt: skip
        amount_0 = self._amount(inv, ix.token_0_vault)
        amount_1 = self._amount(inv, ix.token_1_vault)
        if amount_0 == 0 or amount_1 == 0:
            raise anchor.anchor_error(inv, EMPTY_SUPPLY)
        liquidity = isqrt(amount_0 * amount_1)
        inv.log(
            f"liquidity:{liquidity}, lock_lp_amount:{cpmm.LOCKED_LP_AMOUNT}, "
            f"vault_0_amount:{amount_0},vault_1_amount:{amount_1}"
        )
        if liquidity < cpmm.LOCKED_LP_AMOUNT:
            raise anchor.anchor_error(inv, INIT_LP_AMOUNT_TOO_LESS)
        tx.invoke(
            TOKEN_PROGRAM_ID,
            [ix.lp_mint, ix.creator_lp_token, self.authority],
            bytes([MINT_TO]) + (liquidity - cpmm.LOCKED_LP_AMOUNT).to_bytes(8, "little"),
            [self.authority],
        )
        if config.create_pool_fee:
            tx.invoke(
                SYSTEM_PROGRAM_ID,
                [ix.creator, ix.create_pool_fee],
                system.transfer_data(config.create_pool_fee),
            )
            tx.invoke(TOKEN_PROGRAM_ID, [ix.create_pool_fee], bytes([SYNC_NATIVE]))

        auth_bump = Pubkey.find_program_address([cpmm.AUTH_SEED], self.program_id)[1]
        state = cpmm.PoolState(
            amm_config=ix.amm_config,
            pool_creator=ix.creator,
            token_0_vault=ix.token_0_vault,
            token_1_vault=ix.token_1_vault,
            lp_mint=ix.lp_mint,
            token_0_mint=ix.token_0_mint,
            token_1_mint=ix.token_1_mint,
            token_0_program=ix.token_0_program,
            token_1_program=ix.token_1_program,
            observation_key=ix.observation_state,
            auth_bump=auth_bump,
            status=0,
            lp_mint_decimals=cpmm.LP_MINT_DECIMALS,
            mint_0_decimals=mint_0.decimals,
            mint_1_decimals=mint_1.decimals,
            lp_supply=liquidity,
            protocol_fees_token_0=0,
            protocol_fees_token_1=0,
            fund_fees_token_0=0,
            fund_fees_token_1=0,
            open_time=open_time,
            recent_epoch=tx.epoch,
        )
        pool_acct = tx.get(ix.pool_state)
        assert pool_acct is not None  # created above
        tx.put(ix.pool_state, pool_acct.replace(data=cpmm.encode_pool_state(state)))

    @staticmethod
    def _amount(inv: Invocation, key: Pubkey) -> int:
        acct = inv.tx.get(key)
        assert acct is not None
        return decode_token_account(key, acct.owner, acct.data).amount
