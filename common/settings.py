"""One typed settings object, read once at start-up from the environment and `.env`.

A missing or malformed value stops the process with one line naming the variable
(`ConfigError`). Nothing else in the code base reads `os.environ`.

The wallet key (`KEY_VARIABLES`: PRIVATE_KEY, KEYPAIR_PATH) is not a setting here: only the
executor's process may hold it. It has its own settings in `executor_svc.wallet`; `read_dotenv`
skips those names unless the executor asks for them, and the supervisor (`common.stack`) removes
them from the environment of every other child.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parent.parent
CHAINS = ("sim", "devnet", "mainnet-beta", "custom")
# Variables only the executor's process may receive (see executor_svc.wallet.KeySettings).
KEY_VARIABLES = frozenset({"PRIVATE_KEY", "KEYPAIR_PATH"})

T = TypeVar("T")


class ConfigError(SystemExit):
    """A configuration value is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"config error: {variable}: {problem}")


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip(), 10)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _float(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {raw!r}")
        return value

    return parse


def _str(raw: str) -> str:
    return raw.strip()


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _addr(raw: str) -> str:
    value = raw.strip()
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {raw!r}")
    return value


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if not any(value.startswith(s + "://") for s in schemes):
            raise ValueError(f"expected a {'/'.join(schemes)} URL, got {value.split('@')[-1]!r}")
        return value

    return parse


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def _token_amounts(raw: str) -> tuple[tuple[str, str], ...]:
    """`SOL=100,USDC=20000`: token symbol or mint = a positive decimal amount in token units."""
    pairs: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        token, sep, amount = part.partition("=")
        token, amount = token.strip(), amount.strip()
        if not sep or not token or not amount:
            raise ValueError(f"expected TOKEN=amount pairs such as SOL=100, got {part!r}")
        whole, dot, frac = amount.partition(".")
        digits = amount.isascii() and whole.isdigit() and (not dot or frac.isdigit())
        if not digits or not any(c in "123456789" for c in amount):
            raise ValueError(f"{token}: expected a positive decimal amount, got {amount!r}")
        pairs[token] = amount
    return tuple(pairs.items())


def _grpc_tokens(raw: str) -> tuple[tuple[str, str], ...]:
    from common.grpc_auth import parse_tokens

    return parse_tokens(raw)


def _setting(env: str, default: Any, parse: Callable[[str], Any], secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "secret": secret})


# The mark of docker-compose.yml's fallback passwords (refused with CHAIN other than sim).
SIM_ONLY_PASSWORD = "sim-only-"


@dataclass(frozen=True)
class Settings:
    """Every setting of every process. Documented one by one in `.env.example`."""

    chain: str = _setting("CHAIN", "sim", _choice(*CHAINS))
    solana_rpc_url: str = _setting("SOLANA_RPC_URL", "", _url("http", "https"))
    solana_ws_url: str = _setting("SOLANA_WS_URL", "", _url("ws", "wss"))
    markets_file: str = _setting("MARKETS_FILE", "", _str)
    commitment: str = _setting("COMMITMENT", "confirmed", _choice("processed", "confirmed", "finalized"))
    rpc_timeout_s: float = _setting("RPC_TIMEOUT_S", 10.0, _float(0.1, 120))
    rpc_batch_max: int = _setting("RPC_BATCH_MAX", 100, _int(1, 1000))
    rpc_max_posts: int = _setting("RPC_MAX_POSTS", 0, _int(0, 256))
    cache_renew_ahead: float = _setting("CACHE_RENEW_AHEAD", 0.25, _float(0, 0.9))

    redis_url: str = _setting("REDIS_URL", "redis://127.0.0.1:6379/0", _url("redis", "rediss", "unix"))
    redis_prefix: str = _setting("REDIS_PREFIX", "oe", _str)
    database_url: str = _setting(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/orderengine", _url("postgresql", "postgres")
    )
    db_pool_size: int = _setting("DB_POOL_SIZE", 8, _int(1, 200))
    db_statement_timeout_ms: int = _setting("DB_STATEMENT_TIMEOUT_MS", 10_000, _int(0, 3_600_000))
    db_lock_timeout_ms: int = _setting("DB_LOCK_TIMEOUT_MS", 5_000, _int(0, 3_600_000))
    db_idle_in_transaction_timeout_ms: int = _setting(
        "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 30_000, _int(0, 3_600_000)
    )
    db_connect_timeout_s: int = _setting("DB_CONNECT_TIMEOUT_S", 5, _int(1, 600))
    redis_connect_timeout_s: float = _setting("REDIS_CONNECT_TIMEOUT_S", 2.0, _float(0.1, 600))
    redis_socket_timeout_s: float = _setting("REDIS_SOCKET_TIMEOUT_S", 5.0, _float(2.0, 600))
    outbox_relay_interval_ms: int = _setting("OUTBOX_RELAY_INTERVAL_MS", 1000, _int(0, 3_600_000))
    outbox_relay_age_ms: int = _setting("OUTBOX_RELAY_AGE_MS", 2000, _int(0, 3_600_000))

    persistence_addr: str = _setting("PERSISTENCE_ADDR", "127.0.0.1:50051", _addr)
    router_addr: str = _setting("ROUTER_ADDR", "127.0.0.1:50052", _addr)
    executor_addr: str = _setting("EXECUTOR_ADDR", "127.0.0.1:50053", _addr)
    grpc_grace_s: float = _setting("GRPC_GRACE_S", 5.0, _float(0, 60))
    grpc_tokens: tuple[tuple[str, str], ...] = _setting("GRPC_TOKENS", (), _grpc_tokens, secret=True)
    grpc_reflection: bool = _setting("GRPC_REFLECTION", False, _bool)

    http_host: str = _setting("HTTP_HOST", "127.0.0.1", _str)
    http_port: int = _setting("HTTP_PORT", 3000, _int(0, 65535))
    max_body_bytes: int = _setting("MAX_BODY_BYTES", 16384, _int(256, 10_000_000))
    queue_max_depth: int = _setting("QUEUE_MAX_DEPTH", 20000, _int(1, 10_000_000))
    create_batch_ms: float = _setting("CREATE_BATCH_MS", 1.0, _float(0, 100))
    create_batch_max: int = _setting("CREATE_BATCH_MAX", 256, _int(1, 1000))
    batch_linger_ms: float = _setting("BATCH_LINGER_MS", 1.0, _float(0, 100))
    default_slippage_bps: int = _setting("DEFAULT_SLIPPAGE_BPS", 50, _int(1, 5000))
    max_price_impact_bps: int = _setting("MAX_PRICE_IMPACT_BPS", 1000, _int(1, 10_000))
    quote_ttl_s: float = _setting("QUOTE_TTL_S", 30.0, _float(1, 3600))
    order_max_expiry_s: int = _setting("ORDER_MAX_EXPIRY_S", 604_800, _int(1, 31_536_000))
    trigger_interval_ms: int = _setting("TRIGGER_INTERVAL_MS", 400, _int(10, 60_000))
    sniper_interval_ms: int = _setting("SNIPER_INTERVAL_MS", 100, _int(10, 60_000))
    api_keys: tuple[str, ...] = _setting("API_KEYS", (), _csv, secret=True)
    rate_limit_per_s: float = _setting("RATE_LIMIT_PER_S", 0.0, _float(0, 1_000_000))
    rate_limit_burst: int = _setting("RATE_LIMIT_BURST", 100, _int(1, 1_000_000))
    cors_origins: tuple[str, ...] = _setting("CORS_ORIGINS", (), _csv)
    trusted_hosts: tuple[str, ...] = _setting("TRUSTED_HOSTS", (), _csv)
    max_order_amount: tuple[tuple[str, str], ...] = _setting("MAX_ORDER_AMOUNT", (), _token_amounts)
    daily_notional_cap: tuple[tuple[str, str], ...] = _setting("DAILY_NOTIONAL_CAP", (), _token_amounts)

    worker_concurrency: int = _setting("WORKER_CONCURRENCY", 256, _int(1, 10000))
    worker_name: str = _setting("WORKER_NAME", "", _str)
    max_attempts: int = _setting("MAX_ATTEMPTS", 3, _int(1, 20))
    retry_base_ms: int = _setting("RETRY_BASE_MS", 250, _int(0, 600_000))
    retry_max_ms: int = _setting("RETRY_MAX_MS", 5000, _int(0, 600_000))
    claim_idle_ms: int = _setting("CLAIM_IDLE_MS", 30000, _int(100, 3_600_000))
    max_deliveries: int = _setting("MAX_DELIVERIES", 5, _int(1, 1000))
    orders_per_minute: int = _setting("ORDERS_PER_MINUTE", 0, _int(0, 100_000_000))
    order_lock_ttl_ms: int = _setting("ORDER_LOCK_TTL_MS", 60000, _int(100, 3_600_000))
    recover_after_ms: int = _setting("RECOVER_AFTER_MS", 30000, _int(100, 86_400_000))
    recover_interval_ms: int = _setting("RECOVER_INTERVAL_MS", 15000, _int(50, 3_600_000))
    submitted_hold_ms: float = _setting("SUBMITTED_HOLD_MS", 20.0, _float(0, 10_000))
    worker_grace_s: float = _setting("WORKER_GRACE_S", 10.0, _float(0, 600))
    worker_health_addr: str = _setting("WORKER_HEALTH_ADDR", "127.0.0.1:50054", _addr)

    pool_refresh_ms: int = _setting("POOL_REFRESH_MS", 400, _int(0, 60_000))
    split_min_impact_bps: int = _setting("SPLIT_MIN_IMPACT_BPS", 10, _int(0, 10_000))
    split_min_gain_bps: int = _setting("SPLIT_MIN_GAIN_BPS", 1, _int(0, 10_000))

    confirm_poll_ms: int = _setting("CONFIRM_POLL_MS", 0, _int(0, 60_000))
    confirm_push: bool = _setting("CONFIRM_PUSH", True, _bool)
    rebroadcast_ms: int = _setting("REBROADCAST_MS", 2000, _int(100, 60_000))
    expiry_margin_blocks: int = _setting("EXPIRY_MARGIN_BLOCKS", 10, _int(0, 10_000))
    priority_fee_max_micro_lamports: int = _setting("PRIORITY_FEE_MAX", 1_000_000, _int(0, 10**12))
    priority_fee_percentile: int = _setting("PRIORITY_FEE_PERCENTILE", 75, _int(0, 100))
    sniper_priority_fee_percentile: int = _setting("SNIPER_PRIORITY_FEE_PERCENTILE", 95, _int(0, 100))
    executor_quote_tolerance_bps: int = _setting("EXECUTOR_QUOTE_TOLERANCE_BPS", 100, _int(0, 10_000))

    sim_host: str = _setting("SIM_HOST", "127.0.0.1", _str)
    sim_port: int = _setting("SIM_PORT", 8899, _int(0, 65535))
    sim_slot_ms: int = _setting("SIM_SLOT_MS", 400, _int(10, 60_000))
    sim_latency_ms: int = _setting("SIM_LATENCY_MS", 0, _int(0, 60_000))
    sim_fail_rate: float = _setting("SIM_FAIL_RATE", 0.0, _float(0.0, 1.0))
    sim_drop_rate: float = _setting("SIM_DROP_RATE", 0.0, _float(0.0, 1.0))
    sim_data_dir: str = _setting("SIM_DATA_DIR", "", _str)

    ws_ping_interval_s: float = _setting("WS_PING_INTERVAL_S", 20.0, _float(0.05, 3600))
    ws_idle_timeout_s: float = _setting("WS_IDLE_TIMEOUT_S", 300.0, _float(0.1, 86_400))
    ws_queue_size: int = _setting("WS_QUEUE_SIZE", 2000, _int(1, 1_000_000))
    ws_send_timeout_s: float = _setting("WS_SEND_TIMEOUT_S", 30.0, _float(0.1, 3600))
    ws_max_sockets: int = _setting("WS_MAX_SOCKETS", 10000, _int(1, 1_000_000))
    ws_max_sockets_per_client: int = _setting("WS_MAX_SOCKETS_PER_CLIENT", 1000, _int(1, 1_000_000))
    ws_max_subscriptions: int = _setting("WS_MAX_SUBSCRIPTIONS", 200, _int(1, 100_000))
    ws_cache_orders: int = _setting("WS_CACHE_ORDERS", 1000, _int(0, 1_000_000))
    ws_catchup_retry_s: float = _setting("WS_CATCHUP_RETRY_S", 10.0, _float(0.1, 600))

    log_level: str = _setting("LOG_LEVEL", "info", _choice("debug", "info", "warning", "error"))
    metrics_host: str = _setting("METRICS_HOST", "127.0.0.1", _str)
    gateway_metrics_port: int = _setting("GATEWAY_METRICS_PORT", 0, _int(0, 65535))
    worker_metrics_port: int = _setting("WORKER_METRICS_PORT", 0, _int(0, 65535))
    router_metrics_port: int = _setting("ROUTER_METRICS_PORT", 0, _int(0, 65535))
    executor_metrics_port: int = _setting("EXECUTOR_METRICS_PORT", 0, _int(0, 65535))
    persistence_metrics_port: int = _setting("PERSISTENCE_METRICS_PORT", 0, _int(0, 65535))
    supervisor_metrics_port: int = _setting("SUPERVISOR_METRICS_PORT", 0, _int(0, 65535))
    # under `make run` only: a process whose *_METRICS_PORT is unset gets base + its place in
    # common.stack.METRICS_SERVICES (9101-9106); 0 = no exporter unless its own port is set
    metrics_port_base: int = _setting("METRICS_PORT_BASE", 9101, _int(0, 65530))

    supervisor_backoff_ms: int = _setting("SUPERVISOR_BACKOFF_MS", 200, _int(0, 600_000))
    supervisor_backoff_max_ms: int = _setting("SUPERVISOR_BACKOFF_MAX_MS", 10_000, _int(0, 3_600_000))
    supervisor_stable_s: float = _setting("SUPERVISOR_STABLE_S", 30.0, _float(0, 86_400))
    supervisor_grace_s: float = _setting("SUPERVISOR_GRACE_S", 15.0, _float(0, 600))

    def __post_init__(self) -> None:
        if self.chain == "sim":
            return
        # docker-compose.yml falls back to these passwords so that it runs (and `docker compose
        # config` validates) without a .env; they protect nothing, so money never runs behind them
        for variable, url, password in (
            ("REDIS_URL", self.redis_url, "REDIS_PASSWORD"),
            ("DATABASE_URL", self.database_url, "POSTGRES_PASSWORD"),
        ):
            if SIM_ONLY_PASSWORD in url:
                raise ConfigError(
                    variable,
                    f"carries compose's {SIM_ONLY_PASSWORD}… password, for the simulated chain only; "
                    f"set {password} in .env when CHAIN={self.chain}",
                )

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = "<redacted>"
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    def metrics_port(self, service: str) -> int:
        """The Prometheus exporter port of `service` (gateway, worker, router, executor,
        persistence, supervisor); 0 = no exporter."""
        port: int = getattr(self, f"{service}_metrics_port")
        return port

    @property
    def confirm_poll_s(self) -> float:
        """CONFIRM_POLL_MS in seconds; 0 chooses: 10 ms against the local simulated chain (one batched
        getSignatureStatuses per poll for every order in flight costs it next to nothing), 50 ms
        against a real node (a provider counts every request)."""
        ms = self.confirm_poll_ms or (10 if self.chain == "sim" else 50)
        return ms / 1000

    @property
    def rpc_url(self) -> str:
        """The JSON-RPC endpoint: SOLANA_RPC_URL, or the simulated chain's own address. A real
        cluster is never implied: with CHAIN other than sim an empty SOLANA_RPC_URL stops the
        process (no fallback to a public endpoint or to the simulator)."""
        if self.solana_rpc_url:
            return self.solana_rpc_url
        if self.chain == "sim":
            return f"http://{self.sim_host}:{self.sim_port}"
        raise ConfigError(
            "SOLANA_RPC_URL",
            f"required when CHAIN={self.chain} (e.g. https://api.devnet.solana.com or a provider's URL)",
        )

    @property
    def ws_url(self) -> str:
        """The node's pubsub WebSocket: SOLANA_WS_URL, or the JSON-RPC URL's own host, port and
        path with ws/wss (the simulated chain and most providers serve both on one address; a
        solana-test-validator's is its RPC port + 1, so set SOLANA_WS_URL for it)."""
        if self.solana_ws_url:
            return self.solana_ws_url
        url = self.rpc_url
        return (
            "wss://" + url[len("https://") :]
            if url.startswith("https://")
            else "ws://" + url[len("http://") :]
        )

    @property
    def markets_path(self) -> Path:
        """MARKETS_FILE, or the shipped file for the cluster."""
        if self.markets_file:
            return Path(self.markets_file)
        if self.chain == "custom":
            raise ConfigError("MARKETS_FILE", "required when CHAIN=custom")
        return REPO_ROOT / "markets" / f"{self.chain}.json"


def read_dotenv(path: Path, *, keys: bool = False) -> dict[str, str]:
    """Parses KEY=VALUE lines of a `.env` file (comments and blank lines ignored). The wallet key's
    variables (`KEY_VARIABLES`) are left out unless `keys` is true (the executor's wallet only)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path.name} line {number}", "expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        key = key.strip()
        if key in KEY_VARIABLES and not keys:
            continue
        values[key] = value
    return values


def load_settings(environ: Mapping[str, str] | None = None, dotenv: Path | None = None) -> Settings:
    """Builds Settings from `.env` (if present) overlaid by the environment."""
    env: dict[str, str] = {}
    env.update(read_dotenv(dotenv if dotenv is not None else Path.cwd() / ".env"))
    env.update(os.environ if environ is None else environ)
    return settings_from(Settings, env)


def settings_from(cls: type[T], env: Mapping[str, str]) -> T:
    """An instance of the settings dataclass `cls` (fields made with `_setting`) from `env`."""
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        name = f.metadata["env"]
        raw = env.get(name)
        if raw is None or raw.strip() == "":
            continue  # unset or empty: the default
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None
    return cls(**values)
