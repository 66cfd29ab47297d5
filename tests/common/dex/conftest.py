"""Fixture loader for the DEX tests: real accounts and swap vectors in ``tests/fixtures/solana``.

See ``tests/fixtures/solana/README.md`` for their provenance.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from solders.pubkey import Pubkey

from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex.spl_token import TransferFeeConfig, decode_mint, decode_token_account

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "solana"

CPMM_FIXTURE = "raydium_cpmm/2higKRf25Q9WMcYfgyK96AAuFVv5zucfDAFHHDuVETcq"
DLMM_B5 = "meteora_dlmm/B5Eia4cE71tKuEDaqPHucJLG2fxySKyKzLMewd2nUvoc"
DLMM_9T3 = "meteora_dlmm/9t3EyC9FweyL7PBWvKz3mrXg8B9fwFc9SK3QxM4ENqhd"
DLMM_9T3_AFTER = "meteora_dlmm/9t3EyC9FweyL7PBWvKz3mrXg8B9fwFc9SK3QxM4ENqhd-after-swap"


@dataclass(frozen=True)
class RawAccount:
    address: Pubkey
    owner: Pubkey
    data: bytes
    lamports: int


@dataclass(frozen=True)
class CpmmFixture:
    program_id: Pubkey
    address: Pubkey
    pool: cpmm.PoolState
    config: cpmm.AmmConfig
    vault_0: int
    vault_1: int
    fee_0: TransferFeeConfig | None
    fee_1: TransferFeeConfig | None
    raw: dict[str, RawAccount]


@dataclass(frozen=True)
class DlmmFixture:
    program_id: Pubkey
    address: Pubkey
    pair: dlmm.LbPair
    arrays: dict[int, dlmm.BinArray]
    oracle: dlmm.Oracle
    fee_x: TransferFeeConfig | None
    fee_y: TransferFeeConfig | None
    raw: dict[str, RawAccount]


def load_account(relative: str) -> RawAccount:
    """One account file in solana-test-validator format."""
    doc = json.loads((FIXTURES / relative).read_text())
    acct = doc["account"]
    return RawAccount(
        Pubkey.from_string(doc["pubkey"]),
        Pubkey.from_string(acct["owner"]),
        base64.b64decode(acct["data"][0]),
        int(acct["lamports"]),
    )


@cache
def pools() -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in json.loads((FIXTURES / "pools.json").read_text())}


@cache
def vectors() -> list[dict[str, Any]]:
    return list(json.loads((FIXTURES / "swap_vectors.json").read_text()))


def vectors_for(venue: str) -> list[dict[str, Any]]:
    return [v for v in vectors() if v["venue"] == venue]


def _raw(fixture_id: str) -> dict[str, RawAccount]:
    return {role: load_account(a["file"]) for role, a in pools()[fixture_id]["accounts"].items()}


@cache
def cpmm_fixture() -> CpmmFixture:
    meta = pools()[CPMM_FIXTURE]
    program = Pubkey.from_string(meta["program_id"])
    raw = _raw(CPMM_FIXTURE)
    ps, cfg = raw["pool_state"], raw["amm_config"]
    v0, v1, m0, m1 = raw["token_0_vault"], raw["token_1_vault"], raw["token_0_mint"], raw["token_1_mint"]
    return CpmmFixture(
        program_id=program,
        address=ps.address,
        pool=cpmm.decode_pool_state(ps.address, ps.owner, ps.data, program),
        config=cpmm.decode_amm_config(cfg.address, cfg.owner, cfg.data, program),
        vault_0=decode_token_account(v0.address, v0.owner, v0.data).amount,
        vault_1=decode_token_account(v1.address, v1.owner, v1.data).amount,
        fee_0=decode_mint(m0.address, m0.owner, m0.data).transfer_fee_config,
        fee_1=decode_mint(m1.address, m1.owner, m1.data).transfer_fee_config,
        raw=raw,
    )


@cache
def dlmm_fixture(fixture_id: str) -> DlmmFixture:
    meta = pools()[fixture_id]
    program = Pubkey.from_string(meta["program_id"])
    raw = _raw(fixture_id)
    lp, orc = raw["lb_pair"], raw["oracle"]
    arrays = {}
    for role in ("bin_array_-1", "bin_array_0"):
        a = raw[role]
        array = dlmm.decode_bin_array(a.address, a.owner, a.data, program)
        arrays[array.index] = array
    mx, my = raw["token_x_mint"], raw["token_y_mint"]
    return DlmmFixture(
        program_id=program,
        address=lp.address,
        pair=dlmm.decode_lb_pair(lp.address, lp.owner, lp.data, program),
        arrays=arrays,
        oracle=dlmm.decode_oracle(orc.address, orc.owner, orc.data, program),
        fee_x=decode_mint(mx.address, mx.owner, mx.data).transfer_fee_config,
        fee_y=decode_mint(my.address, my.owner, my.data).transfer_fee_config,
        raw=raw,
    )


@pytest.fixture(scope="session")
def cpmm_fx() -> CpmmFixture:
    return cpmm_fixture()


@pytest.fixture(scope="session")
def dlmm_b5() -> DlmmFixture:
    return dlmm_fixture(DLMM_B5)


@pytest.fixture(scope="session")
def dlmm_9t3() -> DlmmFixture:
    return dlmm_fixture(DLMM_9T3)


@pytest.fixture(scope="session")
def dlmm_9t3_after() -> DlmmFixture:
    return dlmm_fixture(DLMM_9T3_AFTER)
