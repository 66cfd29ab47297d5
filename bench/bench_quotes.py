"""Latency of exact quotes from cached, decoded accounts.

    python -m bench.bench_quotes [--n 3000]

Prints p50/p95/p99 per case, wall clock and on-CPU time of the quoting thread: a Raydium CPMM
quote (the fixture wSOL/pump pool), Meteora DLMM quotes on both fixture pairs (a few bins, limit
orders), a DLMM walk across ~50 bins of a synthetic pair built with the real layouts, and a
two-venue split. Targets: a venue's quote p99 <= 2 ms, the 50-bin walk <= 1 ms, judged on the
on-CPU p99 (the wall-clock tail on a shared machine measures the other processes; compare the
two columns and the printed load average).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from solders.pubkey import Pubkey

from common.dex import meteora_dlmm as dlmm
from common.dex import raydium_cpmm as cpmm
from common.dex import synthetic
from common.dex.routing import best_split
from common.dex.spl_token import decode_mint, decode_token_account

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "solana"


def _load(rel: str) -> tuple[Pubkey, Pubkey, bytes]:
    doc = json.loads((FIXTURES / rel).read_text())
    a = doc["account"]
    return Pubkey.from_string(doc["pubkey"]), Pubkey.from_string(a["owner"]), base64.b64decode(a["data"][0])


def _accounts(fixture_id: str) -> dict[str, tuple[Pubkey, Pubkey, bytes]]:
    pools = {p["id"]: p for p in json.loads((FIXTURES / "pools.json").read_text())}
    return {role: _load(a["file"]) for role, a in pools[fixture_id]["accounts"].items()}


def _percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return q[49] / 1e3, q[94] / 1e3, q[98] / 1e3


def _run(name: str, fn: Callable[[int], object], amounts: list[int], target_us: float | None) -> bool:
    """Time ``fn`` per amount: wall clock, and this thread's CPU time (immune to other processes
    taking the CPU, which on a shared 2-core machine dominates the wall-clock tail)."""
    for a in amounts[:50]:  # warm caches (prices, PDAs)
        fn(a)
    wall: list[int] = []
    cpu: list[int] = []
    for a in amounts:
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        fn(a)
        wall.append(time.perf_counter_ns() - t0)
        cpu.append(time.thread_time_ns() - c0)
    w50, w95, w99 = _percentiles(wall)
    c50, c95, c99 = _percentiles(cpu)
    ok = target_us is None or c99 <= target_us
    target = f"<= {target_us:,.0f}" if target_us is not None else "-"
    print(
        f"{name:<46} {w50:>8.1f} {w95:>8.1f} {w99:>8.1f} | {c50:>8.1f} {c95:>8.1f} {c99:>8.1f}"
        f"   {target:>8}  {'ok' if ok else 'MISSED'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=3000, help="quotes per case")
    args = parser.parse_args()
    rng = random.Random(7)
    n = args.n

    # Raydium CPMM, decoded once
    acc = _accounts("raydium_cpmm/2higKRf25Q9WMcYfgyK96AAuFVv5zucfDAFHHDuVETcq")
    program = acc["pool_state"][1]
    pool = cpmm.decode_pool_state(*acc["pool_state"], program)
    config = cpmm.decode_amm_config(*acc["amm_config"], program)
    v0 = decode_token_account(*acc["token_0_vault"]).amount
    v1 = decode_token_account(*acc["token_1_vault"]).amount
    fee_1 = decode_mint(*acc["token_1_mint"]).transfer_fee_config

    def q_cpmm(amount: int) -> object:
        return cpmm.quote_exact_in(pool, config, v0, v1, amount, True, 1789000000, None, fee_1, 1041)

    # Meteora DLMM fixture pairs, decoded once
    def dlmm_state(fid: str) -> tuple[dlmm.LbPair, dict[int, dlmm.BinArray]]:
        a = _accounts(fid)
        prog = a["lb_pair"][1]
        pair = dlmm.decode_lb_pair(*a["lb_pair"], prog)
        arrays = {}
        for role in ("bin_array_-1", "bin_array_0"):
            arr = dlmm.decode_bin_array(*a[role], prog)
            arrays[arr.index] = arr
        return pair, arrays

    b5_pair, b5_arrays = dlmm_state("meteora_dlmm/B5Eia4cE71tKuEDaqPHucJLG2fxySKyKzLMewd2nUvoc")
    t9_pair, t9_arrays = dlmm_state("meteora_dlmm/9t3EyC9FweyL7PBWvKz3mrXg8B9fwFc9SK3QxM4ENqhd")

    def q_b5(amount: int) -> object:
        return dlmm.quote_exact_in(b5_pair, b5_arrays, amount, False, 450000000, 1789000000, 1041)

    def q_t9(amount: int) -> object:
        return dlmm.quote_exact_in(t9_pair, t9_arrays, amount, True, 450000000, 1789000000, 1041)

    # synthetic pair for the 50-bin walk
    prog = Pubkey.from_string("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo")
    accounts = synthetic.make_dlmm_pair(
        prog, Pubkey.new_unique(), Pubkey.new_unique(), 9, 6, Fraction(150), 10, 10**15, 150 * 10**12, 60
    )
    addr = next(iter(accounts))
    s_pair = dlmm.decode_lb_pair(addr, *accounts[addr][:2], prog)
    s_arrays = {
        a.index: a
        for a in (
            dlmm.decode_bin_array(k, o, d, prog)
            for k, (o, d, _) in accounts.items()
            if d[:8] == dlmm.DISC_BIN_ARRAY
        )
    }
    walk_amount = 14 * 10**13
    crossed = dlmm.quote_exact_in(s_pair, s_arrays, walk_amount, False, 1, 1789000000, 1).bins_crossed

    def q_walk(amount: int) -> object:
        return dlmm.quote_exact_in(s_pair, s_arrays, amount, False, 1, 1789000000, 1)

    def q_split(amount: int) -> object:
        return best_split(
            lambda a: q_cpmm(a).amount_out,  # type: ignore[attr-defined]
            lambda a: q_t9(a).amount_out,  # type: ignore[attr-defined]
            amount,
            resolution=max(1, amount // 10_000),
        )

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.2f}; {n} quotes per case; microseconds")
    print(
        f"{'case':<46} {'wall p50':>8} {'p95':>8} {'p99':>8} | {'cpu p50':>8} {'p95':>8} {'p99':>8}"
        f"   {'target':>8}"
    )
    ok = True
    ok &= _run("raydium_cpmm quote_exact_in", q_cpmm, [int(10 ** rng.uniform(3, 12)) for _ in range(n)], 2000)
    ok &= _run(
        "meteora_dlmm quote_exact_in (B5E, 0-27 bins)",
        q_b5,
        [int(10 ** rng.uniform(3, 9)) for _ in range(n)],
        2000,
    )
    ok &= _run(
        "meteora_dlmm quote_exact_in (9t3, limit orders)",
        q_t9,
        [int(10 ** rng.uniform(3, 11)) for _ in range(n)],
        2000,
    )
    ok &= _run(
        f"meteora_dlmm walk across {crossed} bins",
        q_walk,
        [walk_amount + rng.randint(0, 10**9) for _ in range(n)],
        1000,
    )
    _run(
        "best_split cpmm+dlmm (resolution 1e-4)",
        q_split,
        [int(10 ** rng.uniform(8, 11)) for _ in range(max(50, n // 20))],
        None,
    )
    print("all targets met (on-CPU p99)" if ok else "some targets MISSED (on-CPU p99)")


if __name__ == "__main__":
    main()
