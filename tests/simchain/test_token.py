"""SPL Token / Token-2022 / Associated Token Account programs, and the airdrop's token funding."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, WRAPPED_SOL_MINT
from spl.token.instructions import (
    close_account,
    create_associated_token_account,
    create_idempotent_associated_token_account,
    initialize_account3,
    sync_native,
    transfer_checked,
)
from spl.token.instructions import transfer as token_transfer
from spl.token.models import (
    CloseAccountParams,
    InitializeAccount3Params,
    SyncNativeParams,
    TransferCheckedParams,
)
from spl.token.models import TransferParams as TokenTransferParams

from common.dex.spl_token import (
    Mint,
    TokenAccount,
    TransferFeeConfig,
    decode_token_account,
    encode_mint,
    encode_token_account,
)
from simchain.genesis import AIRDROP_TOKENS
from simchain.ledger import Account, minimum_balance
from simchain.server import Running
from tests.simchain.helpers import account, ata, blockhash, mint, send, sign, simulate, token_amount

SOL = 10**9


async def test_airdrop_funds_sol_and_every_token(client: AsyncClient) -> None:
    kp = Keypair()
    sig = (await client.request_airdrop(kp.pubkey(), 5 * SOL)).value
    assert (await client.get_balance(kp.pubkey())).value == 5 * SOL
    assert (await client.get_signature_statuses([sig])).value[0] is not None  # a real, landed transfer
    for symbol, decimals in (("SOL", 9), ("USDC", 6), ("USDT", 6)):
        balance = (
            await client.get_token_account_balance(ata(kp.pubkey(), mint(symbol), TOKEN_PROGRAM_ID))
        ).value
        assert balance.amount == str(AIRDROP_TOKENS * 10**decimals)
        assert balance.decimals == decimals
        assert balance.ui_amount_string == str(AIRDROP_TOKENS)
    # a second airdrop adds SOL and leaves the token accounts as they are
    await client.request_airdrop(kp.pubkey(), SOL)
    assert (await client.get_balance(kp.pubkey())).value == 6 * SOL
    assert (
        await token_amount(client, ata(kp.pubkey(), mint("USDC"), TOKEN_PROGRAM_ID)) == AIRDROP_TOKENS * 10**6
    )


async def test_wrap_and_unwrap_sol(client: AsyncClient, wallet: Keypair) -> None:
    owner = Keypair()  # a wallet without token accounts, funded by a plain transfer
    await send(
        client,
        sign(
            wallet,
            [
                transfer(
                    TransferParams(from_pubkey=wallet.pubkey(), to_pubkey=owner.pubkey(), lamports=10 * SOL)
                )
            ],
            await blockhash(client),
        ),
    )
    wsol = ata(owner.pubkey(), WRAPPED_SOL_MINT, TOKEN_PROGRAM_ID)
    wrap = [
        create_idempotent_associated_token_account(owner.pubkey(), owner.pubkey(), WRAPPED_SOL_MINT),
        transfer(TransferParams(from_pubkey=owner.pubkey(), to_pubkey=wsol, lamports=2 * SOL)),
        sync_native(SyncNativeParams(program_id=TOKEN_PROGRAM_ID, account=wsol)),
    ]
    await send(client, sign(owner, wrap, await blockhash(client)))
    rent = minimum_balance(165)
    assert await token_amount(client, wsol) == 2 * SOL
    assert (await client.get_balance(wsol)).value == 2 * SOL + rent
    assert (await client.get_balance(owner.pubkey())).value == 10 * SOL - 2 * SOL - rent - 5000
    # idempotent create on the existing account is a no-op; a plain create fails (system: in use)
    again = [create_idempotent_associated_token_account(owner.pubkey(), owner.pubkey(), WRAPPED_SOL_MINT)]
    await send(client, sign(owner, again, await blockhash(client)))
    plain = [create_associated_token_account(owner.pubkey(), owner.pubkey(), WRAPPED_SOL_MINT)]
    sim = await client.simulate_transaction(sign(owner, plain, await blockhash(client)))
    assert "IllegalOwner" in str(sim.value.err)
    # unwrap
    unwrap = [
        close_account(
            CloseAccountParams(
                program_id=TOKEN_PROGRAM_ID, account=wsol, dest=owner.pubkey(), owner=owner.pubkey()
            )
        )
    ]
    await send(client, sign(owner, unwrap, await blockhash(client)))
    assert (await client.get_account_info(wsol)).value is None
    assert (await client.get_balance(owner.pubkey())).value == 10 * SOL - 3 * 5000


async def test_wrap_into_a_fresh_account(client: AsyncClient, wallet: Keypair) -> None:
    temp = Keypair()
    rent = minimum_balance(165)
    ixs = [
        create_account(
            CreateAccountParams(
                from_pubkey=wallet.pubkey(),
                to_pubkey=temp.pubkey(),
                lamports=rent + SOL,
                space=165,
                owner=TOKEN_PROGRAM_ID,
            )
        ),
        initialize_account3(
            InitializeAccount3Params(
                program_id=TOKEN_PROGRAM_ID,
                account=temp.pubkey(),
                mint=WRAPPED_SOL_MINT,
                owner=wallet.pubkey(),
            )
        ),
    ]
    await send(client, sign(wallet, ixs, await blockhash(client), temp))
    assert await token_amount(client, temp.pubkey()) == SOL
    owner, data, _ = await account(client, temp.pubkey())
    assert decode_token_account(temp.pubkey(), owner, data).is_native == rent


async def test_token_errors(client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient) -> None:
    usdc = mint("USDC")
    src = ata(wallet.pubkey(), usdc, TOKEN_PROGRAM_ID)
    other = Keypair()
    await client.request_airdrop(other.pubkey(), SOL)
    dst = ata(other.pubkey(), usdc, TOKEN_PROGRAM_ID)

    async def custom_code(ixs: list[Instruction]) -> Any:
        return (await simulate(http, sign(wallet, ixs, await blockhash(client))))["err"]["InstructionError"][
            1
        ]

    too_much = token_transfer(
        TokenTransferParams(
            program_id=TOKEN_PROGRAM_ID, source=src, dest=dst, owner=wallet.pubkey(), amount=10**18
        )
    )
    assert {"Custom": 1} == await custom_code([too_much])  # InsufficientFunds
    not_owner = token_transfer(
        TokenTransferParams(
            program_id=TOKEN_PROGRAM_ID, source=dst, dest=src, owner=wallet.pubkey(), amount=1
        )
    )
    assert {"Custom": 4} == await custom_code([not_owner])  # OwnerMismatch
    wrong_decimals = transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID,
            source=src,
            mint=usdc,
            dest=dst,
            owner=wallet.pubkey(),
            amount=1,
            decimals=9,
        )
    )
    assert {"Custom": 18} == await custom_code([wrong_decimals])  # MintDecimalsMismatch
    close_with_balance = close_account(
        CloseAccountParams(
            program_id=TOKEN_PROGRAM_ID, account=src, dest=wallet.pubkey(), owner=wallet.pubkey()
        )
    )
    assert {"Custom": 11} == await custom_code([close_with_balance])  # NonNativeHasBalance
    ok = transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID,
            source=src,
            mint=usdc,
            dest=dst,
            owner=wallet.pubkey(),
            amount=1_500_000,
            decimals=6,
        )
    )
    await send(client, sign(wallet, [ok], await blockhash(client)))
    assert await token_amount(client, dst) == AIRDROP_TOKENS * 10**6 + 1_500_000


async def test_token_2022_transfer_fee_is_withheld(
    chain: Running, client: AsyncClient, wallet: Keypair, http: httpx.AsyncClient
) -> None:
    ledger = chain.node.ledger
    fee_mint = Pubkey.new_unique()
    fee = TransferFeeConfig.constant(50, 5_000)  # 0.5 %, at most 5,000 base units
    mint_data = encode_mint(Mint(TOKEN_2022_PROGRAM_ID, None, 10**12, 6, True, None, transfer_fee_config=fee))
    ledger.put(fee_mint, Account(minimum_balance(len(mint_data)), TOKEN_2022_PROGRAM_ID, mint_data))
    src = Pubkey.new_unique()
    src_data = encode_token_account(
        TokenAccount(TOKEN_2022_PROGRAM_ID, fee_mint, wallet.pubkey(), 10**12, withheld_amount=0)
    )
    ledger.put(src, Account(minimum_balance(len(src_data)), TOKEN_2022_PROGRAM_ID, src_data))
    receiver = Keypair().pubkey()
    dst = ata(receiver, fee_mint, TOKEN_2022_PROGRAM_ID)
    ixs = [
        create_idempotent_associated_token_account(
            wallet.pubkey(), receiver, fee_mint, TOKEN_2022_PROGRAM_ID
        ),
        transfer_checked(
            TransferCheckedParams(
                program_id=TOKEN_2022_PROGRAM_ID,
                source=src,
                mint=fee_mint,
                dest=dst,
                owner=wallet.pubkey(),
                amount=400_000,
                decimals=6,
            )
        ),
        transfer_checked(
            TransferCheckedParams(
                program_id=TOKEN_2022_PROGRAM_ID,
                source=src,
                mint=fee_mint,
                dest=dst,
                owner=wallet.pubkey(),
                amount=10**9,
                decimals=6,
            )
        ),
    ]
    await send(client, sign(wallet, ixs, await blockhash(client)))
    owner, data, _ = await account(client, dst)
    assert len(data) == 165 + 1 + 4 + 4 + 8  # account type, ImmutableOwner, TransferFeeAmount
    received = decode_token_account(dst, owner, data)
    assert received.amount == (400_000 - 2_000) + (10**9 - 5_000)
    assert received.withheld_amount == 2_000 + 5_000
    assert await token_amount(client, src) == 10**12 - 400_000 - 10**9
    # a plain Transfer out of a fee-bearing account needs the mint: MintRequiredForTransfer (31)
    plain = token_transfer(
        TokenTransferParams(
            program_id=TOKEN_2022_PROGRAM_ID, source=src, dest=dst, owner=wallet.pubkey(), amount=1
        )
    )
    sim = await simulate(http, sign(wallet, [plain], await blockhash(client)))
    assert sim["err"] == {"InstructionError": [0, {"Custom": 31}]}


async def test_create_ata_needs_the_right_address(client: AsyncClient, wallet: Keypair) -> None:
    ix = create_idempotent_associated_token_account(wallet.pubkey(), Keypair().pubkey(), mint("USDT"))
    accounts = list(ix.accounts)
    accounts[1] = AccountMeta(Pubkey.new_unique(), False, True)
    bad = Instruction(ix.program_id, ix.data, accounts)
    sim = await client.simulate_transaction(sign(wallet, [bad], await blockhash(client)))
    assert "InvalidSeeds" in str(sim.value.err)
    with pytest.raises(RPCException):
        await send(client, sign(wallet, [bad], await blockhash(client)))
