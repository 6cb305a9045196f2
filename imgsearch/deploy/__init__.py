"""Generate the Kubernetes manifests (k8s/) and the per-executor Dockerfiles (docker/) from flows/index.yml.

`python app.py k8s` rewrites both folders; a test regenerates
them and compares with the committed files, so the manifests cannot drift from the flow.

Cluster design — one namespace, shared CPU stages, one gateway per encoder:

- loader, normalizer, indexer: one Deployment + Service each, shared by every encoder's
  flow (they are stateless; the indexer keeps nothing but a Qdrant client, and collections
  are named per model, so encoders never collide).
- one encoder Deployment + Service per encoder (``encoder-clip``, ``encoder-dinov2``...),
  each on one GPU.
- one Jina gateway Deployment + Service per encoder (``gateway-clip``...): its graph is
  flows/index.yml with that encoder, so a client picks the encoder by the gateway it calls.
- Qdrant: a distributed-mode StatefulSet (``--qdrant-nodes``), its Secrets and the NetworkPolicies:
  imgsearch/k8s_security.py.

How it is made: for each encoder, flows/index.yml is read (its ``${{ ENV.X }}``
placeholders kept, not expanded), every executor's ``uses`` is swapped for its image and
Jina's own ``Flow.to_kubernetes_yaml`` writes the manifests (``JINA_GATEWAY_IMAGE`` set, so
it never asks Jina's hub). The result is then adapted in code: shared namespace and
ConfigMap, object names, gRPC health probes, resources, GPU requests, tolerations and node
selector, non-root security context, the config (an executor's, or the patched gateway's in
executors/gateway/) the image's ENTRYPOINT names.
The ``${{ ENV.X }}`` placeholders stay in the executors' ``--uses-with`` exactly as in the
flow; Jina expands them when the executor starts, from environment variables that the
ConfigMap ``imgsearch-config`` provides.
"""

from pathlib import Path
from typing import Any, Optional

import yaml

from executors.encoders.specs import get_spec
from imgsearch import k8s_security
from imgsearch.deploy import autoscaling, dashboard, digests, monitoring
from imgsearch.deploy import mesh as service_mesh
from imgsearch.deploy.dockerfiles import dockerfile
from imgsearch.deploy.encoder_configs import encoder_configs
from imgsearch.deploy.manifests import _adapt, _configmap, _jina_yamls, _namespace, _pvc
from imgsearch.deploy.names import (  # noqa: F401 (the package's public names)
    APP_UID,
    CONFIGMAP,
    CPU_ENCODER_RESOURCES,
    CPU_ENCODERS,
    CPU_STAGES,
    DATA_MOUNT,
    ENCODERS,
    GPU_NODE_SELECTOR,
    GPU_TOLERATIONS,
    HEADER,
    HF_HOME,
    NAMESPACE,
    ONNX_CACHE,
    PORT,
    QDRANT_IMAGE,
    QDRANT_URL,
    READY_SERVICE,
    REGISTRY,
    VERSION,
    env_key,
    executor_config,
    gateway_config,
    image,
    image_name,
    stage_of,
)
from imgsearch.flowfile import REPO, read_flow


def _dump_docs(docs: list[dict]) -> str:
    return HEADER + "---\n".join(yaml.safe_dump(d, sort_keys=True, width=120) for d in docs)


def render(
    encoders: tuple[str, ...] = ENCODERS,
    registry: str = REGISTRY,
    model_cache: Optional[str] = None,
    qdrant_nodes: int = k8s_security.DEFAULT_QDRANT_NODES,
    shared_data: bool = False,
    image_digests: Optional[Path] = None,
    mesh: str = "none",
    prometheus_namespace: str = monitoring.DEFAULT_PROMETHEUS_NAMESPACE,
    min_replicas: tuple[str, ...] = (),
    max_replicas: tuple[str, ...] = (),
    target_inflight: tuple[str, ...] = (),
) -> dict[str, str]:
    """Every generated file, by repo-relative path → text. ``shared_data``: the data volume is
    ReadWriteMany and mounted read-only in the normalizer pods too (SHARED_FILES=true).
    ``image_digests``: a JSON file of image -> sha256 digest; every image is pinned (digests.py).
    ``mesh``: none (headless executor Services) or linkerd (mesh.py). ``prometheus_namespace``: where
    Prometheus, prometheus-adapter and Grafana run (monitoring.py). ``min_replicas``...: the
    autoscalers' ``[DEPLOYMENT=]N`` values (autoscaling.py)."""
    for e in encoders:
        get_spec(e)
    pins = digests.load(image_digests)
    stages = [*CPU_STAGES, *(f"encoder-{e}" for e in encoders)]
    scaling = autoscaling.resolve(stages, min_replicas, max_replicas, target_inflight)

    def _dump(docs: list[dict]) -> str:
        return _dump_docs(digests.pin(service_mesh.apply(docs, mesh), pins))

    files: dict[str, str] = {
        "k8s/00-namespace.yml": _dump(_namespace()),
        "k8s/01-configmap.yml": _dump(_configmap(encoders, qdrant_nodes, shared_data, scaling)),
        "k8s/02-storage.yml": _dump(
            [_pvc("imgsearch-data", "50Gi", "ReadWriteMany" if shared_data else "ReadWriteOnce")]
            + ([_pvc(model_cache, "200Gi", "ReadWriteMany")] if model_cache else [])
        ),
        "k8s/10-qdrant.yml": _dump(k8s_security.qdrant(qdrant_nodes)),
    }
    shared: dict[str, list[dict]] = {}
    for encoder in encoders:
        jina = _jina_yamls(encoder, registry)
        for ex in read_flow(encoder)["executors"]:
            stage = stage_of(ex["name"], encoder)
            component = "encoder" if ex["name"] == "encoder" else "cpu-stage"
            docs = _adapt(jina[ex["name"]], stage, component, encoder, model_cache, shared_data)
            if component == "encoder":
                files[f"k8s/30-{stage}.yml"] = _dump(docs)
            elif stage in shared and shared[stage] != docs:
                raise ValueError(f"{stage} differs between encoders' flows; it cannot be shared")
            else:
                shared[stage] = docs
        files[f"k8s/40-gateway-{encoder}.yml"] = _dump(_adapt(jina["gateway"], f"gateway-{encoder}", "gateway", encoder, None))
    for stage, docs in shared.items():
        files[f"k8s/20-{stage}.yml"] = _dump(docs)
    chains = {f"gateway-{e}": [stage_of(ex["name"], e) for ex in read_flow(e)["executors"]] for e in encoders}
    policies = monitoring.allow_scrapes(k8s_security.network_policies(chains), {*chains, *shared, *stages}, prometheus_namespace)
    policies = service_mesh.adapt_policies(policies, mesh, monitoring.prometheus_peer(prometheus_namespace))
    files["k8s/50-network-policies.yml"] = _dump(policies)
    files["k8s/60-autoscaling.yml"] = _dump(autoscaling.autoscalers(scaling))
    files["k8s/monitoring/podmonitor.yml"] = _dump([monitoring.pod_monitor()])
    files["k8s/monitoring/prometheus-adapter.yml"] = _dump([monitoring.adapter_configmap(prometheus_namespace)])
    files["k8s/monitoring/grafana-dashboard.yml"] = _dump([dashboard.dashboard_configmap(prometheus_namespace)])
    files["k8s/grafana/imgsearch-scale-out.json"] = dashboard.dashboard_json()
    for name in sorted({"gateway", *CPU_STAGES, *(image_name(f"encoder-{e}") for e in encoders)}):
        files[f"docker/{name}.Dockerfile"] = dockerfile(name)
    files.update(encoder_configs())
    return dict(sorted(files.items()))


def write(out: Path = REPO, **kwargs: Any) -> list[Path]:
    """Write the generated files under ``out``; remove stale generated files there."""
    files = render(**kwargs)
    for folder, pattern in (("k8s", "*.yml"), ("k8s/monitoring", "*.yml"), ("docker", "*.Dockerfile"), ("executors/encoders/configs", "*.yml")):
        for old in (out / folder).glob(pattern):
            if f"{folder}/{old.name}" not in files and old.read_text().startswith(HEADER):
                old.unlink()
    written = []
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
