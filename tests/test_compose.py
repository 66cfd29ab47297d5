"""docker-compose.yml must be accepted by compose (no Docker engine needed for `config`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _has_compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


def test_compose_config_is_valid() -> None:
    if not _has_compose_plugin():
        pytest.skip(
            "`docker compose` is not installed (.ci/run installs it: scripts/install-compose-plugin.sh)"
        )
    result = subprocess.run(
        ["docker", "compose", "-f", "docker-compose.yml", "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    config = result.stdout
    for service in ("gateway", "worker", "router", "executor", "persistence", "redis", "postgres"):
        assert f"  {service}:" in config
    assert "appendonly" in config
    assert "service_healthy" in config


def test_key_reaches_only_the_executor() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    executor_block = text.split("  executor:")[1].split("\n  worker:")[0]
    assert "PRIVATE_KEY" in executor_block
    assert text.count("PRIVATE_KEY: ") == 1
