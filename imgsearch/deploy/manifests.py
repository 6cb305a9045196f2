"""The Kubernetes manifests: Jina's own export of flows/index.yml per encoder, adapted in code."""

import contextlib
import copy
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import yaml

from executors.encoders.runtime_env import ENV_RUNTIME
from executors.encoders.specs import get_spec
from executors.gateway.replicas import DEFAULT_RESOLVE_INTERVAL_S, RESOLVE_INTERVAL_ENV
from executors.limits import MAX_REQUEST_MB
from imgsearch import k8s_security
from imgsearch.deploy import hardening, monitoring
from imgsearch.deploy.autoscaling import Scaling, autoscaled, configmap_data
from imgsearch.deploy.names import (
    APP_UID,
    CONFIGMAP,
    CPU_ENCODER_RESOURCES,
    CPU_ENCODERS,
    CPU_RESOURCES,
    DATA_MOUNT,
    ENCODER_MEMORY_DEFAULT,
    GATEWAY_RESOURCES,
    GPU_NODE_SELECTOR,
    GPU_TOLERATIONS,
    HF_HOME,
    NAMESPACE,
    PORT,
    QDRANT_URL,
    READY_SERVICE,
    env_key,
    executor_config,
    gateway_config,
    image,
    image_name,
    runs_on_gpu,
    stage_of,
)
from imgsearch.flowfile import read_flow


def _jina_yamls(encoder: str, registry: str) -> dict[str, list[dict]]:
    """Jina's own Kubernetes YAML for the flow with this encoder, per flow deployment name."""
    from jina import Flow

    flow = read_flow(encoder)
    if flow["with"].get("protocol", "grpc") != "grpc":
        raise ValueError("flows/index.yml must use the grpc protocol")
    old = os.environ.get("JINA_GATEWAY_IMAGE")
    os.environ["JINA_GATEWAY_IMAGE"] = image("gateway", registry)  # else Jina asks its hub
    try:
        # --port-monitoring 9090 on every pod, where executors/metrics/ serves /metrics behind the
        # token. Not Jina's --monitoring: in an executor that starts its own server, unauthenticated.
        f = Flow(protocol="grpc", port=PORT, port_monitoring=monitoring.METRICS_PORT)
        for ex in flow["executors"]:
            stage = stage_of(ex["name"], encoder)
            extra = {"uses_dynamic_batching": ex["uses_dynamic_batching"]} if ex["uses_dynamic_batching"] else {}
            f = f.add(name=ex["name"], uses=f"docker://{image(image_name(stage), registry)}", uses_with=ex["uses_with"], **extra)
        with tempfile.TemporaryDirectory() as tmp:
            with contextlib.redirect_stdout(sys.stderr):
                f.to_kubernetes_yaml(tmp, k8s_namespace=NAMESPACE)
            return {
                d.name: [doc for doc in yaml.safe_load_all(p.read_text()) if doc]
                for d in sorted(Path(tmp).iterdir())
                for p in sorted(d.glob("*.yml"))
            }
    finally:
        if old is None:
            os.environ.pop("JINA_GATEWAY_IMAGE", None)
        else:
            os.environ["JINA_GATEWAY_IMAGE"] = old


_meta = k8s_security.meta  # every object's name, namespace and labels


def _probes(container: dict) -> None:
    container.pop("startupProbe", None)
    container.pop("livenessProbe", None)
    container.pop("readinessProbe", None)
    # Model downloads and loads can take minutes: the startup probe allows 20.
    container["startupProbe"] = {"grpc": {"port": PORT}, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 120}
    container["readinessProbe"] = {"grpc": {"port": PORT, "service": READY_SERVICE}, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
    container["livenessProbe"] = {"grpc": {"port": PORT}, "periodSeconds": 20, "timeoutSeconds": 10, "failureThreshold": 6}


def _security(spec: dict, container: dict) -> None:
    spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": APP_UID, "runAsGroup": APP_UID, "fsGroup": APP_UID}
    container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _env(container: dict, name: str, extra: list[dict]) -> None:
    env = [e for e in container.get("env", []) if e["name"] != "ENCODER_MODEL"]
    for e in env:
        if e["name"] == "K8S_DEPLOYMENT_NAME":
            e["value"] = name
    container["env"] = env + extra
    container["envFrom"] = [{"configMapRef": {"name": CONFIGMAP}}]


def _replace_arg(args: list[str], flag: str, value: str) -> None:
    i = args.index(flag)
    args[i + 1] = value


def _adapt(docs: list[dict], stage: str, component: str, encoder: str, model_cache: Optional[str], shared_data: bool = False) -> list[dict]:
    """Jina's ConfigMap + Service + Deployment for one stage → our Service + Deployment."""
    # Jina's ServiceMonitor is dropped: one PodMonitor scrapes every pod (monitoring.py).
    by_kind = {d["kind"]: d for d in docs if d["kind"] != "ServiceMonitor"}
    if set(by_kind) != {"ConfigMap", "Service", "Deployment"}:
        raise ValueError(f"unexpected objects from Jina for {stage}: {sorted(by_kind)}")
    svc, dep = copy.deepcopy(by_kind["Service"]), copy.deepcopy(by_kind["Deployment"])

    svc["metadata"] = _meta(stage, component)
    svc["spec"]["selector"] = {"app": stage}
    svc["spec"]["ports"] = [{"name": "grpc", "port": PORT, "protocol": "TCP", "targetPort": PORT, "appProtocol": "grpc"}]

    dep["metadata"] = _meta(stage, component)
    spec = dep["spec"]
    spec["selector"] = {"matchLabels": {"app": stage}}
    if autoscaled(stage):
        spec.pop("replicas", None)  # the autoscaler's (autoscaling.py): an apply must not reset it
    pod = spec["template"]
    pod["metadata"]["labels"] = {
        **pod["metadata"]["labels"],
        "app": stage,
        "app.kubernetes.io/part-of": "imgsearch",
        "app.kubernetes.io/component": component,  # the PodMonitor's selector
    }
    pod["metadata"].pop("annotations", None)  # Jina's linkerd.io/inject: only with --mesh linkerd (mesh.py)
    pspec = pod["spec"]
    (container,) = pspec["containers"]
    args = container["args"]
    if component == "gateway":
        addresses = json.loads(args[args.index("--deployments-addresses") + 1])
        addresses = {name: [f"grpc://{stage_of(name, encoder)}.{NAMESPACE}.svc:{PORT}"] for name in addresses}
        _replace_arg(args, "--deployments-addresses", json.dumps(addresses, sort_keys=True))
        _replace_arg(args, "--uses", gateway_config())  # the patched gateway (executors/gateway/)
    else:
        _replace_arg(args, "--uses", executor_config(stage))  # what the image's ENTRYPOINT runs
    container["ports"] = [{"name": "grpc", "containerPort": PORT}, monitoring.container_port()]
    _probes(container)
    _security(pspec, container)
    extra_env: list[dict] = []
    if component == "encoder":
        # flows/index.yml's `model: ${{ ENV.ENCODER_MODEL }}`, per encoder from the ConfigMap.
        extra_env.append({"name": "ENCODER_MODEL", "valueFrom": {"configMapKeyRef": {"name": CONFIGMAP, "key": env_key(encoder)}}})
        if runs_on_gpu(stage):
            low, high = get_spec(encoder).cluster_memory or ENCODER_MEMORY_DEFAULT
            container["resources"] = {
                "requests": {"cpu": "2", "memory": low, "nvidia.com/gpu": 1},
                "limits": {"cpu": "8", "memory": high, "nvidia.com/gpu": 1},
            }
            pspec["nodeSelector"] = dict(GPU_NODE_SELECTOR)
            pspec["tolerations"] = copy.deepcopy(GPU_TOLERATIONS)
        elif encoder in CPU_ENCODERS:  # issue 28: a model on the CPU, on any node
            container["resources"] = copy.deepcopy(CPU_ENCODER_RESOURCES)
        else:  # a remote API's client: requests out, no model, no GPU
            container["resources"] = copy.deepcopy(CPU_RESOURCES)
        mounts = [{"name": "shm", "mountPath": "/dev/shm"}]
        volumes: list[dict] = [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}]
        if model_cache:
            mounts.append({"name": "model-cache", "mountPath": HF_HOME})
            volumes.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": model_cache}})
        container["volumeMounts"] = mounts
        pspec["volumes"] = volumes
    elif component == "gateway":
        container["resources"] = copy.deepcopy(GATEWAY_RESOURCES)
    else:
        container["resources"] = copy.deepcopy(CPU_RESOURCES)
        if stage == "loader" or (stage == "normalizer" and shared_data):
            # The normalizer reads the files the loader passes by path (SHARED_FILES), at the same paths.
            mount = {"name": "data", "mountPath": DATA_MOUNT, **({"readOnly": True} if stage == "normalizer" else {})}
            container["volumeMounts"] = [mount]
            pspec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "imgsearch-data"}}]
        if stage == "loader":
            # What scans learned of bucket objects (executors/loader/storage.py) outlives the pod.
            extra_env.append({"name": "IMGSEARCH_OBJECT_CACHE", "value": f"{DATA_MOUNT}/.imgsearch/objects.sqlite"})
    if component != "gateway":
        extra_env += k8s_security.stage_env(stage)  # the write token; the indexer's Qdrant key
    extra_env.append(monitoring.metrics_env())  # every pod's /metrics needs it
    _env(container, stage, extra_env)
    hardening.harden(pspec, container, component)  # read-only root, seccomp, no API token
    return [svc, dep]


def _namespace() -> list[dict]:
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "imgsearch"}}}]


def _configmap(encoders: tuple[str, ...], qdrant_nodes: int, shared_data: bool = False, scaling: Optional[dict[str, Scaling]] = None) -> list[dict]:
    data = {
        "QDRANT_URL": QDRANT_URL,  # the indexer's Qdrant (flows/index.yml: qdrant_url)
        "IMGSEARCH_STORE": "/tmp/imgsearch-store",  # embedded store; unused while QDRANT_URL is set
        "NORMALIZE_RESIZE": "",  # empty = keep aspect; e.g. "96" for the original study's fixed size
        # Empty: files' bytes travel from the loader through the gateway; "true" (--shared-data): the
        # normalizer pods mount the data volume too and read the files the loader passes by path.
        "SHARED_FILES": "true" if shared_data else "",
        ENV_RUNTIME: "",  # empty = auto: torch on the GPU nodes; torch | onnx | torch-bf16 | onnx-int8
        "ENCODER_DEVICE_DECODE": "",  # empty = auto: JPEGs decoded by nvJPEG on the GPU nodes; on | off
        # Collections are named <dataset>--<model id> by the clients, so these ids also name them.
        **{env_key(e): get_spec(e).checkpoint for e in encoders},
        "HF_HUB_OFFLINE": "0",  # "1" where encoder images have their weights baked in and no internet
        "JINA_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        # The gateways' cap on one request (executors/limits.py; the gateway class applies it).
        "IMGSEARCH_MAX_REQUEST_MB": str(MAX_REQUEST_MB),
        **k8s_security.layout_config(qdrant_nodes),
        # How often a gateway resolves the headless Services' names again (executors/gateway/replicas.py):
        # a new replica gets requests within this many seconds (CoreDNS answers with a 5 s TTL).
        RESOLVE_INTERVAL_ENV: str(int(DEFAULT_RESOLVE_INTERVAL_S)),
        # The autoscalers' min, max and target in-flight requests per pod (autoscaling.py writes both).
        **configmap_data(scaling or {}),
    }
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(CONFIGMAP, "config"), "data": data}]


def _pvc(name: str, size: str, mode: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(name, "storage"),
        "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}},
    }
