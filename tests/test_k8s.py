"""deploy/k8s: both overlays render with `kubectl kustomize`, every object validates offline against
the Kubernetes schemas (kubernetes-validate), and the rendered objects keep the rules: probes,
headless Services, autoscalers, disruption budgets, non-root read-only containers, the wallet key in
the executor alone, and network policies under which only the worker reaches the executor and only
persistence reaches Postgres."""

from __future__ import annotations

import copy
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.32.0"
OVERLAYS = ("dev", "prod")
SERVICES = ("gateway", "worker", "router", "executor", "persistence")
GRPC_PORTS = {"persistence": 50051, "router": 50052, "executor": 50053, "worker": 50054}
Obj = dict[str, Any]


@cache
def render(overlay: str) -> tuple[Obj, ...]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (it renders the kustomize overlays)")
    import yaml  # type: ignore[import-untyped]

    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def of_kind(objs: tuple[Obj, ...], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def container(deployment: Obj) -> Obj:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    result: Obj = c
    return result


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    import kubernetes_validate  # type: ignore[import-untyped]

    objs = render(overlay)
    assert len(objs) > 20
    for obj in objs:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_a_broken_object() -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import ValidationError  # type: ignore[import-untyped]

    deployment = copy.deepcopy(of_kind(render("dev"), "Deployment")["router"])
    container(deployment)["readinessProbe"] = {"grpc": {"port": "grpc"}}  # a grpc probe takes a number
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_grpc_for_grpc_services_http_for_the_gateway(overlay: str) -> None:
    deployments = of_kind(render(overlay), "Deployment")
    for name in SERVICES:
        c = container(deployments[name])
        for probe in ("readinessProbe", "livenessProbe"):
            if name == "gateway":
                assert c[probe]["httpGet"]["path"] == "/healthz"
            else:
                assert c[probe]["grpc"]["port"] == GRPC_PORTS[name], (name, probe)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grpc_services_are_headless_and_clients_dial_them_by_name(overlay: str) -> None:
    objs = render(overlay)
    services = of_kind(objs, "Service")
    for name in ("router", "executor", "persistence"):
        assert services[name]["spec"]["clusterIP"] == "None", f"{name}: round_robin needs every pod's address"
        assert services[name]["spec"]["ports"][0]["port"] == GRPC_PORTS[name]
    (settings,) = [
        o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("engine-settings")
    ]
    assert settings["data"]["ROUTER_ADDR"] == "router:50052"
    assert settings["data"]["EXECUTOR_ADDR"] == "executor:50053"
    assert settings["data"]["PERSISTENCE_ADDR"] == "persistence:50051"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_and_disruption_budgets(overlay: str) -> None:
    objs = render(overlay)
    hpas = of_kind(objs, "HorizontalPodAutoscaler")
    assert set(hpas) >= {"gateway", "worker", "router"}
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdbs = of_kind(objs, "PodDisruptionBudget")
    for name in SERVICES:
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_run_non_root_read_only_with_limits(overlay: str) -> None:
    for name, deployment in of_kind(render(overlay), "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        c = container(deployment)
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        for kind in ("requests", "limits"):
            assert set(c["resources"][kind]) == {"cpu", "memory"}, (name, kind)


def secret_refs(deployment: Obj) -> set[tuple[str, str]]:
    """(secret, variable) pairs a Deployment's containers take from Secrets, plus secret volumes."""
    pod = deployment["spec"]["template"]["spec"]
    refs = set()
    for c in pod["containers"] + pod.get("initContainers", []):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], e["name"]))
        for src in c.get("envFrom", []):
            if "secretRef" in src:
                refs.add((src["secretRef"]["name"], "*"))
    for v in pod.get("volumes", []):
        if "secret" in v:
            refs.add((v["secret"]["secretName"], "volume"))
    return refs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_key_reaches_the_executor_only_and_the_database_url_persistence_only(overlay: str) -> None:
    objs = render(overlay)
    deployments = of_kind(objs, "Deployment")
    wallet_users = {
        n for n, d in deployments.items() if any(s.startswith("wallet") for s, _ in secret_refs(d))
    }
    assert wallet_users == {"executor"}
    db_users = {n for n, d in deployments.items() if any(v == "DATABASE_URL" for _, v in secret_refs(d))}
    assert db_users == {"persistence"}
    for obj in objs:
        assert obj["kind"] != "ConfigMap" or not {"PRIVATE_KEY", "DATABASE_URL", "REDIS_URL"} & set(
            obj["data"]
        )
    if overlay == "prod":
        assert not of_kind(objs, "Secret"), "production Secrets are made outside the repository"


def test_dev_runs_the_simulated_chain_prod_a_real_one() -> None:
    def settings(overlay: str) -> dict[str, str]:
        objs = render(overlay)
        (cm,) = [
            o
            for o in objs
            if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("engine-settings")
        ]
        data: dict[str, str] = cm["data"]
        return data

    assert settings("dev")["CHAIN"] == "sim"
    assert of_kind(render("dev"), "Deployment")["simchain"]["spec"]["replicas"] == 1
    assert settings("prod")["CHAIN"] != "sim"
    assert "simchain" not in of_kind(render("prod"), "Deployment")


# --- NetworkPolicy semantics (same namespace; ipBlock peers stand for addresses outside it) -------


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def _port_ok(rule: Obj, port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") == port for p in ports)


def _peer_ok(peers: list[Obj] | None, labels: dict[str, str] | None) -> bool:
    """`labels`: a pod of this namespace; None: an address outside the cluster."""
    if peers is None:  # no `from`/`to`: everyone
        return True
    for peer in peers:
        if labels is None and "ipBlock" in peer:
            return True
        if labels is not None and "podSelector" in peer and "namespaceSelector" not in peer:
            if _selects(peer["podSelector"], labels):
                return True
    return False


def _allowed(
    policies: list[Obj], direction: str, subject: dict[str, str], peer: dict[str, str] | None, port: int
) -> bool:
    kind, key = ("Ingress", "from") if direction == "ingress" else ("Egress", "to")
    selecting = [
        p
        for p in policies
        if _selects(p["spec"]["podSelector"], subject) and kind in p["spec"]["policyTypes"]
    ]
    if not selecting:
        return True
    return any(
        _peer_ok(rule.get(key), peer) and _port_ok(rule, port)
        for p in selecting
        for rule in p["spec"].get(direction, [])
    )


def can_connect(policies: list[Obj], src: str | None, dst: str | None, port: int) -> bool:
    """A pod named `src` (None: outside) opening a connection to `dst` (None: outside) on `port`."""
    s = None if src is None else {"app.kubernetes.io/name": src}
    d = None if dst is None else {"app.kubernetes.io/name": dst}
    egress_ok = s is None or _allowed(policies, "egress", s, d, port)
    ingress_ok = d is None or _allowed(policies, "ingress", d, s, port)
    return egress_ok and ingress_ok


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies(overlay: str) -> None:
    objs = render(overlay)
    policies = list(of_kind(objs, "NetworkPolicy").values())
    pods = list(of_kind(objs, "Deployment"))
    callers = {
        "executor": {"worker"},
        "router": {"worker", "gateway"},
        "persistence": {"gateway", "worker", "executor"},
    }
    for dst, allowed in callers.items():
        reached_by = {src for src in pods if src != dst and can_connect(policies, src, dst, GRPC_PORTS[dst])}
        assert reached_by == allowed, (dst, reached_by)
        assert not can_connect(policies, None, dst, GRPC_PORTS[dst]), f"{dst} is reachable from outside"
    # the executor takes nothing but the worker's calls: no other port of it is open to the others
    for src in pods:
        for port in (50053, 8080, 3000, 6379):
            if src != "worker":
                assert not can_connect(policies, src, "executor", port), (src, port)
    # Postgres (outside the namespace): only persistence may open a connection to :5432
    assert {src for src in pods if can_connect(policies, src, None, 5432)} == {"persistence"}
    assert {src for src in pods if can_connect(policies, src, None, 6379)} == {
        "gateway",
        "worker",
        "persistence",
    }
    assert can_connect(policies, None, "gateway", 3000)
    assert not can_connect(policies, "gateway", "executor", 50053)
    if overlay == "dev":
        assert {src for src in pods if can_connect(policies, src, "simchain", 8899)} == {"router", "executor"}
