"""What every generated pod gets so that a compromised process can do as little as possible.

- a read-only root filesystem: code and baked weights cannot be changed; what a process must
  write goes to an ``emptyDir`` at /tmp (HOME and caches point there: Jina's and Hugging Face's
  small files, an encoder's exported ONNX graphs), or to its volumes (the data PVC, a model cache);
- the runtime's default seccomp profile, no privilege escalation, every capability dropped;
- no service-account token: no pod of the flow talks to the Kubernetes API.

Used for the flow's Deployments (imgsearch/deploy/manifests.py) and Qdrant (k8s_security.py).
"""

from imgsearch.k8s_security import container_context

SCRATCH = "/tmp"
# Per pod: an encoder's ONNX exports (runtimes.py) are its largest scratch files.
SCRATCH_SIZE = {"encoder": "4Gi", "default": "1Gi"}
SCRATCH_ENV = [
    {"name": "HOME", "value": SCRATCH},  # Jina's and hubble's ~/.jina, ~/.cache
    {"name": "XDG_CACHE_HOME", "value": f"{SCRATCH}/.cache"},
    {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},  # /app is read-only: no .pyc attempts
]


def harden(pod: dict, container: dict, component: str) -> None:
    """Apply the module's rules to one pod spec and its one container, in place."""
    pod["automountServiceAccountToken"] = False
    pod.setdefault("securityContext", {})["seccompProfile"] = {"type": "RuntimeDefault"}
    container["securityContext"] = container_context()
    add_scratch(pod, container, SCRATCH_SIZE.get(component, SCRATCH_SIZE["default"]))
    names = {e["name"] for e in container.get("env", [])}
    container["env"] = container.get("env", []) + [e for e in SCRATCH_ENV if e["name"] not in names]


def add_scratch(pod: dict, container: dict, size: str, path: str = SCRATCH, name: str = "tmp") -> None:
    """A writable emptyDir of at most ``size`` at ``path`` (the root filesystem is read-only)."""
    container["volumeMounts"] = container.get("volumeMounts", []) + [{"name": name, "mountPath": path}]
    pod["volumes"] = pod.get("volumes", []) + [{"name": name, "emptyDir": {"sizeLimit": size}}]
