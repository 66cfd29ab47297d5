"""Transaction verification and execution, as a validator's bank does it.

A transaction goes through the same gates as on a real cluster, in the same order:

1. decode and sanitize (`prepare`): wire size ≤ 1232 bytes, a legacy or v0 message (v0 address
   lookup tables are not supported: no lookup table exists on this chain), no account twice;
2. signature verification (ed25519 over the message, every required signer);
3. blockhash age (≤ 150 blocks, else `BlockhashNotFound`), then the status cache (`AlreadyProcessed`);
4. compute-budget instructions (limit, price; a duplicate is `DuplicateInstruction`), every program
   id known (`ProgramAccountNotFound`), and the fee payer: a system account (`InvalidAccountForFee`)
   that exists (`AccountNotFound`) and can pay 5,000 lamports per signature plus the priority fee
   (`InsufficientFundsForFee`) and stays rent-exempt (`InsufficientFundsForRent`);
5. the instructions, one after another, against a copy-on-write overlay of the ledger. Any
   instruction error discards the overlay: only the fee is charged. A writable account that ends
   the transaction rent-paying when it was not fails it with `InsufficientFundsForRent`.

Failures before step 5 make a transaction that no leader would include: it never lands and is
charged nothing. Compute units are metered per program with fixed costs close to the deployed
programs' (a swap ~35–70k with its token CPIs); exceeding the limit fails the instruction with
`ComputationalBudgetExceeded`, as on chain.

Errors are the JSON forms of `TransactionError` that a real node returns, e.g.
``{"InstructionError": [2, {"Custom": 6005}]}``, and logs follow the runtime's format
(``Program <id> invoke [1]`` … ``Program <id> failed: custom program error: 0x1775``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from solders.hash import Hash
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from common.dex.spl_token import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from simchain.ledger import (
    LAMPORTS_PER_SIGNATURE,
    SYSTEM_PROGRAM_ID,
    Account,
    Ledger,
    TokenBalance,
    TxRecord,
    minimum_balance,
)

PACKET_DATA_SIZE: Final = 1232
MAX_BASE64_SIZE: Final = 1644
MAX_BASE58_SIZE: Final = 1683
MAX_COMPUTE_UNIT_LIMIT: Final = 1_400_000
DEFAULT_INSTRUCTION_COMPUTE_UNIT_LIMIT: Final = 200_000
MAX_CPI_DEPTH: Final = 4
BUILTIN_COST: Final = 150

_TOKEN_PROGRAMS: Final = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)

# Display strings of solana_instruction::error::InstructionError, for "Program X failed: …" logs.
_INSTRUCTION_ERROR_TEXT: Final = {
    "GenericError": "generic instruction error",
    "InvalidArgument": "invalid program argument",
    "InvalidInstructionData": "invalid instruction data",
    "InvalidAccountData": "invalid account data for instruction",
    "AccountDataTooSmall": "account data too small for instruction",
    "InsufficientFunds": "insufficient funds for instruction",
    "IncorrectProgramId": "incorrect program id for instruction",
    "MissingRequiredSignature": "missing required signature for instruction",
    "AccountAlreadyInitialized": "instruction requires an uninitialized account",
    "UninitializedAccount": "instruction requires an initialized account",
    "NotEnoughAccountKeys": "insufficient account keys for instruction",
    "ReadonlyLamportChange": "instruction changed the balance of a read-only account",
    "ReadonlyDataModified": "instruction modified data of a read-only account",
    "ExternalAccountDataModified": "instruction modified data of an account it does not own",
    "ComputationalBudgetExceeded": "Computational budget exceeded",
    "InvalidSeeds": "Provided seeds do not result in a valid address",
    "IllegalOwner": "Provided owner is not allowed",
    "ArithmeticOverflow": "Program arithmetic overflowed",
    "InvalidAccountOwner": "Invalid account owner",
    "UnsupportedProgramId": "Unsupported program id",
    "CallDepth": "Cross-program invocation call depth too deep",
    "AccountBorrowFailed": "instruction tries to borrow reference for an account which is already borrowed",
    "InvalidRealloc": "Failed to reallocate account data",
}


class InstructionError(Exception):
    """A program failed. `error` is the JSON form: ``"InvalidAccountData"`` or ``{"Custom": 1}``."""

    def __init__(self, error: str | dict[str, Any]) -> None:
        super().__init__(error)
        self.error = error

    def display(self) -> str:
        err = self.error
        if isinstance(err, dict):
            if "Custom" in err:
                return f"custom program error: {err['Custom']:#x}"
            return str(err)
        return _INSTRUCTION_ERROR_TEXT.get(err, err)


def custom(code: int) -> InstructionError:
    return InstructionError({"Custom": code})


class TransactionError(Exception):
    """A transaction-level error; `err` is its JSON form (``"BlockhashNotFound"``, …)."""

    def __init__(self, err: Any, *, landable: bool) -> None:
        super().__init__(err)
        self.err = err
        self.landable = landable


class MalformedTransaction(ValueError):
    """The bytes are not a transaction this node accepts (mapped to JSON-RPC -32602)."""


class Program(Protocol):
    """A program the runtime can invoke."""

    program_id: Pubkey
    #: builtins (system, compute budget) do not log "consumed … compute units"
    builtin: bool

    def process(self, inv: Invocation) -> None: ...


@dataclass(slots=True)
class PreparedTx:
    """A decoded, sanitized transaction (decoded once, whatever is then done with it)."""

    tx: VersionedTransaction
    raw: bytes
    signature: Signature
    keys: list[Pubkey]
    writable: list[bool]
    num_signers: int
    instructions: list[tuple[Pubkey, list[int], bytes]]
    blockhash: Hash
    version: int | str


def prepare(raw: bytes) -> PreparedTx:
    """Decodes and sanitizes wire bytes; raises MalformedTransaction with the node's message."""
    if len(raw) > PACKET_DATA_SIZE:
        raise MalformedTransaction(
            f"encoded solana_sdk::transaction::versioned::VersionedTransaction too large: "
            f"{len(raw)} bytes (max: encoded/raw {MAX_BASE64_SIZE}/{PACKET_DATA_SIZE})"
        )
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except ValueError as exc:
        raise MalformedTransaction(
            f"failed to deserialize solana_sdk::transaction::versioned::VersionedTransaction: {exc}"
        ) from None
    try:
        tx.sanitize()
    except Exception as exc:  # noqa: BLE001 - solders raises its own SanitizeError type
        raise MalformedTransaction(f"invalid transaction: {exc}") from None
    msg = tx.message
    version: int | str
    if isinstance(msg, Message):
        version = "legacy"
    elif isinstance(msg, MessageV0):
        version = 0
        if msg.address_table_lookups:
            raise MalformedTransaction(
                "invalid transaction: Transaction loads an address table account that doesn't exist"
            )
    else:
        raise MalformedTransaction("invalid transaction: Transaction version is unsupported")
    keys = list(msg.account_keys)
    if len(set(keys)) != len(keys):
        raise MalformedTransaction("invalid transaction: Account loaded twice")
    header = msg.header
    nrs = header.num_required_signatures
    signer_writable_end = nrs - header.num_readonly_signed_accounts
    unsigned_writable_end = len(keys) - header.num_readonly_unsigned_accounts
    instructions: list[tuple[Pubkey, list[int], bytes]] = []
    called: set[int] = set()
    for ci in msg.instructions:
        called.add(ci.program_id_index)
        instructions.append((keys[ci.program_id_index], list(ci.accounts), bytes(ci.data)))
    writable = [
        (i < signer_writable_end if i < nrs else i < unsigned_writable_end)
        and i not in called
        and keys[i] not in RESERVED_ACCOUNT_KEYS
        for i in range(len(keys))
    ]
    sigs = tx.signatures
    if len(sigs) != nrs:
        raise MalformedTransaction(
            "invalid transaction: Transaction failed to sanitize accounts offsets correctly"
        )
    return PreparedTx(tx, raw, sigs[0], keys, writable, nrs, instructions, msg.recent_blockhash, version)


RESERVED_ACCOUNT_KEYS: Final = frozenset(
    Pubkey.from_string(k)
    for k in (
        "11111111111111111111111111111111",
        "ComputeBudget111111111111111111111111111111",
        "Config1111111111111111111111111111111111111",
        "Ed25519SigVerify111111111111111111111111111",
        "Feature111111111111111111111111111111111111",
        "NativeLoader1111111111111111111111111111111",
        "KeccakSecp256k11111111111111111111111111111",
        "Secp256r1SigVerify1111111111111111111111111",
        "Stake11111111111111111111111111111111111111",
        "StakeConfig11111111111111111111111111111111",
        "Vote111111111111111111111111111111111111111",
        "BPFLoader1111111111111111111111111111111111",
        "BPFLoader2111111111111111111111111111111111",
        "BPFLoaderUpgradeab1e11111111111111111111111",
        "LoaderV411111111111111111111111111111111111",
        "AddressLookupTab1e1111111111111111111111111",
        "SysvarC1ock11111111111111111111111111111111",
        "SysvarEpochSchedu1e111111111111111111111111",
        "SysvarFees111111111111111111111111111111111",
        "Sysvar1nstructions1111111111111111111111111",
        "SysvarRecentB1ockHashes11111111111111111111",
        "SysvarRent111111111111111111111111111111111",
        "SysvarRewards111111111111111111111111111111",
        "SysvarS1otHashes111111111111111111111111111",
        "SysvarS1otHistory11111111111111111111111111",
        "SysvarStakeHistory1111111111111111111111111",
        "SysvarEpochRewards1111111111111111111111111",
        "SysvarLastRestartS1ot1111111111111111111111",
        "Sysvar1111111111111111111111111111111111111",
    )
)


@dataclass(slots=True)
class ComputeBudget:
    unit_limit: int
    unit_price: int  # micro-lamports per compute unit

    @property
    def priority_fee(self) -> int:
        return -(-(self.unit_price * self.unit_limit) // 1_000_000)


COMPUTE_BUDGET_PROGRAM_ID: Final = Pubkey.from_string("ComputeBudget111111111111111111111111111111")


def parse_compute_budget(instructions: Sequence[tuple[Pubkey, list[int], bytes]]) -> ComputeBudget:
    """`process_compute_budget_instructions`: the unit limit and price a transaction asks for.

    Raises a non-landable TransactionError for a malformed or repeated compute-budget instruction.
    Without SetComputeUnitLimit the limit is 200,000 per other instruction (at most 1,400,000).
    """
    limit: int | None = None
    price: int | None = None
    heap = loaded = False
    others = 0
    for index, (program_id, _, data) in enumerate(instructions):
        if program_id != COMPUTE_BUDGET_PROGRAM_ID:
            others += 1
            continue
        tag = data[0] if data else -1
        invalid = TransactionError({"InstructionError": [index, "InvalidInstructionData"]}, landable=False)
        duplicate = TransactionError({"DuplicateInstruction": index}, landable=False)
        if tag == 1 and len(data) == 5:
            size = int.from_bytes(data[1:5], "little")
            if heap:
                raise duplicate
            if size % 1024 or not 32 * 1024 <= size <= 256 * 1024:
                raise invalid
            heap = True
        elif tag == 2 and len(data) == 5:
            if limit is not None:
                raise duplicate
            limit = int.from_bytes(data[1:5], "little")
        elif tag == 3 and len(data) == 9:
            if price is not None:
                raise duplicate
            price = int.from_bytes(data[1:9], "little")
        elif tag == 4 and len(data) == 5:
            if loaded:
                raise duplicate
            if int.from_bytes(data[1:5], "little") == 0:
                raise TransactionError("InvalidLoadedAccountsDataSizeLimit", landable=False)
            loaded = True
        else:
            raise invalid
    if limit is None:
        limit = DEFAULT_INSTRUCTION_COMPUTE_UNIT_LIMIT * others
    return ComputeBudget(min(limit, MAX_COMPUTE_UNIT_LIMIT), price or 0)


class TxContext:
    """One transaction's execution: the overlay of changed accounts, logs, compute meter."""

    __slots__ = (
        "ledger",
        "programs",
        "overlay",
        "logs",
        "signers",
        "writable",
        "cu_limit",
        "cu_used",
        "memos",
        "swaps",
        "slot",
        "epoch",
        "unix_timestamp",
        "depth",
    )

    def __init__(
        self,
        ledger: Ledger,
        programs: dict[Pubkey, Program],
        signers: set[Pubkey],
        writable: set[Pubkey],
        cu_limit: int,
    ) -> None:
        self.ledger = ledger
        self.programs = programs
        self.overlay: dict[Pubkey, Account | None] = {}
        self.logs: list[str] = []
        self.signers = signers
        self.writable = writable
        self.cu_limit = cu_limit
        self.cu_used = 0
        self.memos: list[str] = []
        self.swaps: list[dict[str, Any]] = []
        self.slot = ledger.slot
        self.epoch = ledger.epoch
        self.unix_timestamp = ledger.unix_timestamp()
        self.depth = 0

    # accounts

    def get(self, key: Pubkey) -> Account | None:
        overlay = self.overlay
        if key in overlay:
            return overlay[key]
        return self.ledger.accounts.get(key)

    def put(self, key: Pubkey, account: Account | None) -> None:
        """Writes an account (None or zero lamports deletes it at commit)."""
        if key not in self.writable:
            before = self.get(key)
            if before is not None and account is not None and before.data == account.data:
                raise InstructionError("ReadonlyLamportChange")
            raise InstructionError("ReadonlyDataModified")
        self.overlay[key] = account

    def lamports(self, key: Pubkey) -> int:
        acct = self.get(key)
        return 0 if acct is None else acct.lamports

    # meter and logs

    def consume(self, units: int) -> None:
        self.cu_used += units
        if self.cu_used > self.cu_limit:
            self.cu_used = self.cu_limit
            raise InstructionError("ComputationalBudgetExceeded")

    def log(self, message: str) -> None:
        self.logs.append("Program log: " + message)

    # invocation

    def invoke(
        self,
        program_id: Pubkey,
        keys: Sequence[Pubkey],
        data: bytes,
        pda_signers: Iterable[Pubkey] = (),
    ) -> None:
        """Runs one instruction (top level or CPI), logging as the runtime does."""
        program = self.programs.get(program_id)
        if program is None:
            raise InstructionError("UnsupportedProgramId")
        if self.depth >= MAX_CPI_DEPTH:
            raise InstructionError("CallDepth")
        self.depth += 1
        pid = str(program_id)
        logs = self.logs
        logs.append(f"Program {pid} invoke [{self.depth}]")
        start = self.cu_used
        available = self.cu_limit - start
        try:
            program.process(Invocation(self, program_id, list(keys), data, frozenset(pda_signers)))
        except InstructionError as exc:
            if not program.builtin:
                logs.append(f"Program {pid} consumed {self.cu_used - start} of {available} compute units")
            logs.append(f"Program {pid} failed: {exc.display()}")
            raise
        finally:
            self.depth -= 1
        if not program.builtin:
            logs.append(f"Program {pid} consumed {self.cu_used - start} of {available} compute units")
        logs.append(f"Program {pid} success")


class Invocation:
    """The instruction a program is processing: its program id, accounts and data."""

    __slots__ = ("tx", "program_id", "keys", "data", "pda_signers")

    def __init__(
        self,
        tx: TxContext,
        program_id: Pubkey,
        keys: list[Pubkey],
        data: bytes,
        pda_signers: frozenset[Pubkey],
    ) -> None:
        self.tx = tx
        self.program_id = program_id
        self.keys = keys
        self.data = data
        self.pda_signers = pda_signers

    def key(self, index: int) -> Pubkey:
        if index >= len(self.keys):
            raise InstructionError("NotEnoughAccountKeys")
        return self.keys[index]

    def need_accounts(self, n: int) -> None:
        if len(self.keys) < n:
            raise InstructionError("NotEnoughAccountKeys")

    def is_signer(self, key: Pubkey) -> bool:
        return key in self.tx.signers or key in self.pda_signers

    def require_signer(self, key: Pubkey) -> None:
        if not self.is_signer(key):
            raise InstructionError("MissingRequiredSignature")

    def log(self, message: str) -> None:
        self.tx.logs.append("Program log: " + message)


@dataclass(slots=True)
class Executed:
    """What a transaction did, not yet applied: `Runtime.land` applies it."""

    ptx: PreparedTx
    err: Any = None  # JSON TransactionError, None on success
    landable: bool = True  # a leader would include it (and charge its fee)
    logs: list[str] = field(default_factory=list)
    units: int = 0
    fee: int = 0
    unit_price: int = 0
    swaps: list[dict[str, Any]] = field(default_factory=list)
    memos: list[str] = field(default_factory=list)
    overlay: dict[Pubkey, Account | None] = field(default_factory=dict)
    payer_after_fee: Account | None = None
    writable_keys: set[Pubkey] = field(default_factory=set)

    @property
    def signature(self) -> Signature:
        return self.ptx.signature


def _rent_ok(pre: Account | None, post: Account | None) -> bool:
    """`check_rent_state`: an account may not become rent-paying (or more so)."""
    if post is None or post.lamports == 0:
        return True
    if post.lamports >= minimum_balance(post.size):
        return True
    if pre is None or pre.lamports == 0 or pre.lamports >= minimum_balance(pre.size):
        return False
    return pre.size == post.size and post.lamports <= pre.lamports


class Runtime:
    """Executes prepared transactions against a ledger with a table of programs."""

    def __init__(self, ledger: Ledger, programs: dict[Pubkey, Program]) -> None:
        self.ledger = ledger
        self.programs = programs
        self._decimals: dict[Pubkey, int] = {}

    # fees

    def compute_budget(self, instructions: list[tuple[Pubkey, list[int], bytes]]) -> ComputeBudget:
        return parse_compute_budget(instructions)

    def fee_for(self, num_signatures: int, budget: ComputeBudget) -> int:
        return LAMPORTS_PER_SIGNATURE * num_signatures + budget.priority_fee

    # execution

    def execute(
        self,
        ptx: PreparedTx,
        *,
        verify_signatures: bool = True,
        check_blockhash: bool = True,
    ) -> Executed:
        """Runs every gate and the instructions against an overlay; changes nothing.

        A failed signature check is reported as err ``"SignatureFailure"`` (not landable).
        """
        ledger = self.ledger
        result = Executed(ptx)
        if verify_signatures and not all(ptx.tx.verify_with_results()):
            result.err, result.landable = "SignatureFailure", False
            return result
        if check_blockhash and ledger.blockhash_slot(ptx.blockhash) is None:
            result.err, result.landable = "BlockhashNotFound", False
            return result
        if ptx.signature in ledger.history:
            result.err, result.landable = "AlreadyProcessed", False
            return result
        try:
            budget = parse_compute_budget(ptx.instructions)
        except TransactionError as exc:
            result.err, result.landable = exc.err, False
            return result
        for program_id, _, _ in ptx.instructions:
            if program_id not in self.programs:
                result.err, result.landable = "ProgramAccountNotFound", False
                return result
        keys = ptx.keys
        payer_key = keys[0]
        payer = ledger.accounts.get(payer_key)
        fee = self.fee_for(ptx.num_signers, budget)
        result.fee = fee
        result.unit_price = budget.unit_price
        if payer is None:
            result.err, result.landable = "AccountNotFound", False
            return result
        if payer.owner != SYSTEM_PROGRAM_ID or payer.data:
            result.err, result.landable = "InvalidAccountForFee", False
            return result
        if payer.lamports < fee:
            result.err, result.landable = "InsufficientFundsForFee", False
            return result
        payer_after_fee = payer.replace(lamports=payer.lamports - fee)
        if not _rent_ok(payer, payer_after_fee):
            result.err, result.landable = {"InsufficientFundsForRent": {"account_index": 0}}, False
            return result
        result.payer_after_fee = payer_after_fee

        writable_keys = {k for k, w in zip(keys, ptx.writable, strict=True) if w}
        result.writable_keys = writable_keys
        tx = TxContext(ledger, self.programs, set(keys[: ptx.num_signers]), writable_keys, budget.unit_limit)
        tx.overlay[payer_key] = payer_after_fee
        err: Any = None
        for index, (program_id, accounts, data) in enumerate(ptx.instructions):
            try:
                tx.invoke(program_id, [keys[a] for a in accounts], data)
            except InstructionError as exc:
                err = {"InstructionError": [index, exc.error]}
                break
        if err is None:
            for key, post in tx.overlay.items():
                if not _rent_ok(ledger.accounts.get(key), post):
                    err = {"InsufficientFundsForRent": {"account_index": keys.index(key)}}
                    break
        result.err = err
        result.logs = tx.logs
        result.units = tx.cu_used
        if err is None:
            result.overlay = tx.overlay
            result.swaps = tx.swaps
            result.memos = tx.memos
        return result

    def land(self, ex: Executed) -> TxRecord | None:
        """Applies a landable execution (its effects, or only its fee if it failed) in the current
        slot and records it. Returns the record, or None if no leader would include it."""
        if not ex.landable or ex.payer_after_fee is None:
            return None
        ledger = self.ledger
        ptx = ex.ptx
        keys = ptx.keys
        pre_balances = [ledger.lamports(k) for k in keys]
        pre_tokens = self._token_balances(keys, range(len(keys)))
        if ex.err is None:
            ledger.commit(ex.overlay.items())
            changed = {i for i, k in enumerate(keys) if k in ex.overlay}
            post_tokens = [t for t in pre_tokens if t.account_index not in changed]
            post_tokens += self._token_balances(keys, sorted(changed))
            post_tokens.sort(key=lambda t: t.account_index)
        else:
            ledger.put(keys[0], ex.payer_after_fee)
            post_tokens = pre_tokens
        record = TxRecord(
            signature=ptx.signature,
            raw=ptx.raw,
            slot=ledger.slot,
            block_time=ledger.unix_timestamp(),
            err=ex.err,
            fee=ex.fee,
            pre_balances=pre_balances,
            post_balances=[ledger.lamports(k) for k in keys],
            pre_token_balances=pre_tokens,
            post_token_balances=post_tokens,
            logs=ex.logs,
            units_consumed=ex.units,
            keys=tuple(keys),
        )
        ledger.record(record)
        ledger.note_priority_fee(ex.unit_price, ex.writable_keys)
        if ex.err is None and ex.swaps:
            ledger.swaps.append(_swap_summary(record, ex.swaps, ex.memos))
        return record

    def _token_balances(self, keys: list[Pubkey], indexes: Iterable[int]) -> list[TokenBalance]:
        """Balances of the token accounts among `keys[i]` for i in `indexes`, as the ledger holds them."""
        get = self.ledger.accounts.get
        out: list[TokenBalance] = []
        for index in indexes:
            key = keys[index]
            acct = get(key)
            if acct is None or acct.owner not in _TOKEN_PROGRAMS:
                continue
            data = acct.data
            n = len(data)
            if n < 165 or (n > 165 and data[165] != 2) or data[108] == 0:
                continue  # a mint, or an uninitialized account
            mint = Pubkey.from_bytes(data[0:32])
            decimals = self.mint_decimals(mint)
            if decimals is None:
                continue
            out.append(
                TokenBalance(
                    index,
                    mint,
                    Pubkey.from_bytes(data[32:64]),
                    acct.owner,
                    int.from_bytes(data[64:72], "little"),
                    decimals,
                )
            )
        return out

    def mint_decimals(self, mint: Pubkey) -> int | None:
        """A mint's decimals (they never change, so they are cached)."""
        decimals = self._decimals.get(mint)
        if decimals is None:
            acct = self.ledger.accounts.get(mint)
            if acct is None or acct.owner not in _TOKEN_PROGRAMS or len(acct.data) < 82:
                return None
            decimals = self._decimals[mint] = acct.data[44]
        return decimals


def _swap_summary(record: TxRecord, legs: list[dict[str, Any]], memos: list[str]) -> dict[str, Any]:
    """A landed swap transaction for `simSwaps`. Totals: what entered at the first leg's input
    mint and what left at the last leg's output mint (so a split route adds its legs up)."""
    input_mint = legs[0]["inputMint"]
    output_mint = legs[-1]["outputMint"]
    return {
        "signature": str(record.signature),
        "slot": record.slot,
        "memo": memos[0] if memos else None,
        "memos": list(memos),
        "venues": sorted({leg["venue"] for leg in legs}),
        "pools": [leg["pool"] for leg in legs],
        "legs": legs,
        "inputMint": input_mint,
        "outputMint": output_mint,
        "amountIn": sum(leg["amountIn"] for leg in legs if leg["inputMint"] == input_mint),
        "amountOut": sum(leg["amountOut"] for leg in legs if leg["outputMint"] == output_mint),
    }
