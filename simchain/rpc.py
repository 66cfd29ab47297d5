"""The Solana JSON-RPC methods of the simulated node, with their real shapes and errors.

Every method is synchronous: it runs between two awaits of the event loop, so it sees and leaves
the ledger consistent (a transaction is executed and recorded in one step). Parameters are
validated as an outside input: a wrong shape answers -32602 with a message saying what is wrong.

Commitment: the tip is both "processed" and "confirmed"; "finalized" reads of slot, block height
and latest blockhash lag 32 slots, and `getTransaction` at "finalized" sees only transactions at
least 32 slots old. Account reads return the latest state at every commitment.

`requestAirdrop` lands a real transfer from the genesis faucet (a transaction like any other,
visible to getSignatureStatuses/getTransaction). SIM EXTENSION: it also gives the wallet an
associated token account holding 1,000,000 of every genesis token, wSOL included (created where
missing, left as it is where it exists), so an ephemeral wallet is funded by one call.

`getAccountInfo`/`getMultipleAccounts`/`getProgramAccounts` answer base64 (also for `jsonParsed`,
as a node does for accounts it cannot parse), base58 and binary for data under 128 bytes, and
`dataSlice`; `base64+zstd` is refused with -32602. `getProgramAccounts` takes up to 4 filters,
`{"dataSize": n}` and `{"memcmp": {"offset": n, "bytes": "…", "encoding": "base58"|"base64"}}`
(base58 when no encoding is given), and `withContext`.

Admin methods (SIM EXTENSIONS, not Solana's; the sim is bound to loopback by default):

- ``simSetFaults [{"latencyMs"?, "failRate"?, "dropRate"?}]`` — change fault injection live;
  returns the faults now in force.
- ``simSwaps [{"offset"?: n, "memoPrefix"?: "oe:"}]`` — every landed, successful swap transaction
  in landing order: ``{"signature", "slot", "memo", "memos", "venues", "pools", "legs",
  "inputMint", "outputMint", "amountIn", "amountOut"}`` (amounts in base units; `legs` one per
  swap instruction).
- ``simWarpSlots [{"n": n}]`` (or ``[n]``) — advance n slots at once; returns the new slot.
- ``simCreatePool [{"venue": "raydium_cpmm", "mintA", "mintB", "amountA", "amountB",
  "openTime"?}]`` — a new pool of two mints, made as a real creator makes one: the genesis pool
  creator signs a transaction with the program's own `initialize` instruction (AmmConfig index 0,
  the amounts in base units from its token accounts), which lands like any other (journaled,
  visible to getSignatureStatuses/getTransaction). Returns ``{"signature", "slot", "venue",
  "pool", "mint0", "mint1", "openTime"}``; a failed instruction answers -32002 with its logs.
  Only ``raydium_cpmm`` pools can be made this way.
"""

from __future__ import annotations

import base64
import binascii
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from common.dex import raydium_cpmm as cpmm
from common.dex.spl_token import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from simchain.b58 import b58decode, b58encode
from simchain.ledger import (
    FINALIZATION_DEPTH,
    MAX_PROCESSING_AGE,
    SLOTS_PER_EPOCH,
    Ledger,
    TokenBalance,
    TxRecord,
    minimum_balance,
)
from simchain.programs.memo import MEMO_V1_PROGRAM_ID
from simchain.pubsub import SignatureSubscriptions
from simchain.runtime import (
    COMPUTE_BUDGET_PROGRAM_ID,
    MAX_BASE58_SIZE,
    MAX_BASE64_SIZE,
    InstructionError,
    MalformedTransaction,
    Runtime,
    TransactionError,
    prepare,
)

API_VERSION: Final = "2.2.20"
FEATURE_SET: Final = 3294202862
MAX_MULTIPLE_ACCOUNTS: Final = 100
MAX_SIGNATURE_STATUSES: Final = 256
MAX_PRIORITIZATION_FEE_ACCOUNTS: Final = 128
MAX_PROGRAM_ACCOUNT_FILTERS: Final = 4
MAX_MEMCMP_BYTES: Final = 128
MAX_MEMCMP_BASE58: Final = 175
U64_MAX: Final = (1 << 64) - 1

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
PREFLIGHT_FAILURE: Final = -32002
SIGNATURE_VERIFICATION_FAILURE: Final = -32003
MIN_CONTEXT_SLOT_NOT_REACHED: Final = -32016
UNSUPPORTED_TRANSACTION_VERSION: Final = -32015

_COMMITMENTS: Final = {
    "processed": "processed",
    "confirmed": "confirmed",
    "finalized": "finalized",
    "recent": "processed",
    "single": "confirmed",
    "singleGossip": "confirmed",
    "root": "finalized",
    "max": "finalized",
}

# Display strings of TransactionError, for "Transaction simulation failed: …"
_TX_ERROR_TEXT: Final = {
    "AccountInUse": "Account in use",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "ProgramAccountNotFound": "Attempt to load a program that does not exist",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "InvalidAccountForFee": "This account may not be used to pay transaction fees",
    "AlreadyProcessed": "This transaction has already been processed",
    "BlockhashNotFound": "Blockhash not found",
    "SignatureFailure": "Transaction did not pass signature verification",
    "InvalidLoadedAccountsDataSizeLimit": "LoadedAccountsDataSizeLimit set for 0 bytes",
}


class RpcError(Exception):
    """A JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


def tx_error_text(err: Any) -> str:
    if isinstance(err, str):
        return _TX_ERROR_TEXT.get(err, err)
    if isinstance(err, dict):
        if "InstructionError" in err:
            index, ierr = err["InstructionError"]
            return f"Error processing Instruction {index}: {InstructionError(ierr).display()}"
        if "InsufficientFundsForRent" in err:
            index = err["InsufficientFundsForRent"]["account_index"]
            return f"Transaction results in an account ({index}) with insufficient funds for rent"
        if "DuplicateInstruction" in err:
            index = err["DuplicateInstruction"]
            return f"Transaction contains a duplicate instruction ({index}) that is not allowed"
    return str(err)


def ui_amount_string(amount: int, decimals: int) -> str:
    """`real_number_string_trimmed`: the amount in token units, no trailing zeros."""
    if decimals == 0:
        return str(amount)
    whole, frac = divmod(amount, 10**decimals)
    frac_s = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{whole}.{frac_s}" if frac_s else str(whole)


def ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": amount / 10**decimals,  # the wire format carries an f64 here
        "uiAmountString": ui_amount_string(amount, decimals),
    }


def _token_balance_json(tb: TokenBalance) -> dict[str, Any]:
    return {
        "accountIndex": tb.account_index,
        "mint": str(tb.mint),
        "owner": str(tb.owner),
        "programId": str(tb.program_id),
        "uiTokenAmount": ui_token_amount(tb.amount, tb.decimals),
    }


# -- parameter validation ------------------------------------------------------------------


def _params(params: Any, lo: int, hi: int) -> list[Any]:
    if params is None:
        params = []
    if not isinstance(params, list):
        raise invalid_params("Invalid params: expected an array of parameters")
    if not lo <= len(params) <= hi:
        want = f"{lo}" if lo == hi else f"{lo} to {hi}"
        raise invalid_params(f"Invalid params: expected {want} parameters, got {len(params)}")
    return params + [None] * (hi - len(params))


def _config(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_params("Invalid params: the configuration must be an object")
    return value


def _commitment(cfg: dict[str, Any], default: str = "finalized") -> str:
    value = cfg.get("commitment")
    if value is None:
        return default
    if not isinstance(value, str) or value not in _COMMITMENTS:
        raise invalid_params(f"Invalid params: unknown commitment {value!r}")
    return _COMMITMENTS[value]


def _bool(cfg: dict[str, Any], key: str, default: bool) -> bool:
    value = cfg.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_params(f"Invalid params: {key} must be a boolean")
    return value


def _uint(value: Any, what: str, hi: int = U64_MAX) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= hi:
        raise invalid_params(f"Invalid params: {what} must be an integer between 0 and {hi}")
    return value


_PUBKEYS: dict[str, Pubkey] = {}  # parsed addresses: the same few pools are asked for all the time
_PUBKEYS_MAX: Final = 65_536


def _pubkey(value: Any) -> Pubkey:
    key = _PUBKEYS.get(value) if isinstance(value, str) else None
    if key is not None:
        return key
    if not isinstance(value, str) or not 32 <= len(value) <= 44:
        raise invalid_params("Invalid param: Invalid")
    try:
        key = Pubkey.from_string(value)
    except ValueError:
        raise invalid_params("Invalid param: Invalid") from None
    if len(_PUBKEYS) >= _PUBKEYS_MAX:
        _PUBKEYS.clear()
    _PUBKEYS[value] = key
    return key


def _pubkey_list(value: Any, limit: int) -> list[Pubkey]:
    if not isinstance(value, list):
        raise invalid_params("Invalid params: expected an array of base-58 addresses")
    if len(value) > limit:
        raise invalid_params(f"Too many inputs provided; max {limit}")
    return [_pubkey(v) for v in value]


def _signature(value: Any) -> Signature:
    if not isinstance(value, str) or not 64 <= len(value) <= 88:
        raise invalid_params("Invalid param: Invalid")
    try:
        return Signature.from_string(value)
    except ValueError:
        raise invalid_params("Invalid param: Invalid") from None


def _decode_wire(value: Any, encoding: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise invalid_params(f"Invalid params: {what} must be a {encoding} string")
    if encoding == "base64":
        if len(value) > MAX_BASE64_SIZE:
            raise invalid_params(
                f"base64 encoded {what} too large: {len(value)} bytes "
                f"(max: encoded/raw {MAX_BASE64_SIZE}/1232)"
            )
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_params(f"invalid base64 encoding: {what}") from None
    if len(value) > MAX_BASE58_SIZE:
        raise invalid_params(
            f"base58 encoded {what} too large: {len(value)} bytes (max: encoded/raw {MAX_BASE58_SIZE}/1232)"
        )
    try:
        return b58decode(value)
    except ValueError:
        raise invalid_params(f"invalid base58 encoding: {what}") from None


def _tx_encoding(cfg: dict[str, Any]) -> str:
    value = cfg.get("encoding")
    if value is None:
        return "base58"
    if value not in ("base58", "base64"):
        raise invalid_params(
            f"Invalid params: unsupported encoding: {value}. Supported encodings: base58, base64"
        )
    return str(value)


def _program_account_filters(value: Any) -> list[tuple[int, bytes] | int]:
    """The filters of getProgramAccounts: an int is a dataSize, (offset, bytes) a memcmp."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_params("Invalid params: filters must be an array")
    if len(value) > MAX_PROGRAM_ACCOUNT_FILTERS:
        raise invalid_params(f"Too many filters provided; max {MAX_PROGRAM_ACCOUNT_FILTERS}")
    out: list[tuple[int, bytes] | int] = []
    for item in value:
        if not isinstance(item, dict) or len(item) != 1:
            raise invalid_params('Invalid params: a filter is {"dataSize": n} or {"memcmp": {…}}')
        if "dataSize" in item:
            out.append(_uint(item["dataSize"], "dataSize"))
            continue
        memcmp = item.get("memcmp")
        if not isinstance(memcmp, dict):
            raise invalid_params("Invalid params: unknown filter (supported: dataSize, memcmp)")
        offset = _uint(memcmp.get("offset"), "memcmp.offset")
        text = memcmp.get("bytes")
        encoding = memcmp.get("encoding", "base58")
        if not isinstance(text, str):
            raise invalid_params("Invalid params: memcmp.bytes must be a string")
        if encoding in ("base58", "binary"):
            if len(text) > MAX_MEMCMP_BASE58:
                raise invalid_params(f"Invalid param: memcmp.bytes longer than {MAX_MEMCMP_BASE58} chars")
            try:
                data = b58decode(text)
            except ValueError:
                raise invalid_params("Invalid param: memcmp.bytes is not valid base58") from None
        elif encoding == "base64":
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise invalid_params("Invalid param: memcmp.bytes is not valid base64") from None
        else:
            raise invalid_params(f"Invalid params: unknown memcmp encoding {encoding!r}")
        if len(data) > MAX_MEMCMP_BYTES:
            raise invalid_params(f"Invalid param: memcmp data too large (max {MAX_MEMCMP_BYTES} bytes)")
        out.append((offset, data))
    return out


# -- fault injection -----------------------------------------------------------------------


@dataclass
class Faults:
    """Injected faults; changed live by `simSetFaults`."""

    latency_ms: int = 0
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    # getSignatureStatuses answers from a node this many slots behind the tip (a lagging RPC node):
    # transactions that landed in the last slots are not shown yet, and its context slot is older.
    status_lag_slots: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "latencyMs": self.latency_ms,
            "failRate": self.fail_rate,
            "dropRate": self.drop_rate,
            "statusLagSlots": self.status_lag_slots,
        }


# -- the node ------------------------------------------------------------------------------


class Node:
    """The JSON-RPC methods over one ledger and runtime."""

    def __init__(
        self,
        ledger: Ledger,
        runtime: Runtime,
        faucet: Keypair,
        airdrop_tokens: Callable[[Pubkey], None],
        faults: Faults,
        rng: random.Random,
        pool_creator: Keypair | None = None,
        programs: Mapping[str, str] | None = None,
    ) -> None:
        self.pool_creator = pool_creator
        self.programs = {venue: Pubkey.from_string(pid) for venue, pid in (programs or {}).items()}
        self.ledger = ledger
        self.runtime = runtime
        self.faucet = faucet
        self.airdrop_tokens = airdrop_tokens
        self.faults = faults
        self.rng = rng
        self._airdrops = 0
        # signatureSubscribe over the WebSocket (simchain.pubsub)
        self.pubsub = SignatureSubscriptions(ledger, lambda: faults.status_lag_slots)
        self.methods: dict[str, Callable[[Any], Any]] = {
            "getHealth": self.get_health,
            "getVersion": self.get_version,
            "getSlot": self.get_slot,
            "getBlockHeight": self.get_block_height,
            "getEpochInfo": self.get_epoch_info,
            "getEpochSchedule": self.get_epoch_schedule,
            "getGenesisHash": self.get_genesis_hash,
            "getTransactionCount": self.get_transaction_count,
            "getLatestBlockhash": self.get_latest_blockhash,
            "isBlockhashValid": self.is_blockhash_valid,
            "getAccountInfo": self.get_account_info,
            "getMultipleAccounts": self.get_multiple_accounts,
            "getProgramAccounts": self.get_program_accounts,
            "getBalance": self.get_balance,
            "getTokenAccountBalance": self.get_token_account_balance,
            "getMinimumBalanceForRentExemption": self.get_minimum_balance_for_rent_exemption,
            "getRecentPrioritizationFees": self.get_recent_prioritization_fees,
            "getFeeForMessage": self.get_fee_for_message,
            "requestAirdrop": self.request_airdrop,
            "sendTransaction": self.send_transaction,
            "simulateTransaction": self.simulate_transaction,
            "getSignatureStatuses": self.get_signature_statuses,
            "getTransaction": self.get_transaction,
            "simSetFaults": self.sim_set_faults,
            "simSwaps": self.sim_swaps,
            "simWarpSlots": self.sim_warp_slots,
            "simCreatePool": self.sim_create_pool,
        }

    def _context(self, slot: int | None = None) -> dict[str, Any]:
        return {"slot": self.ledger.slot if slot is None else slot, "apiVersion": API_VERSION}

    def _min_context(self, cfg: dict[str, Any], slot: int) -> None:
        value = cfg.get("minContextSlot")
        if value is None:
            return
        if _uint(value, "minContextSlot") > slot:
            raise RpcError(
                MIN_CONTEXT_SLOT_NOT_REACHED,
                "Minimum context slot has not been reached",
                {"contextSlot": slot},
            )

    # -- cluster --------------------------------------------------------------------------

    def get_health(self, params: Any) -> Any:
        _params(params, 0, 0)
        return "ok"

    def get_version(self, params: Any) -> Any:
        _params(params, 0, 0)
        return {"solana-core": API_VERSION, "feature-set": FEATURE_SET}

    def get_slot(self, params: Any) -> Any:
        (cfg,) = _params(params, 0, 1)
        cfg = _config(cfg)
        slot = self.ledger.commitment_slot(_commitment(cfg))
        self._min_context(cfg, slot)
        return slot

    get_block_height = get_slot  # one block per slot, no skipped slots

    def get_epoch_info(self, params: Any) -> Any:
        (cfg,) = _params(params, 0, 1)
        cfg = _config(cfg)
        slot = self.ledger.commitment_slot(_commitment(cfg))
        self._min_context(cfg, slot)
        return {
            "absoluteSlot": slot,
            "blockHeight": slot,
            "epoch": slot // SLOTS_PER_EPOCH,
            "slotIndex": slot % SLOTS_PER_EPOCH,
            "slotsInEpoch": SLOTS_PER_EPOCH,
            "transactionCount": self.ledger.transaction_count,
        }

    def get_epoch_schedule(self, params: Any) -> Any:
        _params(params, 0, 0)
        return {
            "slotsPerEpoch": SLOTS_PER_EPOCH,
            "leaderScheduleSlotOffset": SLOTS_PER_EPOCH,
            "warmup": False,
            "firstNormalEpoch": 0,
            "firstNormalSlot": 0,
        }

    def get_genesis_hash(self, params: Any) -> Any:
        _params(params, 0, 0)
        return str(self.ledger._blockhash_at(0))

    def get_transaction_count(self, params: Any) -> Any:
        (cfg,) = _params(params, 0, 1)
        _commitment(_config(cfg))
        return self.ledger.transaction_count

    def get_latest_blockhash(self, params: Any) -> Any:
        (cfg,) = _params(params, 0, 1)
        cfg = _config(cfg)
        commitment = _commitment(cfg)
        slot = self.ledger.commitment_slot(commitment)
        self._min_context(cfg, slot)
        blockhash, last_valid = self.ledger.blockhash_at_commitment(commitment)
        return {
            "context": self._context(slot),
            "value": {"blockhash": blockhash, "lastValidBlockHeight": last_valid},
        }

    def is_blockhash_valid(self, params: Any) -> Any:
        value, cfg = _params(params, 1, 2)
        cfg = _config(cfg)
        _commitment(cfg)
        self._min_context(cfg, self.ledger.slot)
        if not isinstance(value, str):
            raise invalid_params("Invalid param: Invalid")
        try:
            blockhash = Hash.from_string(value)
        except ValueError:
            raise invalid_params("Invalid param: Invalid") from None
        return {"context": self._context(), "value": self.ledger.blockhash_slot(blockhash) is not None}

    # -- accounts -------------------------------------------------------------------------

    def _account_encoder(self, cfg: dict[str, Any]) -> Callable[[Pubkey], Any]:
        encoding = cfg.get("encoding", "binary")
        data_slice = cfg.get("dataSlice")
        if encoding not in ("base64", "base58", "binary", "jsonParsed"):
            if encoding == "base64+zstd":
                raise invalid_params(
                    "Invalid params: base64+zstd is not supported by the simulated chain; use base64"
                )
            raise invalid_params(f"Invalid params: unknown encoding {encoding!r}")
        offset = length = None
        if data_slice is not None:
            if not isinstance(data_slice, dict):
                raise invalid_params("Invalid params: dataSlice must be an object with offset and length")
            offset = _uint(data_slice.get("offset"), "dataSlice.offset")
            length = _uint(data_slice.get("length"), "dataSlice.length")
        get = self.ledger.accounts.get
        if encoding in ("base64", "jsonParsed") and data_slice is None:
            # jsonParsed: the simulated chain answers base64 for every account, as a node does
            # for accounts it cannot parse.
            def encode_fast(key: Pubkey) -> Any:
                acct = get(key)
                return None if acct is None else acct.ui_base64()

            return encode_fast

        def encode(key: Pubkey) -> Any:
            acct = get(key)
            if acct is None:
                return None
            data = acct.data
            if offset is not None and length is not None:
                data = data[offset : offset + length]
            if encoding in ("base58", "binary"):
                if len(data) > 128:
                    raise RpcError(
                        INVALID_REQUEST,
                        "Encoded binary (base 58) data should be less than 128 bytes, "
                        "please use Base64 encoding.",
                    )
                text = b58encode(data)
                return acct.ui(text if encoding == "binary" else [text, "base58"])
            return acct.ui([base64.b64encode(data).decode(), "base64"])

        return encode

    def get_account_info(self, params: Any) -> Any:
        key, cfg = _params(params, 1, 2)
        key = _pubkey(key)
        cfg = _config(cfg)
        _commitment(cfg)
        self._min_context(cfg, self.ledger.slot)
        return {"context": self._context(), "value": self._account_encoder(cfg)(key)}

    def get_multiple_accounts(self, params: Any) -> Any:
        keys, cfg = _params(params, 1, 2)
        keys = _pubkey_list(keys, MAX_MULTIPLE_ACCOUNTS)
        cfg = _config(cfg)
        _commitment(cfg)
        self._min_context(cfg, self.ledger.slot)
        encode = self._account_encoder(cfg)
        return {"context": self._context(), "value": [encode(k) for k in keys]}

    def get_program_accounts(self, params: Any) -> Any:
        program, cfg = _params(params, 1, 2)
        program = _pubkey(program)
        cfg = _config(cfg)
        _commitment(cfg)
        self._min_context(cfg, self.ledger.slot)
        with_context = _bool(cfg, "withContext", False)
        filters = _program_account_filters(cfg.get("filters"))
        sizes = {f for f in filters if isinstance(f, int)}
        memcmps = [f for f in filters if isinstance(f, tuple)]
        encode = self._account_encoder(cfg)
        found: list[Any] = []
        for key, acct in self.ledger.accounts.items():
            if acct.owner != program:
                continue
            if sizes and (len(sizes) > 1 or acct.size not in sizes):
                continue
            if memcmps:
                data = acct.data
                if not all(data[off : off + len(want)] == want for off, want in memcmps):
                    continue
            found.append({"pubkey": str(key), "account": encode(key)})
        if with_context:
            return {"context": self._context(), "value": found}
        return found

    def get_balance(self, params: Any) -> Any:
        key, cfg = _params(params, 1, 2)
        key = _pubkey(key)
        cfg = _config(cfg)
        _commitment(cfg)
        self._min_context(cfg, self.ledger.slot)
        return {"context": self._context(), "value": self.ledger.lamports(key)}

    def get_token_account_balance(self, params: Any) -> Any:
        key, cfg = _params(params, 1, 2)
        key = _pubkey(key)
        cfg = _config(cfg)
        _commitment(cfg)
        acct = self.ledger.get(key)
        if acct is None:
            raise invalid_params("Invalid param: could not find account")
        data = acct.data
        if (
            acct.owner not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
            or len(data) < 165
            or (len(data) > 165 and data[165] != 2)
            or data[108] == 0
        ):
            raise invalid_params("Invalid param: not a Token account")
        decimals = self.runtime.mint_decimals(Pubkey.from_bytes(data[:32]))
        if decimals is None:
            raise invalid_params("Invalid param: could not find mint")
        amount = int.from_bytes(data[64:72], "little")
        return {"context": self._context(), "value": ui_token_amount(amount, decimals)}

    def get_minimum_balance_for_rent_exemption(self, params: Any) -> Any:
        size, cfg = _params(params, 1, 2)
        _commitment(_config(cfg))
        return minimum_balance(_uint(size, "data length", 10 * 1024 * 1024))

    def get_recent_prioritization_fees(self, params: Any) -> Any:
        (keys,) = _params(params, 0, 1)
        keys = [] if keys is None else _pubkey_list(keys, MAX_PRIORITIZATION_FEE_ACCOUNTS)
        return self.ledger.recent_priority_fees(keys)

    def get_fee_for_message(self, params: Any) -> Any:
        value, cfg = _params(params, 1, 2)
        cfg = _config(cfg)
        _commitment(cfg)
        raw = _decode_wire(value, "base64", "solana_sdk::message::VersionedMessage")
        try:
            message = from_bytes_versioned(raw)
        except ValueError as exc:
            raise invalid_params(
                f"failed to deserialize solana_sdk::message::VersionedMessage: {exc}"
            ) from None
        if not isinstance(message, (Message, MessageV0)):
            raise invalid_params("invalid transaction message: unsupported version")
        fee: int | None = None
        if self.ledger.blockhash_slot(message.recent_blockhash) is not None:
            keys = list(message.account_keys)
            try:
                instructions: list[tuple[Pubkey, list[int], bytes]] = [
                    (keys[ci.program_id_index], [], bytes(ci.data)) for ci in message.instructions
                ]
            except IndexError:
                raise invalid_params("invalid transaction message: program id index out of range") from None
            try:
                budget = self.runtime.compute_budget(instructions)
            except TransactionError:
                raise invalid_params(
                    "invalid transaction message: invalid compute budget instruction"
                ) from None
            fee = self.runtime.fee_for(message.header.num_required_signatures, budget)
        return {"context": self._context(), "value": fee}

    # -- transactions ---------------------------------------------------------------------

    def request_airdrop(self, params: Any) -> Any:
        key, lamports, cfg = _params(params, 2, 3)
        key = _pubkey(key)
        lamports = _uint(lamports, "lamports")
        if lamports == 0:
            raise invalid_params("Invalid params: lamports must be greater than zero")
        _commitment(_config(cfg))
        faucet = self.faucet
        self._airdrops += 1
        # the faucet's transfer, made unique by a memo so that equal requests in one slot both land
        msg = Message.new_with_blockhash(
            [
                transfer(TransferParams(from_pubkey=faucet.pubkey(), to_pubkey=key, lamports=lamports)),
                Instruction(MEMO_V1_PROGRAM_ID, f"airdrop {self._airdrops}".encode(), []),
            ],
            faucet.pubkey(),
            self.ledger.blockhash,
        )
        tx = VersionedTransaction(msg, [faucet])
        result = self.runtime.execute(prepare(bytes(tx)), verify_signatures=False)
        if result.err is not None:
            raise RpcError(INTERNAL_ERROR, f"airdrop request failed: {tx_error_text(result.err)}")
        self.runtime.land(result)
        self.airdrop_tokens(key)
        return str(result.signature)

    def send_transaction(self, params: Any) -> Any:
        value, cfg = _params(params, 1, 2)
        cfg = _config(cfg)
        encoding = _tx_encoding(cfg)
        skip_preflight = _bool(cfg, "skipPreflight", False)
        _commitment({"commitment": cfg.get("preflightCommitment")})
        max_retries = cfg.get("maxRetries")
        if max_retries is not None:
            _uint(max_retries, "maxRetries")
        self._min_context(cfg, self.ledger.slot)
        raw = _decode_wire(value, encoding, "solana_sdk::transaction::versioned::VersionedTransaction")
        try:
            ptx = prepare(raw)
        except MalformedTransaction as exc:
            raise invalid_params(str(exc)) from None
        # Preflight and landing see the same state (nothing runs in between), so one execution
        # serves both: a failed preflight is answered, a passed one is applied as it ran.
        executed = self.runtime.execute(ptx)
        if not skip_preflight:
            self._raise_preflight(executed)
        if self.faults.drop_rate and self.rng.random() < self.faults.drop_rate:
            return str(ptx.signature)  # a leader dropped it: it never lands and is forgotten
        self.runtime.land(executed)  # a failed, landable transaction is charged its fee
        return str(ptx.signature)

    def _raise_preflight(self, sim: Any) -> None:
        if sim.err is None:
            return
        if sim.err == "SignatureFailure":
            raise RpcError(SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
        raise RpcError(
            PREFLIGHT_FAILURE,
            f"Transaction simulation failed: {tx_error_text(sim.err)}",
            {
                "accounts": None,
                "err": sim.err,
                "innerInstructions": None,
                "logs": sim.logs,
                "replacementBlockhash": None,
                "returnData": None,
                "unitsConsumed": sim.units,
            },
        )

    def simulate_transaction(self, params: Any) -> Any:
        value, cfg = _params(params, 1, 2)
        cfg = _config(cfg)
        encoding = _tx_encoding(cfg)
        sig_verify = _bool(cfg, "sigVerify", False)
        replace = _bool(cfg, "replaceRecentBlockhash", False)
        _bool(cfg, "innerInstructions", False)
        if sig_verify and replace:
            raise invalid_params("sigVerify may not be used with replaceRecentBlockhash")
        _commitment(cfg)
        self._min_context(cfg, self.ledger.slot)
        accounts_cfg = cfg.get("accounts")
        addresses: list[Pubkey] | None = None
        if accounts_cfg is not None:
            if not isinstance(accounts_cfg, dict):
                raise invalid_params("Invalid params: accounts must be an object with addresses and encoding")
            addresses = _pubkey_list(accounts_cfg.get("addresses"), MAX_MULTIPLE_ACCOUNTS)
            if accounts_cfg.get("encoding", "base64") not in ("base64", "jsonParsed"):
                raise invalid_params("Invalid params: accounts.encoding must be base64")
        raw = _decode_wire(value, encoding, "solana_sdk::transaction::versioned::VersionedTransaction")
        try:
            ptx = prepare(raw)
        except MalformedTransaction as exc:
            raise invalid_params(str(exc)) from None
        replacement = None
        if replace:
            replacement = {
                "blockhash": self.ledger.blockhash_str,
                "lastValidBlockHeight": self.ledger.slot + MAX_PROCESSING_AGE,
            }
        sim = self.runtime.execute(ptx, verify_signatures=sig_verify, check_blockhash=not replace)
        if sim.err == "SignatureFailure":
            raise RpcError(SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
        accounts = None
        if addresses is not None:
            accounts = []
            for key in addresses:
                acct = sim.overlay.get(key, self.ledger.get(key)) if sim.err is None else self.ledger.get(key)
                accounts.append(None if acct is None else acct.ui_base64())
        return {
            "context": self._context(),
            "value": {
                "err": sim.err,
                "logs": sim.logs,
                "accounts": accounts,
                "unitsConsumed": sim.units,
                "returnData": None,
                "innerInstructions": None,
                "replacementBlockhash": replacement,
            },
        }

    def get_signature_statuses(self, params: Any) -> Any:
        sigs, cfg = _params(params, 1, 2)
        if not isinstance(sigs, list):
            raise invalid_params("Invalid params: expected an array of signatures")
        if len(sigs) > MAX_SIGNATURE_STATUSES:
            raise invalid_params(f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
        cfg = _config(cfg)
        _bool(cfg, "searchTransactionHistory", False)
        by_str = self.ledger.history_by_str
        tip = max(self.ledger.slot - self.faults.status_lag_slots, 0)
        self._min_context(cfg, tip)
        out: list[Any] = []
        for s in sigs:
            rec = by_str.get(s) if isinstance(s, str) else None
            if rec is None or rec.slot > tip:
                _signature(s)  # a malformed signature is an error; an unknown one is null
                out.append(None)
            else:
                out.append(rec.status(tip))
        return {"context": self._context(tip), "value": out}

    def get_transaction(self, params: Any) -> Any:
        sig, cfg = _params(params, 1, 2)
        signature = _signature(sig)
        if isinstance(cfg, str):  # the deprecated form: encoding as the second parameter
            cfg = {"encoding": cfg}
        cfg = _config(cfg)
        encoding = cfg.get("encoding", "json")
        if encoding not in ("json", "jsonParsed", "base64", "base58", "binary"):
            raise invalid_params(f"Invalid params: unknown encoding {encoding!r}")
        commitment = _commitment(cfg)
        if commitment == "processed":
            raise invalid_params("Method does not support commitment below `confirmed`")
        max_version = cfg.get("maxSupportedTransactionVersion")
        if max_version is not None:
            _uint(max_version, "maxSupportedTransactionVersion", 255)
        rec = self.ledger.history.get(signature)
        if rec is None:
            return None
        if commitment == "finalized" and self.ledger.slot - rec.slot < FINALIZATION_DEPTH:
            return None
        return self._transaction_json(rec, encoding, max_version)

    def _transaction_json(self, rec: TxRecord, encoding: str, max_version: int | None) -> Any:
        tx = VersionedTransaction.from_bytes(rec.raw)
        msg = tx.message
        is_v0 = isinstance(msg, MessageV0)
        if is_v0 and max_version is None:
            raise RpcError(
                UNSUPPORTED_TRANSACTION_VERSION,
                "Transaction version (0) is not supported by the requesting client. Please try the request "
                'again with the following configuration parameter: "maxSupportedTransactionVersion": 0',
            )
        if encoding in ("base64",):
            transaction: Any = [base64.b64encode(rec.raw).decode(), "base64"]
        elif encoding == "base58":
            transaction = [b58encode(rec.raw), "base58"]
        elif encoding == "binary":
            transaction = b58encode(rec.raw)
        else:
            header = msg.header
            message: dict[str, Any] = {
                "header": {
                    "numRequiredSignatures": header.num_required_signatures,
                    "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
                    "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
                },
                "accountKeys": [str(k) for k in msg.account_keys],
                "recentBlockhash": str(msg.recent_blockhash),
                "instructions": [
                    {
                        "programIdIndex": ci.program_id_index,
                        "accounts": list(ci.accounts),
                        "data": b58encode(bytes(ci.data)),
                        "stackHeight": None,
                    }
                    for ci in msg.instructions
                ],
            }
            if is_v0:
                message["addressTableLookups"] = []
            transaction = {"signatures": [str(s) for s in tx.signatures], "message": message}
        meta = {
            "err": rec.err,
            "status": {"Ok": None} if rec.err is None else {"Err": rec.err},
            "fee": rec.fee,
            "preBalances": rec.pre_balances,
            "postBalances": rec.post_balances,
            "innerInstructions": [],
            "logMessages": rec.logs,
            "preTokenBalances": [_token_balance_json(t) for t in rec.pre_token_balances],
            "postTokenBalances": [_token_balance_json(t) for t in rec.post_token_balances],
            "rewards": [],
            "loadedAddresses": {"writable": [], "readonly": []},
            "computeUnitsConsumed": rec.units_consumed,
        }
        out: dict[str, Any] = {
            "slot": rec.slot,
            "transaction": transaction,
            "meta": meta,
            "blockTime": rec.block_time,
        }
        if max_version is not None:
            out["version"] = 0 if is_v0 else "legacy"
        return out

    # -- admin (SIM EXTENSIONS) -----------------------------------------------------------

    def sim_set_faults(self, params: Any) -> Any:
        (cfg,) = _params(params, 0, 1)
        cfg = _config(cfg)
        unknown = set(cfg) - {"latencyMs", "failRate", "dropRate", "statusLagSlots"}
        if unknown:
            raise invalid_params(f"Invalid params: unknown fault(s): {', '.join(sorted(unknown))}")
        faults = self.faults
        latency = cfg.get("latencyMs", faults.latency_ms)
        fail = cfg.get("failRate", faults.fail_rate)
        drop = cfg.get("dropRate", faults.drop_rate)
        latency = _uint(latency, "latencyMs", 60_000)
        lag = _uint(cfg.get("statusLagSlots", faults.status_lag_slots), "statusLagSlots", 1_000_000)
        for name, rate in (("failRate", fail), ("dropRate", drop)):
            if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
                raise invalid_params(f"Invalid params: {name} must be a number between 0 and 1")
        faults.latency_ms, faults.fail_rate, faults.drop_rate = latency, float(fail), float(drop)
        faults.status_lag_slots = lag
        return faults.to_json()

    def sim_swaps(self, params: Any) -> Any:
        (cfg,) = _params(params, 0, 1)
        cfg = _config(cfg)
        offset = _uint(cfg.get("offset", 0), "offset")
        prefix = cfg.get("memoPrefix")
        if prefix is not None and not isinstance(prefix, str):
            raise invalid_params("Invalid params: memoPrefix must be a string")
        swaps = self.ledger.swaps[offset:]
        if prefix is not None:
            swaps = [s for s in swaps if any(m.startswith(prefix) for m in s["memos"])]
        return swaps

    def sim_warp_slots(self, params: Any) -> Any:
        (arg,) = _params(params, 1, 1)
        n = arg.get("n") if isinstance(arg, dict) else arg
        n = _uint(n, "n", 1_000_000)
        self.ledger.advance(n)
        return self.ledger.slot

    def sim_create_pool(self, params: Any) -> Any:
        (cfg,) = _params(params, 1, 1)
        cfg = _config(cfg)
        unknown = set(cfg) - {"venue", "mintA", "mintB", "amountA", "amountB", "openTime"}
        if unknown:
            raise invalid_params(f"Invalid params: unknown field(s): {', '.join(sorted(unknown))}")
        venue = cfg.get("venue")
        if venue != "raydium_cpmm":
            raise invalid_params(
                "Invalid params: venue must be raydium_cpmm (the only pools the sim can create)"
            )
        program = self.programs.get(venue)
        creator = self.pool_creator
        if program is None or creator is None:
            raise invalid_params("Invalid params: this node has no raydium_cpmm program or pool creator")
        mint_a, mint_b = _pubkey(cfg.get("mintA")), _pubkey(cfg.get("mintB"))
        if mint_a == mint_b:
            raise invalid_params("Invalid params: mintB must differ from mintA")
        amount_a, amount_b = _uint(cfg.get("amountA"), "amountA"), _uint(cfg.get("amountB"), "amountB")
        open_time = _uint(cfg.get("openTime", 0), "openTime")
        programs = []
        for mint in (mint_a, mint_b):
            acct = self.ledger.get(mint)
            if acct is None or acct.owner not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
                raise invalid_params(f"Invalid params: {mint} is not a token mint")
            programs.append(acct.owner)
        config = cpmm.amm_config_pda(program, 0)
        fee_account = Pubkey.from_string(
            cpmm.CREATE_POOL_FEE_RECEIVERS.get(str(program), str(Pubkey.default()))
        )
        ix, keys = cpmm.initialize_ix(
            program, creator.pubkey(), config, fee_account, mint_a, mint_b, amount_a, amount_b,
            token_program_a=programs[0], token_program_b=programs[1], open_time=open_time,
        )  # fmt: skip
        limit = Instruction(COMPUTE_BUDGET_PROGRAM_ID, bytes([2]) + (400_000).to_bytes(4, "little"), [])
        msg = Message.new_with_blockhash([limit, ix], creator.pubkey(), self.ledger.blockhash)
        result = self.runtime.execute(prepare(bytes(VersionedTransaction(msg, [creator]))))
        if result.err is not None:
            raise RpcError(
                PREFLIGHT_FAILURE,
                f"pool creation failed: {tx_error_text(result.err)}",
                {"err": result.err, "logs": result.logs},
            )
        self.runtime.land(result)
        state = self.ledger.get(keys.pool_state)
        assert state is not None  # the transaction created it
        pool = cpmm.decode_pool_state(keys.pool_state, state.owner, state.data, program)
        return {
            "signature": str(result.signature),
            "slot": self.ledger.slot,
            "venue": venue,
            "pool": str(keys.pool_state),
            "mint0": str(keys.token_0_mint),
            "mint1": str(keys.token_1_mint),
            "openTime": pool.open_time,
        }
