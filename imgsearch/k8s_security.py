"""The cluster's Qdrant (distributed mode), its credentials, and the network boundaries.

Called by imgsearch/deploy/ (`app.py k8s --qdrant-nodes N`); kept apart so the generator of
the Jina manifests stays one concern.

- Qdrant: a StatefulSet of N nodes with ``QDRANT__CLUSTER__ENABLED``, the p2p port, node 0
  bootstrapping the others through the headless Service, a PodDisruptionBudget (one node down
  at a time) and pod anti-affinity (no two nodes on one machine, so replicas survive a machine).
  Its API key (``QDRANT__SERVICE__API_KEY``) and read-only key come from the Secret ``qdrant-api-key``.
- Secrets are referenced, never generated: the operator creates them (docs/deploy.md), and a pod
  whose Secret is missing does not start (no silent open default).
- NetworkPolicies: ingress and egress denied by default; clients reach only the gateways; each
  gateway reaches only its own chain (loader, normalizer, its encoder, indexer); only the indexer
  reaches Qdrant's client ports; Qdrant nodes reach each other on p2p; every stage's egress is its
  own (stage_egress), and none reaches the cloud's metadata address.
- Pods: non-root, read-only root filesystem, RuntimeDefault seccomp, no capabilities, no
  service-account token (imgsearch/deploy/hardening.py; Qdrant's own non-root image here).
"""

from typing import Any

NAMESPACE = "imgsearch"
PORT = 8080  # every executor and gateway listens here (Jina's Kubernetes convention)
QDRANT_HTTP, QDRANT_GRPC, QDRANT_P2P = 6333, 6334, 6335
QDRANT_SECRET, TOKEN_SECRET = "qdrant-api-key", "imgsearch-token"
S3_SECRET = "imgsearch-s3"  # optional: the loader's bucket credentials, where no pod role gives them
S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
# Qdrant's own non-root build (uid 1000), run as its Helm chart runs it: uid 1000, gid 2000.
QDRANT_IMAGE = "qdrant/qdrant:v1.19.0-unprivileged"
QDRANT_UID, QDRANT_GID, QDRANT_FS_GROUP = 1000, 2000, 3000
QDRANT_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
DEFAULT_QDRANT_NODES = 3
STORE_READERS = ("indexer",)  # the only components that talk to Qdrant directly on the cluster


def container_context(**extra: Any) -> dict:
    """Every container's: read-only root filesystem, no privilege escalation, no capabilities."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        **extra,
    }


def meta(name: str, component: str) -> dict:
    return {
        "name": name,
        "namespace": NAMESPACE,
        "labels": {"app": name, "app.kubernetes.io/part-of": "imgsearch", "app.kubernetes.io/component": component},
    }


def _secret_env(name: str, secret: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def stage_env(stage: str) -> list[dict]:
    """Secrets every flow stage gets: the write token (executors/auth.py); the indexer also
    Qdrant's API key (QDRANT_API_KEY, read by ServerStore); the loader bucket credentials, if any."""
    env = [_secret_env("IMGSEARCH_TOKEN", TOKEN_SECRET, "token")]
    if stage in STORE_READERS:
        env.append(_secret_env("QDRANT_API_KEY", QDRANT_SECRET, "api-key"))
    if stage == "loader":  # --data s3://...: each variable set only where the Secret has it
        env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": k, "optional": True}}} for k in S3_ENV]
    return env


def layout_config(nodes: int) -> dict[str, str]:
    """The ConfigMap's collection layout for ServerStore (executors/indexer/store/server.py)."""
    return {
        "QDRANT_SHARD_NUMBER": str(nodes),
        "QDRANT_REPLICATION_FACTOR": str(min(2, nodes)),  # every shard on two nodes: one may go down
        "QDRANT_WRITE_CONSISTENCY_FACTOR": "1",
        "IMGSEARCH_TOKEN_FOR_SEARCH": "0",  # "1": searches need the token too
    }


def qdrant(nodes: int = DEFAULT_QDRANT_NODES) -> list[dict]:
    if nodes < 1:
        raise ValueError(f"--qdrant-nodes must be >= 1, got {nodes}")
    name, headless_name = "qdrant", "qdrant-headless"
    client_ports = [
        {"name": "http", "port": QDRANT_HTTP, "targetPort": QDRANT_HTTP},
        {"name": "grpc", "port": QDRANT_GRPC, "targetPort": QDRANT_GRPC},
    ]
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(headless_name, "vector-store"),
        "spec": {
            "clusterIP": "None",
            "selector": {"app": name},
            "publishNotReadyAddresses": True,
            "ports": client_ports + [{"name": "p2p", "port": QDRANT_P2P, "targetPort": QDRANT_P2P}],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, "vector-store"),
        "spec": {"type": "ClusterIP", "selector": {"app": name}, "ports": client_ports},
    }
    peer = f"{headless_name}.{NAMESPACE}.svc.cluster.local"
    # Node 0 starts the cluster; every other node joins it through the headless Service's DNS.
    script = (
        f'i="${{HOSTNAME##*-}}"; uri="http://${{HOSTNAME}}.{peer}:{QDRANT_P2P}"; '
        f'if [ "$i" = "0" ]; then exec ./entrypoint.sh --uri "$uri"; '
        f'else exec ./entrypoint.sh --bootstrap "http://{name}-0.{peer}:{QDRANT_P2P}" --uri "$uri"; fi'
    )
    container = {
        "name": "qdrant",
        "image": QDRANT_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/bash", "-c", script],
        "ports": [
            {"name": "http", "containerPort": QDRANT_HTTP},
            {"name": "grpc", "containerPort": QDRANT_GRPC},
            {"name": "p2p", "containerPort": QDRANT_P2P},
        ],
        "env": [
            {"name": "QDRANT__SERVICE__GRPC_PORT", "value": str(QDRANT_GRPC)},
            {"name": "QDRANT__CLUSTER__ENABLED", "value": "true"},
            {"name": "QDRANT__CLUSTER__P2P__PORT", "value": str(QDRANT_P2P)},
            _secret_env("QDRANT__SERVICE__API_KEY", QDRANT_SECRET, "api-key"),
            _secret_env("QDRANT__SERVICE__READ_ONLY_API_KEY", QDRANT_SECRET, "read-only-api-key"),
            # The root filesystem is read-only: Qdrant's start-up marker (else written beside its
            # binary, a panic) and snapshots go to writable volumes; no telemetry leaves the pod.
            {"name": "QDRANT_INIT_FILE_PATH", "value": "/qdrant/init/.qdrant-initialized"},
            {"name": "QDRANT__STORAGE__SNAPSHOTS_PATH", "value": "/qdrant/snapshots"},
            {"name": "QDRANT__TELEMETRY_DISABLED", "value": "true"},
        ],
        "volumeMounts": [
            {"name": "qdrant-storage", "mountPath": "/qdrant/storage"},
            {"name": "qdrant-init", "mountPath": "/qdrant/init"},
            {"name": "qdrant-snapshots", "mountPath": "/qdrant/snapshots"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": container_context(runAsUser=QDRANT_UID, runAsGroup=QDRANT_GID),
        "resources": {k: dict(v) for k, v in QDRANT_RESOURCES.items()},
        # /readyz and /livez need no API key.
        "startupProbe": {"httpGet": {"path": "/readyz", "port": QDRANT_HTTP}, "periodSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": QDRANT_HTTP}, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/livez", "port": QDRANT_HTTP}, "periodSeconds": 20, "failureThreshold": 6},
    }
    pod_spec: dict[str, Any] = {
        "securityContext": {"fsGroup": QDRANT_FS_GROUP, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "automountServiceAccountToken": False,
        "containers": [container],
        # Snapshots are scratch here: copy one out (or mount a volume at /qdrant/snapshots) to keep it.
        "volumes": [
            {"name": "qdrant-init", "emptyDir": {"sizeLimit": "1Mi"}},
            {"name": "qdrant-snapshots", "emptyDir": {"sizeLimit": "20Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    if nodes > 1:
        pod_spec["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": name}}, "topologyKey": "kubernetes.io/hostname"}
                ]
            }
        }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(name, "vector-store"),
        "spec": {
            "serviceName": headless_name,
            "replicas": nodes,
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, "app.kubernetes.io/part-of": "imgsearch"}}, "spec": pod_spec},
            "volumeClaimTemplates": [
                {"metadata": {"name": "qdrant-storage"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}}}
            ],
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(name, "vector-store"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": name}}},
    }
    return [headless, service, statefulset, pdb]


def _policy(name: str, selector: dict, ingress: list[dict], egress: list[dict] | None = None) -> dict:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"], "ingress": ingress}
    if egress is not None:
        spec["policyTypes"].append("Egress")
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(name, "network"), "spec": spec}


def _from(*apps: str) -> list[dict]:
    return [{"podSelector": {"matchLabels": {"app": a}}} for a in apps]


def _tcp(*ports: int) -> list[dict]:
    return [{"protocol": "TCP", "port": p} for p in ports]


DNS_EGRESS = {
    "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


# Off the cluster, never the link-local range: the cloud's metadata service (169.254.169.254,
# fd00:ec2::254) hands out the node's credentials to whoever asks.
OUTSIDE = [
    {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}},
    {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10", "fd00:ec2::254/128"]}},
]


def stage_egress(stage: str) -> list[dict]:
    """Where each stage may connect (besides DNS): the loader to object storage (any address
    off the metadata range: a bucket's endpoint is the operator's choice, AWS_ENDPOINT_URL); an
    encoder to the Hugging Face hub over HTTPS (nowhere once HF_HUB_OFFLINE=1 and its weights
    are baked: docs/deploy.md); the indexer to Qdrant's client ports; the normalizer nowhere."""
    if stage == "loader":
        return [{"to": OUTSIDE}, DNS_EGRESS]
    if stage.startswith("encoder-"):
        return [{"to": OUTSIDE, "ports": _tcp(443)}, DNS_EGRESS]
    if stage in STORE_READERS:
        return [{"to": _from("qdrant"), "ports": _tcp(QDRANT_HTTP, QDRANT_GRPC)}, DNS_EGRESS]
    return []


def network_policies(chains: dict[str, list[str]]) -> list[dict]:
    """``chains``: gateway name -> the stages it calls (its flow's executors, in order)."""
    stages = sorted({s for chain in chains.values() for s in chain})
    policies = [_policy("default-deny-ingress", {}, []), _policy("default-deny-egress", {}, [], [])]
    policies[1]["spec"]["policyTypes"] = ["Egress"]
    del policies[1]["spec"]["ingress"]
    for p in policies:
        p["spec"]["podSelector"] = {}
    for gateway, chain in sorted(chains.items()):
        # Clients (anywhere) reach the gateway; the gateway reaches only its chain (and DNS).
        to_chain = {"to": [{"podSelector": {"matchLabels": {"app": s}}} for s in chain], "ports": _tcp(PORT)}
        policies.append(_policy(gateway, {"app": gateway}, [{"ports": _tcp(PORT)}], [to_chain, DNS_EGRESS]))
    for stage in stages:
        callers = sorted(g for g, chain in chains.items() if stage in chain)
        policies.append(_policy(stage, {"app": stage}, [{"from": _from(*callers), "ports": _tcp(PORT)}], stage_egress(stage)))
    policies.append(
        _policy(
            "qdrant",
            {"app": "qdrant"},
            [
                {"from": _from(*STORE_READERS), "ports": _tcp(QDRANT_HTTP, QDRANT_GRPC)},
                {"from": _from("qdrant"), "ports": _tcp(QDRANT_P2P)},
            ],
            [{"to": _from("qdrant"), "ports": _tcp(QDRANT_P2P)}, DNS_EGRESS],
        )
    )
    return policies
