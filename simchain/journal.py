"""The simulated chain's journal: what it landed survives a restart, as a validator's ledger does.

With SIM_DATA_DIR set, the node appends to `<SIM_DATA_DIR>/journal.jsonl` every change that does not
follow from genesis and the clock: each landed transaction (its wire bytes and slot) and each
airdrop's token grant, in order; and each `simWarpSlots`. At start the node rebuilds genesis and
replays the journal in order through the same runtime (a transaction re-executed at its own slot
against the same accounts gives the same result), then moves the tip to where the clock says it is
now, so blockhashes keep expiring in real time while the node was down.

Durability: entries are buffered while a JSON-RPC request is handled and written with one
`os.write` (no fsync) before its answer leaves, so a transaction the node reported as processed
(or whose status anyone saw) is on disk before anyone could know of it; a SIGKILL of the node loses
nothing (the kernel keeps the written pages), a power cut may. A torn last line (a write cut short)
is dropped when the journal is opened. A journal describes one chain (its slot length and DEX
program ids, from its first line); opening it with other settings is refused.

The journal grows with every transaction and replay time with it (about the chain's own CPU time
per transaction); a snapshot to replay from is the next step if runs get long.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
from solders.pubkey import Pubkey

from simchain.ledger import Ledger, TxRecord
from simchain.runtime import Runtime, prepare

log = logging.getLogger(__name__)

FILE_NAME: Final = "journal.jsonl"
VERSION: Final = 1


class JournalError(RuntimeError):
    """The journal cannot be used (another chain's, unreadable); the message names SIM_DATA_DIR."""


@dataclass
class Replayed:
    """What replaying a journal restored."""

    transactions: int = 0
    airdrops: int = 0
    warped_slots: int = 0
    last_slot: int = 0
    mismatches: int = 0  # transactions whose replay did not land as recorded (should stay 0)


@dataclass
class Journal:
    """An open journal: `header` describes the chain; entries are buffered until `flush`."""

    path: Path
    header: dict[str, Any]
    _fd: int
    _pending: list[bytes] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)  # read at open, for `replay`

    @classmethod
    def open(cls, directory: Path, *, slot_ms: int, programs: dict[str, str], unix_start: int) -> Journal:
        """Opens (or creates) the journal in `directory`; a new one records this chain's identity."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / FILE_NAME
            data = path.read_bytes() if path.exists() else b""
        except OSError as exc:
            raise JournalError(f"SIM_DATA_DIR: {directory}: {exc.strerror}") from None
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" after a final newline; else a write cut short
        if torn:
            log.warning("dropping a torn last journal line", extra={"bytes": len(torn)})
            with open(path, "r+b") as f:
                f.truncate(len(data) - len(torn))
        entries = []
        for number, line in enumerate(lines, 1):
            try:
                entries.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                raise JournalError(f"SIM_DATA_DIR: {path} line {number} is not JSON") from None
        identity = {"slotMs": slot_ms, "programs": dict(sorted(programs.items()))}
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if entries:
            header = entries.pop(0)
            if header.get("k") != "chain" or header.get("v") != VERSION:
                os.close(fd)
                raise JournalError(f"SIM_DATA_DIR: {path} is not a version-{VERSION} chain journal")
            if {k: header.get(k) for k in identity} != identity:
                os.close(fd)
                raise JournalError(
                    f"SIM_DATA_DIR: {path} holds another chain (SIM_SLOT_MS={header.get('slotMs')}, "
                    "or other program ids); remove it or choose another SIM_DATA_DIR"
                )
            return cls(path, header, fd, entries=entries)
        header = {"k": "chain", "v": VERSION, **identity, "unixStart": unix_start, "startedMs": _now_ms()}
        journal = cls(path, header, fd)
        journal._pending.append(orjson.dumps(header) + b"\n")
        journal.flush()
        return journal

    # -- writing -------------------------------------------------------------------------------

    def transaction(self, record: TxRecord) -> None:
        self._pending.append(
            b'{"k":"tx","s":%d,"r":"%s"}\n' % (record.slot, base64.b64encode(record.raw))  # noqa: UP031
        )

    def airdrop(self, wallet: Pubkey, slot: int) -> None:
        self._pending.append(orjson.dumps({"k": "air", "s": slot, "w": str(wallet)}) + b"\n")

    def warp(self, slots: int) -> None:
        self._pending.append(orjson.dumps({"k": "warp", "n": slots}) + b"\n")

    def flush(self) -> None:
        """Writes what is buffered. A node that cannot write its journal must not answer as if it
        had: it exits (the supervisor restarts it from what is on disk)."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            log.critical("cannot write the chain journal; exiting", extra={"error": exc.strerror})
            os._exit(70)

    def close(self) -> None:
        self.flush()
        os.close(self._fd)

    # -- reading -------------------------------------------------------------------------------

    def replay(self, ledger: Ledger, runtime: Runtime, airdrop_tokens: Callable[[Pubkey], None]) -> Replayed:
        """Applies the entries read at open to a ledger at genesis, each at its own slot."""
        done = Replayed()
        for entry in self.entries:
            kind = entry.get("k")
            if kind == "warp":
                done.warped_slots += int(entry["n"])
                continue
            slot = int(entry["s"])
            if slot > ledger.slot:
                ledger.advance(slot - ledger.slot)
            if kind == "tx":
                executed = runtime.execute(prepare(base64.b64decode(entry["r"])), verify_signatures=False)
                if runtime.land(executed) is None:
                    done.mismatches += 1
                done.transactions += 1
            elif kind == "air":
                airdrop_tokens(Pubkey.from_string(entry["w"]))
                done.airdrops += 1
            done.last_slot = slot
        self.entries = []
        return done

    def tip_now(self, slot_ms: int, replayed: Replayed) -> int:
        """The slot the chain is at now: its clock since it started, plus any warps."""
        elapsed = (_now_ms() - int(self.header["startedMs"])) // slot_ms
        return max(replayed.last_slot, int(elapsed) + replayed.warped_slots)


def _now_ms() -> int:
    return int(time.time() * 1000)
