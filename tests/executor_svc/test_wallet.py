"""executor_svc.wallet: loading the key, and the key never being shown."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest
from solders.keypair import Keypair

from common.settings import ConfigError, load_settings
from executor_svc.wallet import Wallet, load_wallet, parse_private_key

NO_DOTENV = Path("/nonexistent")


def _secret_forms(keypair: Keypair) -> list[str]:
    raw = bytes(keypair)
    return [str(keypair), json.dumps(list(raw)), raw.hex(), repr(raw), repr(list(raw))[:60]]


def test_wallet_shows_only_its_public_key() -> None:
    keypair = Keypair()
    wallet = Wallet(keypair)
    for text in (repr(wallet), str(wallet), f"{wallet}", f"{wallet!r}"):
        assert str(keypair.pubkey()) in text
        for secret in _secret_forms(keypair):
            assert secret not in text
    with pytest.raises(TypeError):
        pickle.dumps(wallet)
    with pytest.raises(TypeError):
        copy.copy(wallet)
    with pytest.raises(TypeError):
        copy.deepcopy(wallet)
    assert not hasattr(wallet, "__dict__")  # nothing to dump with vars()


def test_private_key_base58_and_json_array() -> None:
    keypair = Keypair()
    assert parse_private_key(str(keypair)).pubkey() == keypair.pubkey()
    assert parse_private_key(json.dumps(list(bytes(keypair)))).pubkey() == keypair.pubkey()
    assert parse_private_key(f"  {keypair}\n").pubkey() == keypair.pubkey()


@pytest.mark.parametrize(
    "value",
    [
        "not-base58-0OIl",
        "3" * 87,
        "[1, 2, 3]",
        json.dumps([7] * 64),  # 64 bytes whose public half does not match
        "[not json",
        json.dumps([300] * 64),
    ],
)
def test_malformed_private_key_names_the_variable_not_the_value(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_wallet(load_settings({"CHAIN": "devnet", "PRIVATE_KEY": value}, dotenv=NO_DOTENV))
    assert info.value.variable == "PRIVATE_KEY"
    assert "PRIVATE_KEY" in str(info.value)
    assert value not in str(info.value) and value[:20] not in str(info.value)
    # no chained exception carries the value into a traceback
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_keypair_path(tmp_path: Path) -> None:
    keypair = Keypair()
    path = tmp_path / "id.json"
    path.write_text(json.dumps(list(bytes(keypair))))
    wallet = load_wallet(load_settings({"CHAIN": "devnet", "KEYPAIR_PATH": str(path)}, dotenv=NO_DOTENV))
    assert wallet.pubkey == keypair.pubkey()

    with pytest.raises(ConfigError) as info:
        load_wallet(
            load_settings(
                {"CHAIN": "devnet", "KEYPAIR_PATH": str(tmp_path / "missing.json")}, dotenv=NO_DOTENV
            )
        )
    assert info.value.variable == "KEYPAIR_PATH" and "not found" in str(info.value)

    path.write_text(str(keypair))  # base58 where the JSON array belongs
    with pytest.raises(ConfigError) as info:
        load_wallet(load_settings({"CHAIN": "devnet", "KEYPAIR_PATH": str(path)}, dotenv=NO_DOTENV))
    assert info.value.variable == "KEYPAIR_PATH" and str(keypair) not in str(info.value)


def test_sim_gets_an_ephemeral_key_and_other_chains_require_one() -> None:
    a = load_wallet(load_settings({"CHAIN": "sim"}, dotenv=NO_DOTENV))
    b = load_wallet(load_settings({"CHAIN": "sim"}, dotenv=NO_DOTENV))
    assert a.pubkey != b.pubkey
    with pytest.raises(ConfigError) as info:
        load_wallet(load_settings({"CHAIN": "mainnet-beta"}, dotenv=NO_DOTENV))
    assert info.value.variable == "PRIVATE_KEY"


def test_settings_repr_redacts_the_private_key() -> None:
    keypair = Keypair()
    settings = load_settings({"CHAIN": "devnet", "PRIVATE_KEY": str(keypair)}, dotenv=NO_DOTENV)
    for text in (repr(settings), str(settings), f"{settings}"):
        assert str(keypair) not in text
        assert "private_key='<redacted>'" in text
