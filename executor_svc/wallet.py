"""The executor's signing key: loaded once, never shown.

CHAIN=sim uses an ephemeral key funded by `requestAirdrop` at start (the simulated chain also funds
its token accounts). Any other chain reads PRIVATE_KEY (base58 of the 64-byte secret, or the JSON
array `solana-keygen` writes) or KEYPAIR_PATH (that JSON file). The secret never appears in a log,
an error, a repr or a response: `Wallet` shows its public key only and cannot be pickled or copied,
and a malformed key fails with a ConfigError that names the variable, never the value.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import NoReturn

from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from common.settings import ConfigError, Settings

log = logging.getLogger(__name__)

SIM_AIRDROP_LAMPORTS = 1_000_000 * 10**9  # the simulated chain's faucet has no limit worth caring about


class Wallet:
    """Holds the keypair; exposes its public key and signing, nothing else."""

    __slots__ = ("__keypair", "pubkey")

    def __init__(self, keypair: Keypair) -> None:
        self.__keypair = keypair
        self.pubkey: Pubkey = keypair.pubkey()

    def sign(self, message: MessageV0) -> VersionedTransaction:
        """The message signed by this wallet (its only signer)."""
        return VersionedTransaction(message, [self.__keypair])

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
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(variable, f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(variable, f"{path}: cannot be read ({exc.strerror})") from None
    return _from_json_array(text, variable)


def load_wallet(settings: Settings) -> Wallet:
    """The configured wallet. CHAIN=sim without a configured key gets an ephemeral one (fund it with
    `fund_sim_wallet`)."""
    if settings.private_key:
        return Wallet(parse_private_key(settings.private_key))
    if settings.keypair_path:
        return Wallet(load_keypair_file(Path(settings.keypair_path)))
    if settings.chain == "sim":
        return Wallet(Keypair())
    raise ConfigError("PRIVATE_KEY", f"a key is required when CHAIN={settings.chain} (or set KEYPAIR_PATH)")
