"""`python -m executor_svc` on a real cluster's configuration without a key: it stops at once with
exit status 1 and one line that names the missing variable (and never starts serving)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from solders.keypair import Keypair

from common.settings import REPO_ROOT


def run_executor(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    child = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    child.update(PYTHONPATH=str(REPO_ROOT), EXECUTOR_ADDR="127.0.0.1:0", **env)
    # cwd without a .env, so nothing but this environment configures the process
    return subprocess.run(
        [sys.executable, "-m", "executor_svc"],
        cwd=tmp_path,
        env=child,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "env",
    [
        {"CHAIN": "custom", "SOLANA_RPC_URL": "http://127.0.0.1:9", "MARKETS_FILE": "mainnet-beta.json"},
        {"CHAIN": "devnet"},
        {"CHAIN": "mainnet-beta", "SOLANA_RPC_URL": "http://127.0.0.1:9"},
    ],
    ids=["custom", "devnet", "mainnet-beta"],
)
def test_real_chain_without_a_key_fails_with_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    if "MARKETS_FILE" in env:
        env = {**env, "MARKETS_FILE": str(REPO_ROOT / "markets" / env["MARKETS_FILE"])}
    result = run_executor(tmp_path, **env)
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    message = json.loads(lines[0])["msg"]
    assert message.startswith("config error: PRIVATE_KEY: ")
    assert "KEYPAIR_PATH" in message and f"CHAIN={env['CHAIN']}" in message


def test_custom_chain_names_each_missing_variable(tmp_path: Path) -> None:
    result = run_executor(tmp_path, CHAIN="custom", KEYPAIR_PATH=str(tmp_path / "missing.json"))
    assert result.returncode == 1
    (line,) = (result.stdout + result.stderr).strip().splitlines()
    assert json.loads(line)["msg"].startswith("config error: MARKETS_FILE: required when CHAIN=custom")


def test_a_keypair_file_open_to_others_stops_the_executor(tmp_path: Path) -> None:
    keypair = Keypair()
    path = tmp_path / "id.json"
    path.write_text(json.dumps(list(bytes(keypair))))
    path.chmod(0o644)
    result = run_executor(tmp_path, CHAIN="devnet", KEYPAIR_PATH=str(path))
    assert result.returncode == 1
    (line,) = (result.stdout + result.stderr).strip().splitlines()
    message = json.loads(line)["msg"]
    assert message.startswith("config error: KEYPAIR_PATH: ") and f"chmod 600 {path}" in message
    assert str(keypair) not in line
