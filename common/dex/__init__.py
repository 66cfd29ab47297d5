"""Exact, integer-only DEX math, account layouts and instruction formats.

Modules:

- :mod:`common.dex.errors` -- :class:`QuoteError` (a program error, by code and name) and
  :class:`LayoutError` (an account that is not what it claims to be).
- :mod:`common.dex.spl_token` -- SPL Token / Token-2022 mints and token accounts, transfer fees, ATAs.
- :mod:`common.dex.raydium_cpmm` -- Raydium CPMM (``raydium-cp-swap``) pool state, math, ``swap_base_input``.
- :mod:`common.dex.meteora_dlmm` -- Meteora DLMM (``lb_clmm`` 0.12) pair, bin arrays, math, ``swap2``.
- :mod:`common.dex.routing` -- exact integer split of one order across two venues.
- :mod:`common.dex.synthetic` -- realistic pools in the real layouts for the simulated chain.

Program ids are never constants here: every function that needs one takes it as a parameter.
"""
