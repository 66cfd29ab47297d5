"""`python -m router_svc` at start: a real cluster without its RPC URL stops it with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.settings import REPO_ROOT


@pytest.mark.parametrize("chain", ["devnet", "mainnet-beta"])
def test_a_real_chain_without_rpc_url_stops_with_one_line(tmp_path: Path, chain: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SOLANA_RPC_URL", "MARKETS_FILE")}
    env.update(PYTHONPATH=str(REPO_ROOT), CHAIN=chain, ROUTER_ADDR="127.0.0.1:0", SIM_HOST="simchain")
    # cwd without a .env, so nothing but this environment configures the process
    result = subprocess.run(
        [sys.executable, "-m", "router_svc"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    (line,) = (result.stdout + result.stderr).strip().splitlines()
    assert json.loads(line)["msg"].startswith(f"config error: SOLANA_RPC_URL: required when CHAIN={chain}")
