"""executor_svc.wallet: loading the key, and the key never being shown."""

from __future__ import annotations

import copy
import json
import pickle
from dataclasses import fields
from pathlib import Path

import pytest
from solders.keypair import Keypair

from common.settings import KEY_VARIABLES, ConfigError, Settings, load_settings
from executor_svc.wallet import KeySettings, Wallet, load_key_settings, load_wallet, parse_private_key

NO_DOTENV = Path("/nonexistent")


def _wallet(chain: str, **key: str) -> Wallet:
    settings = load_settings({"CHAIN": chain}, dotenv=NO_DOTENV)
    return load_wallet(settings, load_key_settings(key, dotenv=NO_DOTENV))


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
        _wallet("devnet", PRIVATE_KEY=value)
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
    path.chmod(0o600)
    wallet = _wallet("devnet", KEYPAIR_PATH=str(path))
    assert wallet.pubkey == keypair.pubkey()

    with pytest.raises(ConfigError) as info:
        _wallet("devnet", KEYPAIR_PATH=str(tmp_path / "missing.json"))
    assert info.value.variable == "KEYPAIR_PATH" and "not found" in str(info.value)

    path.write_text(str(keypair))  # base58 where the JSON array belongs
    with pytest.raises(ConfigError) as info:
        _wallet("devnet", KEYPAIR_PATH=str(path))
    assert info.value.variable == "KEYPAIR_PATH" and str(keypair) not in str(info.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_keypair_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    keypair = Keypair()
    path = tmp_path / "id.json"
    path.write_text(json.dumps(list(bytes(keypair))))
    path.chmod(mode)
    with pytest.raises(ConfigError) as info:
        _wallet("devnet", KEYPAIR_PATH=str(path))
    message = str(info.value)
    assert info.value.variable == "KEYPAIR_PATH" and message.startswith("config error: KEYPAIR_PATH: ")
    assert f"chmod 600 {path}" in message and f"{mode:04o}" in message
    assert len(message.splitlines()) == 1 and str(keypair) not in message
    path.chmod(0o400)  # owner-only, read-only: fine
    assert _wallet("devnet", KEYPAIR_PATH=str(path)).pubkey == keypair.pubkey()


def test_sim_gets_an_ephemeral_key_and_other_chains_require_one() -> None:
    a = _wallet("sim")
    b = _wallet("sim")
    assert a.pubkey != b.pubkey
    with pytest.raises(ConfigError) as info:
        _wallet("mainnet-beta")
    assert info.value.variable == "PRIVATE_KEY"


def test_key_settings_repr_redacts_the_private_key() -> None:
    keypair = Keypair()
    keys = load_key_settings({"PRIVATE_KEY": str(keypair)}, dotenv=NO_DOTENV)
    assert keys.private_key == str(keypair)
    for text in (repr(keys), str(keys), f"{keys}"):
        assert str(keypair) not in text
        assert "private_key='<redacted>'" in text


def test_only_the_executor_reads_the_key(tmp_path: Path) -> None:
    """The key's variables are KeySettings' alone: the common Settings have no field for them, and
    the common `.env` reader skips them while the executor's reads them."""
    assert {f.metadata["env"] for f in fields(KeySettings)} == KEY_VARIABLES
    assert not KEY_VARIABLES & {f.metadata["env"] for f in fields(Settings)}
    keypair = Keypair()
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"PRIVATE_KEY={keypair}\nKEYPAIR_PATH=/k.json\nHTTP_PORT=4001\n")
    settings = load_settings({}, dotenv=dotenv)
    assert settings.http_port == 4001
    assert str(keypair) not in repr(vars(settings)) and "/k.json" not in repr(vars(settings))
    keys = load_key_settings({}, dotenv=dotenv)
    assert keys.private_key == str(keypair) and keys.keypair_path == "/k.json"
    assert load_key_settings({"PRIVATE_KEY": "x"}, dotenv=dotenv).private_key == "x"  # env over .env


def test_a_signed_transaction_is_the_message_with_this_wallets_valid_signature() -> None:
    from solders.hash import Hash
    from solders.instruction import AccountMeta, Instruction
    from solders.message import MessageV0
    from solders.pubkey import Pubkey
    from solders.transaction import VersionedTransaction

    keypair = Keypair()
    wallet = Wallet(keypair)
    program = Pubkey.new_unique()
    instruction = Instruction(program, b"swap", [AccountMeta(keypair.pubkey(), True, True)])
    message = MessageV0.try_compile(keypair.pubkey(), [instruction], [], Hash.new_unique())
    signed = wallet.sign(message)
    assert signed.message == message
    assert signed.verify_with_results() == [True]
    # the same bytes the library's own signing gives (ed25519 signatures are deterministic)
    assert bytes(signed) == bytes(VersionedTransaction(message, [keypair]))
    other = Wallet(Keypair()).sign(message)
    assert other.verify_with_results() == [False]  # another key's signature does not verify
