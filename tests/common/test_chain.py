"""common.chain.ChainClient against a JSON-RPC stub we control (Starlette under uvicorn, port 0)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from common.chain import ChainClient, ChainError, DataSize, Memcmp, percentile_of

BLOCKHASH = str(Hash.new_unique())
Handler = Callable[[list[Any]], Any]


class RpcStub:
    """A JSON-RPC endpoint whose answers each test scripts; counts calls by method."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {
            "getLatestBlockhash": lambda p: {
                "context": {"slot": 10},
                "value": {"blockhash": BLOCKHASH, "lastValidBlockHeight": 160},
            },
            "getBlockHeight": lambda p: 7,
        }
        self.calls: dict[str, int] = {}
        self.params: dict[str, list[list[Any]]] = {}
        self.http = 0  # HTTP requests received
        self.batches: list[int] = []  # sizes of the JSON-RPC batches received
        self.url = ""

    def count(self, method: str) -> int:
        return self.calls.get(method, 0)

    async def endpoint(self, request: Request) -> Response:
        self.http += 1
        body = json.loads(await request.body())
        if isinstance(body, list):
            self.batches.append(len(body))
            answers = []
            for item in body:
                answer = await self.answer(item)
                if isinstance(answer, Response):  # a scripted HTTP failure fails the whole batch
                    return answer
                answers.append(answer)
            return JSONResponse(answers)
        answer = await self.answer(body)
        return answer if isinstance(answer, Response) else JSONResponse(answer)

    async def answer(self, body: dict[str, Any]) -> Any:
        method = body["method"]
        self.calls[method] = self.calls.get(method, 0) + 1
        self.params.setdefault(method, []).append(body.get("params") or [])
        result = self.handlers[method](body.get("params") or [])
        if asyncio.iscoroutine(result):
            result = await result
        if isinstance(result, JSONResponse):  # a scripted JSON-RPC answer: give it this call's id
            doc = json.loads(bytes(result.body))
            if isinstance(doc, dict) and "id" in doc:
                doc["id"] = body["id"]
                return doc
            return result
        if isinstance(result, Response):
            return result
        return {"jsonrpc": "2.0", "id": body["id"], "result": result}


@pytest.fixture
async def stub() -> AsyncIterator[RpcStub]:
    rpc = RpcStub()

    async def endpoint(request: Request) -> Response:
        return await rpc.endpoint(request)

    app = Starlette(routes=[Route("/", endpoint, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    rpc.url = f"http://127.0.0.1:{port}"
    try:
        yield rpc
    finally:
        server.should_exit = True
        await task


def client_for(stub: RpcStub, **kw: Any) -> ChainClient:
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("backoff_base_s", 0.005)
    kw.setdefault("backoff_max_s", 0.02)
    return ChainClient(stub.url, **kw)


def rate_limited_then(n: int, result: Any) -> Handler:
    state = {"left": n}

    def handler(params: list[Any]) -> Any:
        if state["left"] > 0:
            state["left"] -= 1
            return PlainTextResponse("slow down", status_code=429)
        return result

    return handler


async def test_429_storm_then_success(stub: RpcStub) -> None:
    stub.handlers["getBlockHeight"] = rate_limited_then(3, 42)
    async with client_for(stub) as chain:
        assert await chain.block_height() == 42
    assert stub.count("getBlockHeight") == 4


async def test_endless_429_is_a_retryable_error(stub: RpcStub) -> None:
    stub.handlers["getBlockHeight"] = rate_limited_then(10**9, 0)
    async with client_for(stub, max_retries=3) as chain:
        with pytest.raises(ChainError) as info:
            await chain.block_height()
    assert info.value.retryable and info.value.rpc_code == 429
    assert "429" in str(info.value)
    assert stub.count("getBlockHeight") == 4  # first try + 3 retries


async def test_5xx_retried_but_4xx_not(stub: RpcStub) -> None:
    state = {"n": 0}

    def flaky(params: list[Any]) -> Any:
        state["n"] += 1
        return PlainTextResponse("oops", status_code=503) if state["n"] == 1 else 9

    stub.handlers["getBlockHeight"] = flaky
    async with client_for(stub) as chain:
        assert await chain.block_height() == 9
        stub.handlers["getSlot"] = lambda p: PlainTextResponse("no", status_code=403)
        with pytest.raises(ChainError) as info:
            await chain.call("getSlot", [], retry=True)
    assert not info.value.retryable
    assert stub.count("getSlot") == 1


async def test_timeout_is_retryable_and_not_retried_in_client(stub: RpcStub) -> None:
    async def slow(params: list[Any]) -> Any:
        await asyncio.sleep(1.0)
        return 1

    stub.handlers["getBlockHeight"] = slow
    async with client_for(stub, timeout_s=0.2) as chain:
        with pytest.raises(ChainError) as info:
            await chain.block_height()
    assert info.value.retryable
    assert "timed out" in str(info.value)
    assert stub.count("getBlockHeight") == 1


async def test_connection_refused_is_retryable() -> None:
    async with ChainClient("http://127.0.0.1:9", timeout_s=1, max_retries=1, backoff_base_s=0.001) as chain:
        with pytest.raises(ChainError) as info:
            await chain.block_height()
    assert info.value.retryable and "cannot reach" in str(info.value)


async def test_statuses_batched_into_one_call(stub: RpcStub) -> None:
    def statuses(params: list[Any]) -> Any:
        sigs = params[0]
        return {
            "context": {"slot": 5},
            "value": [
                None
                if i % 2
                else {"slot": 5, "confirmations": 0, "err": None, "confirmationStatus": "confirmed"}
                for i, _ in enumerate(sigs)
            ],
        }

    stub.handlers["getSignatureStatuses"] = statuses
    sigs = [Signature.new_unique() for _ in range(50)]
    async with client_for(stub) as chain:
        results = await asyncio.gather(*(chain.signature_status(s) for s in sigs))
        assert stub.count("getSignatureStatuses") == 1
        assert len(stub.params["getSignatureStatuses"][0][0]) == 50
        for i, status in enumerate(results):
            if i % 2:
                assert status is None
            else:
                assert status is not None and status.reached("confirmed") and not status.reached("finalized")
        # the same signature asked twice at once is looked up once
        again = await asyncio.gather(chain.signature_status(sigs[0]), chain.signature_status(sigs[0]))
        assert again[0] == again[1]
        assert stub.count("getSignatureStatuses") == 2
        assert len(stub.params["getSignatureStatuses"][1][0]) == 1
        # more than 256 waiting: 256 per call
        many = [Signature.new_unique() for _ in range(300)]
        await asyncio.gather(*(chain.signature_status(s) for s in many))
    assert stub.count("getSignatureStatuses") == 4
    assert sorted(len(p[0]) for p in stub.params["getSignatureStatuses"][2:]) == [44, 256]


async def test_status_batch_error_reaches_every_waiter(stub: RpcStub) -> None:
    stub.handlers["getSignatureStatuses"] = lambda p: {"context": {"slot": 1}, "value": []}  # wrong length
    async with client_for(stub) as chain:
        results = await asyncio.gather(
            *(chain.signature_status(Signature.new_unique()) for _ in range(5)), return_exceptions=True
        )
    assert all(isinstance(r, ChainError) and "malformed" in str(r) for r in results)
    assert stub.count("getSignatureStatuses") == 1


async def test_blockhash_shared_within_ttl(stub: RpcStub) -> None:
    async with client_for(stub, blockhash_ttl_s=0.3) as chain:
        results = await asyncio.gather(*(chain.latest_blockhash() for _ in range(20)))
        assert {r for r in results} == {(Hash.from_string(BLOCKHASH), 160)}
        assert stub.count("getLatestBlockhash") == 1
        for _ in range(10):
            await chain.latest_blockhash()
        assert stub.count("getLatestBlockhash") == 1
        await asyncio.sleep(0.35)
        await chain.latest_blockhash()
    assert stub.count("getLatestBlockhash") == 2


async def test_block_height_cached_briefly(stub: RpcStub) -> None:
    async with client_for(stub, block_height_ttl_s=0.1) as chain:
        assert await asyncio.gather(*(chain.block_height() for _ in range(10))) == [7] * 10
        assert stub.count("getBlockHeight") == 1
        await asyncio.sleep(0.12)
        await chain.block_height()
    assert stub.count("getBlockHeight") == 2


async def test_caches_are_renewed_before_they_expire(stub: RpcStub) -> None:
    """A value served in the last quarter of its lifetime starts the same read in the background:
    steady traffic never waits for a read, and nothing served is older than its lifetime."""
    key = Pubkey.new_unique()
    stub.handlers["getMultipleAccounts"] = lambda p: {
        "context": {"slot": 5},
        "value": [_account_json(1, b"x") for _ in p[0]],
    }
    stub.handlers["getRecentPrioritizationFees"] = lambda p: [{"slot": 1, "prioritizationFee": 9}]
    methods = ("getLatestBlockhash", "getBlockHeight", "getMultipleAccounts", "getRecentPrioritizationFees")

    async def read_all(chain: ChainClient) -> None:
        await chain.latest_blockhash()
        await chain.block_height()
        await chain.get_multiple_accounts([key])
        await chain.recent_prioritization_fee([key])

    async with client_for(stub, slot_ttl_s=0.4, blockhash_ttl_s=0.4, block_height_ttl_s=0.4) as chain:
        await read_all(chain)
        assert [stub.count(m) for m in methods] == [1, 1, 1, 1]
        await asyncio.sleep(0.2)  # half-way: served, nothing read
        await read_all(chain)
        assert [stub.count(m) for m in methods] == [1, 1, 1, 1]
        await asyncio.sleep(0.13)  # in the last quarter: served, and read again in the background
        await asyncio.gather(*(read_all(chain) for _ in range(5)))  # one read each, shared
        await asyncio.sleep(0.05)
        assert [stub.count(m) for m in methods] == [2, 2, 2, 2]
        await asyncio.sleep(0.1)  # past the first reads' lifetime: the renewed values are served
        await read_all(chain)
        assert [stub.count(m) for m in methods] == [2, 2, 2, 2]

    before = stub.count("getLatestBlockhash")
    off = ChainClient.from_settings(_settings(SOLANA_RPC_URL=stub.url, CACHE_RENEW_AHEAD="0"))
    assert off._renew_ahead == 0
    await off.close()
    async with client_for(stub, slot_ttl_s=0.4, blockhash_ttl_s=0.4, renew_ahead=0) as chain:
        await chain.latest_blockhash()
        await asyncio.sleep(0.33)
        await chain.latest_blockhash()
        await asyncio.sleep(0.05)
        assert stub.count("getLatestBlockhash") - before == 1  # off: nothing renewed ahead


async def test_a_renewal_that_fails_leaves_the_cached_value_to_its_lifetime(stub: RpcStub) -> None:
    async with client_for(stub, blockhash_ttl_s=0.3, max_retries=0) as chain:
        assert (await chain.latest_blockhash())[1] == 160
        stub.handlers["getLatestBlockhash"] = lambda p: JSONResponse({"error": "down"}, status_code=503)
        await asyncio.sleep(0.25)
        assert (await chain.latest_blockhash())[1] == 160  # served; the renewal fails quietly
        await asyncio.sleep(0.1)
        with pytest.raises(ChainError):
            await chain.latest_blockhash()


@pytest.mark.parametrize(
    "response",
    [
        PlainTextResponse("this is not json"),
        JSONResponse({"jsonrpc": "2.0", "id": 1}),  # neither result nor error
        JSONResponse(
            {"jsonrpc": "2.0", "id": 1, "result": {"context": {"slot": 1}, "value": {"blockhash": BLOCKHASH}}}
        ),
        JSONResponse(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "result": {"context": {"slot": 1}, "value": {"blockhash": "xx", "lastValidBlockHeight": 5}},
            }
        ),
        JSONResponse(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "result": {"value": {"blockhash": BLOCKHASH, "lastValidBlockHeight": 5}},
            }
        ),
        JSONResponse(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "result": {
                    "context": {"slot": 1},
                    "value": {"blockhash": BLOCKHASH, "lastValidBlockHeight": "5"},
                },
            }
        ),
    ],
)
async def test_malformed_response_rejected(stub: RpcStub, response: Response) -> None:
    stub.handlers["getLatestBlockhash"] = lambda p: response
    async with client_for(stub) as chain:
        with pytest.raises(ChainError) as info:
            await chain.latest_blockhash()
    assert "malformed" in str(info.value) and "getLatestBlockhash" in str(info.value)
    assert not info.value.retryable
    assert stub.count("getLatestBlockhash") == 1


async def test_rpc_error_answer(stub: RpcStub) -> None:
    stub.handlers["getBlockHeight"] = lambda p: JSONResponse(
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "Invalid params"}}
    )
    stub.handlers["getSlot"] = lambda p: JSONResponse(
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "Node is behind"}}
    )
    async with client_for(stub, max_retries=2) as chain:
        with pytest.raises(ChainError) as info:
            await chain.block_height()
        assert info.value.rpc_code == -32602 and not info.value.retryable
        with pytest.raises(ChainError) as info:
            await chain.call("getSlot", [], retry=True)
        assert info.value.rpc_code == -32005 and info.value.retryable
    assert stub.count("getBlockHeight") == 1
    assert stub.count("getSlot") == 3


def _account_json(lamports: int, data: bytes) -> dict[str, Any]:
    return {
        "lamports": lamports,
        "owner": "11111111111111111111111111111111",
        "data": [base64.b64encode(data).decode(), "base64"],
        "executable": False,
        "rentEpoch": 0,
        "space": len(data),
    }


async def test_get_multiple_accounts_chunks_caches_and_coalesces(stub: RpcStub) -> None:
    def accounts(params: list[Any]) -> Any:
        keys = params[0]
        return {
            "context": {"slot": 77},
            "value": [None if k.endswith("1") else _account_json(len(k), k.encode()) for k in keys],
        }

    stub.handlers["getMultipleAccounts"] = accounts
    keys = [Pubkey.new_unique() for _ in range(250)]
    async with client_for(stub, slot_ttl_s=0.3) as chain:
        slot, got = await chain.get_multiple_accounts(keys)
        assert slot == 77 and len(got) == 250
        assert stub.count("getMultipleAccounts") == 3
        assert max(len(p[0]) for p in stub.params["getMultipleAccounts"]) == 100
        for key, acct in zip(keys, got, strict=True):
            if str(key).endswith("1"):
                assert acct is None
            else:
                assert acct is not None and acct.data == str(key).encode() and acct.lamports == len(str(key))
        # within the slot: served from the cache
        assert (await chain.get_multiple_accounts(keys[:10]))[1] == got[:10]
        assert stub.count("getMultipleAccounts") == 3
        # identical concurrent reads after expiry: one call
        await asyncio.sleep(0.32)
        few = keys[:5]
        results = await asyncio.gather(*(chain.get_multiple_accounts(few) for _ in range(10)))
        assert all(r == results[0] for r in results)
        assert stub.count("getMultipleAccounts") == 4


async def test_get_multiple_accounts_rejects_wrong_count(stub: RpcStub) -> None:
    stub.handlers["getMultipleAccounts"] = lambda p: {"context": {"slot": 1}, "value": [None]}
    async with client_for(stub) as chain:
        with pytest.raises(ChainError, match="malformed"):
            await chain.get_multiple_accounts([Pubkey.new_unique(), Pubkey.new_unique()])


async def test_send_retries_identical_bytes_only_on_transport_failure(stub: RpcStub) -> None:
    sig = Signature.new_unique()
    state = {"n": 0}

    def send(params: list[Any]) -> Any:
        state["n"] += 1
        if state["n"] == 1:
            return PlainTextResponse("busy", status_code=429)
        return str(sig)

    stub.handlers["sendTransaction"] = send
    raw = bytes(range(200))
    async with client_for(stub) as chain:
        assert await chain.send_raw_transaction(raw, skip_preflight=True) == sig
        sent = stub.params["sendTransaction"]
        assert len(sent) == 2 and sent[0] == sent[1]
        assert base64.b64decode(sent[0][0]) == raw and sent[0][1]["skipPreflight"] is True
        stub.handlers["sendTransaction"] = lambda p: JSONResponse(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "error": {"code": -32003, "message": "Transaction signature verification failure"},
            }
        )
        with pytest.raises(ChainError) as info:
            await chain.send_raw_transaction(raw, skip_preflight=True)
        assert info.value.rpc_code == -32003 and not info.value.retryable
    assert stub.count("sendTransaction") == 3


async def test_simulate_and_transaction_parsing(stub: RpcStub) -> None:
    payer = Keypair()
    stub.handlers["simulateTransaction"] = lambda p: {
        "context": {"slot": 3},
        "value": {
            "err": {"InstructionError": [2, {"Custom": 6005}]},
            "logs": ["Program log: x"],
            "unitsConsumed": 1234,
            "accounts": None,
        },
    }
    stub.handlers["getTransaction"] = lambda p: (
        None
        if p[0] == "1" * 64
        else {
            "slot": 99,
            "transaction": {
                "message": {"accountKeys": [str(payer.pubkey()), "11111111111111111111111111111111"]},
                "signatures": [p[0]],
            },
            "meta": {
                "err": None,
                "fee": 5000,
                "preBalances": [10, 1],
                "postBalances": [5, 1],
                "preTokenBalances": [],
                "logMessages": [],
                "postTokenBalances": [
                    {
                        "accountIndex": 1,
                        "mint": "So11111111111111111111111111111111111111112",
                        "owner": str(payer.pubkey()),
                        "uiTokenAmount": {
                            "amount": "42",
                            "decimals": 9,
                            "uiAmount": 4.2e-8,
                            "uiAmountString": "0.000000042",
                        },
                    }
                ],
                "loadedAddresses": {"writable": [], "readonly": []},
            },
        }
    )
    async with client_for(stub) as chain:
        sim = await chain.simulate(b"\x01" + bytes(64) + b"\x02")
        assert sim.err == {"InstructionError": [2, {"Custom": 6005}]}
        assert sim.units_consumed == 1234 and sim.logs == ["Program log: x"]
        info = await chain.get_transaction(Signature.new_unique())
        assert info is not None and info.slot == 99 and info.fee == 5000
        assert info.pre_balances == (10, 1) and info.post_token_balances[0].amount == 42
        assert await chain.get_transaction("1" * 64) is None
    assert stub.params["getTransaction"][0][1]["maxSupportedTransactionVersion"] == 0
    assert stub.params["getTransaction"][0][1]["encoding"] == "base64"  # not the JSON the node must build


async def test_prioritization_fee_percentile_cached(stub: RpcStub) -> None:
    stub.handlers["getRecentPrioritizationFees"] = lambda p: [
        {"slot": i, "prioritizationFee": fee} for i, fee in enumerate([0, 0, 100, 200, 5000, 300])
    ]
    keys = [Pubkey.new_unique(), Pubkey.new_unique()]
    async with client_for(stub) as chain:
        assert await chain.recent_prioritization_fee(keys, 50) == 100
        assert await chain.recent_prioritization_fee(list(reversed(keys)), 50) == 100
        assert await chain.recent_prioritization_fee(keys, 100) == 5000
    assert stub.count("getRecentPrioritizationFees") == 2
    assert percentile_of([], 75) == 0 and percentile_of([5], 0) == 5


async def test_airdrop(stub: RpcStub) -> None:
    sig = Signature.new_unique()
    stub.handlers["requestAirdrop"] = lambda p: str(sig)
    async with client_for(stub) as chain:
        assert await chain.request_airdrop(Pubkey.new_unique(), 10**9) == sig
    assert stub.params["requestAirdrop"][0][1] == 10**9


async def test_refused_connection_was_not_delivered() -> None:
    # connection refused: the bytes never left this process
    async with ChainClient("http://127.0.0.1:9", timeout_s=1, max_retries=0) as chain:
        with pytest.raises(ChainError) as info:
            await chain.send_raw_transaction(b"\x00" * 10, skip_preflight=True)
    assert info.value.retryable and not info.value.maybe_delivered


async def test_maybe_delivered_for_429_and_timeouts(stub: RpcStub) -> None:
    async def slow(params: list[Any]) -> Any:
        await asyncio.sleep(1.0)
        return str(Signature.new_unique())

    stub.handlers["sendTransaction"] = rate_limited_then(10**9, "")
    async with client_for(stub, max_retries=1) as chain:
        with pytest.raises(ChainError) as info:
            await chain.send_raw_transaction(b"\x00" * 10, skip_preflight=True)
        assert info.value.rpc_code == 429 and not info.value.maybe_delivered
    stub.handlers["sendTransaction"] = slow
    async with client_for(stub, timeout_s=0.2) as chain:
        with pytest.raises(ChainError) as info:
            await chain.send_raw_transaction(b"\x00" * 10, skip_preflight=True)
        assert info.value.retryable and info.value.maybe_delivered


async def test_concurrent_calls_travel_as_one_batch_with_separate_answers(stub: RpcStub) -> None:
    stub.handlers["getSlot"] = lambda p: JSONResponse(
        {"jsonrpc": "2.0", "id": 0, "error": {"code": -32602, "message": "Invalid params"}}
    )
    stub.handlers["getBalance"] = lambda p: {"context": {"slot": 1}, "value": len(p[0])}
    async with client_for(stub, max_posts=1) as chain:
        keys = [str(Pubkey.new_unique()) for _ in range(40)]
        results = await asyncio.gather(
            *(chain.call("getBalance", [k]) for k in keys),
            chain.call("getSlot", []),
            chain.block_height(),
            return_exceptions=True,
        )
    balances, slot_error, height = results[:40], results[40], results[41]
    assert [b["value"] for b in balances] == [len(k) for k in keys]  # type: ignore[index]
    assert isinstance(slot_error, ChainError) and slot_error.rpc_code == -32602
    assert height == 7
    assert stub.count("getBalance") == 40
    assert stub.http <= 3 and max(stub.batches) >= 20  # a few requests, not 42


async def test_batch_transport_failure_reaches_every_call_and_is_retried(stub: RpcStub) -> None:
    state = {"n": 0}

    def first_fails(params: list[Any]) -> Any:
        state["n"] += 1
        return PlainTextResponse("busy", status_code=503) if state["n"] == 1 else 5

    stub.handlers["getSlot"] = first_fails
    async with client_for(stub, max_posts=1) as chain:
        results = await asyncio.gather(
            chain.call("getSlot", [], retry=True), chain.call("getBlockHeight", [], retry=True)
        )
    # the 503 failed the whole batch; each call retried on its own and succeeded
    assert results == [5, 7]
    assert stub.batches[0] == 2 and stub.count("getSlot") == 2


async def test_batch_without_an_answer_for_a_call_is_malformed(stub: RpcStub) -> None:
    async def drop_heights(request: Request) -> Response:
        body = json.loads(await request.body())
        items = body if isinstance(body, list) else [body]
        out = [
            {"jsonrpc": "2.0", "id": i["id"], "result": 1} for i in items if i["method"] != "getBlockHeight"
        ]
        return JSONResponse(out if isinstance(body, list) else (out[0] if out else {}))

    stub.endpoint = drop_heights  # type: ignore[method-assign]
    async with client_for(stub, max_posts=1) as chain:
        await chain.call("getSlot", [])  # occupies the one post, so the next two share a batch
        results = await asyncio.gather(
            chain.call("getSlot", []), chain.block_height(), return_exceptions=True
        )
    assert results[0] == 1
    assert isinstance(results[1], ChainError) and "malformed" in str(results[1])


def _program_account(pubkey: Pubkey, owner: Pubkey, data: bytes) -> dict[str, Any]:
    return {
        "pubkey": str(pubkey),
        "account": {
            "lamports": 1,
            "owner": str(owner),
            "data": [base64.b64encode(data).decode(), "base64"],
            "executable": False,
            "rentEpoch": 0,
            "space": len(data),
        },
    }


async def test_get_program_accounts_sends_the_filters_and_validates_the_answer(stub: RpcStub) -> None:
    program, pool = Pubkey.new_unique(), Pubkey.new_unique()
    mint = Pubkey.new_unique()
    answers: list[Any] = [
        [_program_account(pool, program, b"\x01" * 10)],
        {"context": {"slot": 5}, "value": [_program_account(pool, program, b"\x02")]},  # withContext shape
        [_program_account(pool, Pubkey.new_unique(), b"")],  # an account of another program
        [{"pubkey": "nope", "account": None}],
        {"accounts": []},
    ]
    stub.handlers["getProgramAccounts"] = lambda p: answers.pop(0)
    filters = [DataSize(10), Memcmp(0, b"\x01\x00\x00"), Memcmp(8, bytes(mint))]
    async with client_for(stub) as chain:
        (found,) = await chain.get_program_accounts(program, filters)
        assert found.pubkey == pool and found.account.data == b"\x01" * 10 and found.account.owner == program
        (found,) = await chain.get_program_accounts(program, filters)
        assert found.account.data == b"\x02"
        for _ in range(3):
            with pytest.raises(ChainError, match="getProgramAccounts: malformed response"):
                await chain.get_program_accounts(program, filters)
        with pytest.raises(ValueError):
            await chain.get_program_accounts(program, [])
        with pytest.raises(ValueError):
            await chain.get_program_accounts(program, [DataSize(1)] * 5)
    params = stub.params["getProgramAccounts"][0]
    assert params[0] == str(program)
    assert params[1]["encoding"] == "base64"
    assert params[1]["filters"] == [
        {"dataSize": 10},
        {"memcmp": {"offset": 0, "bytes": "LUw", "encoding": "base58"}},  # base58 of 01 00 00
        {"memcmp": {"offset": 8, "bytes": str(mint), "encoding": "base58"}},
    ]
    with pytest.raises(ValueError):
        Memcmp(0, b"")
    with pytest.raises(ValueError):
        Memcmp(-1, b"x")
    with pytest.raises(ValueError):
        Memcmp(0, bytes(129))


def _settings(**env: str) -> Any:
    from pathlib import Path

    from common.settings import load_settings

    return load_settings(env, dotenv=Path("/nonexistent"))


async def test_batching_settings_and_batch_max_one_disables_batching(stub: RpcStub) -> None:
    stub.handlers["getBalance"] = lambda p: {"context": {"slot": 1}, "value": 3}
    auto = ChainClient.from_settings(_settings(SOLANA_RPC_URL=stub.url))
    assert (auto._batch_max, auto._max_posts) == (100, 2)  # the simulated chain: few posts, big batches
    remote = ChainClient.from_settings(_settings(CHAIN="devnet", SOLANA_RPC_URL=stub.url))
    assert (remote._batch_max, remote._max_posts) == (100, 8)
    chosen = ChainClient.from_settings(
        _settings(SOLANA_RPC_URL=stub.url, RPC_BATCH_MAX="7", RPC_MAX_POSTS="3")
    )
    assert (chosen._batch_max, chosen._max_posts) == (7, 3)
    for client in (auto, remote, chosen):
        await client.close()

    settings = _settings(CHAIN="devnet", SOLANA_RPC_URL=stub.url, RPC_BATCH_MAX="1", RPC_MAX_POSTS="2")
    async with ChainClient.from_settings(settings) as chain:
        results = await asyncio.gather(
            *(chain.call("getBalance", [str(Pubkey.new_unique())]) for _ in range(30))
        )
    assert [r["value"] for r in results] == [3] * 30
    assert stub.batches == [] and stub.http == 30  # every call its own request object, never an array

    stub.http = 0
    async with ChainClient.from_settings(_settings(SOLANA_RPC_URL=stub.url, RPC_MAX_POSTS="1")) as chain:
        await asyncio.gather(*(chain.call("getBalance", [str(Pubkey.new_unique())]) for _ in range(30)))
    assert stub.batches and stub.http < 30  # the same load, batched
