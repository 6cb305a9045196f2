"""The committed k8s/ manifests: Qdrant in distributed mode with its Secrets, the executors'
token from a Secret, and NetworkPolicies whose allowed edges are exactly the flows' chains."""

from pathlib import Path

import pytest
import yaml

from imgsearch import deploy, k8s_security
from imgsearch.deploy import read_flow, stage_of

K8S = Path(__file__).resolve().parent.parent / "k8s"
PROMETHEUS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def _docs() -> list[dict]:
    return [d for f in sorted(K8S.glob("*.yml")) for d in yaml.safe_load_all(f.read_text()) if d]


def _pods() -> dict[str, dict]:
    """app label -> pod template metadata labels, for every workload."""
    return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in _docs() if d["kind"] in ("Deployment", "StatefulSet")}


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _allowed_edges() -> set[tuple[str, str, int]]:
    """(from, to, port) for every pair of workloads the ingress policies let through, plus
    ("*", to, port) where any source is allowed. A pod with no policy selecting it accepts all."""
    pods = _pods()
    policies = [d for d in _docs() if d["kind"] == "NetworkPolicy"]
    edges = set()
    for target, labels in pods.items():
        mine = [p for p in policies if _selects(p["spec"]["podSelector"], labels) and "Ingress" in p["spec"]["policyTypes"]]
        assert mine, f"{target} has no ingress policy: open to everything"
        for policy in mine:
            for rule in policy["spec"].get("ingress", []):
                ports = [p["port"] for p in rule.get("ports", [])]
                assert ports, f"{policy['metadata']['name']}: a rule without ports opens every port"
                sources = rule.get("from")
                for port in ports:
                    if not sources:
                        edges.add(("*", target, port))
                        continue
                    for src in sources:
                        if src == PROMETHEUS:  # the cluster's Prometheus pods, from their own namespace
                            edges.add(("prometheus", target, port))
                            continue
                        assert set(src) == {"podSelector"}, src  # no other namespace- or IP-wide sources
                        edges |= {(s, target, port) for s, sl in pods.items() if _selects(src["podSelector"], sl)}
    return edges


def test_allowed_edges_are_exactly_the_flow_chains():
    gateways = {d["metadata"]["name"] for d in _docs() if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("gateway-")}
    encoders = [g.removeprefix("gateway-") for g in sorted(gateways)]
    want = {("*", g, deploy.PORT) for g in gateways}  # clients reach only the gateways
    for e in encoders:  # each gateway calls every stage of its own flow, and nothing else
        want |= {(f"gateway-{e}", stage_of(ex["name"], e), deploy.PORT) for ex in read_flow(e)["executors"]}
    want |= {("indexer", "qdrant", 6333), ("indexer", "qdrant", 6334), ("qdrant", "qdrant", 6335)}
    # Prometheus reads every flow pod's metrics port (9090), and nothing else; not Qdrant's.
    want |= {("prometheus", name, 9090) for name in _pods() if name != "qdrant"}
    assert _allowed_edges() == want


def test_gateways_egress_only_to_their_chain():
    policies = {d["metadata"]["name"]: d for d in _docs() if d["kind"] == "NetworkPolicy"}
    for name, policy in policies.items():
        if not name.startswith("gateway-"):
            continue
        encoder = name.removeprefix("gateway-")
        chain = {stage_of(ex["name"], encoder) for ex in read_flow(encoder)["executors"]}
        assert "Egress" in policy["spec"]["policyTypes"]
        to = {
            t["podSelector"]["matchLabels"]["app"]
            for rule in policy["spec"]["egress"]
            for t in rule["to"]
            if "app" in t.get("podSelector", {}).get("matchLabels", {})
        }
        assert to == chain, (name, to)


def test_qdrant_is_a_cluster_with_keys_from_a_secret():
    docs = _docs()
    sts = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "qdrant")
    spec = sts["spec"]
    assert spec["replicas"] == k8s_security.DEFAULT_QDRANT_NODES == 3
    (c,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["QDRANT__CLUSTER__ENABLED"]["value"] == "true" and env["QDRANT__CLUSTER__P2P__PORT"]["value"] == "6335"
    assert env["QDRANT__SERVICE__API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "qdrant-api-key"
    assert env["QDRANT__SERVICE__READ_ONLY_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "qdrant-api-key"
    assert 6335 in {p["containerPort"] for p in c["ports"]}
    script = c["command"][-1]
    assert "--bootstrap" in script and f"qdrant-0.{spec['serviceName']}.imgsearch.svc.cluster.local:6335" in script
    headless = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and 6335 in {p["port"] for p in headless["spec"]["ports"]}
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == {"app": "qdrant"} and pdb["spec"]["maxUnavailable"] == 1
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["QDRANT_SHARD_NUMBER"] == "3" and config["QDRANT_REPLICATION_FACTOR"] == "2"


def test_token_and_qdrant_key_reach_exactly_the_right_pods():
    for d in _docs():
        if d["kind"] != "Deployment":
            continue
        (c,) = d["spec"]["template"]["spec"]["containers"]
        secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
        name = d["metadata"]["name"]
        assert secrets.pop("IMGSEARCH_METRICS_TOKEN") == "imgsearch-metrics-token", name  # every pod's /metrics
        if name.startswith("gateway-"):
            assert secrets == {}, name  # the write token's check is in the executors
        else:
            assert secrets.get("IMGSEARCH_TOKEN") == "imgsearch-token", name
            assert ("QDRANT_API_KEY" in secrets) == (name == "indexer"), name


@pytest.mark.parametrize("nodes", [1, 5])
def test_node_count_is_a_flag(nodes):
    docs = k8s_security.qdrant(nodes)
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    assert sts["spec"]["replicas"] == nodes
    assert ("affinity" in sts["spec"]["template"]["spec"]) == (nodes > 1)
    with pytest.raises(ValueError, match="qdrant-nodes"):
        k8s_security.qdrant(0)
