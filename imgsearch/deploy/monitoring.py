"""Prometheus metrics on the cluster: the scrape (a PodMonitor), its token, the NetworkPolicy rule
that lets Prometheus in, and the custom-metrics rule the autoscalers read.

Every executor and gateway serves the metrics of the contract below on Jina's monitoring port
(``--port-monitoring 9090``, Jina's own Kubernetes convention; executors/metrics/), at ``/metrics``, to a
bearer token: ``IMGSEARCH_METRICS_TOKEN``, from the Secret ``imgsearch-metrics-token`` (key
``token``). Prometheus Operator's PodMonitor scrapes each pod with that token; only pods of the
namespace named by ``--prometheus-namespace`` labelled ``app.kubernetes.io/name: prometheus`` (the
Operator's label on its Prometheus pods) may connect to 9090. prometheus-adapter turns
``imgsearch_inflight_requests`` into the custom metric of the same name that the
HorizontalPodAutoscalers read (autoscaling.py); Grafana's dashboard is dashboard.py's.
"""

import re

import yaml

from imgsearch.k8s_security import NAMESPACE, meta

METRICS_PORT = 9090  # Jina's K8S_PORT_MONITORING
METRICS_PATH = "/metrics"
METRICS_PORT_NAME = "metrics"
METRICS_SECRET, METRICS_ENV = "imgsearch-metrics-token", "IMGSEARCH_METRICS_TOKEN"
DEFAULT_PROMETHEUS_NAMESPACE = "monitoring"
SCRAPE_INTERVAL = "15s"
SCRAPED_COMPONENTS = ("cpu-stage", "encoder", "gateway")  # every flow pod; Qdrant has its own metrics
INFLIGHT = "imgsearch_inflight_requests"

# The metrics contract (COMMON: executors and gateways), name -> type. Series as Prometheus stores
# them: a counter's name (with _total), a histogram's _bucket/_sum/_count.
METRICS = {
    "imgsearch_requests_total": "counter",
    "imgsearch_request_errors_total": "counter",
    "imgsearch_request_seconds": "histogram",
    "imgsearch_batch_size": "histogram",
    "imgsearch_images_total": "counter",
    INFLIGHT: "gauge",
    "imgsearch_queue_seconds": "histogram",
}
STAGES = ("loader", "normalizer", "encoder", "indexer", "gateway")


def series() -> set[str]:
    """Every series name the contract's metrics put in Prometheus."""
    out = set()
    for name, kind in METRICS.items():
        out |= {f"{name}_{s}" for s in ("bucket", "sum", "count")} if kind == "histogram" else {name}
    return out


def metrics_env() -> dict:
    """The read token every flow pod serves its metrics behind; a pod whose Secret is missing does not start."""
    return {"name": METRICS_ENV, "valueFrom": {"secretKeyRef": {"name": METRICS_SECRET, "key": "token"}}}


def container_port() -> dict:
    return {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT}


def check_namespace(namespace: str) -> str:
    """A namespace name Kubernetes accepts (an RFC 1123 label), or ValueError."""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
        raise ValueError(f"--prometheus-namespace {namespace!r} is not a namespace name (lower-case letters, digits, '-')")
    return namespace


def prometheus_peer(namespace: str) -> dict:
    """The Prometheus Operator's Prometheus pods in ``namespace``, as a NetworkPolicy peer."""
    check_namespace(namespace)
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }


def allow_scrapes(policies: list[dict], scraped: set[str], namespace: str) -> list[dict]:
    """The policies, with Prometheus let in to the metrics port of every scraped pod's own policy."""
    rule = {"from": [prometheus_peer(namespace)], "ports": [{"protocol": "TCP", "port": METRICS_PORT}]}
    out = []
    for p in policies:
        app = p["spec"]["podSelector"].get("matchLabels", {}).get("app")
        if app in scraped:
            p = {**p, "spec": {**p["spec"], "ingress": [*p["spec"]["ingress"], rule]}}
        out.append(p)
    missing = scraped - {p["spec"]["podSelector"].get("matchLabels", {}).get("app") for p in policies}
    if missing:
        raise ValueError(f"no NetworkPolicy of their own for {sorted(missing)}: Prometheus could not be let in")
    return out


def pod_monitor() -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": meta("imgsearch", "monitoring"),
        "spec": {
            "selector": {
                "matchLabels": {"app.kubernetes.io/part-of": "imgsearch"},
                "matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In", "values": list(SCRAPED_COMPONENTS)}],
            },
            "namespaceSelector": {"matchNames": [NAMESPACE]},
            "podMetricsEndpoints": [
                {
                    "port": METRICS_PORT_NAME,
                    "path": METRICS_PATH,
                    "interval": SCRAPE_INTERVAL,
                    # The Secret is read in the PodMonitor's own namespace (imgsearch).
                    "authorization": {"type": "Bearer", "credentials": {"name": METRICS_SECRET, "key": "token"}},
                }
            ],
        },
    }


def adapter_rules() -> dict:
    """prometheus-adapter's configuration: in-flight requests per pod as a custom metric. The gauge
    is averaged over 2 minutes: one scrape's value jumps with every request that starts or ends."""
    return {
        "rules": [
            {
                "seriesQuery": f'{INFLIGHT}{{namespace!="",pod!=""}}',
                "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
                "name": {"matches": f"^{INFLIGHT}$", "as": INFLIGHT},
                "metricsQuery": "sum(avg_over_time(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)",
            }
        ]
    }


def adapter_configmap(namespace: str) -> dict:
    """The rules as a ConfigMap for the prometheus-adapter Helm chart's ``rules.existing`` (key config.yaml)."""
    m = meta("imgsearch-prometheus-adapter", "monitoring")
    m["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": {"config.yaml": yaml.safe_dump(adapter_rules(), sort_keys=False)}}
