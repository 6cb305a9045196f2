"""HorizontalPodAutoscalers for the encoders and the normalizer, on in-flight requests per pod.

CPU use says nothing about a GPU encoder (its CPU idles while the GPU works), so each autoscaler
reads the metrics contract's ``imgsearch_inflight_requests`` per pod (requests received and not yet
answered, queued ones included), served as a custom metric by prometheus-adapter (monitoring.py).
Above the target a pod has requests waiting; the autoscaler adds pods until the average falls back.

Min, max and the target per Deployment are the ConfigMap's (``ENCODER_CLIP_MIN_REPLICAS``,
``..._MAX_REPLICAS``, ``..._TARGET_INFLIGHT``, ``NORMALIZER_...``) and the autoscalers are generated
from the same values (``app.py k8s --min-replicas/--max-replicas/--target-inflight``); a test checks
that they agree. Those Deployments have no ``replicas`` of their own: a ``kubectl apply`` would
otherwise set it back on every apply and fight the autoscaler (docs/deploy.md, "Scale out").

Behaviour: GPU pods start slowly (an image of several GB, a model to load), so a GPU encoder
grows by at most 2 pods per 2 minutes, after a minute of sustained load, and shrinks one pod per
5 minutes after 10 quiet ones; the CPU stages double at most each minute and shrink after 5.
"""

import re
from dataclasses import dataclass, replace

from imgsearch.deploy.monitoring import INFLIGHT
from imgsearch.deploy.names import runs_on_gpu
from imgsearch.k8s_security import meta


@dataclass(frozen=True)
class Scaling:
    min_replicas: int
    max_replicas: int
    target_inflight: int  # average in-flight requests per pod the autoscaler keeps


# One request running and one waiting keeps a GPU busy; the normalizer's decode threads take several.
ENCODER_DEFAULT = Scaling(min_replicas=1, max_replicas=4, target_inflight=2)
NORMALIZER_DEFAULT = Scaling(min_replicas=1, max_replicas=8, target_inflight=4)
FIELDS = {"min": "min_replicas", "max": "max_replicas", "target": "target_inflight"}
KEYS = {"min_replicas": "MIN_REPLICAS", "max_replicas": "MAX_REPLICAS", "target_inflight": "TARGET_INFLIGHT"}


def autoscaled(stage: str) -> bool:
    return stage.startswith("encoder-") or stage == "normalizer"


def config_key(stage: str, field: str) -> str:
    """The ConfigMap key of one value: encoder-clip, max_replicas -> ENCODER_CLIP_MAX_REPLICAS."""
    return f"{stage.upper().replace('-', '_')}_{KEYS[field]}"


def _parse(values: tuple[str, ...], flag: str, stages: list[str]) -> list[tuple[list[str], int]]:
    """``[NAME=]N`` values: no name = every autoscaled Deployment, ``encoder`` = every encoder."""
    out = []
    for value in values:
        m = re.fullmatch(r"(?:([\w-]+)=)?(\d+)", value.strip())
        if not m:
            raise ValueError(f"{flag} {value!r}: expected N or DEPLOYMENT=N (e.g. encoder-clip=4)")
        name, n = m.group(1), int(m.group(2))
        if name is None:
            targets = stages
        elif name == "encoder":
            targets = [s for s in stages if s.startswith("encoder-")]
        elif name in stages:
            targets = [name]
        else:
            raise ValueError(f"{flag} {value!r}: no autoscaled Deployment {name!r} (one of: encoder, {', '.join(stages)})")
        out.append((targets, n))
    # Broad values first, so that a named Deployment's own value wins.
    return sorted(out, key=lambda t: -len(t[0]))


def resolve(
    stages: list[str], min_replicas: tuple[str, ...] = (), max_replicas: tuple[str, ...] = (), target_inflight: tuple[str, ...] = ()
) -> dict[str, Scaling]:
    """Every autoscaled stage's limits: the defaults, then the flags' values. ValueError names a mistake."""
    scaled = [s for s in stages if autoscaled(s)]
    out = {s: NORMALIZER_DEFAULT if s == "normalizer" else ENCODER_DEFAULT for s in scaled}
    for flag, field, values in (
        ("--min-replicas", "min_replicas", min_replicas),
        ("--max-replicas", "max_replicas", max_replicas),
        ("--target-inflight", "target_inflight", target_inflight),
    ):
        for targets, n in _parse(values, flag, scaled):
            for s in targets:
                out[s] = replace(out[s], **{field: n})
    for s, v in out.items():
        if v.min_replicas < 1:
            raise ValueError(
                f"{s}: minimum replicas {v.min_replicas}: an autoscaler on a per-pod metric cannot scale from 0 "
                "(no pod, no metric); docs/deploy.md, 'Scale to zero', says how (KEDA)"
            )
        if v.max_replicas < v.min_replicas:
            raise ValueError(f"{s}: maximum replicas {v.max_replicas} below the minimum {v.min_replicas}")
        if v.target_inflight < 1:
            raise ValueError(f"{s}: --target-inflight must be at least 1")
    return out


def configmap_data(scaling: dict[str, Scaling]) -> dict[str, str]:
    return {config_key(s, f): str(getattr(v, f)) for s, v in sorted(scaling.items()) for f in KEYS}


def _behavior(stage: str) -> dict:
    if runs_on_gpu(stage):
        up = {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [{"type": "Pods", "value": 2, "periodSeconds": 120}]}
        down = {"stabilizationWindowSeconds": 600, "selectPolicy": "Min", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]}
    else:
        up = {"stabilizationWindowSeconds": 30, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 60}]}
        down = {"stabilizationWindowSeconds": 300, "selectPolicy": "Min", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}
    return {"scaleUp": up, "scaleDown": down}


def hpa(stage: str, scaling: Scaling) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(stage, "autoscaling"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": stage},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {"metric": {"name": INFLIGHT}, "target": {"type": "AverageValue", "averageValue": str(scaling.target_inflight)}},
                }
            ],
            "behavior": _behavior(stage),
        },
    }


def autoscalers(scaling: dict[str, Scaling]) -> list[dict]:
    return [hpa(s, v) for s, v in sorted(scaling.items())]
