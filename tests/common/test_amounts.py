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


def test_min_out_rounds_the_bound_up_and_never_to_zero() -> None:
    assert min_out(10_000, 50) == 9_950  # exact
    assert min_out(999, 100) == 990  # 989.01: the order gives up at most its 1 %
    assert min_out(1, 50) == 1  # a 1-unit quote keeps a floor of 1 (rounded down it would be 0)
    assert min_out(1, 5_000) == 1
    assert min_out(3, 5_000) == 2
    assert min_out(0, 50) == 0  # a 0 quote: refused at routing (router_svc.quotes)
    for out in range(1, 300):
        for bps in (1, 50, 100, 4_999, 5_000):
            floor = min_out(out, bps)
            assert 1 <= floor <= out
            # never more slippage than asked: out - floor <= out * bps / 10_000
            assert (out - floor) * 10_000 <= out * bps
