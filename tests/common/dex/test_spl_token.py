"""SPL Token / Token-2022 layouts, transfer fees and associated token addresses."""

from __future__ import annotations

import dataclasses
import glob
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from common.dex.errors import LayoutError
from common.dex.spl_token import (
    MAX_FEE_BASIS_POINTS,
    NATIVE_MINT,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    Mint,
    TokenAccount,
    TransferFee,
    TransferFeeConfig,
    associated_token_address,
    decode_mint,
    decode_token_account,
    encode_mint,
    encode_token_account,
    transfer_fee_excluded_amount,
    transfer_fee_included_amount,
)

from .conftest import FIXTURES, load_account

U64_MAX = (1 << 64) - 1
TOKEN_FILES = sorted(
    str(Path(p).relative_to(FIXTURES))
    for p in glob.glob(str(FIXTURES / "accounts" / "*" / "*" / "*.json"))
    if json.loads(Path(p).read_text())["account"]["owner"]
    in (str(TOKEN_PROGRAM_ID), str(TOKEN_2022_PROGRAM_ID))
)


@pytest.mark.parametrize("path", TOKEN_FILES)
def test_fixture_token_accounts_round_trip(path: str) -> None:
    raw = load_account(path)
    if "mint" in Path(path).name:
        mint = decode_mint(raw.address, raw.owner, raw.data)
        assert encode_mint(mint) == raw.data
        assert mint.program_id == raw.owner
    else:
        acct = decode_token_account(raw.address, raw.owner, raw.data)
        assert encode_token_account(acct) == raw.data
        if acct.mint == NATIVE_MINT:
            assert acct.is_native is not None and raw.lamports == acct.is_native + acct.amount


def test_token_2022_mint_with_transfer_fee() -> None:
    raw = load_account("accounts/meteora_dlmm/B5Eia4cE71tKuEDaqPHucJLG2fxySKyKzLMewd2nUvoc/token_x_mint.json")
    mint = decode_mint(raw.address, raw.owner, raw.data)
    assert mint.decimals == 9 and mint.program_id == TOKEN_2022_PROGRAM_ID
    cfg = mint.transfer_fee_config
    assert cfg is not None
    assert cfg.get_epoch_fee(1041) == TransferFee(835, 5000, 50)
    assert cfg.calculate_epoch_fee(1041, 1000) == 5  # ceil(1000 * 50 / 10_000)
    assert cfg.calculate_epoch_fee(1041, 1001) == 6
    assert cfg.calculate_epoch_fee(1041, 10**12) == 5000  # capped
    assert [t for t, _ in mint.extensions] == [1, 18, 19]
    changed = dataclasses.replace(mint, transfer_fee_config=TransferFeeConfig.constant(7, 9))
    again = decode_mint(raw.address, raw.owner, encode_mint(changed))
    assert again.transfer_fee_config == TransferFeeConfig.constant(7, 9)
    assert len(encode_mint(changed)) == len(raw.data)


def test_transfer_fee_epochs() -> None:
    cfg = TransferFeeConfig(None, None, 0, TransferFee(0, 100, 10), TransferFee(50, 1000, 200))
    assert cfg.calculate_epoch_fee(49, 10_000) == 10
    assert cfg.calculate_epoch_fee(50, 10_000) == 200
    assert cfg.calculate_epoch_fee(50, 0) == 0
    assert TransferFee(0, 10, 0).calculate_fee(10**9) == 0
    assert TransferFee(0, 10**6, MAX_FEE_BASIS_POINTS).calculate_pre_fee_amount(5) == 10**6 + 5
    assert transfer_fee_excluded_amount(None, 1, 77) == 77
    assert transfer_fee_included_amount(None, 1, 77) == 77
    assert transfer_fee_included_amount(cfg, 60, 0) == 0


@settings(max_examples=200, deadline=None)
@given(
    bps=st.integers(0, MAX_FEE_BASIS_POINTS - 1),
    maximum=st.integers(0, 10**15),
    post=st.integers(1, 10**17),
)
def test_inverse_fee_is_the_least_gross_amount(bps: int, maximum: int, post: int) -> None:
    fee = TransferFee(0, maximum, bps)
    pre = fee.calculate_pre_fee_amount(post)
    assert pre is not None
    assert pre - fee.calculate_fee(pre) >= post
    assert pre - 1 - fee.calculate_fee(pre - 1) < post
    cfg = TransferFeeConfig(None, None, 0, fee, fee)
    gross = transfer_fee_included_amount(cfg, 0, post)
    assert gross is not None and transfer_fee_excluded_amount(cfg, 0, gross) >= post


def test_decoders_name_the_account_they_reject() -> None:
    raw = load_account(
        "accounts/raydium_cpmm/2higKRf25Q9WMcYfgyK96AAuFVv5zucfDAFHHDuVETcq/token_0_vault.json"
    )
    other = Pubkey.new_unique()
    with pytest.raises(LayoutError, match=f"token account {raw.address}: owner"):
        decode_token_account(raw.address, other, raw.data)
    with pytest.raises(LayoutError, match=f"token account {raw.address}: size"):
        decode_token_account(raw.address, raw.owner, raw.data[:100])
    with pytest.raises(LayoutError, match="size 166 != 165"):
        decode_token_account(raw.address, TOKEN_PROGRAM_ID, raw.data + b"\x02")
    mint = load_account(
        "accounts/raydium_cpmm/2higKRf25Q9WMcYfgyK96AAuFVv5zucfDAFHHDuVETcq/token_0_mint.json"
    )
    with pytest.raises(LayoutError, match=f"token mint {mint.address}: size"):
        decode_mint(mint.address, mint.owner, mint.data[:81])
    ext = load_account("accounts/meteora_dlmm/B5Eia4cE71tKuEDaqPHucJLG2fxySKyKzLMewd2nUvoc/token_x_mint.json")
    with pytest.raises(LayoutError, match="account type"):
        decode_mint(ext.address, ext.owner, ext.data[:165] + b"\x02" + ext.data[166:])


def test_new_token_accounts_encode_like_the_program() -> None:
    owner, mint = Pubkey.new_unique(), Pubkey.new_unique()
    acct = TokenAccount(TOKEN_PROGRAM_ID, mint, owner, 5)
    data = encode_token_account(acct)
    assert len(data) == 165 and decode_token_account(owner, TOKEN_PROGRAM_ID, data) == acct
    fee_acct = TokenAccount(TOKEN_2022_PROGRAM_ID, mint, owner, 5, withheld_amount=3)
    data = encode_token_account(fee_acct)
    assert len(data) == 178 and data[165] == 2
    assert decode_token_account(owner, TOKEN_2022_PROGRAM_ID, data).withheld_amount == 3
    m = Mint(TOKEN_2022_PROGRAM_ID, None, 10, 6, True, None, TransferFeeConfig.constant(25, 100))
    data = encode_mint(m)
    assert len(data) == 82 + 83 + 1 + 4 + 108
    assert decode_mint(mint, TOKEN_2022_PROGRAM_ID, data).transfer_fee_config == m.transfer_fee_config
    assert len(encode_mint(Mint(TOKEN_PROGRAM_ID, owner, 1, 9, True, None))) == 82


@pytest.mark.parametrize("program", [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID])
def test_associated_token_address_matches_spl(program: Pubkey) -> None:
    for _ in range(5):
        owner, mint = Pubkey.new_unique(), Pubkey.new_unique()
        assert associated_token_address(owner, mint, program) == get_associated_token_address(
            owner, mint, program
        )
    assert associated_token_address(owner, NATIVE_MINT, program) != associated_token_address(
        owner, mint, program
    )
