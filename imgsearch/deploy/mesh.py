"""How the executors' replicas share requests: headless Services (default) or Linkerd (`--mesh linkerd`).

gRPC keeps one HTTP/2 connection per channel, and a ClusterIP Service balances connections, not
requests: a gateway with one channel to ``encoder-clip`` would send every request to one pod.
Without a mesh the executors' Services are headless (``clusterIP: None``): their DNS name resolves
to every ready pod, and the gateway holds a connection per replica (executors/gateway/).

With ``--mesh linkerd`` the pods carry ``linkerd.io/inject: enabled`` and the executors' Services stay
ClusterIP: Linkerd's proxy balances each request over the Service's endpoints (on a headless
Service it would only see the one address the client dialled). Its proxies need, besides the
traffic the NetworkPolicies already allow (k8s_security.py):

- meshed traffic arrives on the proxy's inbound port (4143) instead of the original port, so every
  pod-to-pod rule also allows 4143, in both directions, between the same pods;
- every proxy reaches Linkerd's control plane (namespace ``linkerd``): identity 8080, destination
  8086, policy 8090 (the pod ports behind linkerd-identity, linkerd-dst and linkerd-policy), and DNS;
- the proxy's admin port (4191: ``/metrics``, ``/ready``) is reached by linkerd-viz's Prometheus and
  by the cluster's Prometheus; the kubelet's probes come from the node, which CNIs let through.
"""

from typing import Any

from imgsearch.k8s_security import DNS_EGRESS, meta

MESHES = ("none", "linkerd")
LINKERD_NAMESPACE, LINKERD_VIZ_NAMESPACE = "linkerd", "linkerd-viz"
INJECT = {"linkerd.io/inject": "enabled"}
PROXY_INBOUND, PROXY_ADMIN = 4143, 4191
CONTROL_PLANE_PORTS = {"identity": 8080, "destination": 8086, "policy": 8090}


def check(mesh: str) -> str:
    if mesh not in MESHES:
        raise ValueError(f"--mesh must be one of {', '.join(MESHES)}, got {mesh!r}")
    return mesh


def pod_annotations(mesh: str) -> dict[str, str]:
    """What a pod template carries: Linkerd's injection only with that mesh (Jina's export always sets it)."""
    return dict(INJECT) if check(mesh) == "linkerd" else {}


def executor_service(spec: dict, mesh: str) -> None:
    """An executor's Service spec, in place: headless without a mesh, ClusterIP with Linkerd."""
    spec["type"] = "ClusterIP"
    if check(mesh) == "none":
        spec["clusterIP"] = "None"  # DNS answers every ready pod: the gateway connects to each
    else:
        spec.pop("clusterIP", None)


def in_namespace(ns: str) -> dict:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}


def _carries_meshed_traffic(rule: dict, peers_key: str) -> bool:
    """A rule between pods that may all be meshed: ports given, no address block, not DNS."""
    ports = [p["port"] for p in rule.get("ports", [])]
    peers = rule.get(peers_key, [])
    return bool(ports) and 53 not in ports and not any("ipBlock" in p for p in peers)


def _with_inbound_port(rule: dict, peers_key: str) -> None:
    if _carries_meshed_traffic(rule, peers_key) and PROXY_INBOUND not in [p["port"] for p in rule["ports"]]:
        rule["ports"] = rule["ports"] + [{"protocol": "TCP", "port": PROXY_INBOUND}]


def adapt_policies(policies: list[dict], mesh: str, scrapers: dict) -> list[dict]:
    """The NetworkPolicies for ``mesh``, as a new list; ``scrapers`` is the peer the cluster's
    Prometheus is (monitoring.prometheus_peer), which also reads the proxies' admin port."""
    if check(mesh) == "none":
        return policies
    out = []
    for policy in policies:
        policy = {**policy, "spec": {**policy["spec"]}}
        for key, peers_key in (("ingress", "from"), ("egress", "to")):
            if key in policy["spec"]:
                policy["spec"][key] = [dict(r) for r in policy["spec"][key]]
                for rule in policy["spec"][key]:
                    _with_inbound_port(rule, peers_key)
        out.append(policy)
    proxies: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("linkerd-proxy", "network"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [in_namespace(LINKERD_VIZ_NAMESPACE), scrapers],
                    "ports": [{"protocol": "TCP", "port": PROXY_ADMIN}],
                }
            ],
            "egress": [
                {
                    "to": [in_namespace(LINKERD_NAMESPACE)],
                    "ports": [{"protocol": "TCP", "port": p} for p in CONTROL_PLANE_PORTS.values()],
                },
                DNS_EGRESS,
            ],
        },
    }
    return out + [proxies]


EXECUTOR_COMPONENTS = ("encoder", "cpu-stage")  # Services the gateways dial (meta()'s component label)


def apply(docs: list[dict], mesh: str) -> list[dict]:
    """One file's objects, in place: every pod's injection annotation, every executor Service's type."""
    annotations = pod_annotations(mesh)
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet") and annotations:
            template = d["spec"]["template"]["metadata"]
            template["annotations"] = {**template.get("annotations", {}), **annotations}
        elif d["kind"] == "Service" and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") in EXECUTOR_COMPONENTS:
            executor_service(d["spec"], mesh)
    return docs
