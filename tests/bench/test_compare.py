"""bench.compare: two commits' runs read as ranges per offered rate, sustained by bench_e2e's rule."""

from __future__ import annotations

from typing import Any

import pytest

from bench.compare import main, span, summarize


def step(
    rate: float, achieved: float, p50: float, p99: float, engine_s: float, backlog: int = 0
) -> dict[str, Any]:
    """One step as bench.bench_e2e writes it (--json): 100 orders completed in its window."""
    return {
        "rate": rate,
        "sent_rate": rate,
        "achieved": achieved,
        "e2e_ms": [p50, p50 * 1.5, p99, p99 * 1.2],
        "inflight_start": 5,
        "inflight_end": 5 + backlog,
        "rejected": {},
        "missing": [],
        "unanswered": 0,
        "completed_in_window": 100,
        "cpu_s": {"gateway": engine_s / 2, "worker": engine_s / 2, "client": 0.01},
    }


def test_each_side_reads_as_ranges_per_offered_rate() -> None:
    runs = {
        "base": [
            [step(100, 99.8, 30, 90, 1.6), step(400, 380, 600, 900, 0.48, backlog=300)],
            [step(100, 100.1, 40, 120, 1.7), step(400, 399, 500, 800, 0.46)],
        ],
        "head": [
            [step(100, 100.0, 20, 60, 1.5)],  # this run stopped before 400/s
            [step(100, 99.9, 25, 70, 1.5), step(400, 398, 450, 700, 0.45)],
        ],
    }
    lines = summarize(runs, limit_ms=5000)
    cells = {}
    rate = ""
    for line in lines[1:]:
        rate = line[:8].strip() or rate
        measure, base, head = line[10:32].strip(), line[32:48].strip(), line[48:].strip()
        cells[(rate, measure)] = (base, head)
    assert cells[("100", "runs that got here")] == ("2 of 2", "2 of 2")
    assert cells[("100", "achieved /s")] == ("99.8–100.1", "99.9–100.0")
    assert cells[("100", "submit→final p50 ms")] == ("30.0–40.0", "20.0–25.0")
    assert cells[("100", "submit→final p99 ms")] == ("90.0–120.0", "60.0–70.0")
    assert cells[("100", "CPU ms/order, engine")] == ("16.00–17.00", "15.00")
    assert cells[("100", "gateway")] == ("8.00–8.50", "7.50")
    assert cells[("100", "executor")] == ("-", "-")  # no run measured it
    assert cells[("400", "runs that got here")] == ("2 of 2", "1 of 2")  # one head run stopped before
    assert cells[("400", "achieved /s")] == ("380.0–399.0", "398.0")
    assert cells[("400", "sustained")] == ("1 of 2", "1 of 1")  # the backlog grew in one base run
    assert cells[("400", "CPU ms/order, engine")] == ("4.60–4.80", "4.50")


def test_a_step_is_sustained_by_the_p99_bound_bench_e2e_applies() -> None:
    from bench.bench_e2e import arguments  # bench.compare reads the bound with bench_e2e's own parser

    assert arguments().parse_args(["--sweep", "--p99-limit-ms", "5000"]).p99_limit_ms == 5000
    assert arguments().parse_args(["--p99-limit-ms=250"]).p99_limit_ms == 250
    assert arguments().parse_args(["--orders", "100"]).p99_limit_ms == 500  # bench_e2e's default
    slow = [step(100, 100, 30, 900, 1.6)]
    sustained = summarize({"base": [slow], "head": [slow]}, limit_ms=500)[3]
    assert "sustained" in sustained and sustained.split()[-6:] == ["0", "of", "1", "0", "of", "1"]
    sustained = summarize({"base": [slow], "head": [slow]}, limit_ms=1000)[3]
    assert sustained.split()[-6:] == ["1", "of", "1", "1", "of", "1"]


def test_span() -> None:
    assert span([]) == "-"
    assert span([3.04, 3.01]) == "3.0"
    assert span([1.0, 2.5, 2.0]) == "1.0–2.5"
    assert span([4.123, 4.5], 2) == "4.12–4.50"


@pytest.mark.parametrize("forbidden", [["--json", "x.json"], ["--url", "http://127.0.0.1:3000"]])
def test_json_and_url_are_its_own(forbidden: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["HEAD", "--", "--orders", "10", *forbidden])
    assert exc.value.code == 2
    assert "--json and --url" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.e2e
def test_a_short_comparison_runs_both_sides_and_leaves_no_worktree() -> None:
    import subprocess
    import sys

    from common.settings import REPO_ROOT

    def worktrees() -> int:
        listed = subprocess.run(["git", "worktree", "list"], cwd=REPO_ROOT, capture_output=True, text=True)
        return len(listed.stdout.splitlines())

    before = worktrees()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.compare",
            "HEAD",
            "--pairs",
            "1",
            "--",
            "--orders",
            "10",
            "--rate",
            "10",
        ]
        + ["--warmup", "0.3"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "pair 1/1: base" in out.stdout and "pair 1/1: head" in out.stdout
    lines = out.stdout.splitlines()
    (at_10,) = [line for line in lines if line.startswith("      10  runs that got here")]
    assert at_10.split()[-6:] == ["1", "of", "1", "1", "of", "1"]
    assert worktrees() == before  # the base's worktree is removed
