"""Two commits measured in turns on one machine: `bench.bench_e2e` runs from this checkout and from
another commit's, one right after the other, and the figures of each side are printed as ranges.

    python -m bench.compare 44b484c --pairs 3 -- --sweep --rates 100,200,300,400 --step-seconds 10
    make bench-compare REF=44b484c PAIRS=3 ARGS="--orders 2000 --rate 100"

On a shared 2-core virtual machine the same commit moves from one run to the next by more than most
changes are worth (a sweep's 100/s p99 between 38 and 144 ms, its 400/s step between 369 and 399
orders/s), and the machine drifts within the hour. A single run of each side says little; pairs run
in turns (the order swapped every pair, so a drift favours neither) and read as ranges say what can
be said. The other commit is checked out in a temporary git worktree (removed afterwards) and runs
with this checkout's Python environment; everything after `--` goes to bench.bench_e2e unchanged.

For each offered rate it prints, per side, the range over the runs of: achieved orders/s, how many
runs sustained that rate (bench.bench_e2e's rule), submit→final p50 and p99, and the engine's CPU
per order, and the CPU per order of each process.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.bench_e2e import ENGINE, arguments, per_order_ms, saturation
from common.settings import REPO_ROOT

SIDES = ("base", "head")
_WIDTH = 16  # a side's column


def bench_command(bench_args: Sequence[str], json_path: Path) -> list[str]:
    return [sys.executable, "-m", "bench.bench_e2e", *bench_args, "--json", str(json_path)]


def span(values: Sequence[float], digits: int = 1) -> str:
    """'a–b' over the values (one value: itself; none: '-')."""
    if not values:
        return "-"
    low, high = min(values), max(values)
    if round(low, digits) == round(high, digits):
        return f"{low:.{digits}f}"
    return f"{low:.{digits}f}–{high:.{digits}f}"


def summarize(runs: dict[str, list[list[dict[str, Any]]]], limit_ms: float) -> list[str]:
    """The comparison's lines: for every offered rate any run reached, each side's ranges over its
    runs. `runs[side]` holds each run's steps as bench.bench_e2e writes them (`--json`)."""
    rates = sorted({float(step["rate"]) for side in SIDES for run in runs[side] for step in run})
    lines = [f"{'offered':>8}  {'measure':<22}" + "".join(f"{side:>{_WIDTH}}" for side in SIDES)]
    for rate in rates:
        steps = {side: [s for run in runs[side] for s in run if float(s["rate"]) == rate] for side in SIDES}
        cpu = {side: [per_order_ms(s) for s in steps[side]] for side in SIDES}
        rows: list[tuple[str, dict[str, str]]] = [
            ("runs that got here", {side: f"{len(steps[side])} of {len(runs[side])}" for side in SIDES}),
            ("achieved /s", {side: span([s["achieved"] for s in steps[side]]) for side in SIDES}),
            (
                "sustained",
                {
                    side: f"{sum(not saturation(s, limit_ms) for s in steps[side])} of {len(steps[side])}"
                    for side in SIDES
                },
            ),
        ]
        for label, index in (("submit→final p50 ms", 0), ("submit→final p99 ms", 2)):
            rows.append(
                (
                    label,
                    {
                        side: span([s["e2e_ms"][index] for s in steps[side] if s.get("e2e_ms")])
                        for side in SIDES
                    },
                )
            )
        rows.append(
            ("CPU ms/order, engine", {side: span([c["engine"] for c in cpu[side]], 2) for side in SIDES})
        )
        for name in ENGINE:
            rows.append(
                (f"  {name}", {side: span([c[name] for c in cpu[side] if name in c], 2) for side in SIDES})
            )
        for k, (label, cells) in enumerate(rows):
            lead = f"{rate:>8g}" if k == 0 else " " * 8
            lines.append(f"{lead}  {label:<22}" + "".join(f"{cells[side]:>{_WIDTH}}" for side in SIDES))
    return lines


def worktree(ref: str, where: Path) -> Path:
    """`ref` checked out (detached) in a new worktree under `where`."""
    tree = where / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(tree), ref],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    return tree


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ref", help="the commit to compare this checkout with (base)")
    parser.add_argument("--pairs", type=int, default=3, help="runs of each side, in turns (3)")
    parser.epilog = "Everything after -- goes to bench.bench_e2e."
    given = list(sys.argv[1:] if argv is None else argv)
    cut = given.index("--") if "--" in given else len(given)
    args = parser.parse_args(given[:cut])
    bench_args = given[cut + 1 :]
    bench = arguments().parse_args(bench_args)  # bench_e2e's own reading: its errors, its defaults
    if bench.json or bench.url:
        parser.error("--json and --url are bench.compare's own business: each side starts its own stack")
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    runs: dict[str, list[list[dict[str, Any]]]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory(prefix="oe-compare-") as tmp:
        where = Path(tmp)
        tree = worktree(args.ref, where)
        try:
            trees = {"base": tree, "head": REPO_ROOT}
            for pair in range(args.pairs):
                order = SIDES if pair % 2 == 0 else tuple(reversed(SIDES))
                for side in order:
                    out = where / f"{side}-{pair}.json"
                    print(f"pair {pair + 1}/{args.pairs}: {side} ({trees[side]})", flush=True)
                    done = subprocess.run(bench_command(bench_args, out), cwd=trees[side], check=False)
                    if not out.exists():
                        raise SystemExit(f"{side} run {pair + 1} wrote no figures (exit {done.returncode})")
                    runs[side].append(orjson.loads(out.read_bytes()))
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)],
                cwd=REPO_ROOT,
                check=False,
                capture_output=True,
            )
    print(f"\nbase {args.ref}, head this checkout; {args.pairs} runs each, in turns")
    for line in summarize(runs, bench.p99_limit_ms):
        print(line)


if __name__ == "__main__":
    main()
