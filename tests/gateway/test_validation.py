from __future__ import annotations

import pytest

from common.markets import parse_markets
from gateway.validation import ApiError, check_idempotency_key, parse_order_request

MARKETS = parse_markets(
    {
        "cluster": "test",
        "programs": {"raydium_cpmm": "CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C"},
        "tokens": [
            {"symbol": "SOL", "mint": "So11111111111111111111111111111111111111112", "decimals": 9},
            {"symbol": "USDC", "mint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "decimals": 6},
        ],
        "pools": [],
    }
)


def parse(body: object) -> object:
    return parse_order_request(body, MARKETS, 50)


def test_valid_order_in_base_units() -> None:
    req = parse({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5", "slippageBps": 100})
    assert req.amount_in == 1_500_000_000
    assert req.slippage_bps == 100
    assert req.token_out.decimals == 6


def test_defaults_and_mint_address_and_number_amount() -> None:
    req = parse(
        {"tokenIn": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "tokenOut": "sol", "amount": 2.25}
    )
    assert req.token_in.symbol == "USDC"
    assert req.amount_in == 2_250_000
    assert req.slippage_bps == 50


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"tokenOut": "USDC", "amount": "1"}, "tokenIn", 422),
        ({"tokenIn": "DOGE", "tokenOut": "USDC", "amount": "1"}, "tokenIn", 422),
        ({"tokenIn": "SOL", "tokenOut": "11111111111111111111111111111112", "amount": "1"}, "tokenOut", 422),
        ({"tokenIn": "SOL", "tokenOut": "SOL", "amount": "1"}, "tokenOut", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0"}, "amount", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "-1"}, "amount", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "abc"}, "amount", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.0000000001"}, "amount", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1e30}, "amount", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": True}, "amount", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC"}, "amount", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "99999999999999999999"}, "amount", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 0}, "slippageBps", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 5001}, "slippageBps", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": "100"}, "slippageBps", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 1.5}, "slippageBps", 422),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slipageBps": 100}, "slipageBps", 422),
        ({"tokenIn": 5, "tokenOut": "USDC", "amount": "1"}, "tokenIn", 422),
    ],
)
def test_bad_input_names_the_field(body: object, field: str, status: int) -> None:
    with pytest.raises(ApiError) as info:
        parse(body)
    assert info.value.field == field
    assert info.value.status == status
    assert info.value.body()["error"]["field"] == field


@pytest.mark.parametrize("body", [[], "x", 3, None])
def test_body_must_be_an_object(body: object) -> None:
    with pytest.raises(ApiError) as info:
        parse(body)
    assert info.value.status == 400


def test_trailing_zeros_beyond_decimals_are_fine() -> None:
    assert parse({"tokenIn": "USDC", "tokenOut": "SOL", "amount": "1.50000000"}).amount_in == 1_500_000


def test_canonical_hash_ignores_spelling() -> None:
    a = parse({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5"})
    b = parse(
        {
            "tokenIn": "So11111111111111111111111111111111111111112",
            "tokenOut": "usdc",
            "amount": "1.50",
            "slippageBps": 50,
        }
    )
    c = parse({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.6"})
    assert a.canonical_hash() == b.canonical_hash() != c.canonical_hash()


def test_idempotency_key() -> None:
    assert check_idempotency_key(None) == ""
    assert check_idempotency_key(" abc ") == "abc"
    for bad in ("", "x" * 129, "a\nb"):
        with pytest.raises(ApiError):
            check_idempotency_key(bad)
