"""The executor's signing key: loaded once, never shown.

CHAIN=sim uses an ephemeral key funded by `requestAirdrop` at start (the simulated chain also funds
its token accounts). Any other chain reads PRIVATE_KEY (base58 of the 64-byte secret, or the JSON
array `solana-keygen` writes) or KEYPAIR_PATH (that JSON file, which only its owner may read). The
secret never appears in a log, an error, a repr or a response: `Wallet` shows its public key only and
cannot be pickled or copied, and a malformed key fails with a ConfigError that names the variable,
never the value.

Only this process reads the key: `KeySettings` (PRIVATE_KEY, KEYPAIR_PATH) is loaded by the
executor's main from its environment and `.env`; the common `Settings` have no such field, the
other services' `.env` reader skips these names, and the supervisor hands them to the executor alone.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from common.settings import ConfigError, Settings, read_dotenv, settings_from

log = logging.getLogger(__name__)

SIM_AIRDROP_LAMPORTS = 1_000_000 * 10**9  # the simulated chain's faucet has no limit worth caring about


def _strip(raw: str) -> str:
    return raw.strip()


@dataclass(frozen=True)
class KeySettings:
    """Where the executor's key comes from: PRIVATE_KEY or KEYPAIR_PATH (both empty: none)."""

    private_key: str = field(default="", metadata={"env": "PRIVATE_KEY", "parse": _strip, "secret": True})
    keypair_path: str = field(default="", metadata={"env": "KEYPAIR_PATH", "parse": _strip})

    def __repr__(self) -> str:
        shown = "<redacted>" if self.private_key else ""
        return f"KeySettings(private_key={shown!r}, keypair_path={self.keypair_path!r})"

    __str__ = __repr__


def load_key_settings(environ: Mapping[str, str] | None = None, dotenv: Path | None = None) -> KeySettings:
    """The key's settings from `.env` (default: the working directory's) overlaid by the
    environment (default: this process's)."""
    env = read_dotenv(dotenv if dotenv is not None else Path.cwd() / ".env", keys=True)
    env.update(os.environ if environ is None else environ)
    return settings_from(KeySettings, env)


class Wallet:
    """Holds the keypair; exposes its public key and signing, nothing else."""

    __slots__ = ("__keypair", "pubkey")

    def __init__(self, keypair: Keypair) -> None:
        self.__keypair = keypair
        self.pubkey: Pubkey = keypair.pubkey()

    def sign(self, message: MessageV0) -> VersionedTransaction:
        """The message signed by this wallet (its only signer). Signed once and put together with
        `populate`: a third less CPU than `VersionedTransaction(message, [keypair])` (measured here:
        68 against 106 µs a transaction; the ed25519 signature itself is ~70 µs of either)."""
        signature = self.__keypair.sign_message(to_bytes_versioned(message))
        return VersionedTransaction.populate(message, [signature])

    def __repr__(self) -> str:
        return f"Wallet(pubkey={self.pubkey})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Wallet cannot be pickled")

    def __copy__(self) -> NoReturn:
        raise TypeError("a Wallet cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("a Wallet cannot be copied")


def _from_json_array(text: str, variable: str) -> Keypair:
    try:
        values = json.loads(text)
    except ValueError:
        raise ConfigError(variable, "not valid JSON (expected the array solana-keygen writes)") from None
    if (
        not isinstance(values, list)
        or len(values) != 64
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in values)
    ):
        raise ConfigError(variable, "expected a JSON array of 64 integers 0..255")
    try:
        return Keypair.from_bytes(bytes(values))
    except ValueError:
        raise ConfigError(variable, "the 64 bytes are not a valid ed25519 keypair") from None


def parse_private_key(text: str, variable: str = "PRIVATE_KEY") -> Keypair:
    """A keypair from base58 of the 64-byte secret or a JSON array of 64 bytes."""
    text = text.strip()
    if text.startswith("["):
        return _from_json_array(text, variable)
    try:
        keypair = Keypair.from_base58_string(text)
    except ValueError:
        raise ConfigError(
            variable, "expected base58 of a 64-byte secret key or a JSON array of 64 bytes"
        ) from None
    return keypair


def load_keypair_file(path: Path, variable: str = "KEYPAIR_PATH") -> Keypair:
    """The keypair in a solana-keygen JSON file, refused if its group or others may read it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(variable, f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(variable, f"{path}: cannot be read ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            variable,
            f"{path} is open to group or others (mode {stat.S_IMODE(mode):04o}); "
            f"make it private with: chmod 600 {path}",
        )
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(variable, f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(variable, f"{path}: cannot be read ({exc.strerror})") from None
    return _from_json_array(text, variable)


def load_wallet(settings: Settings, keys: KeySettings) -> Wallet:
    """The configured wallet. CHAIN=sim without a configured key gets an ephemeral one (fund it with
    `fund_sim_wallet`)."""
    if keys.private_key:
        return Wallet(parse_private_key(keys.private_key))
    if keys.keypair_path:
        return Wallet(load_keypair_file(Path(keys.keypair_path).expanduser()))
    if settings.chain == "sim":
        return Wallet(Keypair())
    raise ConfigError("PRIVATE_KEY", f"a key is required when CHAIN={settings.chain} (or set KEYPAIR_PATH)")
