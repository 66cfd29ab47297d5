"""Base58 for arbitrary bytes; the implementation lives in `common.b58` (the chain client needs it
too, for `getProgramAccounts` memcmp filters)."""

from __future__ import annotations

from common.b58 import ALPHABET, b58decode, b58encode

__all__ = ["ALPHABET", "b58decode", "b58encode"]
