"""The engine's one Solana JSON-RPC client (used by router_svc and executor_svc).

`ChainClient` is one per process, over one pooled keep-alive HTTP client (common.rpc_http), and
adds what a trading engine needs at the chain boundary (DESIGN.md, "Performance"):

- every call has a deadline; HTTP 429, 5xx and connection errors of reads are retried with
  exponential backoff and full jitter (`sendTransaction` is only ever retried with the identical
  bytes, which is harmless: a signed transaction lands at most once);
- every response is validated; anything malformed is a `ChainError` that says what was wrong;
- work is shared: `getLatestBlockhash` once per ~slot, `getBlockHeight` on a short TTL,
  `getMultipleAccounts` per account per ~slot with identical concurrent requests coalesced,
  `getRecentPrioritizationFees` per slot, and every caller of `signature_status` that waits within
  the same few milliseconds shares one `getSignatureStatuses` call of up to 256 signatures;
- HTTP requests are few: at most `max_posts` are in flight, and calls made meanwhile leave
  together as one JSON-RPC batch (an HTTP request costs CPU per request, a call
  inside a batch ~25 us). An idle client sends each call at once. `batch_max=1` turns batching
  off (some providers refuse batch requests): every call is then its own request object.

Requests are serialized with orjson and posted by common.rpc_http (a general HTTP library costs
~0.5 ms of CPU per request; solana-py has no batch API anyway); responses are parsed and validated
here. Nothing here knows about orders or DEXes.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import orjson
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from common.b58 import b58encode
from common.metrics import chain_rpc_attempt, chain_rpc_done, chain_rpc_failed
from common.rpc_http import HttpError, RpcHttpClient
from common.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "AccountData",
    "ChainClient",
    "ChainError",
    "DataSize",
    "Memcmp",
    "ProgramAccount",
    "SignatureStatus",
    "SimulationResult",
    "Status",
    "TokenBalance",
    "TransactionInfo",
]

MAX_ACCOUNTS_PER_CALL = 100
MAX_SIGNATURES_PER_CALL = 256
MAX_PROGRAM_ACCOUNT_FILTERS = 4  # Agave refuses more
MAX_MEMCMP_BYTES = 128  # Agave refuses longer memcmp data
_COMMITMENT_RANK = {"processed": 0, "confirmed": 1, "finalized": 2}

# JSON-RPC error codes worth retrying: node behind/unhealthy, block not yet available, internal
# error, and the non-standard rate-limit codes some providers answer with HTTP 200.
RETRYABLE_RPC_CODES = frozenset({-32603, -32004, -32005, -32014, -32016, 429, -32429, -32097})


class ChainError(Exception):
    """A JSON-RPC call failed. `retryable` says whether trying again later may succeed."""

    def __init__(self, message: str, retryable: bool, rpc_code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.rpc_code = rpc_code
        self.data = data
        # Whether the request may have reached the node (and, for sendTransaction, been forwarded
        # to a leader): False only when the node definitely did not take it (connection refused,
        # HTTP 429/4xx, a JSON-RPC error answer).
        self.maybe_delivered = True
        # Only rate limits, 5xx and connection errors are retried inside the client; a timeout
        # already spent the caller's deadline, an RPC error answer is the node's final word.
        self._retry_in_client = False

    def __repr__(self) -> str:
        return f"ChainError({self.message!r}, retryable={self.retryable}, rpc_code={self.rpc_code})"


class _Malformed(Exception):
    """A response that does not have the shape the method promises."""


# ------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True, slots=True)
class AccountData:
    lamports: int
    owner: Pubkey
    data: bytes
    executable: bool


@dataclass(frozen=True, slots=True)
class ProgramAccount:
    """One account of `getProgramAccounts`."""

    pubkey: Pubkey
    account: AccountData


@dataclass(frozen=True, slots=True)
class Memcmp:
    """A `getProgramAccounts` filter: the account's data holds `data` at `offset`."""

    offset: int
    data: bytes

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise ValueError("memcmp offset must not be negative")
        if not 0 < len(self.data) <= MAX_MEMCMP_BYTES:
            raise ValueError(f"memcmp data must be 1..{MAX_MEMCMP_BYTES} bytes")

    def to_json(self) -> dict[str, Any]:
        # base58 is the encoding every node and provider accepts
        return {"memcmp": {"offset": self.offset, "bytes": b58encode(self.data), "encoding": "base58"}}


@dataclass(frozen=True, slots=True)
class DataSize:
    """A `getProgramAccounts` filter: the account's data is exactly `size` bytes."""

    size: int

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("dataSize must not be negative")

    def to_json(self) -> dict[str, Any]:
        return {"dataSize": self.size}


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    slot: int
    confirmations: int | None
    err: Any  # the TransactionError as JSON, None when the transaction succeeded
    confirmation_status: str | None  # "processed" | "confirmed" | "finalized"

    def reached(self, commitment: str) -> bool:
        """True once the transaction is at `commitment` or beyond."""
        if self.confirmation_status is None:
            # Old nodes: confirmations None means rooted (finalized).
            return self.confirmations is None
        return _COMMITMENT_RANK.get(self.confirmation_status, -1) >= _COMMITMENT_RANK[commitment]


Status = SignatureStatus


class SimulationResult(NamedTuple):
    err: Any  # TransactionError as JSON, None on success
    logs: list[str]
    units_consumed: int | None


@dataclass(frozen=True, slots=True)
class TokenBalance:
    account_index: int
    mint: str
    owner: str | None
    amount: int


@dataclass(frozen=True, slots=True)
class TransactionInfo:
    """The parts of `getTransaction` the engine uses."""

    slot: int
    err: Any
    fee: int
    account_keys: tuple[str, ...]  # static keys, then loaded writable, then loaded readonly
    pre_balances: tuple[int, ...]
    post_balances: tuple[int, ...]
    pre_token_balances: tuple[TokenBalance, ...]
    post_token_balances: tuple[TokenBalance, ...]
    log_messages: tuple[str, ...]


# ------------------------------------------------------------------------------------------------
# sharing helpers

V = TypeVar("V")


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # marks it retrieved even if every waiter went away


class _SingleFlight:
    """Concurrent calls with the same key share one execution of the coroutine."""

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Task[Any]] = {}

    async def do(self, key: Hashable, fn: Callable[[], Awaitable[V]]) -> V:
        # a cancelled waiter must not cancel the shared call
        return await asyncio.shield(self.start(key, fn))

    def start(self, key: Hashable, fn: Callable[[], Awaitable[V]]) -> asyncio.Task[V]:
        """The call with this key in flight, started if there is none; not waited for."""
        task: asyncio.Task[V] | None = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fn())
            self._inflight[key] = task

            def done(t: asyncio.Task[Any], key: Hashable = key) -> None:
                if self._inflight.get(key) is t:
                    del self._inflight[key]
                _consume_exception(t)

            task.add_done_callback(done)
        return task

    def cancel_all(self) -> list[asyncio.Task[Any]]:
        """Cancels every call in flight (at close); returns them to be waited for."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        return tasks


class _StatusBatcher:
    """Collects `getSignatureStatuses` lookups for `window_s` and answers them with one call per
    256 signatures."""

    def __init__(self, client: ChainClient, window_s: float, search_history: bool) -> None:
        self._client = client
        self._window_s = window_s
        self._search_history = search_history
        self._pending: dict[str, asyncio.Future[SignatureStatus | None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, signature: str) -> SignatureStatus | None:
        fut = self._pending.get(signature)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            fut.add_done_callback(_consume_exception)
            self._pending[signature] = fut
            if len(self._pending) >= MAX_SIGNATURES_PER_CALL:
                self._flush()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._window_s, self._flush)
        return await asyncio.shield(fut)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, {}
        items = list(batch.items())
        for i in range(0, len(items), MAX_SIGNATURES_PER_CALL):
            task = asyncio.ensure_future(self._lookup(dict(items[i : i + MAX_SIGNATURES_PER_CALL])))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _lookup(self, batch: dict[str, asyncio.Future[SignatureStatus | None]]) -> None:
        try:
            statuses = await self._client._get_signature_statuses(list(batch), self._search_history)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter
            for fut in batch.values():
                if not fut.done():
                    if isinstance(exc, asyncio.CancelledError):
                        fut.cancel()
                    else:
                        fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for fut, status in zip(batch.values(), statuses, strict=True):
            if not fut.done():
                fut.set_result(status)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


# ------------------------------------------------------------------------------------------------
# JSON-RPC envelopes

BATCH_MAX_BYTES = 48 * 1024  # Agave's RPC rejects request bodies over 50 KiB


@dataclass(slots=True)
class _Pending:
    id: int
    method: str
    body: bytes
    future: asyncio.Future[Any]


def _unwrap(method: str, item: Any) -> Any:
    """The result of one JSON-RPC response object, or the ChainError it carries."""
    if not isinstance(item, dict):
        raise ChainError(f"{method}: malformed JSON-RPC response (no answer for this call)", retryable=False)
    if item.get("jsonrpc") != "2.0":
        raise ChainError(f'{method}: malformed JSON-RPC response (jsonrpc is not "2.0")', retryable=False)
    error = item.get("error")
    if error is not None:
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            raise ChainError(f"{method}: malformed JSON-RPC error object", retryable=False)
        code = error["code"]
        err = ChainError(
            f"{method}: RPC error {code}: {str(error.get('message'))[:300]}",
            retryable=code in RETRYABLE_RPC_CODES,
            rpc_code=code,
            data=error.get("data"),
        )
        err._retry_in_client = err.retryable
        err.maybe_delivered = False
        raise err
    if "result" not in item:
        raise ChainError(f"{method}: malformed JSON-RPC response (neither result nor error)", retryable=False)
    return item["result"]


def _copy_error(err: ChainError, methods: str, method: str) -> ChainError:
    """The batch's transport error, for one of its calls (named by its own method)."""
    message = err.message
    if message.startswith(methods + ":"):
        message = method + message[len(methods) :]
    copy = ChainError(message, err.retryable, err.rpc_code, err.data)
    copy.maybe_delivered = err.maybe_delivered
    copy._retry_in_client = err._retry_in_client
    return copy


# ------------------------------------------------------------------------------------------------
# validation helpers


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Malformed(f"{where}: expected an array, got {type(value).__name__}")
    return value


def _uint(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Malformed(f"{where}: expected a non-negative integer, got {value!r:.40}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Malformed(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _opt_uint(value: Any, where: str) -> int | None:
    return None if value is None else _uint(value, where)


def _context_slot(result: Any, where: str) -> tuple[int, Any]:
    obj = _obj(result, where)
    slot = _uint(_obj(obj.get("context"), f"{where}.context").get("slot"), f"{where}.context.slot")
    if "value" not in obj:
        raise _Malformed(f"{where}.value: missing")
    return slot, obj["value"]


def _pubkey(value: Any, where: str) -> Pubkey:
    try:
        return Pubkey.from_string(_str(value, where))
    except ValueError:
        raise _Malformed(f"{where}: not a valid address") from None


def _account(value: Any, where: str) -> AccountData | None:
    if value is None:
        return None
    obj = _obj(value, where)
    data = _list(obj.get("data"), f"{where}.data")
    if len(data) != 2 or data[1] != "base64":
        raise _Malformed(f'{where}.data: expected [<base64>, "base64"]')
    try:
        raw = base64.b64decode(_str(data[0], f"{where}.data[0]"), validate=True)
    except ValueError:
        raise _Malformed(f"{where}.data[0]: not valid base64") from None
    executable = obj.get("executable")
    if not isinstance(executable, bool):
        raise _Malformed(f"{where}.executable: expected a boolean")
    return AccountData(
        lamports=_uint(obj.get("lamports"), f"{where}.lamports"),
        owner=_pubkey(obj.get("owner"), f"{where}.owner"),
        data=raw,
        executable=executable,
    )


def _status(value: Any, where: str) -> SignatureStatus | None:
    if value is None:
        return None
    obj = _obj(value, where)
    cs = obj.get("confirmationStatus")
    if cs is not None and cs not in _COMMITMENT_RANK:
        raise _Malformed(f"{where}.confirmationStatus: unknown value {cs!r:.20}")
    return SignatureStatus(
        slot=_uint(obj.get("slot"), f"{where}.slot"),
        confirmations=_opt_uint(obj.get("confirmations"), f"{where}.confirmations"),
        err=obj.get("err"),
        confirmation_status=cs,
    )


def _token_balances(value: Any, where: str) -> tuple[TokenBalance, ...]:
    if value is None:
        return ()
    out = []
    for i, item in enumerate(_list(value, where)):
        w = f"{where}[{i}]"
        obj = _obj(item, w)
        ui = _obj(obj.get("uiTokenAmount"), f"{w}.uiTokenAmount")
        amount_text = _str(ui.get("amount"), f"{w}.uiTokenAmount.amount")
        if not amount_text.isdigit():
            raise _Malformed(f"{w}.uiTokenAmount.amount: expected an integer string")
        owner = obj.get("owner")
        out.append(
            TokenBalance(
                account_index=_uint(obj.get("accountIndex"), f"{w}.accountIndex"),
                mint=_str(obj.get("mint"), f"{w}.mint"),
                owner=None if owner is None else _str(owner, f"{w}.owner"),
                amount=int(amount_text),
            )
        )
    return tuple(out)


def _transaction_info(value: Any, where: str) -> TransactionInfo | None:
    if value is None:
        return None
    obj = _obj(value, where)
    meta = _obj(obj.get("meta"), f"{where}.meta")
    tx = obj.get("transaction")
    keys: list[str]
    if isinstance(tx, list):  # ["<base64>", "base64"]
        if len(tx) != 2 or tx[1] != "base64":
            raise _Malformed(f"{where}.transaction: unsupported encoding")
        try:
            vt = VersionedTransaction.from_bytes(base64.b64decode(_str(tx[0], f"{where}.transaction[0]")))
        except ValueError:
            raise _Malformed(f"{where}.transaction: not a valid transaction") from None
        keys = [str(k) for k in vt.message.account_keys]
    else:
        msg = _obj(_obj(tx, f"{where}.transaction").get("message"), f"{where}.transaction.message")
        keys = [
            _str(k, f"{where}.transaction.message.accountKeys[]")
            for k in _list(msg.get("accountKeys"), f"{where}.transaction.message.accountKeys")
        ]
    loaded = meta.get("loadedAddresses")
    if loaded is not None:
        loaded = _obj(loaded, f"{where}.meta.loadedAddresses")
        for part in ("writable", "readonly"):
            keys += [_str(k, f"{where}.meta.loadedAddresses.{part}[]") for k in loaded.get(part) or []]
    pre = tuple(
        _uint(v, f"{where}.meta.preBalances[]")
        for v in _list(meta.get("preBalances"), f"{where}.meta.preBalances")
    )
    post = tuple(
        _uint(v, f"{where}.meta.postBalances[]")
        for v in _list(meta.get("postBalances"), f"{where}.meta.postBalances")
    )
    if len(pre) != len(keys) or len(post) != len(keys):
        raise _Malformed(f"{where}.meta: {len(keys)} account keys but {len(pre)}/{len(post)} balances")
    logs = meta.get("logMessages")
    return TransactionInfo(
        slot=_uint(obj.get("slot"), f"{where}.slot"),
        err=meta.get("err"),
        fee=_uint(meta.get("fee"), f"{where}.meta.fee"),
        account_keys=tuple(keys),
        pre_balances=pre,
        post_balances=post,
        pre_token_balances=_token_balances(meta.get("preTokenBalances"), f"{where}.meta.preTokenBalances"),
        post_token_balances=_token_balances(meta.get("postTokenBalances"), f"{where}.meta.postTokenBalances"),
        log_messages=tuple(_str(m, f"{where}.meta.logMessages[]") for m in logs or []),
    )


def _signature(value: Any, where: str) -> Signature:
    try:
        return Signature.from_string(_str(value, where))
    except ValueError:
        raise _Malformed(f"{where}: not a valid signature") from None


def _chunks(keys: Sequence[Pubkey], size: int) -> list[tuple[Pubkey, ...]]:
    return [tuple(keys[i : i + size]) for i in range(0, len(keys), size)]


def percentile_of(values: Sequence[int], percentile: int) -> int:
    """The nearest-rank percentile (0..100) of `values`; 0 for none."""
    if not values:
        return 0
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# ------------------------------------------------------------------------------------------------
# the client


class _CachedAccount(NamedTuple):
    slot: int
    account: AccountData | None
    expires_at: float


class ChainClient:
    """The engine's Solana JSON-RPC client. Open one per process; `await close()` at shutdown."""

    def __init__(
        self,
        rpc_url: str,
        *,
        timeout_s: float = 10.0,
        commitment: str = "confirmed",
        max_retries: int = 4,
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 1.0,
        slot_ttl_s: float = 0.4,
        blockhash_ttl_s: float = 0.4,
        block_height_ttl_s: float = 0.2,
        renew_ahead: float = 0.25,
        status_window_s: float = 0.002,
        max_connections: int = 16,
        batch_max: int = 100,
        max_posts: int = 4,
    ) -> None:
        if commitment not in _COMMITMENT_RANK:
            raise ValueError(f"commitment must be one of {', '.join(_COMMITMENT_RANK)}")
        self.rpc_url = rpc_url
        self.commitment = commitment
        self.timeout_s = timeout_s
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._slot_ttl_s = slot_ttl_s
        self._blockhash_ttl_s = blockhash_ttl_s
        self._block_height_ttl_s = block_height_ttl_s
        if not 0 <= renew_ahead < 1:
            raise ValueError("renew_ahead must be within [0, 1)")
        self._renew_ahead = renew_ahead
        self._http = RpcHttpClient(rpc_url, max_connections=max_connections)
        self._batch_max = max(1, batch_max)
        self._max_posts = max(1, max_posts)
        self._queue: collections.deque[_Pending] = collections.deque()
        self._inflight = 0
        self._flush_scheduled = False
        self._posts: set[asyncio.Task[None]] = set()
        self._next_id = 0
        self._flight = _SingleFlight()
        self._accounts: dict[Pubkey, _CachedAccount] = {}
        self._renewing: set[Pubkey] = set()  # accounts being read again before they expire
        self._blockhash: tuple[Hash, int, float] | None = None
        self._block_height: tuple[int, float] | None = None
        self._fees: dict[tuple[tuple[str, ...], int], tuple[int, float]] = {}
        self._statuses = _StatusBatcher(self, status_window_s, search_history=False)
        self._statuses_history = _StatusBatcher(self, status_window_s, search_history=True)
        self.calls: dict[str, int] = {}  # JSON-RPC calls made, by method (for metrics and tests)
        self.http_requests = 0  # HTTP POSTs made (a batch carries many calls)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ChainClient:
        """The client for settings.rpc_url, with RPC_TIMEOUT_S, COMMITMENT, RPC_BATCH_MAX and
        RPC_MAX_POSTS. RPC_MAX_POSTS 0 chooses: against the local simulated chain (sub-millisecond
        round trips) two requests in flight already carry everything, so calls batch more; a
        remote node gets more parallel requests, so one slow batch does not hold the others up;
        with batching off (RPC_BATCH_MAX=1) every call is its own request, so more may be in
        flight."""
        max_posts = settings.rpc_max_posts
        if max_posts == 0:
            if settings.rpc_batch_max == 1:
                max_posts = 16
            else:
                max_posts = 2 if settings.chain == "sim" else 8
        kwargs: dict[str, Any] = {
            "timeout_s": settings.rpc_timeout_s,
            "commitment": settings.commitment,
            "batch_max": settings.rpc_batch_max,
            "max_posts": max_posts,
            "max_connections": max(16, max_posts),
            "renew_ahead": settings.cache_renew_ahead,
        }
        kwargs.update(overrides)
        return cls(settings.rpc_url, **kwargs)

    def __repr__(self) -> str:
        return f"ChainClient({self.rpc_url.split('?')[0]!r}, commitment={self.commitment!r})"

    async def close(self) -> None:
        await self._statuses.close()
        await self._statuses_history.close()
        for pending in self._queue:
            pending.future.cancel()
        self._queue.clear()
        reads = self._flight.cancel_all()
        for task in list(self._posts):
            task.cancel()
        if self._posts or reads:
            await asyncio.gather(*self._posts, *reads, return_exceptions=True)
        await self._http.close()

    async def __aenter__(self) -> ChainClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- transport ------------------------------------------------------------------------------

    async def _call_once(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call. While `max_posts` HTTP requests are in flight, further calls wait and
        then leave together as one JSON-RPC batch (up to `batch_max` calls and BATCH_MAX_BYTES):
        no delay when idle, fewer and larger requests under load (group commit)."""
        self.calls[method] = self.calls.get(method, 0) + 1
        self._next_id += 1
        body = orjson.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        pending = _Pending(self._next_id, method, body, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._kick()
        return await pending.future

    def _kick(self) -> None:
        if self._queue and not self._flush_scheduled and self._inflight < self._max_posts:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._queue and self._inflight < self._max_posts:
            batch: list[_Pending] = []
            size = 0
            while self._queue and len(batch) < self._batch_max:
                head = self._queue[0]
                if head.future.cancelled():
                    self._queue.popleft()
                    continue
                if batch and size + len(head.body) > BATCH_MAX_BYTES:
                    break
                batch.append(self._queue.popleft())
                size += len(head.body) + 1
            if not batch:
                break
            self._inflight += 1
            task = asyncio.ensure_future(self._post(batch))
            self._posts.add(task)
            task.add_done_callback(self._post_done)

    def _post_done(self, task: asyncio.Task[None]) -> None:
        self._posts.discard(task)
        self._inflight -= 1
        _consume_exception(task)
        self._kick()

    async def _post(self, batch: list[_Pending]) -> None:
        methods = ",".join(sorted({p.method for p in batch}))
        if len(batch) == 1:
            content = batch[0].body
        else:
            content = b"[" + b",".join(p.body for p in batch) + b"]"
        self.http_requests += 1
        try:
            try:
                async with asyncio.timeout(self.timeout_s):
                    response = await self._http.post(content)
            except TimeoutError:
                raise ChainError(f"{methods}: timed out after {self.timeout_s:g} s", retryable=True) from None
            except HttpError as exc:
                raise self._transport_error(methods, exc) from None
            if not 200 <= response.status < 300:
                raise self._status_error(methods, response.status, response.retry_after)
            text = response.body
            try:
                decoded = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise ChainError(
                    f"{methods}: malformed JSON-RPC response (not JSON)", retryable=False
                ) from None
        except ChainError as err:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(_copy_error(err, methods, p.method))
            return
        except asyncio.CancelledError:  # closing: the callers are cancelled too
            for p in batch:
                p.future.cancel()
            raise
        answers: dict[Any, Any] = {}
        if isinstance(decoded, list):
            for item in decoded:
                if isinstance(item, dict):
                    answers[item.get("id")] = item
        elif isinstance(decoded, dict):
            if len(batch) == 1 and decoded.get("id") == batch[0].id:
                answers[batch[0].id] = decoded
            elif "error" in decoded:  # the whole batch refused (parse error, invalid request, …)
                for p in batch:
                    answers[p.id] = decoded
        for p in batch:
            if p.future.done():
                continue
            item = answers.get(p.id)
            try:
                p.future.set_result(_unwrap(p.method, item))
            except ChainError as err:
                p.future.set_exception(err)

    @staticmethod
    def _status_error(method: str, status: int, retry_after: str) -> ChainError:
        if status == 429:
            err = ChainError(
                f"{method}: rate limited by the RPC node (HTTP 429)", retryable=True, rpc_code=429
            )
            err.data = {"retry_after": float(retry_after)} if retry_after.isdigit() else None
            err._retry_in_client = True
            err.maybe_delivered = False
            return err
        if status >= 500:
            err = ChainError(f"{method}: RPC node error (HTTP {status})", retryable=True)
            err._retry_in_client = True
            return err
        err = ChainError(f"{method}: RPC node refused the request (HTTP {status})", retryable=False)
        err.maybe_delivered = False
        return err

    @staticmethod
    def _transport_error(method: str, cause: HttpError) -> ChainError:
        if cause.connect:
            err = ChainError(f"{method}: cannot reach the RPC node ({cause.message})", retryable=True)
            err._retry_in_client = True
            err.maybe_delivered = False
            return err
        err = ChainError(f"{method}: RPC request failed ({cause.message})", retryable=True)
        err._retry_in_client = True
        err.maybe_delivered = cause.maybe_delivered
        return err

    def _backoff(self, attempt: int, err: ChainError) -> float:
        cap = min(self._backoff_max_s, self._backoff_base_s * (2**attempt))
        delay = random.uniform(0, cap)  # full jitter
        if isinstance(err.data, dict) and "retry_after" in err.data:
            delay = max(delay, min(float(err.data["retry_after"]), self._backoff_max_s))
        return delay

    async def _call(self, method: str, params: list[Any], *, retry: bool = True) -> Any:
        attempt = 0
        delivered = False
        started = time.perf_counter()
        while True:
            try:
                chain_rpc_attempt(method)
                result = await self._call_once(method, params)
            except ChainError as err:
                chain_rpc_failed(method, err.rpc_code)
                delivered = delivered or err.maybe_delivered
                err.maybe_delivered = delivered
                if not (retry and err._retry_in_client) or attempt >= self._max_retries:
                    raise
                delay = self._backoff(attempt, err)
                attempt += 1
                log.debug("retrying %s in %.3f s after: %s", method, delay, err.message)
                await asyncio.sleep(delay)
            else:
                chain_rpc_done(method, started)
                return result

    async def _read(self, method: str, params: list[Any], parse: Callable[[Any], V]) -> V:
        result = await self._call(method, params)
        try:
            return parse(result)
        except _Malformed as exc:
            raise ChainError(f"{method}: malformed response: {exc}", retryable=False) from None

    # -- caches ---------------------------------------------------------------------------------
    #
    # Each cached read (accounts, blockhash, block height, fees) is served until its lifetime ends;
    # one served in the last `renew_ahead` of its lifetime also starts the same read in the
    # background (shared with any caller that finds it expired meanwhile). Under steady traffic
    # the cache is renewed before it runs out, so no caller waits for a read that a cache could
    # have spared, and no value served is older than its lifetime, as before.

    def _due(self, expires_at: float, ttl: float, now: float) -> bool:
        return expires_at - now < ttl * self._renew_ahead

    # -- accounts -------------------------------------------------------------------------------

    async def get_multiple_accounts(
        self, pubkeys: Sequence[Pubkey], max_age_s: float | None = None
    ) -> tuple[int, list[AccountData | None]]:
        """(slot, accounts in the order asked; None where an account does not exist).

        Accounts read within `max_age_s` (default: one slot) are served from the cache; the rest
        are read 100 per call, identical concurrent reads shared. The slot is the oldest slot of
        the state returned."""
        ttl = self._slot_ttl_s if max_age_s is None else max_age_s
        now = time.monotonic()
        found: dict[Pubkey, _CachedAccount] = {}
        missing: list[Pubkey] = []
        ageing: list[Pubkey] = []
        for key in dict.fromkeys(pubkeys):
            cached = self._accounts.get(key)
            if cached is not None and cached.expires_at - self._slot_ttl_s + ttl > now:
                found[key] = cached
                if self._due(cached.expires_at, self._slot_ttl_s, now):
                    ageing.append(key)
            else:
                missing.append(key)
        ageing = [key for key in ageing if key not in self._renewing]
        for chunk in _chunks(ageing, MAX_ACCOUNTS_PER_CALL):
            self._renewing.update(chunk)
            task = self._flight.start(("gma", chunk), functools.partial(self._fetch_accounts, chunk))
            task.add_done_callback(functools.partial(self._renewed, chunk))
        if missing:
            chunks = _chunks(missing, MAX_ACCOUNTS_PER_CALL)
            results = await asyncio.gather(
                *(
                    self._flight.do(("gma", chunk), functools.partial(self._fetch_accounts, chunk))
                    for chunk in chunks
                )
            )
            for chunk, (slot, accounts) in zip(chunks, results, strict=True):
                for key, account in zip(chunk, accounts, strict=True):
                    found[key] = _CachedAccount(slot, account, 0.0)
        slot = min(c.slot for c in found.values()) if found else 0
        return slot, [found[k].account for k in pubkeys]

    def _renewed(self, keys: tuple[Pubkey, ...], _task: object) -> None:
        self._renewing.difference_update(keys)

    async def _fetch_accounts(self, keys: tuple[Pubkey, ...]) -> tuple[int, list[AccountData | None]]:
        def parse(result: Any) -> tuple[int, list[AccountData | None]]:
            slot, value = _context_slot(result, "result")
            items = _list(value, "result.value")
            if len(items) != len(keys):
                raise _Malformed(f"result.value: {len(items)} accounts for {len(keys)} keys")
            return slot, [_account(v, f"result.value[{i}]") for i, v in enumerate(items)]

        slot, accounts = await self._read(
            "getMultipleAccounts",
            [[str(k) for k in keys], {"encoding": "base64", "commitment": self.commitment}],
            parse,
        )
        expires = time.monotonic() + self._slot_ttl_s
        if len(self._accounts) > 50_000:
            now = time.monotonic()
            self._accounts = {k: v for k, v in self._accounts.items() if v.expires_at > now}
        for key, account in zip(keys, accounts, strict=True):
            self._accounts[key] = _CachedAccount(slot, account, expires)
        return slot, accounts

    def forget_accounts(self, pubkeys: Sequence[Pubkey]) -> None:
        """Drops cached accounts (e.g. after a swap changed them)."""
        for key in pubkeys:
            self._accounts.pop(key, None)

    async def get_program_accounts(
        self, program_id: Pubkey, filters: Sequence[Memcmp | DataSize]
    ) -> list[ProgramAccount]:
        """`getProgramAccounts`: every account owned by `program_id` that passes all `filters`
        (at most 4, as nodes allow; at least one, since an unfiltered scan of a DEX program is
        refused or throttled by real providers). Not cached; a read, so retried like the others.
        Heavy on real nodes: use it for discovery, never per order."""
        if not filters:
            raise ValueError("getProgramAccounts needs at least one filter")
        if len(filters) > MAX_PROGRAM_ACCOUNT_FILTERS:
            raise ValueError(f"getProgramAccounts takes at most {MAX_PROGRAM_ACCOUNT_FILTERS} filters")

        def parse(result: Any) -> list[ProgramAccount]:
            items = result
            if isinstance(result, dict):  # the withContext shape some providers answer with
                _, items = _context_slot(result, "result")
            out = []
            for i, item in enumerate(_list(items, "result")):
                obj = _obj(item, f"result[{i}]")
                account = _account(obj.get("account"), f"result[{i}].account")
                if account is None:
                    raise _Malformed(f"result[{i}].account: missing")
                if account.owner != program_id:
                    raise _Malformed(f"result[{i}].account.owner: not the program asked for")
                out.append(ProgramAccount(_pubkey(obj.get("pubkey"), f"result[{i}].pubkey"), account))
            return out

        return await self._read(
            "getProgramAccounts",
            [
                str(program_id),
                {
                    "encoding": "base64",
                    "commitment": self.commitment,
                    "filters": [f.to_json() for f in filters],
                },
            ],
            parse,
        )

    # -- blockhash and block height -------------------------------------------------------------

    async def latest_blockhash(self) -> tuple[Hash, int]:
        """(blockhash, last_valid_block_height), one RPC call per `blockhash_ttl_s` for everyone."""
        cached = self._blockhash
        now = time.monotonic()
        if cached is not None and cached[2] > now:
            if self._due(cached[2], self._blockhash_ttl_s, now):
                self._flight.start("blockhash", self._fetch_blockhash)
            return cached[0], cached[1]
        return await self._flight.do("blockhash", self._fetch_blockhash)

    async def _fetch_blockhash(self) -> tuple[Hash, int]:
        def parse(result: Any) -> tuple[Hash, int]:
            _, value = _context_slot(result, "result")
            obj = _obj(value, "result.value")
            try:
                blockhash = Hash.from_string(_str(obj.get("blockhash"), "result.value.blockhash"))
            except _Malformed:
                raise
            except Exception:  # noqa: BLE001 - solders.ParseHashError is no ValueError
                raise _Malformed("result.value.blockhash: not a valid hash") from None
            return blockhash, _uint(obj.get("lastValidBlockHeight"), "result.value.lastValidBlockHeight")

        blockhash, lvbh = await self._read("getLatestBlockhash", [{"commitment": self.commitment}], parse)
        self._blockhash = (blockhash, lvbh, time.monotonic() + self._blockhash_ttl_s)
        return blockhash, lvbh

    def forget_blockhash(self) -> None:
        """Drops the cached blockhash (e.g. after the node answered BlockhashNotFound)."""
        self._blockhash = None

    async def block_height(self) -> int:
        """The current block height (cached for `block_height_ttl_s`)."""
        cached = self._block_height
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            if self._due(cached[1], self._block_height_ttl_s, now):
                self._flight.start("block_height", self._fetch_block_height)
            return cached[0]
        return await self._flight.do("block_height", self._fetch_block_height)

    async def _fetch_block_height(self) -> int:
        height = await self._read(
            "getBlockHeight", [{"commitment": self.commitment}], lambda r: _uint(r, "result")
        )
        self._block_height = (height, time.monotonic() + self._block_height_ttl_s)
        return height

    # -- transactions ---------------------------------------------------------------------------

    async def send_raw_transaction(self, raw: bytes, skip_preflight: bool, retry: bool = True) -> Signature:
        """Sends signed bytes. Rate limits and transport failures are retried (unless `retry` is
        False, e.g. for a periodic rebroadcast) with the same bytes, which is harmless: a
        transaction lands at most once. An RPC error answer is raised as is."""
        params = [
            base64.b64encode(raw).decode(),
            {"encoding": "base64", "skipPreflight": skip_preflight, "preflightCommitment": self.commitment},
        ]
        result = await self._call("sendTransaction", params, retry=retry)
        try:
            return _signature(result, "result")
        except _Malformed as exc:
            raise ChainError(f"sendTransaction: malformed response: {exc}", retryable=False) from None

    async def simulate(self, tx: VersionedTransaction | bytes) -> SimulationResult:
        """simulateTransaction against the current bank: (err, logs, units_consumed)."""
        raw = tx if isinstance(tx, bytes) else bytes(tx)

        def parse(result: Any) -> SimulationResult:
            _, value = _context_slot(result, "result")
            obj = _obj(value, "result.value")
            logs = obj.get("logs")
            return SimulationResult(
                err=obj.get("err"),
                logs=[_str(m, "result.value.logs[]") for m in _list(logs, "result.value.logs")]
                if logs
                else [],
                units_consumed=_opt_uint(obj.get("unitsConsumed"), "result.value.unitsConsumed"),
            )

        return await self._read(
            "simulateTransaction",
            [
                base64.b64encode(raw).decode(),
                {
                    "encoding": "base64",
                    "commitment": self.commitment,
                    "sigVerify": False,
                    "replaceRecentBlockhash": False,
                },
            ],
            parse,
        )

    async def get_transaction(self, signature: Signature | str) -> TransactionInfo | None:
        """The confirmed transaction with its balances, or None if the node does not have it."""
        commitment = "confirmed" if self.commitment == "processed" else self.commitment
        return await self._read(
            "getTransaction",
            [
                str(signature),
                # base64: the node sends the bytes instead of building the message's JSON, and the
                # account keys come from solders' parser
                {"encoding": "base64", "commitment": commitment, "maxSupportedTransactionVersion": 0},
            ],
            lambda r: _transaction_info(r, "result"),
        )

    async def signature_status(
        self, signature: Signature | str, search_history: bool = False
    ) -> SignatureStatus | None:
        """The signature's status, None if the node has not seen it. Lookups made within a few
        milliseconds of each other share one getSignatureStatuses call (up to 256 signatures)."""
        batcher = self._statuses_history if search_history else self._statuses
        return await batcher.get(str(signature))

    async def _get_signature_statuses(
        self, signatures: list[str], search_history: bool
    ) -> list[SignatureStatus | None]:
        def parse(result: Any) -> list[SignatureStatus | None]:
            _, value = _context_slot(result, "result")
            items = _list(value, "result.value")
            if len(items) != len(signatures):
                raise _Malformed(f"result.value: {len(items)} statuses for {len(signatures)} signatures")
            return [_status(v, f"result.value[{i}]") for i, v in enumerate(items)]

        return await self._read(
            "getSignatureStatuses", [signatures, {"searchTransactionHistory": search_history}], parse
        )

    async def finalized_position(self) -> tuple[int, int]:
        """(slot, block height) at `finalized` commitment, read together (getEpochInfo): what no
        fork can take back. The basis of a provable expiry."""

        def parse(result: Any) -> tuple[int, int]:
            obj = _obj(result, "result")
            return (
                _uint(obj.get("absoluteSlot"), "result.absoluteSlot"),
                _uint(obj.get("blockHeight"), "result.blockHeight"),
            )

        return await self._read("getEpochInfo", [{"commitment": "finalized"}], parse)

    async def signature_status_since(self, signature: str, min_context_slot: int) -> SignatureStatus | None:
        """The signature's status from a node whose state is at least `min_context_slot` (the
        node refuses otherwise: -32016, raised as a ChainError), searching the whole history.
        Not batched: it is asked once per transaction, when its expiry is to be proven."""

        def parse(result: Any) -> SignatureStatus | None:
            _, value = _context_slot(result, "result")
            items = _list(value, "result.value")
            if len(items) != 1:
                raise _Malformed(f"result.value: {len(items)} statuses for 1 signature")
            return _status(items[0], "result.value[0]")

        return await self._read(
            "getSignatureStatuses",
            [[signature], {"searchTransactionHistory": True, "minContextSlot": min_context_slot}],
            parse,
        )

    # -- fees and airdrops ----------------------------------------------------------------------

    async def recent_prioritization_fee(self, accounts: Sequence[Pubkey], percentile: int = 75) -> int:
        """The `percentile` (0..100) of recent prioritization fees (micro-lamports per compute unit)
        paid by transactions locking `accounts`; cached for one slot per account set."""
        if not 0 <= percentile <= 100:
            raise ValueError("percentile must be within 0..100")
        key = (tuple(sorted(str(a) for a in accounts)), percentile)
        cached = self._fees.get(key)
        now = time.monotonic()
        fetch = functools.partial(self._fetch_fee, key)
        if cached is not None and cached[1] > now:
            if self._due(cached[1], self._slot_ttl_s, now):
                self._flight.start(("fee", key), fetch)
            return cached[0]
        return await self._flight.do(("fee", key), fetch)

    async def _fetch_fee(self, key: tuple[tuple[str, ...], int]) -> int:
        def parse(result: Any) -> list[int]:
            return [
                _uint(_obj(item, f"result[{i}]").get("prioritizationFee"), f"result[{i}].prioritizationFee")
                for i, item in enumerate(_list(result, "result"))
            ]

        fees = await self._read("getRecentPrioritizationFees", [list(key[0])], parse)
        fee = percentile_of(fees, key[1])
        if len(self._fees) > 10_000:
            self._fees.clear()
        self._fees[key] = (fee, time.monotonic() + self._slot_ttl_s)
        return fee

    async def request_airdrop(self, pubkey: Pubkey, lamports: int) -> Signature:
        """requestAirdrop (devnet, test validators, the simulated chain). Not retried."""
        result = await self._call(
            "requestAirdrop", [str(pubkey), lamports, {"commitment": self.commitment}], retry=False
        )
        try:
            return _signature(result, "result")
        except _Malformed as exc:
            raise ChainError(f"requestAirdrop: malformed response: {exc}", retryable=False) from None

    async def call(self, method: str, params: list[Any], *, retry: bool = False) -> Any:
        """Any other JSON-RPC method (e.g. the simulated chain's admin methods); result unvalidated."""
        return await self._call(method, params, retry=retry)
