"""docker-compose.yml must be accepted by compose (no Docker engine needed for `config`), and the
rendered configuration must keep its promises: every stateless service scales, one load balancer
publishes one port on 127.0.0.1, every setting comes from env_file, the key and the markets file are
read-only mounts (the key into the executor only), and the networks isolate the executor and Postgres.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from common.grpc_client import target
from common.settings import SIM_ONLY_PASSWORD

REPO = Path(__file__).resolve().parent.parent
ENGINE = ("gateway", "worker", "router", "executor", "persistence", "simchain")
SCALED = ("gateway", "worker", "router", "executor")
COMPOSE_ENV = {"REDIS_PASSWORD": "redis-pw", "POSTGRES_PASSWORD": "pg-pw"}


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
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **COMPOSE_ENV},
    )
    assert result.returncode == 0, result.stderr
    config = result.stdout
    for service in ("gateway", "worker", "router", "executor", "persistence", "redis", "postgres"):
        assert f"  {service}:" in config
    assert "appendonly" in config
    assert "service_healthy" in config


def needs_compose() -> None:
    if not _has_compose_plugin():
        pytest.skip("`docker compose` is not installed (.ci/run installs it)")


def render(project: Path, env: dict[str, str], dotenv: str = "") -> dict[str, Any]:
    """`docker compose config` of a copy of the compose project in `project`, with `dotenv` as its
    .env (the file compose passes to every engine container through env_file)."""
    shutil.copy(REPO / "docker-compose.yml", project / "docker-compose.yml")
    shutil.copytree(REPO / "deploy", project / "deploy", dirs_exist_ok=True)
    shutil.copytree(REPO / "markets", project / "markets", dirs_exist_ok=True)
    (project / ".env").write_text(dotenv)
    result = subprocess.run(
        ["docker", "compose", "--profile", "observability", "config", "--format", "json"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    needs_compose()
    return render(tmp_path, COMPOSE_ENV)


def test_every_stateless_service_can_scale(config: dict[str, Any]) -> None:
    """`--scale` fails on a fixed host port or a container name: only the balancer publishes one."""
    services = config["services"]
    for name in SCALED:
        assert "container_name" not in services[name]
        assert not services[name].get("ports"), f"{name} publishes a port: it could not scale"
    published = {n: s["ports"] for n, s in services.items() if s.get("ports")}
    assert set(published) == {"lb", "prometheus", "grafana"}
    for ports in published.values():
        assert all(p["host_ip"] == "127.0.0.1" for p in ports)
    (lb_port,) = published["lb"]
    assert (lb_port["published"], lb_port["target"]) == ("3000", 8080)


def test_the_gateway_sits_behind_haproxy(config: dict[str, Any]) -> None:
    lb = config["services"]["lb"]
    assert lb["image"].startswith("haproxy:")
    (mount,) = lb["volumes"]
    assert mount["source"].endswith("deploy/compose/haproxy.cfg") and mount["read_only"]
    cfg = (REPO / "deploy/compose/haproxy.cfg").read_text()
    assert "server-template gateway" in cfg and "gateway:3000" in cfg and "resolvers docker" in cfg
    assert "uri /healthz" in cfg and "timeout tunnel" in cfg
    # the gateway trusts X-Forwarded-For (its rate limit is per client address) because the
    # balancer replaces whatever a client sent
    assert "http-request del-header X-Forwarded-For" in cfg and "option forwardfor" in cfg
    assert config["services"]["gateway"]["environment"]["FORWARDED_ALLOW_IPS"] == "*"
    assert "lb-healthz" in " ".join(lb["healthcheck"]["test"])


def test_haproxy_accepts_its_config(tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (.ci/run installs it: apt-get install haproxy)")
    good = subprocess.run(
        ["haproxy", "-c", "-f", str(REPO / "deploy/compose/haproxy.cfg")], capture_output=True, text=True
    )
    assert good.returncode == 0, good.stdout + good.stderr
    broken = tmp_path / "broken.cfg"
    broken.write_text(
        (REPO / "deploy/compose/haproxy.cfg").read_text().replace("balance leastconn", "balance x")
    )
    assert subprocess.run(["haproxy", "-c", "-f", str(broken)], capture_output=True).returncode != 0


def test_services_dial_every_replica(config: dict[str, Any]) -> None:
    """Addresses are service names; common.grpc_client dials them through DNS with round_robin."""
    env = config["services"]["worker"]["environment"]
    for variable, name in (
        ("PERSISTENCE_ADDR", "persistence"),
        ("ROUTER_ADDR", "router"),
        ("EXECUTOR_ADDR", "executor"),
    ):
        assert env[variable].split(":")[0] == name
        assert target(env[variable]) == f"dns:///{env[variable]}"


def test_every_setting_comes_from_env_file(tmp_path: Path) -> None:
    needs_compose()
    dotenv = "\n".join(
        [
            "CHAIN=devnet",
            "API_KEYS=key-one,key-two",
            "RATE_LIMIT_PER_S=25",
            "CORS_ORIGINS=https://app.example",
            "WORKER_CONCURRENCY=32",
            "PRIVATE_KEY=5sEcReT",
            "DATABASE_URL=postgresql://postgres@127.0.0.1:5432/orderengine",
            "REDIS_URL=redis://127.0.0.1:6379/0",
        ]
    )
    services = render(tmp_path, COMPOSE_ENV, dotenv)["services"]
    gateway = services["gateway"]["environment"]
    assert gateway["API_KEYS"] == "key-one,key-two"
    assert gateway["RATE_LIMIT_PER_S"] == "25" and gateway["CORS_ORIGINS"] == "https://app.example"
    assert services["worker"]["environment"]["WORKER_CONCURRENCY"] == "32"
    for name in ENGINE:
        service = services[name]
        assert service["restart"] == "unless-stopped"
        env = service["environment"]
        assert env["CHAIN"] == "devnet"
        # the key never travels in the environment, whatever .env holds
        assert env["PRIVATE_KEY"] == "", name
        # Redis carries its password; the host's addresses of `make run` are replaced
        assert env["REDIS_URL"] == "redis://:redis-pw@redis:6379/0"
        if name != "persistence":
            assert env["DATABASE_URL"] == "", name
        # no fallback: a real cluster gets no RPC URL it was not given
        assert "SOLANA_RPC_URL" not in env, name
    assert services["persistence"]["environment"]["DATABASE_URL"] == (
        "postgresql://postgres:pg-pw@postgres:5432/orderengine"
    )
    for name in ("redis", "postgres", "lb"):
        assert services[name]["restart"] == "unless-stopped"


def test_without_passwords_compose_runs_on_sim_only_passwords(tmp_path: Path) -> None:
    """No .env: `docker compose config` (and `up`) work, on passwords marked sim-only-… that every
    engine process refuses with CHAIN other than sim (tests/common/test_settings.py); set ones win."""
    needs_compose()
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    result = subprocess.run(
        ["docker", "compose", "config", "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert SIM_ONLY_PASSWORD in services["worker"]["environment"]["REDIS_URL"]
    assert SIM_ONLY_PASSWORD in services["persistence"]["environment"]["DATABASE_URL"]
    chosen = render(tmp_path, COMPOSE_ENV)["services"]
    assert chosen["worker"]["environment"]["REDIS_URL"] == "redis://:redis-pw@redis:6379/0"
    assert SIM_ONLY_PASSWORD not in chosen["persistence"]["environment"]["DATABASE_URL"]


def test_key_and_markets_are_read_only_mounts_and_the_key_reaches_only_the_executor(tmp_path: Path) -> None:
    needs_compose()
    keypair = tmp_path / "wallet.json"
    keypair.write_text("[]")
    markets = tmp_path / "my-markets.json"
    markets.write_text("{}")
    config = render(tmp_path, {**COMPOSE_ENV, "KEYPAIR_PATH": str(keypair), "MARKETS_FILE": str(markets)})
    assert config["secrets"]["wallet_keypair"]["file"] == str(keypair)
    services = config["services"]
    for name in ENGINE:
        service = services[name]
        env = service["environment"]
        assert env["MARKETS_FILE"] == "/etc/orderengine/markets.json"
        (mount,) = [v for v in service["volumes"] if v["target"] == "/etc/orderengine/markets.json"]
        assert mount["source"] == str(markets) and mount["read_only"] is True
        assert service["read_only"] is True
        if name == "executor":
            assert env["KEYPAIR_PATH"] == "/run/secrets/wallet_keypair"
            assert [s["source"] for s in service["secrets"]] == ["wallet_keypair"]
        else:
            assert env["KEYPAIR_PATH"] == "" and not service.get("secrets"), name
    without = render(tmp_path, COMPOSE_ENV)["services"]["executor"]["environment"]
    assert without["KEYPAIR_PATH"] == "", "CHAIN=sim without a key file: an ephemeral wallet"


def test_the_simulated_chain_keeps_its_ledger_across_restarts(config: dict[str, Any]) -> None:
    simchain = config["services"]["simchain"]
    data_dir = simchain["environment"]["SIM_DATA_DIR"]
    (volume,) = [v for v in simchain["volumes"] if v["type"] == "volume"]
    assert volume["source"] == "simchain-data" and data_dir.startswith(volume["target"] + "/")
    assert "deploy" not in simchain and "simchain" not in SCALED  # one chain, never replicated


def members(config: dict[str, Any], network: str) -> set[str]:
    return {n for n, s in config["services"].items() if network in (s.get("networks") or {})}


def test_networks_isolate_the_executor_and_postgres(config: dict[str, Any]) -> None:
    assert members(config, "executor") == {"executor", "worker", "persistence", "prometheus"}
    assert members(config, "db") == {"persistence", "postgres"}
    assert members(config, "edge") == {"lb", "gateway"}
    assert set(config["services"]["executor"]["networks"]) == {"executor", "chain"}
    assert config["networks"]["db"].get("internal") is True
    assert config["networks"]["backend"].get("internal") is True
    # Redis: the services that use it, and nothing on the edge
    assert members(config, "backend") >= {"redis", "gateway", "worker", "persistence"}
    assert "lb" not in members(config, "backend")


def test_the_image_holds_every_package_a_service_runs() -> None:
    """Every `python -m <package>` of the compose file (and the CLI, run with `docker compose run`)
    is copied into the image and installed by pyproject: a package moved out of another one (the
    worker out of the gateway, the CLI beside the other clients) must not leave the image behind."""
    compose = (REPO / "docker-compose.yml").read_text()
    run = set(re.findall(r'\["python", "-m", "([a-z_]+)"\]', compose))
    assert {"gateway", "worker", "router_svc", "executor_svc", "persistence_svc", "simchain"} <= run
    copied = set(re.findall(r"^COPY ([a-z_]+) \./\1$", (REPO / "Dockerfile").read_text(), re.MULTILINE))
    with (REPO / "pyproject.toml").open("rb") as f:
        installed = {
            p.rstrip("*") for p in tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
        }
    for package in sorted(run | {"cli", "common", "orderengine"}):
        assert package in copied, f"the Dockerfile does not COPY {package}/"
        assert package in installed, f"pyproject's packages do not include {package}*"
