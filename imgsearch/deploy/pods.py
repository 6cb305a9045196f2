"""The generated Deployments run as podman containers on one machine (docker/e2e.sh, issue 28).

Each pod's container starts from its Deployment's own container spec: the image, command and
args, the environment (ConfigMap, Secrets, fieldRefs), user and groups, dropped capabilities, no
privilege escalation, a read-only root file system where the spec asks for one, its volumes and
its resource limits. Only what a cluster provides is substituted, as tests/k8s_replay.py does
for processes:

- the pod network: host networking, each pod on its own loopback port instead of 8080 on its
  pod IP (``--host`` 0.0.0.0 → 127.0.0.1), so nothing listens on or talks to another address;
- Service names → ``127.0.0.1:<port>`` in the gateway's ``--deployments-addresses``;
- Jina's ``--monitoring`` left off: its metrics server would listen on every host address;
- Secrets → values the caller gives (made per run);
- PersistentVolumeClaims → host folders the caller gives;
- ConfigMap values the caller overrides (without a Qdrant image here, ``QDRANT_URL`` empty and
  the indexer's embedded store on a host folder of its own: ``store``).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import yaml

from imgsearch.deploy.names import CONFIGMAP, NAMESPACE, PORT

logger = logging.getLogger(__name__)

CONTAINERS_CONF = Path(__file__).resolve().parents[2] / "docker" / "containers.conf"
STORE_MOUNT = "/var/lib/imgsearch/store"  # the indexer's embedded store, where no Qdrant runs
_SERVICE = re.compile(rf'"grpc://([\w-]+)\.{NAMESPACE}\.svc:{PORT}"')


def podman_env() -> dict[str, str]:
    """The environment podman runs in: the project's containers.conf (runc, no default ulimits)."""
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    run = subprocess.run(["podman", *args], capture_output=True, text=True, env=podman_env(), timeout=timeout, check=False)
    if check and run.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])}… failed: {run.stderr.strip()[-2000:]}")
    return run


def load(folder: Path) -> list[dict]:
    return [d for p in sorted(folder.glob("*.yml")) for d in yaml.safe_load_all(p.read_text()) if d]


def container_of(dep: dict) -> dict:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def cpus(quantity: str) -> str:
    """A Kubernetes CPU quantity ("500m", "2") as podman's --cpus."""
    return str(int(quantity[:-1]) / 1000) if quantity.endswith("m") else str(float(quantity))


def memory(quantity: str) -> str:
    """A Kubernetes memory quantity ("512Mi", "4Gi") as podman's --memory (binary units)."""
    units = {"Ki": "k", "Mi": "m", "Gi": "g", "Ti": "t"}
    for suffix, unit in units.items():
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    return quantity  # plain bytes


def size_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


class SpecError(ValueError):
    """A container spec this runner cannot honour (an unknown volume kind, a missing Secret)."""


@dataclass
class Cluster:
    """What a cluster would provide to the pods: ConfigMap overrides, Secrets' values, claims' folders."""

    configmap: dict[str, str]
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)  # (secret, key) -> value
    claims: dict[str, Path] = field(default_factory=dict)  # PVC name -> host folder
    store: Path | None = None  # host folder of the indexer's embedded store (QDRANT_URL empty)


def _env(c: dict, cluster: Cluster, pod_name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        ref = source.get("configMapRef", {})
        if ref.get("name") != CONFIGMAP:
            raise SpecError(f"envFrom {source}: only the ConfigMap {CONFIGMAP} is known here")
        env.update(cluster.configmap)
    for e in c.get("env", []):
        name, source = e["name"], e.get("valueFrom")
        if source is None:
            env[name] = e.get("value", "")
        elif "configMapKeyRef" in source:
            env[name] = cluster.configmap[source["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = cluster.secrets.get((ref["name"], ref["key"]))
            if value is None:
                if ref.get("optional"):
                    continue  # Kubernetes leaves the variable unset
                raise SpecError(f"{pod_name}: Secret {ref['name']} has no key {ref['key']} (the pod would not start)")
            env[name] = value
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            env[name] = {
                "metadata.name": pod_name,
                "metadata.namespace": NAMESPACE,
                "metadata.uid": str(uuid.uuid4()),
                "status.podIP": "127.0.0.1",
            }.get(path, "")
        else:
            raise SpecError(f"{pod_name}: env {name} from {sorted(source)} is not supported here")
    return env


def _volumes(pod: dict, c: dict, cluster: Cluster) -> list[str]:
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    out: list[str] = []
    for m in c.get("volumeMounts", []):
        v, path, ro = volumes[m["name"]], m["mountPath"], bool(m.get("readOnly"))
        if "emptyDir" in v:  # a fresh, world-writable folder per pod, as the kubelet makes it
            limit = v["emptyDir"].get("sizeLimit")
            opts = f"tmpfs-mode=1777{f',tmpfs-size={size_bytes(limit)}' if limit else ''}"
            out += ["--mount", f"type=tmpfs,destination={path},{opts}"]
        elif "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"]["claimName"]
            if claim not in cluster.claims:
                raise SpecError(f"no host folder for the claim {claim}")
            out += ["-v", f"{cluster.claims[claim]}:{path}:{'ro' if ro else 'rw'}"]
        else:
            raise SpecError(f"volume {m['name']}: only emptyDir and persistentVolumeClaim are supported here")
    return out


def _args(c: dict, port: int, ports: dict[str, int]) -> list[str]:
    args = list(c.get("args", []))
    args[args.index("--port") + 1] = str(port)
    # Loopback only: a pod's 0.0.0.0 is its own network namespace, here it would be the host's
    # every address (Jina's gateway binds 0.0.0.0 when no --host is given).
    if "--host" in args:
        args[args.index("--host") + 1] = "127.0.0.1"
    else:
        args += ["--host", "127.0.0.1"]
    if "--port-monitoring" in args:
        from imgsearch.ports import free_port

        args[args.index("--port-monitoring") + 1] = str(free_port())
    if "--monitoring" in args:
        # Jina's metrics server (prometheus_client) listens on every address, on the host network
        # the host's: left off here, where nothing may listen beyond loopback.
        args.remove("--monitoring")
    if "--deployments-addresses" in args:
        i = args.index("--deployments-addresses") + 1
        args[i] = _SERVICE.sub(lambda m: f'"grpc://127.0.0.1:{ports[m.group(1)]}"', args[i])
    return args


def run_argv(dep: dict, cluster: Cluster, port: int, ports: dict[str, int], name: str) -> list[str]:
    """`podman run` arguments for one Deployment's pod, from its own spec (module docstring)."""
    pod = dep["spec"]["template"]["spec"]
    c = container_of(dep)
    pod_sec, sec = pod.get("securityContext", {}), c.get("securityContext", {})
    user = sec.get("runAsUser", pod_sec.get("runAsUser"))
    group = sec.get("runAsGroup", pod_sec.get("runAsGroup", user))
    argv = ["run", "-d", "--name", name, "--network", "host", "--pull", "never"]
    if sec.get("runAsNonRoot", pod_sec.get("runAsNonRoot")) and user in (None, 0):
        raise SpecError(f"{name}: runAsNonRoot without a non-zero runAsUser (the kubelet would refuse it)")
    seccomp = sec.get("seccompProfile", pod_sec.get("seccompProfile", {})).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        argv += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":  # podman's default profile is the runtime default
        raise SpecError(f"{name}: seccompProfile {seccomp} is not supported here")
    if user is not None:
        argv += ["--user", f"{user}:{group}"]
    if pod_sec.get("fsGroup") is not None:
        argv += ["--group-add", str(pod_sec["fsGroup"])]
    for cap in sec.get("capabilities", {}).get("drop", []):
        argv += ["--cap-drop", cap]
    if sec.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    if sec.get("readOnlyRootFilesystem"):
        argv += ["--read-only", "--read-only-tmpfs=false"]  # as on Kubernetes: no /tmp unless a volume gives one
    limits = c.get("resources", {}).get("limits", {})
    if "cpu" in limits:
        argv += ["--cpus", cpus(str(limits["cpu"]))]
    if "memory" in limits:
        argv += ["--memory", memory(str(limits["memory"]))]
    env = _env(c, cluster, dep["metadata"]["name"])
    argv += _volumes(pod, c, cluster)
    if cluster.store is not None and dep["metadata"]["name"] == "indexer" and "IMGSEARCH_STORE" in env and not env.get("QDRANT_URL", ""):
        env["IMGSEARCH_STORE"] = STORE_MOUNT
        argv += ["-v", f"{cluster.store}:{STORE_MOUNT}:rw"]
    for k, v in sorted(env.items()):
        argv += ["--env", f"{k}={v}"]
    if c.get("command"):
        argv += ["--entrypoint", c["command"][0]]
        rest = c["command"][1:]
    else:
        rest = []
    return argv + [c["image"], *rest, *_args(c, port, ports)]


def health(port: int, service: str = "", timeout: float = 2) -> str:
    """What a Kubernetes gRPC probe asks: grpc.health.v1 Check; the status name, or the error code."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def probe(c: dict, kind: str, port: int) -> str:
    """Run the container's own probe (``startupProbe``…) as the kubelet would, on the pod's port."""
    spec = c[kind]["grpc"]
    if spec["port"] != PORT:
        raise SpecError(f"{kind} probes port {spec['port']}, the container listens on {PORT}")
    return health(port, spec.get("service", ""), float(c[kind].get("timeoutSeconds", 1)))


class Pods:
    """Start, probe and stop one encoder's pods as containers (executors first, then its gateway)."""

    def __init__(self, manifests: list[dict], encoder: str, cluster: Cluster, prefix: str = "imgsearch-e2e"):
        from imgsearch.deploy.names import stage_of
        from imgsearch.flowfile import read_flow
        from imgsearch.ports import free_port

        self.deployments = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "Deployment"}
        self.cluster = cluster
        self.stages = [stage_of(ex["name"], encoder) for ex in read_flow(encoder)["executors"]]
        self.gateway = f"gateway-{encoder}"
        self.ports = {s: free_port() for s in [*self.stages, self.gateway]}
        self.prefix = prefix
        self.started: list[str] = []

    def name(self, stage: str) -> str:
        return f"{self.prefix}-{stage}"

    def start(self, stage: str) -> None:
        podman("rm", "-f", "-i", self.name(stage), check=False)
        argv = run_argv(self.deployments[stage], self.cluster, self.ports[stage], self.ports, self.name(stage))
        logger.info("%s: starting %s", stage, self.deployments[stage]["spec"]["template"]["spec"]["containers"][0]["image"])
        logger.debug("podman %s", " ".join(a if not any(k in a for k in ("TOKEN=", "KEY=")) else a.split("=")[0] + "=…" for a in argv))
        podman(*argv)
        self.started.append(self.name(stage))

    def wait_healthy(self, stage: str) -> None:
        """Poll the startup probe (within its own period x failureThreshold), then readiness and liveness."""
        c = container_of(self.deployments[stage])
        startup = c["startupProbe"]
        deadline = time.monotonic() + startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        status = ""
        while time.monotonic() < deadline:
            status = probe(c, "startupProbe", self.ports[stage])
            if status == "SERVING":
                break
            state = podman("inspect", "-f", "{{.State.Status}}", self.name(stage), check=False).stdout.strip()
            if state not in ("running", "created", "configured"):
                raise RuntimeError(f"{stage} exited ({state}) before its probe passed:\n{self.logs(stage)}")
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{stage}: startup probe {status} after its allowed time:\n{self.logs(stage)}")
        while (ready := probe(c, "readinessProbe", self.ports[stage])) != "SERVING":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{stage}: readiness probe {ready}:\n{self.logs(stage)}")
            time.sleep(0.2)
        live = probe(c, "livenessProbe", self.ports[stage])
        if live != "SERVING":
            raise RuntimeError(f"{stage}: liveness probe {live}")

    def start_healthy(self, stage: str) -> float:
        """Seconds from `podman run` to the container's probes passing."""
        t0 = time.perf_counter()
        self.start(stage)
        self.wait_healthy(stage)
        return time.perf_counter() - t0

    def logs(self, stage: str, tail: int = 60) -> str:
        run = podman("logs", "--tail", str(tail), self.name(stage), check=False)
        return (run.stdout + run.stderr)[-6000:]

    def pid(self, stage: str) -> int:
        """The container's main process, as the host sees it."""
        return int(podman("inspect", "-f", "{{.State.Pid}}", self.name(stage)).stdout.strip())

    @property
    def host(self) -> str:
        return f"grpc://127.0.0.1:{self.ports[self.gateway]}"

    def stop(self, stage: str) -> None:
        podman("rm", "-f", "-t", "10", self.name(stage), check=False)

    def stop_all(self) -> None:
        for name in reversed(self.started):
            podman("rm", "-f", "-t", "10", name, check=False)
        self.started.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
