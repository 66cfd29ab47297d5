"""The SPL Memo programs (v2 and v1).

v2 requires every account passed to have signed and logs ``Memo (len N): "text"``; v1 only checks
that the memo is UTF-8. Each memo is kept on the transaction, so `simSwaps` can report it.
"""

from __future__ import annotations

from typing import Final

import orjson
from solders.pubkey import Pubkey

from simchain.runtime import InstructionError, Invocation

MEMO_PROGRAM_ID: Final = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
MEMO_V1_PROGRAM_ID: Final = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")


class MemoProgram:
    builtin = False

    def __init__(self, program_id: Pubkey = MEMO_PROGRAM_ID) -> None:
        self.program_id = program_id
        self.v1 = program_id == MEMO_V1_PROGRAM_ID

    def process(self, inv: Invocation) -> None:
        inv.tx.consume(6_000 + 25 * len(inv.data))
        if not self.v1:
            for key in inv.keys:
                if not inv.is_signer(key):
                    inv.log("Missing required signature")
                    raise InstructionError("MissingRequiredSignature")
                inv.log(f"Signed by {key}")
        try:
            text = inv.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            inv.log(f"Invalid UTF-8, from byte {exc.start}")
            raise InstructionError("InvalidInstructionData") from None
        if not self.v1:
            inv.log(f"Memo (len {len(inv.data)}): {orjson.dumps(text).decode()}")
        inv.tx.memos.append(text)
