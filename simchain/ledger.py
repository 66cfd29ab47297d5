"""The simulated chain's state: accounts, slots and blockhashes, the clock, landed transactions.

Everything lives in memory in one process and is touched only from the event loop's thread, so a
transaction applied between two awaits is atomic with respect to every RPC call.

Accounts are immutable once stored: the runtime builds new `Account` objects and `commit` swaps
them in. That lets each account cache its own encoded JSON value (`ui_base64`) for as long as it
lives, so `getAccountInfo` and `getMultipleAccounts` on unchanged accounts cost a dict look-up.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import orjson
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature

SYSTEM_PROGRAM_ID: Final = Pubkey.from_string("11111111111111111111111111111111")
SYSVAR_OWNER: Final = Pubkey.from_string("Sysvar1111111111111111111111111111111111111")
SYSVAR_CLOCK: Final = Pubkey.from_string("SysvarC1ock11111111111111111111111111111111")
SYSVAR_RENT: Final = Pubkey.from_string("SysvarRent111111111111111111111111111111111")
NATIVE_LOADER: Final = Pubkey.from_string("NativeLoader1111111111111111111111111111111")
BPF_LOADER_UPGRADEABLE: Final = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")
BPF_LOADER_2: Final = Pubkey.from_string("BPFLoader2111111111111111111111111111111111")

LAMPORTS_PER_SIGNATURE: Final = 5000
MAX_PROCESSING_AGE: Final = 150  # a blockhash is usable for this many blocks after its own
SLOTS_PER_EPOCH: Final = 432_000
FINALIZATION_DEPTH: Final = 32  # slots between "confirmed" (the tip here) and "finalized"
RENT_LAMPORTS_PER_BYTE_YEAR: Final = 3480
RENT_EXEMPTION_YEARS: Final = 2
ACCOUNT_STORAGE_OVERHEAD: Final = 128
MAX_PERMITTED_DATA_LENGTH: Final = 10 * 1024 * 1024
U64_MAX: Final = (1 << 64) - 1
RENT_EPOCH_EXEMPT: Final = U64_MAX
PRIORITY_FEE_WINDOW: Final = 150

T = TypeVar("T")

_CLOCK = struct.Struct("<QqQQq")
_RENT = struct.Struct("<QdB")


def minimum_balance(size: int) -> int:
    """`Rent::minimum_balance`: the rent-exempt minimum for an account of `size` data bytes."""
    return (ACCOUNT_STORAGE_OVERHEAD + size) * RENT_LAMPORTS_PER_BYTE_YEAR * RENT_EXEMPTION_YEARS


class Account:
    """One account. Never mutated once stored in a `Ledger` (build a new one instead).

    Because an account's bytes never change, it can carry caches of what they mean: its encoded
    JSON (`ui_base64`) and the object a program decoded from it (`decoded`), so an unchanged pool
    or bin array is decoded once, not once per transaction. A program may even store only the
    decoded object with its encoder (`replace(decoded=…, encode=…)`): the bytes are produced the
    first time someone reads them, so a bin array swapped through many times within a slot is
    encoded once, when the router next reads it.
    """

    __slots__ = ("lamports", "owner", "executable", "_data", "_size", "_encode", "_ui", "_decoded")

    def __init__(
        self,
        lamports: int,
        owner: Pubkey,
        data: bytes = b"",
        executable: bool = False,
        decoded: object = None,
    ) -> None:
        self.lamports = lamports
        self.owner = owner
        self.executable = executable
        self._data: bytes | None = data
        self._size = len(data)
        self._encode: Callable[[Any], bytes] | None = None
        self._ui: orjson.Fragment | None = None
        self._decoded = decoded

    @property
    def data(self) -> bytes:
        data = self._data
        if data is None:
            assert self._encode is not None
            data = self._data = self._encode(self._decoded)
            self._encode = None
        return data

    @property
    def size(self) -> int:
        """The data length, without encoding lazily held data."""
        return self._size

    def replace(
        self,
        *,
        lamports: int | None = None,
        owner: Pubkey | None = None,
        data: bytes | None = None,
        decoded: object = None,
        encode: Callable[[Any], bytes] | None = None,
    ) -> Account:
        """A new account with some fields changed. `decoded`: what the new data decodes to; with
        `encode` and no `data`, the new data is `encode(decoded)`, computed when first read (it must
        keep the account's size)."""
        if encode is not None and data is None:
            new = Account(
                self.lamports if lamports is None else lamports, self.owner if owner is None else owner
            )
            new.executable = self.executable
            new._data = None
            new._size = self._size
            new._encode = encode
            new._decoded = decoded
            return new
        if data is not None:
            keep = decoded
        else:
            data = self.data
            keep = decoded if decoded is not None else self._decoded
        return Account(
            self.lamports if lamports is None else lamports,
            self.owner if owner is None else owner,
            data,
            self.executable,
            keep,
        )

    def decoded(self, kind: type[T], decode: Callable[..., T], address: Pubkey, *extra: Any) -> T:
        """The data decoded as `kind` by ``decode(address, owner, data, *extra)``, the first time only."""
        value = self._decoded
        if type(value) is kind:
            return value
        new = decode(address, self.owner, self.data, *extra)
        self._decoded = new
        return new

    def ui(self, data: list[str] | str) -> dict[str, Any]:
        return {
            "data": data,
            "executable": self.executable,
            "lamports": self.lamports,
            "owner": str(self.owner),
            "rentEpoch": RENT_EPOCH_EXEMPT,
            "space": len(self.data),
        }

    def ui_base64(self) -> orjson.Fragment:
        """The `UiAccount` JSON in base64 encoding, encoded once per account version."""
        ui = self._ui
        if ui is None:
            ui = self._ui = orjson.Fragment(
                orjson.dumps(self.ui([base64.b64encode(self.data).decode(), "base64"]))
            )
        return ui


@dataclass(slots=True)
class TokenBalance:
    """A token account's balance as `getTransaction` reports it (`preTokenBalances` entries)."""

    account_index: int
    mint: Pubkey
    owner: Pubkey
    program_id: Pubkey
    amount: int
    decimals: int


@dataclass(slots=True)
class TxRecord:
    """A landed transaction (successful or failed with its fee charged)."""

    signature: Signature
    raw: bytes
    slot: int
    block_time: int
    err: Any  # the JSON form of TransactionError, or None
    fee: int
    pre_balances: list[int]
    post_balances: list[int]
    pre_token_balances: list[TokenBalance]
    post_token_balances: list[TokenBalance]
    logs: list[str]
    units_consumed: int
    keys: tuple[Pubkey, ...] = ()  # the transaction's account keys (logsSubscribe's mentions)
    signature_str: str = ""
    # getSignatureStatuses entry, cached for the tip slot it was built at (or for good, once final)
    status_json: orjson.Fragment | None = None
    status_slot: int = -1

    def status(self, tip: int) -> orjson.Fragment:
        """This transaction's `getSignatureStatuses` entry as seen at slot `tip`."""
        if self.status_slot == tip or (
            self.status_json is not None and self.status_slot - self.slot >= FINALIZATION_DEPTH
        ):
            return self.status_json  # type: ignore[return-value]
        depth = tip - self.slot
        finalized = depth >= FINALIZATION_DEPTH
        self.status_json = orjson.Fragment(
            orjson.dumps(
                {
                    "slot": self.slot,
                    "confirmations": None if finalized else depth,
                    "err": self.err,
                    "status": {"Ok": None} if self.err is None else {"Err": self.err},
                    "confirmationStatus": "finalized" if finalized else "confirmed",
                }
            )
        )
        self.status_slot = tip
        return self.status_json


@dataclass(slots=True)
class _SlotFees:
    """Minimum compute-unit price of landed transactions in one slot, overall and per account."""

    slot: int
    block_min: int | None = None
    by_account: dict[Pubkey, int] = field(default_factory=dict)


class Ledger:
    """Accounts, slots, blockhashes, the clock and the landed-transaction history."""

    def __init__(
        self,
        *,
        slot_ms: int,
        unix_start: int,
        start_slot: int = 0,
        history_limit: int = 100_000,
        seed: bytes = b"simchain",
    ) -> None:
        self.slot_ms = slot_ms
        self.unix_start = unix_start
        self.seed = seed
        self.accounts: dict[Pubkey, Account] = {}
        self.history: dict[Signature, TxRecord] = {}
        self.history_by_str: dict[str, TxRecord] = {}  # the same records by base-58 signature
        self._history_order: deque[Signature] = deque()
        self.history_limit = history_limit
        self.transaction_count = 0
        self.swaps: list[dict[str, Any]] = []
        # called with every landed transaction's record (the journal, when the node keeps one)
        self.on_record: Callable[[TxRecord], None] | None = None
        # called with every landed record, and with None after the tip moved (signatureSubscribe)
        self.observers: list[Callable[[TxRecord | None], None]] = []
        self._fees: deque[_SlotFees] = deque(maxlen=PRIORITY_FEE_WINDOW)
        self._hash_slot: dict[Hash, int] = {}
        self._slot_hashes: deque[Hash] = deque()
        self.slot = start_slot
        self.blockhash = self._blockhash_at(start_slot)
        self.blockhash_str = str(self.blockhash)
        self._reset_hash_window()
        self._fees.append(_SlotFees(start_slot))
        self.accounts[SYSVAR_RENT] = Account(
            1_009_200, SYSVAR_OWNER, _RENT.pack(RENT_LAMPORTS_PER_BYTE_YEAR, float(RENT_EXEMPTION_YEARS), 50)
        )
        self._write_clock()

    # -- slots, blockhashes, clock ---------------------------------------------------------

    def _blockhash_at(self, slot: int) -> Hash:
        return Hash(hashlib.sha256(self.seed + b":blockhash:" + slot.to_bytes(8, "little")).digest())

    def _reset_hash_window(self) -> None:
        self._hash_slot.clear()
        self._slot_hashes.clear()
        for s in range(max(0, self.slot - MAX_PROCESSING_AGE), self.slot + 1):
            h = self._blockhash_at(s)
            self._hash_slot[h] = s
            self._slot_hashes.append(h)

    @property
    def block_height(self) -> int:
        return self.slot

    @property
    def epoch(self) -> int:
        return self.slot // SLOTS_PER_EPOCH

    def unix_timestamp(self, slot: int | None = None) -> int:
        s = self.slot if slot is None else slot
        return self.unix_start + s * self.slot_ms // 1000

    def advance(self, n: int = 1) -> None:
        """Moves the tip `n` slots on: one new blockhash per slot, the clock sysvar rewritten."""
        if n <= 0:
            return
        self.slot += n
        self.blockhash = self._blockhash_at(self.slot)
        self.blockhash_str = str(self.blockhash)
        if n > MAX_PROCESSING_AGE:
            self._reset_hash_window()
        else:
            for s in range(self.slot - n + 1, self.slot + 1):
                h = self.blockhash if s == self.slot else self._blockhash_at(s)
                self._hash_slot[h] = s
                self._slot_hashes.append(h)
            while len(self._slot_hashes) > MAX_PROCESSING_AGE + 1:
                del self._hash_slot[self._slot_hashes.popleft()]
        if n >= PRIORITY_FEE_WINDOW:
            self._fees.clear()
            self._fees.append(_SlotFees(self.slot))
        else:
            for s in range(self.slot - n + 1, self.slot + 1):
                self._fees.append(_SlotFees(s))
        self._write_clock()
        for observer in self.observers:
            observer(None)

    def _write_clock(self) -> None:
        epoch = self.epoch
        data = _CLOCK.pack(
            self.slot,
            self.unix_timestamp(epoch * SLOTS_PER_EPOCH),
            epoch,
            epoch + 1,
            self.unix_timestamp(),
        )
        self.accounts[SYSVAR_CLOCK] = Account(1_169_280, SYSVAR_OWNER, data)

    def blockhash_slot(self, blockhash: Hash) -> int | None:
        """The slot of a blockhash that is still valid (age ≤ 150 blocks), else None."""
        return self._hash_slot.get(blockhash)

    def commitment_slot(self, commitment: str) -> int:
        """The slot a read at `commitment` observes: the tip, or 32 slots back for finalized."""
        if commitment == "finalized":
            return max(0, self.slot - FINALIZATION_DEPTH)
        return self.slot

    def blockhash_at_commitment(self, commitment: str) -> tuple[str, int]:
        """`getLatestBlockhash`: (blockhash, lastValidBlockHeight) of the bank at `commitment`."""
        slot = self.commitment_slot(commitment)
        if slot == self.slot:
            return self.blockhash_str, slot + MAX_PROCESSING_AGE
        return str(self._blockhash_at(slot)), slot + MAX_PROCESSING_AGE

    # -- accounts --------------------------------------------------------------------------

    def get(self, key: Pubkey) -> Account | None:
        return self.accounts.get(key)

    def lamports(self, key: Pubkey) -> int:
        acct = self.accounts.get(key)
        return 0 if acct is None else acct.lamports

    def put(self, key: Pubkey, account: Account | None) -> None:
        """Stores an account; an account left with no lamports is deleted, as the runtime does."""
        if account is None or account.lamports == 0:
            self.accounts.pop(key, None)
        else:
            self.accounts[key] = account

    def commit(self, changes: Iterable[tuple[Pubkey, Account | None]]) -> None:
        for key, account in changes:
            self.put(key, account)

    # -- history ---------------------------------------------------------------------------

    def record(self, rec: TxRecord) -> None:
        rec.signature_str = str(rec.signature)
        self.history[rec.signature] = rec
        self.history_by_str[rec.signature_str] = rec
        self._history_order.append(rec.signature)
        self.transaction_count += 1
        if self.on_record is not None:
            self.on_record(rec)
        for observer in self.observers:
            observer(rec)
        # Old records go once there are too many, but never while their blockhash is still valid:
        # the history is also the status cache that refuses a transaction landing twice.
        order = self._history_order
        oldest_kept = self.slot - MAX_PROCESSING_AGE - 1
        while len(order) > self.history_limit and self.history[order[0]].slot < oldest_kept:
            old = self.history.pop(order.popleft())
            self.history_by_str.pop(old.signature_str, None)

    def note_priority_fee(self, micro_lamports: int, writable: Iterable[Pubkey]) -> None:
        slot_fees = self._fees[-1]
        if slot_fees.block_min is None or micro_lamports < slot_fees.block_min:
            slot_fees.block_min = micro_lamports
        by_account = slot_fees.by_account
        for key in writable:
            prev = by_account.get(key)
            if prev is None or micro_lamports < prev:
                by_account[key] = micro_lamports

    def recent_priority_fees(self, keys: list[Pubkey]) -> list[dict[str, int]]:
        """`getRecentPrioritizationFees`: per recent slot, the minimum fee that landed a
        transaction, raised to the highest per-account minimum among `keys`."""
        out = []
        for sf in self._fees:
            fee = sf.block_min or 0
            for key in keys:
                acc = sf.by_account.get(key)
                if acc is not None and acc > fee:
                    fee = acc
            out.append({"slot": sf.slot, "prioritizationFee": fee})
        return out
