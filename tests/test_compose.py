"""docker-compose.yml must be accepted by compose (no Docker engine needed for `config`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _compose() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_config_is_valid() -> None:
    compose = _compose()
    if compose is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (.ci/run installs it)")
    result = subprocess.run([*compose, "config"], cwd=REPO, capture_output=True, text=True,
                            env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
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
