"""Base58 (Bitcoin alphabet) for arbitrary bytes: instruction data in `json` transactions, `base58`
wire encodings, `getProgramAccounts` memcmp filters. Keys, signatures and hashes go through
solders' own parsers instead."""

from __future__ import annotations

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


def b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\0"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(ALPHABET[r])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Decodes base58; raises ValueError on a character outside the alphabet."""
    n = 0
    for c in text:
        i = _INDEX.get(c)
        if i is None:
            raise ValueError(f"invalid base58 character {c!r}")
        n = n * 58 + i
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body
