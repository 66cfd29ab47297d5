from __future__ import annotations

from pathlib import Path

import pytest

from common.settings import ConfigError, load_settings

NO_DOTENV = Path("/nonexistent")


def test_defaults() -> None:
    s = load_settings({}, dotenv=NO_DOTENV)
    assert s.chain == "sim"
    assert s.worker_concurrency == 256
    assert s.rpc_url == "http://127.0.0.1:8899"
    assert s.markets_path.name == "sim.json"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CHAIN": "moon"}, "CHAIN"),
        ({"WORKER_CONCURRENCY": "ten"}, "WORKER_CONCURRENCY"),
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"PERSISTENCE_ADDR": "nohost"}, "PERSISTENCE_ADDR"),
        ({"SIM_FAIL_RATE": "2"}, "SIM_FAIL_RATE"),
        ({"RPC_BATCH_MAX": "0"}, "RPC_BATCH_MAX"),
        ({"RPC_MAX_POSTS": "-1"}, "RPC_MAX_POSTS"),
        ({"PRIORITY_FEE_PERCENTILE": "101"}, "PRIORITY_FEE_PERCENTILE"),
        ({"CACHE_RENEW_AHEAD": "1"}, "CACHE_RENEW_AHEAD"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env, dotenv=NO_DOTENV)
    assert str(info.value.code).startswith(f"config error: {variable}:")
    assert "\n" not in str(info.value.code)


def test_custom_chain_requires_rpc_url_and_markets() -> None:
    s = load_settings({"CHAIN": "custom"}, dotenv=NO_DOTENV)
    with pytest.raises(ConfigError, match="SOLANA_RPC_URL"):
        _ = s.rpc_url
    with pytest.raises(ConfigError, match="MARKETS_FILE"):
        _ = s.markets_path


@pytest.mark.parametrize("chain", ["devnet", "mainnet-beta"])
def test_a_real_cluster_needs_its_rpc_url(chain: str) -> None:
    """No silent fallback: neither to a public endpoint nor to the simulated chain's address."""
    s = load_settings({"CHAIN": chain, "SIM_HOST": "simchain"}, dotenv=NO_DOTENV)
    with pytest.raises(ConfigError, match=f"SOLANA_RPC_URL: required when CHAIN={chain}"):
        _ = s.rpc_url
    given = load_settings({"CHAIN": chain, "SOLANA_RPC_URL": "https://rpc.example/k"}, dotenv=NO_DOTENV)
    assert given.rpc_url == "https://rpc.example/k"


def test_dotenv_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nHTTP_PORT=4000\nWORKER_CONCURRENCY='7'\n")
    s = load_settings({"HTTP_PORT": "5000"}, dotenv=env_file)
    assert s.http_port == 5000
    assert s.worker_concurrency == 7


def test_secrets_are_redacted_in_repr() -> None:
    s = load_settings({"API_KEYS": "k1,k2"}, dotenv=NO_DOTENV)
    assert "k1" not in repr(s)
    assert "k1" not in str(s)
    assert s.api_keys == ("k1", "k2")


def test_compose_fallback_passwords_are_refused_off_the_simulated_chain() -> None:
    """docker-compose.yml runs without a .env on passwords marked sim-only-…; with money at stake
    (any CHAIN but sim) every process refuses them, naming the variable and what to set."""
    redis = "redis://:sim-only-redis-password@redis:6379/0"
    database = "postgresql://postgres:sim-only-postgres-password@postgres:5432/orderengine"
    sim = load_settings({"REDIS_URL": redis, "DATABASE_URL": database}, dotenv=Path("/nonexistent"))
    assert sim.redis_url == redis  # the simulated chain holds no money: fine
    with pytest.raises(ConfigError) as info:
        load_settings({"CHAIN": "devnet", "REDIS_URL": redis}, dotenv=Path("/nonexistent"))
    assert info.value.variable == "REDIS_URL" and "REDIS_PASSWORD" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings({"CHAIN": "mainnet-beta", "DATABASE_URL": database}, dotenv=Path("/nonexistent"))
    assert info.value.variable == "DATABASE_URL" and "POSTGRES_PASSWORD" in str(info.value)
    real = "redis://:a-real-secret@redis:6379/0"
    assert (
        load_settings({"CHAIN": "devnet", "REDIS_URL": real}, dotenv=Path("/nonexistent")).redis_url == real
    )
