"""Integer base units inside, decimal strings at the edges."""

from __future__ import annotations

import re

U64_MAX = 2**64 - 1
_DECIMAL = re.compile(r"^(?P<int>\d+)(?:\.(?P<frac>\d+))?$")


def parse_amount(text: str, decimals: int) -> int:
    """'1.5' with 9 decimals → 1_500_000_000. Raises ValueError with a message fit for a client."""
    text = text.strip()
    match = _DECIMAL.match(text)
    if match is None:
        raise ValueError('must be a positive decimal number such as "1.5"')
    frac = match.group("frac") or ""
    if len(frac) > decimals:
        frac_trimmed = frac.rstrip("0")
        if len(frac_trimmed) > decimals:
            raise ValueError(f"has more than {decimals} decimal places")
        frac = frac_trimmed
    scale: int = 10**decimals  # decimals >= 0 (a mint's), so an int, never a float
    raw = int(match.group("int")) * scale + int(frac.ljust(decimals, "0") or "0")
    if raw <= 0:
        raise ValueError("must be greater than zero")
    if raw > U64_MAX:
        raise ValueError("is too large")
    return raw


def format_amount(raw: int, decimals: int) -> str:
    """1_500_000_000 with 9 decimals → '1.5'; 0 → '0'."""
    if raw < 0:
        return "-" + format_amount(-raw, decimals)
    if decimals == 0:
        return str(raw)
    whole, frac = divmod(raw, 10**decimals)
    frac_text = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{whole}.{frac_text}" if frac_text else str(whole)


def format_price(
    amount_out_raw: int, out_decimals: int, amount_in_raw: int, in_decimals: int, significant: int = 12
) -> str:
    """Output token units per input token unit, as a decimal string rounded down to
    `significant` significant digits (exact rational arithmetic, never a float)."""
    if amount_in_raw <= 0:
        return "0"
    num: int = amount_out_raw * 10**in_decimals  # the price is num / den, exactly
    den: int = amount_in_raw * 10**out_decimals
    if num <= 0:
        return "0"

    def scaled_by(exponent: int) -> int:  # floor(price × 10^exponent), in integers
        shift: int = 10 ** abs(exponent)
        return num * shift // den if exponent >= 0 else num // (den * shift)

    # scale so that the integer part holds `significant` digits (for an integer bound n,
    # x < n exactly when floor(x) < n, so the floors decide as the rationals would)
    exponent = significant - (len(str(num)) - len(str(den)))
    while scaled_by(exponent) >= 10**significant:
        exponent -= 1
    while scaled_by(exponent) < 10 ** (significant - 1):
        exponent += 1
    scaled = scaled_by(exponent)
    if exponent <= 0:
        return str(scaled * 10 ** (-exponent))
    return format_amount(scaled, exponent)


def min_out(amount_out: int, slippage_bps: int) -> int:
    """The floor an order accepts: amount_out × (1 − slippage), rounded UP, so that the order never
    gives up more than its slippage and a quote of at least 1 never gets a floor of 0 (a 0 floor
    would accept any price). A quote of 0 is refused at routing (router_svc.quotes)."""
    return -(-amount_out * (10_000 - slippage_bps) // 10_000)


def max_in(amount_in: int, slippage_bps: int) -> int:
    """The bound an exact-out order spends at most: amount_in × (1 + slippage), rounded up (never
    below the quote), capped at the largest u64."""
    return min(-(-amount_in * (10_000 + slippage_bps) // 10_000), U64_MAX)
