from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.amounts import format_amount, format_price, min_out, parse_amount


def test_parse_and_format() -> None:
    assert parse_amount("1.5", 9) == 1_500_000_000
    assert parse_amount("0.000001", 6) == 1
    assert format_amount(75_123_456, 6) == "75.123456"
    assert format_amount(75_000_000, 6) == "75"
    assert format_amount(5, 0) == "5"


@pytest.mark.parametrize("text", ["", "1.", ".5", "1e5", "-1", "0", "0.0", "1,5", " ", "0x10"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_amount(text, 6)


@given(st.integers(min_value=1, max_value=2**64 - 1), st.integers(min_value=0, max_value=18))
def test_round_trip(raw: int, decimals: int) -> None:
    assert parse_amount(format_amount(raw, decimals), decimals) == raw


def test_price_is_exact_decimal() -> None:
    # 150.123456 USDC for 1 SOL
    assert format_price(150_123_456, 6, 1_000_000_000, 9) == "150.123456"
    assert format_price(1, 6, 3, 6) == "0.333333333333"
    assert format_price(0, 6, 3, 6) == "0"


def test_min_out_rounds_down() -> None:
    assert min_out(10_000, 50) == 9_950
    assert min_out(999, 100) == 989
