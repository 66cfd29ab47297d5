"""The Compute Budget program. Its instructions are read by the runtime before execution
(`simchain.runtime.parse_compute_budget`: unit limit, unit price); executed, they do nothing."""

from __future__ import annotations

from simchain.runtime import BUILTIN_COST, COMPUTE_BUDGET_PROGRAM_ID, Invocation


class ComputeBudgetProgram:
    program_id = COMPUTE_BUDGET_PROGRAM_ID
    builtin = True

    def process(self, inv: Invocation) -> None:
        inv.tx.consume(BUILTIN_COST)
