"""Ledger bookkeeping: blockhash window, clock, history bounds, account caches."""

from __future__ import annotations

import struct

from solders.pubkey import Pubkey
from solders.signature import Signature

from simchain.ledger import (
    MAX_PROCESSING_AGE,
    SYSTEM_PROGRAM_ID,
    SYSVAR_CLOCK,
    Account,
    Ledger,
    TxRecord,
    minimum_balance,
)


def _ledger() -> Ledger:
    return Ledger(slot_ms=400, unix_start=1_700_000_000)


def test_blockhash_window() -> None:
    ledger = _ledger()
    first = ledger.blockhash
    assert ledger.blockhash_slot(first) == 0
    ledger.advance(MAX_PROCESSING_AGE)
    assert ledger.blockhash_slot(first) == 0  # age 150: still valid
    ledger.advance(1)
    assert ledger.blockhash_slot(first) is None
    mid = ledger.blockhash
    ledger.advance(10_000)  # a warp far past the window keeps exactly the last 151 hashes
    assert ledger.blockhash_slot(mid) is None
    assert ledger.blockhash_slot(ledger.blockhash) == ledger.slot
    assert ledger.blockhash_at_commitment("finalized")[1] == ledger.slot - 32 + MAX_PROCESSING_AGE
    assert Ledger(slot_ms=20, unix_start=0).blockhash == first  # deterministic from the slot


def test_clock_sysvar() -> None:
    ledger = _ledger()
    ledger.advance(432_001)
    acct = ledger.get(SYSVAR_CLOCK)
    assert acct is not None
    slot, epoch_start, epoch, leader_epoch, unix_ts = struct.unpack("<QqQQq", acct.data)
    assert (slot, epoch, leader_epoch) == (432_001, 1, 2)
    assert unix_ts == 1_700_000_000 + 432_001 * 400 // 1000
    assert epoch_start == 1_700_000_000 + 432_000 * 400 // 1000


def test_rent() -> None:
    assert minimum_balance(0) == 890_880
    assert minimum_balance(165) == 2_039_280


def _record(ledger: Ledger) -> TxRecord:
    sig = Signature.from_bytes(Pubkey.new_unique().__bytes__() * 2)
    rec = TxRecord(sig, b"", ledger.slot, 0, None, 5000, [], [], [], [], [], 0)
    ledger.record(rec)
    return rec


def test_history_keeps_what_the_status_cache_needs() -> None:
    ledger = _ledger()
    ledger.history_limit = 2
    recent = [_record(ledger) for _ in range(5)]
    assert len(ledger.history) == 5  # all within their blockhash's lifetime: kept
    ledger.advance(MAX_PROCESSING_AGE + 2)
    newest = _record(ledger)
    assert recent[0].signature not in ledger.history
    assert newest.signature in ledger.history and len(ledger.history) == 2
    assert set(ledger.history_by_str) == {str(r.signature) for r in ledger.history.values()}


def test_account_lazy_data_and_decoded_cache() -> None:
    calls = []

    def encode(obj: object) -> bytes:
        calls.append(obj)
        return b"y" * 8

    base = Account(minimum_balance(8), SYSTEM_PROGRAM_ID, b"x" * 8)
    lazy = base.replace(decoded="obj", encode=encode)
    assert lazy.size == 8 and not calls
    assert lazy.data == b"y" * 8 and lazy.data == b"y" * 8
    assert calls == ["obj"]
    key = Pubkey.new_unique()
    assert lazy.decoded(str, lambda *a: "never", key) == "obj"
    fresh = Account(1, SYSTEM_PROGRAM_ID, b"z")
    assert fresh.decoded(str, lambda addr, owner, data: data.decode() + "!", key) == "z!"
    assert fresh.replace(lamports=5).decoded(str, lambda *a: "again", key) == "z!"  # same bytes, same cache
