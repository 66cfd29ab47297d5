"""The simulated chain (`CHAIN=sim`): a Solana JSON-RPC node in one process, in memory.

The real solana-py `AsyncClient` talks to it over HTTP, so the router and executor run the same
code as against a cluster, down to the JSON-RPC boundary. It keeps accounts in the real on-chain
layouts (SPL Token, Raydium CPMM, Meteora DLMM), verifies every signature and blockhash, charges
fees, and executes System, Compute Budget, SPL Token / Token-2022, Associated Token Account, Memo
and both DEXes' swap instructions with the exact math of `common.dex`, atomically.

Modules: `ledger` (accounts, slots, blockhashes, history), `runtime` (verification and
execution), `programs/` (one module per program), `rpc` (the JSON-RPC methods), `server` (HTTP,
fault injection, start/stop), `genesis` (tokens, pools, faucet; writes markets/sim.json).

SIM EXTENSIONS (documented where they live):

- `requestAirdrop` also gives the wallet an associated token account holding 1,000,000 of every
  genesis token (wSOL included), so an ephemeral wallet is funded by one call (`genesis`).
- admin methods `simSetFaults`, `simSwaps`, `simWarpSlots` (`rpc`).
"""
