"""The programs the simulated chain runs, one module each.

`programs_for(markets)` builds the runtime's program table: the runtime's builtins and SPL programs
at their protocol addresses, and the two DEX programs at the ids the markets file names (program
ids of DEXes are configuration, never constants here).
"""

from __future__ import annotations

from solders.pubkey import Pubkey

from common.dex.spl_token import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from common.markets import Markets
from simchain.programs.associated_token import AssociatedTokenProgram
from simchain.programs.compute_budget import ComputeBudgetProgram
from simchain.programs.memo import MEMO_PROGRAM_ID, MEMO_V1_PROGRAM_ID, MemoProgram
from simchain.programs.meteora_dlmm import MeteoraDlmmProgram
from simchain.programs.raydium_cpmm import RaydiumCpmmProgram
from simchain.programs.system import SystemProgram
from simchain.programs.token import TokenProgram
from simchain.runtime import Program


def programs_for(markets: Markets) -> dict[Pubkey, Program]:
    table: list[Program] = [
        SystemProgram(),
        ComputeBudgetProgram(),
        TokenProgram(TOKEN_PROGRAM_ID),
        TokenProgram(TOKEN_2022_PROGRAM_ID),
        AssociatedTokenProgram(),
        MemoProgram(MEMO_PROGRAM_ID),
        MemoProgram(MEMO_V1_PROGRAM_ID),
    ]
    if "raydium_cpmm" in markets.programs:
        table.append(RaydiumCpmmProgram(markets.program_id("raydium_cpmm")))
    if "meteora_dlmm" in markets.programs:
        table.append(MeteoraDlmmProgram(markets.program_id("meteora_dlmm")))
    return {p.program_id: p for p in table}
