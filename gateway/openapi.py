"""The OpenAPI 3.1 description of the HTTP API, served at GET /openapi.json.

Written by hand as our own contract (not derived from the handlers): every route with its
parameters, the request body with the constraints gateway/validation.py enforces, and every answer,
errors included ({"error": {"code", "message", "field"?}}). tests/gateway/test_openapi.py checks that
every route of the app is described here and nothing else is, and fuzzes the running gateway with
schemathesis against it. The WebSocket (/api/orders/ws) is described in `x-websocket`: OpenAPI has
no words for it.
"""

from __future__ import annotations

from typing import Any

from common import lifecycle
from gateway.validation import MAX_IDEMPOTENCY_KEY

TOKEN_PATTERN = r"^[A-Za-z0-9$._-]{1,64}$"  # a symbol (any case) or a base58 mint address
AMOUNT_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"  # printable ASCII, no surrounding spaces

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {_JSON: {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def _error(description: str, retry_after: bool = False) -> dict[str, Any]:
    return _json(_ref("Error"), description, _RETRY_AFTER if retry_after else None)


_PROTECTED = {  # answers of every route that API_KEYS and the rate limit guard
    "401": _error("API_KEYS is set and no valid key was presented"),
    "429": _error("this client's rate limit (RATE_LIMIT_PER_S) is exceeded", retry_after=True),
}
_UNAVAILABLE = {
    "503": _error("the engine is overloaded or a dependency is down; retry later", retry_after=True),
}
_HOST = {  # gateway/guard.py: every route but /healthz
    "400": _error("the Host header is not one of TRUSTED_HOSTS (error.code invalid_host)"),
}

_NULLABLE_STRING = {"type": ["string", "null"]}
_DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
_RAW = {"type": "string", "pattern": "^[0-9]+$"}
_STATUS = {"type": "string", "enum": list(lifecycle.STATUSES)}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "machine-readable, e.g. invalid_amount"},
                    "message": {"type": "string"},
                    "field": {"type": "string", "description": "the field (or header) at fault"},
                },
            }
        },
    },
    "OrderRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["tokenIn", "tokenOut"],
        "description": "exactly one of amount (spend exactly) and amountOut (receive exactly)",
        "oneOf": [{"required": ["amount"]}, {"required": ["amountOut"]}],
        "properties": {
            "tokenIn": {
                "type": "string",
                "pattern": TOKEN_PATTERN,
                "description": "a token symbol of the markets file (any case) or its mint address",
            },
            "tokenOut": {
                "type": "string",
                "pattern": TOKEN_PATTERN,
                "description": "as tokenIn; differs from it",
            },
            "amount": {
                "description": "in units of tokenIn, at most as many decimals as its mint, more than 0",
                "oneOf": [
                    {"type": "string", "pattern": AMOUNT_PATTERN, "maxLength": 64},
                    {"type": "number", "exclusiveMinimum": 0},
                ],
            },
            "amountOut": {
                "description": "exact-out, instead of amount: receive exactly this much tokenOut (at most "
                "as many decimals as its mint, more than 0), spending at most the quote plus slippage "
                "(the route's max-in, enforced by the program); market orders and quotes only",
                "oneOf": [
                    {"type": "string", "pattern": AMOUNT_PATTERN, "maxLength": 64},
                    {"type": "number", "exclusiveMinimum": 0},
                ],
            },
            "slippageBps": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": 5000,
                "default": 50,
                "description": "null or absent: DEFAULT_SLIPPAGE_BPS",
            },
            "maxPriceImpactBps": {
                "type": "integer",
                "minimum": 1,
                "maximum": 10000,
                "description": "the price-impact guard: a route that moves a pool further (its largest "
                "leg's impact) is refused; absent: MAX_PRICE_IMPACT_BPS",
            },
            "type": {
                "enum": ["market", "limit", "stop", "sniper", None],
                "default": "market",
                "description": "limit, stop and sniper orders rest (status open) until they trigger, are "
                "cancelled or expire; POST /api/quotes takes market orders only",
            },
            "limitPrice": {
                "type": "string",
                "pattern": AMOUNT_PATTERN,
                "maxLength": 64,
                "description": "type limit (required): tokenOut per tokenIn, at most tokenOut's decimals; "
                "triggers when the order's own quote pays at least this, and its min-out is this price",
            },
            "stopPrice": {
                "type": "string",
                "pattern": AMOUNT_PATTERN,
                "maxLength": 64,
                "description": "type stop (required): tokenOut per tokenIn; triggers when the market "
                "price (one tokenIn's best route) falls to this or below, then executes with slippageBps",
            },
            "minLiquidity": {
                "type": "string",
                "pattern": AMOUNT_PATTERN,
                "maxLength": 64,
                "description": "type sniper (required): tokenIn, at most its decimals; the order fires when "
                "a pool of the pair (one that may not exist yet) holds at least this much of tokenIn, the "
                "side the order pays with, and trades",
            },
            "maxPrice": {
                "type": "string",
                "pattern": AMOUNT_PATTERN,
                "maxLength": 64,
                "description": "type sniper (optional): the most tokenIn paid per whole tokenOut, at most "
                "tokenIn's decimals; the order fires only when its own quote is within it, and its "
                "min-out is the output at this price",
            },
            "expiresInS": {
                "type": "integer",
                "minimum": 1,
                "description": "limit/stop/sniper: expires this many seconds from now (at most "
                "ORDER_MAX_EXPIRY_S)",
            },
            "expiresAt": {
                "type": "string",
                "format": "date-time",
                "description": "limit/stop/sniper: expires at this time (with a zone); neither: "
                "ORDER_MAX_EXPIRY_S",
            },
        },
    },
    "QuoteExecution": {
        "type": "object",
        "additionalProperties": False,
        "required": ["quoteId"],
        "properties": {
            "quoteId": {
                "type": "string",
                "format": "uuid",
                "description": "a quoteId from POST /api/quotes of the same API key, not expired: the "
                "order executes exactly its route with its min-out; executing it again answers the "
                "same order",
            }
        },
    },
    "Quote": {
        "type": "object",
        "required": [
            "quoteId",
            "expiresAt",
            "tokenIn",
            "tokenOut",
            "amountIn",
            "amountInRaw",
            "slippageBps",
            "maxPriceImpactBps",
            "quotes",
            "route",
            "amountOut",
            "amountOutRaw",
            "minAmountOut",
            "minAmountOutRaw",
            "priceImpactBps",
            "fee",
            "feeRaw",
            "slot",
        ],
        "properties": {
            "quoteId": {"type": "string", "format": "uuid"},
            "expiresAt": {"type": "string", "format": "date-time"},
            "tokenIn": _ref("Token"),
            "tokenOut": _ref("Token"),
            "amountIn": _DECIMAL,
            "amountInRaw": _RAW,
            "exactOut": {
                "type": "boolean",
                "description": "amountOut is delivered exactly (amountOut given)",
            },
            "maxAmountIn": {**_DECIMAL, "description": "exact-out: the most the route may spend"},
            "maxAmountInRaw": _RAW,
            "slippageBps": {"type": "integer"},
            "maxPriceImpactBps": {"type": "integer"},
            "quotes": {
                "type": "array",
                "description": "one per venue and pool: amountOut, amountOutRaw, feeRaw (input token), "
                "priceImpactBps, or error",
                "items": {"type": "object"},
            },
            "route": {
                "type": "object",
                "description": "legs (venue, pool, amountInRaw, amountOutRaw, minAmountOutRaw, "
                "priceImpactBps, feeRaw; exact-out: exactOut, maxAmountInRaw), dex, amountOut(Raw), "
                "minAmountOut(Raw), priceImpactBps, feeRaw (exact-out: exactOut, maxAmountInRaw)",
            },
            "amountOut": _DECIMAL,
            "amountOutRaw": _RAW,
            "minAmountOut": _DECIMAL,
            "minAmountOutRaw": _RAW,
            "priceImpactBps": {"type": "integer", "minimum": 0},
            "fee": _DECIMAL,
            "feeRaw": {**_RAW, "description": "the pools' trade fees, base units of tokenIn"},
            "slot": {"type": "integer", "minimum": 0},
        },
    },
    "OrderAccepted": {
        "type": "object",
        "required": ["orderId", "status", "wsUrl"],
        "properties": {
            "orderId": {"type": "string", "format": "uuid"},
            "status": {"const": "pending"},
            "wsUrl": {"type": "string"},
        },
    },
    "Token": {
        "type": "object",
        "required": ["symbol", "mint", "decimals"],
        "properties": {
            "symbol": _NULLABLE_STRING,
            "mint": {"type": "string"},
            "decimals": {"type": "integer", "minimum": 0},
        },
    },
    "TradeCosts": {
        "type": "object",
        "description": "What a confirmed swap cost, from the landed transaction's meta: the fees and "
        "the rent in SOL (Raw: lamports), and the wallet's balance change per mint (SOL counts the "
        "wallet's lamports and its wSOL accounts, so with SOL in or out its change is the SOL swapped "
        "less networkFee, priorityFee and rent, exactly)",
        "required": [
            "networkFee",
            "networkFeeRaw",
            "priorityFee",
            "priorityFeeRaw",
            "rent",
            "rentRaw",
            "balanceChanges",
        ],
        "properties": {
            "networkFee": {**_DECIMAL, "description": "the signature fee, SOL"},
            "networkFeeRaw": _RAW,
            "priorityFee": {**_DECIMAL, "description": "compute unit price x limit, SOL"},
            "priorityFeeRaw": _RAW,
            "rent": {**_DECIMAL, "description": "put into token accounts the swap created (the output's)"},
            "rentRaw": _RAW,
            "balanceChanges": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["mint", "symbol", "change", "changeRaw"],
                    "properties": {
                        "mint": {"type": "string"},
                        "symbol": _NULLABLE_STRING,
                        "change": {
                            **_DECIMAL,
                            "type": ["string", "null"],
                            "description": "signed: negative is what the wallet lost (null for a mint "
                            "other than SOL, tokenIn and tokenOut)",
                        },
                        "changeRaw": {"type": "string", "pattern": "^-?[0-9]+$"},
                    },
                },
            },
        },
    },
    "Event": {
        "type": "object",
        "required": ["seq", "status", "at", "data"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "status": _STATUS,
            "at": {"type": "string", "format": "date-time"},
            "data": {"type": "object"},
        },
    },
    "Order": {
        "type": "object",
        "required": [
            "orderId",
            "status",
            "tokenIn",
            "tokenOut",
            "amountIn",
            "amountInRaw",
            "slippageBps",
            "quotes",
            "route",
            "amountOut",
            "amountOutRaw",
            "dex",
            "txHash",
            "executedPrice",
            "failureReason",
            "attempts",
            "lastSeq",
            "createdAt",
            "updatedAt",
        ],
        "properties": {
            "orderId": {"type": "string", "format": "uuid"},
            "status": _STATUS,
            "tokenIn": _ref("Token"),
            "tokenOut": _ref("Token"),
            "amountIn": {
                "type": ["string", "null"],
                "description": "exact-in: the amount spent; exact-out: what the swap spent (null before)",
            },
            "amountInRaw": _NULLABLE_STRING,
            "exactOut": {"type": "boolean", "description": "the order gave amountOut (receive exactly)"},
            "targetAmountOut": {"type": ["string", "null"], "description": "exact-out: the amount asked"},
            "targetAmountOutRaw": _NULLABLE_STRING,
            "amountInSpent": {"type": ["string", "null"], "description": "debited once confirmed"},
            "amountInSpentRaw": _NULLABLE_STRING,
            "slippageBps": {"type": "integer"},
            "maxPriceImpactBps": {"type": ["integer", "null"]},
            "quoteId": {"type": ["string", "null"], "description": "the quote the order executes"},
            "type": {"enum": ["market", "limit", "stop", "sniper"]},
            "limitPrice": _DECIMAL,
            "limitPriceRaw": _RAW,
            "stopPrice": _DECIMAL,
            "stopPriceRaw": _RAW,
            "minLiquidity": _DECIMAL,
            "minLiquidityRaw": _RAW,
            "maxPrice": {"type": ["string", "null"], "description": "sniper: tokenIn per tokenOut"},
            "maxPriceRaw": {"type": ["string", "null"]},
            "expiresAt": {"type": "string", "format": "date-time"},
            "quotes": {"type": "array", "items": {"type": "object"}},
            "route": {"type": ["object", "null"]},
            "amountOut": {"type": ["string", "null"]},
            "amountOutRaw": {"type": ["string", "null"]},
            "dex": _NULLABLE_STRING,
            "txHash": _NULLABLE_STRING,
            "executedPrice": _NULLABLE_STRING,
            "costs": {
                "oneOf": [_ref("TradeCosts"), {"type": "null"}],
                "description": "what the confirmed swap cost (null before): the same object as the "
                "confirmed event's data.costs",
            },
            "failureReason": _NULLABLE_STRING,
            "attempts": {"type": "integer", "minimum": 0},
            "lastSeq": {"type": "integer", "minimum": 0},
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
            "events": {"type": "array", "items": _ref("Event")},
        },
    },
    "OrderPage": {
        "type": "object",
        "required": ["orders", "nextCursor"],
        "properties": {
            "orders": {"type": "array", "items": _ref("Order")},
            "nextCursor": {"type": ["string", "null"]},
        },
    },
    "Markets": {
        "type": "object",
        "required": ["cluster", "explorer", "tokens", "venues"],
        "properties": {
            "cluster": {"type": "string"},
            "explorer": _NULLABLE_STRING,
            "tokens": {"type": "array", "items": _ref("Token")},
            "venues": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"enum": ["ok", "degraded", "stopping"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}

PATHS: dict[str, Any] = {
    "/api/orders/execute": {
        "post": {
            "operationId": "executeOrder",
            "summary": "Submit a market order, or execute a quote",
            "description": 'A market order\'s body (OrderRequest), or {"quoteId"} to execute exactly '
            "the route of a quote from POST /api/quotes (an unknown, expired or another key's quote: "
            "422 naming quoteId).",
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "the same key with the same order returns the same order (24 h); "
                    "with another, 422",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_IDEMPOTENCY_KEY,
                        "pattern": IDEMPOTENCY_KEY_PATTERN,
                    },
                }
            ],
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"oneOf": [_ref("OrderRequest"), _ref("QuoteExecution")]}}},
            },
            "responses": {
                "202": _json(_ref("OrderAccepted"), "accepted: follow it on wsUrl"),
                "400": _error(
                    "the body is not a JSON object, the Idempotency-Key is malformed, or the Host is "
                    "not one of TRUSTED_HOSTS"
                ),
                "403": _error(
                    "the request carries an Origin that is neither the gateway's own nor one of "
                    "CORS_ORIGINS (error.code forbidden_origin)"
                ),
                "413": _error("the body is larger than MAX_BODY_BYTES"),
                "415": _error("the body is not sent as application/json (error.code unsupported_media_type)"),
                "422": _error(
                    "a field is invalid (named in error.field), the Idempotency-Key was used for "
                    "another order, or the amount is above MAX_ORDER_AMOUNT (amount_too_large)"
                ),
                **_PROTECTED,
                "429": _error(
                    "this client's rate limit (RATE_LIMIT_PER_S) is exceeded (rate_limited), or this "
                    "API key's DAILY_NOTIONAL_CAP for the input token is reached (daily_limit_exceeded)",
                    retry_after=True,
                ),
                **_UNAVAILABLE,
            },
        }
    },
    "/api/quotes": {
        "post": {
            "operationId": "createQuote",
            "summary": "Quote an order: every venue, the route, price impact, min-out and fees",
            "description": "The body of a market order. The answer's quoteId can be executed with "
            'POST /api/orders/execute {"quoteId"} until expiresAt (QUOTE_TTL_S), by the same API key.',
            "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("OrderRequest")}}},
            "responses": {
                "201": _json(_ref("Quote"), "the quote, stored until expiresAt"),
                "400": _error("the body is not a JSON object, or the Host is not one of TRUSTED_HOSTS"),
                "403": _error("the request carries an Origin that is not allowed (forbidden_origin)"),
                "413": _error("the body is larger than MAX_BODY_BYTES"),
                "415": _error("the body is not sent as application/json (error.code unsupported_media_type)"),
                "422": _error(
                    "a field is invalid (named in error.field); no pool trades the pair (no_pool) or "
                    "none can quote the amount (no_quote); the route's price impact is above "
                    "maxPriceImpactBps (price_impact_too_high)"
                ),
                **_PROTECTED,
                **_UNAVAILABLE,
            },
        }
    },
    "/api/orders": {
        "get": {
            "operationId": "listOrders",
            "summary": "Order history, newest first",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "description": "nextCursor of the previous page",
                    "schema": {"type": "string", "maxLength": 512},
                },
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "description": "empty: any status",
                    "schema": {"type": "string", "enum": [*lifecycle.STATUSES, ""]},
                },
            ],
            "responses": {
                "200": _json(_ref("OrderPage"), "a page of orders"),
                "422": _error("limit, status or cursor is invalid"),
                **_HOST,
                **_PROTECTED,
                **_UNAVAILABLE,
            },
        }
    },
    "/api/orders/{orderId}": {
        "get": {
            "operationId": "getOrder",
            "summary": "One order with its route, amounts and events",
            "parameters": [
                {
                    "name": "orderId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                }
            ],
            "responses": {
                "200": _json(_ref("Order"), "the order"),
                "404": _error("no such order (or an order of another API key)"),
                **_HOST,
                **_PROTECTED,
                **_UNAVAILABLE,
            },
        }
    },
    "/api/orders/{orderId}/cancel": {
        "post": {
            "operationId": "cancelOrder",
            "summary": "Cancel an open (resting) limit or stop order",
            "description": "Exactly one of a cancel and the order's trigger or expiry wins. Send "
            "Content-Type: application/json (any JSON object, or none, as the body).",
            "parameters": [
                {
                    "name": "orderId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                }
            ],
            "requestBody": {"required": False, "content": {_JSON: {"schema": {"type": "object"}}}},
            "responses": {
                "200": _json(_ref("Order"), "the order, now cancelled"),
                "404": _error("no such order (or an order of another API key)"),
                "409": _error("the order is not open (error.code not_open; the message names its status)"),
                "403": _error("the request carries an Origin that is not allowed (forbidden_origin)"),
                "415": _error("not sent as application/json (error.code unsupported_media_type)"),
                **_HOST,
                **_PROTECTED,
                **_UNAVAILABLE,
            },
        }
    },
    "/api/markets": {
        "get": {
            "operationId": "getMarkets",
            "summary": "Tokens and venues of this cluster",
            "responses": {"200": _json(_ref("Markets"), "the markets"), **_PROTECTED, **_HOST},
        }
    },
    "/healthz": {
        "get": {
            "operationId": "health",
            "summary": "Readiness: Redis and persistence reachable, not shutting down",
            "security": [],
            "responses": {
                "200": _json(_ref("Health"), "ready"),
                "503": _json(_ref("Health"), "degraded or stopping"),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "the OpenAPI document"), **_HOST},
        }
    },
    "/js/lifecycle.js": {
        "get": {
            "operationId": "lifecycleModule",
            "summary": "The order lifecycle (statuses, terminal set, transitions) as an ES module",
            "security": [],
            "responses": {
                "200": {
                    "description": "generated from the engine's lifecycle module",
                    "content": {"text/javascript": {"schema": {"type": "string"}}},
                },
                **_HOST,
            },
        }
    },
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Order execution engine",
            "version": "1.0.0",
            "description": "Market orders on Solana DEXes (Raydium CPMM, Meteora DLMM). Amounts leave "
            "as decimal strings beside their *Raw integer twins.",
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        # API keys are optional (API_KEYS): {} means none needed when none are configured
        "security": [{}, {"bearer": []}, {"apiKey": []}],
        "x-websocket": {
            "/api/orders/ws": "follow orders (subscribe/unsubscribe with afterSeq) and submit them "
            "(execute, also with a quoteId) and quote them (quote: an answer of type quote, as POST "
            "/api/quotes); see the README. With API_KEYS: the key as for HTTP, or ?apiKey=. One JSON "
            "object per message. An error about one order names it (orderId): unknown_order, "
            "catchup_failed (resubscribe from its afterSeq), too_many_subscriptions. Close codes: "
            "4000 idle, 4008 slow consumer (resubscribe with afterSeq), 4429 too many sockets for "
            "this client or rate limited, 1013 gateway full (reconnect later).",
        },
    }
