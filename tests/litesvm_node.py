"""A Solana JSON-RPC node over LiteSVM, for tests that run the real DEX programs behind the real
engine (`CHAIN=custom`): the methods common.chain.ChainClient calls, answered in the shapes a real
node answers them, by a LiteSVM holding whatever programs the test loads.

Slots advance on a timer (the Clock sysvar with them), each slot has its own blockhash, valid for
150 slots; a transaction with an unknown or expired blockhash, or a bad signature, is refused as a
node refuses it; the same signature sent again is not executed again. Signatures are confirmed as
soon as they land (one node, no forks) and finalized 32 slots later. It serves from its own thread.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import uvicorn
from solders.clock import Clock
from solders.hash import Hash
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError
from starlette.requests import Request
from starlette.responses import JSONResponse

from common.b58 import b58decode
from common.dex.spl_token import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, decode_token_account

BLOCKHASH_VALID_SLOTS = 150
FINALIZED_BEHIND = 32


def err_json(err: Any) -> Any:
    """A LiteSVM TransactionError in the JSON-RPC shape."""
    if isinstance(err, TransactionErrorInstructionError):
        inner = err.err
        if isinstance(inner, InstructionErrorCustom):
            return {"InstructionError": [err.index, {"Custom": inner.code}]}
        return {"InstructionError": [err.index, str(inner).split("(")[-1].rstrip(")")]}
    return str(err)


@dataclass
class Landed:
    slot: int
    raw: bytes
    err: Any
    fee: int
    logs: list[str]
    pre: list[int]
    post: list[int]
    pre_tokens: list[dict[str, Any]]
    post_tokens: list[dict[str, Any]]


class SvmNode:
    def __init__(self, svm: LiteSVM, slot_ms: int = 100) -> None:
        self.svm = svm.with_sigverify(False).with_blockhash_check(False)  # checked here, as a node does
        self.slot_ms = slot_ms
        self.lock = threading.Lock()
        clock = self.svm.get_clock()
        self.slot = clock.slot
        self.unix = clock.unix_timestamp
        self.blockhashes: deque[tuple[Hash, int]] = deque()
        self.valid: dict[Hash, int] = {}
        self.landed: dict[str, Landed] = {}
        self._new_blockhash()
        self.port = 0
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None

    # -- chain time ------------------------------------------------------------------------------

    def _new_blockhash(self) -> None:
        self.svm.expire_blockhash()
        blockhash = self.svm.latest_blockhash()
        self.blockhashes.append((blockhash, self.slot + BLOCKHASH_VALID_SLOTS))
        self.valid[blockhash] = self.slot + BLOCKHASH_VALID_SLOTS
        while self.blockhashes and self.blockhashes[0][1] < self.slot:
            old, _ = self.blockhashes.popleft()
            self.valid.pop(old, None)

    def advance(self, slots: int = 1, seconds: int = 0) -> None:
        with self.lock:
            self.slot += slots
            self.unix += seconds
            self.svm.set_clock(Clock(self.slot, self.unix, 0, 0, self.unix))
            self._new_blockhash()

    # -- token balances for getTransaction ---------------------------------------------------------

    def _token_balances(self, keys: list[Pubkey]) -> list[dict[str, Any]]:
        out = []
        for i, key in enumerate(keys):
            acct = self.svm.get_account(key)
            if (
                acct is None
                or acct.owner not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
                or len(acct.data) < 165
            ):
                continue
            try:
                ta = decode_token_account(key, acct.owner, bytes(acct.data))
            except ValueError:
                continue
            out.append(
                {
                    "accountIndex": i,
                    "mint": str(ta.mint),
                    "owner": str(ta.owner),
                    "programId": str(acct.owner),
                    "uiTokenAmount": {
                        "amount": str(ta.amount),
                        "decimals": 0,
                        "uiAmountString": str(ta.amount),
                    },
                }
            )
        return out

    # -- methods -----------------------------------------------------------------------------------

    def _ctx(self, value: Any) -> dict[str, Any]:
        return {"context": {"slot": self.slot}, "value": value}

    def _account_json(self, key: Pubkey) -> dict[str, Any] | None:
        acct = self.svm.get_account(key)
        if acct is None or (acct.lamports == 0 and not acct.data):
            return None
        return {
            "lamports": acct.lamports,
            "owner": str(acct.owner),
            "data": [base64.b64encode(bytes(acct.data)).decode(), "base64"],
            "executable": acct.executable,
            "rentEpoch": 0,
            "space": len(acct.data),
        }

    def call(self, method: str, params: list[Any]) -> Any:
        with self.lock:
            handler = getattr(self, "rpc_" + method, None)
            if handler is None:
                raise RpcFault(-32601, f"Method not found: {method}")
            return handler(*params)

    def rpc_getHealth(self, *_: Any) -> str:
        return "ok"

    def rpc_getSlot(self, *_: Any) -> int:
        return self.slot

    def rpc_getBlockHeight(self, *_: Any) -> int:
        return self.slot

    def rpc_getEpochInfo(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        behind = FINALIZED_BEHIND if (config or {}).get("commitment") == "finalized" else 0
        return {
            "absoluteSlot": self.slot - behind,
            "blockHeight": self.slot - behind,
            "epoch": 0,
            "slotIndex": self.slot - behind,
            "slotsInEpoch": 432_000,
        }

    def rpc_getLatestBlockhash(self, *_: Any) -> dict[str, Any]:
        blockhash, last_valid = self.blockhashes[-1]
        return self._ctx({"blockhash": str(blockhash), "lastValidBlockHeight": last_valid})

    def rpc_getAccountInfo(self, key: str, *_: Any) -> dict[str, Any]:
        return self._ctx(self._account_json(Pubkey.from_string(key)))

    def rpc_getMultipleAccounts(self, keys: list[str], *_: Any) -> dict[str, Any]:
        return self._ctx([self._account_json(Pubkey.from_string(k)) for k in keys])

    def rpc_getBalance(self, key: str, *_: Any) -> dict[str, Any]:
        return self._ctx(self.svm.get_balance(Pubkey.from_string(key)) or 0)

    def rpc_getMinimumBalanceForRentExemption(self, size: int, *_: Any) -> int:
        return int(self.svm.minimum_balance_for_rent_exemption(size))

    def rpc_getProgramAccounts(
        self, program: str, config: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        filters = (config or {}).get("filters", [])
        out = []
        for key, acct in self.svm.get_program_accounts(Pubkey.from_string(program)):
            data = bytes(acct.data)
            ok = True
            for f in filters:
                if "dataSize" in f:
                    ok = ok and len(data) == f["dataSize"]
                else:
                    m = f["memcmp"]
                    want = (
                        b58decode(m["bytes"])
                        if m.get("encoding", "base58") == "base58"
                        else base64.b64decode(m["bytes"])
                    )
                    ok = ok and data[m["offset"] : m["offset"] + len(want)] == want
            if ok:
                out.append({"pubkey": str(key), "account": self._account_json(key)})
        return out

    def rpc_getRecentPrioritizationFees(self, *_: Any) -> list[dict[str, Any]]:
        return [{"slot": self.slot, "prioritizationFee": 0}]

    def rpc_simulateTransaction(self, raw: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
        tx = VersionedTransaction.from_bytes(base64.b64decode(raw))
        result = self.svm.simulate_transaction(tx)
        meta = result.meta()
        err = err_json(result.err()) if isinstance(result, FailedTransactionMetadata) else None
        return self._ctx(
            {"err": err, "logs": list(meta.logs()), "unitsConsumed": meta.compute_units_consumed()}
        )

    def rpc_sendTransaction(self, raw: str, config: dict[str, Any] | None = None) -> str:
        data = base64.b64decode(raw)
        tx = VersionedTransaction.from_bytes(data)
        signature = str(tx.signatures[0])
        if signature in self.landed:
            return signature  # the same bytes again: already processed, nothing happens twice
        if not all(tx.verify_with_results()):
            raise RpcFault(-32003, "Transaction signature verification failure")
        last_valid = self.valid.get(tx.message.recent_blockhash)
        if last_valid is None or last_valid < self.slot:
            raise RpcFault(
                -32002, "Transaction simulation failed: Blockhash not found", {"err": "BlockhashNotFound"}
            )
        keys = list(tx.message.account_keys)
        pre = [self.svm.get_balance(k) or 0 for k in keys]
        pre_tokens = self._token_balances(keys)
        result = self.svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            meta = result.meta()
            if not (config or {}).get("skipPreflight"):
                raise RpcFault(
                    -32002,
                    f"Transaction simulation failed: {result.err()}",
                    {"err": err_json(result.err()), "logs": list(meta.logs())},
                )
            # a failed transaction does not land in LiteSVM (no fee taken); it is refused for good
            self.landed[signature] = Landed(
                self.slot,
                data,
                err_json(result.err()),
                0,
                list(meta.logs()),
                pre,
                pre,
                pre_tokens,
                pre_tokens,
            )
            return signature
        self.landed[signature] = Landed(
            self.slot,
            data,
            None,
            result.fee(),
            list(result.logs()),
            pre,
            [self.svm.get_balance(k) or 0 for k in keys],
            pre_tokens,
            self._token_balances(keys),
        )
        return signature

    def _status(self, signature: str) -> dict[str, Any] | None:
        landed = self.landed.get(signature)
        if landed is None:
            return None
        finalized = self.slot - landed.slot >= FINALIZED_BEHIND
        return {
            "slot": landed.slot,
            "confirmations": None if finalized else self.slot - landed.slot,
            "err": landed.err,
            "status": {"Ok": None} if landed.err is None else {"Err": landed.err},
            "confirmationStatus": "finalized" if finalized else "confirmed",
        }

    def rpc_getSignatureStatuses(self, signatures: list[str], *_: Any) -> dict[str, Any]:
        return self._ctx([self._status(s) for s in signatures])

    def rpc_getTransaction(self, signature: str, *_: Any) -> dict[str, Any] | None:
        landed = self.landed.get(signature)
        if landed is None:
            return None
        return {
            "slot": landed.slot,
            "blockTime": self.unix,
            "transaction": [base64.b64encode(landed.raw).decode(), "base64"],
            "meta": {
                "err": landed.err,
                "fee": landed.fee,
                "preBalances": landed.pre,
                "postBalances": landed.post,
                "preTokenBalances": landed.pre_tokens,
                "postTokenBalances": landed.post_tokens,
                "logMessages": landed.logs,
                "loadedAddresses": {"writable": [], "readonly": []},
            },
        }

    # -- serving -----------------------------------------------------------------------------------

    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        body = await request.json()
        single = not isinstance(body, list)
        answers = [self._answer(item) for item in ([body] if single else body)]
        await JSONResponse(answers[0] if single else answers)(scope, receive, send)

    def _answer(self, item: dict[str, Any]) -> dict[str, Any]:
        try:
            result = self.call(item["method"], item.get("params") or [])
        except RpcFault as fault:
            error: dict[str, Any] = {"code": fault.code, "message": fault.message}
            if fault.data is not None:
                error["data"] = fault.data
            return {"jsonrpc": "2.0", "id": item.get("id"), "error": error}
        return {"jsonrpc": "2.0", "id": item.get("id"), "result": result}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()

        async def serve() -> None:
            assert self._server is not None
            task = asyncio.create_task(self._server.serve(sockets=[sock]))
            while not self._server.started:
                await asyncio.sleep(0.01)
            started.set()
            while not self._server.should_exit:
                await asyncio.sleep(self.slot_ms / 1000)
                self.advance(1, seconds=1 if self.slot % max(1, 1000 // self.slot_ms) == 0 else 0)
            await task

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the LiteSVM node did not start")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


class RpcFault(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
