"""deploy/observability: every series the Grafana dashboard queries is one the services define (found
by reading their Counter/Gauge/Histogram definitions), with the labels it groups by, and Prometheus
scrapes every service that exports metrics."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parent.parent
OBSERVABILITY = REPO / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "orderengine.json"
PACKAGES = ("common", "gateway", "worker", "router_svc", "executor_svc", "persistence_svc", "simchain")
# The prometheus_client process collector, on by default in every exporter (Linux).
PROCESS = {"process_cpu_seconds_total": ("counter", ()), "process_resident_memory_bytes": ("gauge", ())}
# Labels every scraped series has (Prometheus adds them) and the histogram bucket label.
TARGET_LABELS = {"job", "instance"}
PROMQL_WORDS = {
    "sum", "by", "without", "rate", "irate", "increase", "histogram_quantile", "max", "min", "avg", "count",
    "topk", "bottomk", "le", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset",
}  # fmt: skip


def defined_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name → (kind, label names) of every Counter, Gauge and Histogram our packages create."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if func not in ("Counter", "Gauge", "Histogram") or not node.args:
                    continue
                first = node.args[0]
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    continue
                labels_node = node.args[2] if len(node.args) > 2 else None
                for kw in node.keywords:
                    if kw.arg == "labelnames":
                        labels_node = kw.value
                labels: tuple[str, ...] = ()
                if isinstance(labels_node, ast.List | ast.Tuple):
                    labels = tuple(
                        e.value
                        for e in labels_node.elts
                        if isinstance(e, ast.Constant) and isinstance(e.value, str)
                    )
                found[first.value] = (func.lower(), labels)
    return found


def series_name(name: str, defined: dict[str, tuple[str, tuple[str, ...]]]) -> str | None:
    """The defined metric a queried series belongs to (`…_bucket` of a histogram, …)."""
    if name in defined:
        return name
    for suffix in ("_bucket", "_count", "_sum"):
        base = name.removesuffix(suffix)
        if base != name and defined.get(base, ("",))[0] == "histogram":
            return base
    if name.endswith("_total") and defined.get(name.removesuffix("_total"), ("",))[0] == "counter":
        return name.removesuffix("_total")
    return None


def expressions() -> list[str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_every_queried_series_is_defined_with_its_labels() -> None:
    defined = {**defined_metrics(), **PROCESS}
    assert "orderengine_worker_stage_seconds" in defined, "the definitions were not found"
    exprs = expressions()
    assert len(exprs) >= 15
    for expr in exprs:
        # what is left once label lists, matchers and ranges are gone: functions and series
        bare = re.sub(r"by\s*\([^)]*\)|\{[^}]*\}|\[[^\]]*\]", " ", expr)
        names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b(?!\s*\()", bare))
        metrics = names - PROMQL_WORDS
        assert metrics, f"no series in {expr!r}"
        allowed = set(TARGET_LABELS)
        for name in metrics:
            base = series_name(name, defined)
            assert base is not None, f"{name} (in {expr!r}) is not defined by any service"
            allowed |= set(defined[base][1]) | ({"le"} if name.endswith("_bucket") else set())
        grouped = {g.strip() for by in re.findall(r"by \(([^)]*)\)", expr) for g in by.split(",")}
        matched = set(re.findall(r"([a-z_]+)\s*!?=~?\s*\"", expr))
        assert grouped | matched <= allowed, f"unknown labels {(grouped | matched) - allowed} in {expr!r}"


def test_the_dashboard_covers_the_engine() -> None:
    text = " ".join(expressions())
    for series in (
        "orderengine_persistence_events_total",  # orders/s by status
        "orderengine_worker_stage_seconds_bucket",  # stage latencies
        "orderengine_gateway_queue_backlog",  # queue depth
        "orderengine_gateway_ws_connections",
        "orderengine_grpc_server_handled_total",  # gRPC error rates
        "orderengine_grpc_server_msg_sent_total",  # the worker's long-lived streams
        "orderengine_chain_rpc_calls_total",
        "orderengine_chain_rpc_errors_total",  # RPC errors by kind
        "process_cpu_seconds_total",  # CPU per service
    ):
        assert series in text, series


def test_a_misspelt_series_is_caught() -> None:
    defined = defined_metrics()
    assert series_name("orderengine_worker_stage_seconds_bucket", defined) is not None
    assert series_name("orderengine_worker_stage_second_bucket", defined) is None
    assert series_name("orderengine_gateway_queue_backlog_bucket", defined) is None  # a gauge


def test_prometheus_scrapes_every_service_with_metrics() -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"gateway", "worker", "router", "executor", "persistence"}
    for name, job in jobs.items():
        (sd,) = job["dns_sd_configs"]
        assert sd["names"] == [name] and sd["port"] == 9100
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name in jobs:
        env = compose["services"][name]["environment"]
        assert env[f"{name.upper()}_METRICS_PORT"] == "9100", f"{name} exports no metrics under compose"


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    provisioning = OBSERVABILITY / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {source["uid"]}
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "orderengine.yml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
