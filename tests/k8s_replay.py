"""The committed k8s/ manifests replayed as local processes, one per pod.

Each pod's exact command, args and ConfigMap environment; only what a cluster provides is
substituted: ports (8080 everywhere → free local ports), Service DNS names (→ 127.0.0.1,
one address per replica) and whatever ConfigMap values the caller overrides (QDRANT_URL,
the store, checkpoints). Every process is ours, so tests can SIGKILL and restart one pod
while the gateway lives on (tests/test_deploy.py, tests/faults/).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import yaml

from imgsearch import deploy
from imgsearch.flow import free_port

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
VENV_BIN = Path(sys.executable).parent


def load_manifests() -> list[dict]:
    return [d for p in sorted(K8S.glob("*.yml")) for d in yaml.safe_load_all(p.read_text()) if d]


def objects(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in load_manifests() if d["kind"] == kind}


def container(dep: dict) -> dict:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


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


class Replay:
    """Start, kill and restart the pods of one encoder's gateway, each a local process.

    ``replicas`` gives a stage more than one pod (each its own port); the gateway's
    ``--deployments-addresses`` then lists them all, as a headless Service would.
    Stages in ``drop_capabilities`` run without the capabilities their container drops
    (``capabilities.drop: [ALL]``, via util-linux ``setpriv``), so file permissions bite as
    they do on the cluster.
    """

    def __init__(
        self,
        encoder: str,
        overrides: dict[str, str],
        replicas: Optional[dict[str, int]] = None,
        drop_capabilities: tuple[str, ...] = (),
    ):
        self.encoder = encoder
        self.configmap = dict(objects("ConfigMap")[deploy.CONFIGMAP]["data"])
        self.configmap.update(JINA_LOG_LEVEL="ERROR", HF_HUB_OFFLINE="1", **overrides)
        self.deployments = objects("Deployment")
        self.stages = ["loader", "normalizer", f"encoder-{encoder}", "indexer"]
        self.gateway = f"gateway-{encoder}"
        counts = {s: 1 for s in [*self.stages, self.gateway]}
        counts.update(replicas or {})
        # One port per pod, kept across restarts so the gateway finds a restarted pod again.
        self.ports = {s: [free_port() for _ in range(n)] for s, n in counts.items()}
        self.procs: dict[tuple[str, int], subprocess.Popen] = {}
        self.drop_capabilities = drop_capabilities

    def port(self, stage: str, replica: int = 0) -> int:
        return self.ports[stage][replica]

    def pid(self, stage: str, replica: int = 0) -> int:
        return self.procs[(stage, replica)].pid

    def start(self, stage: str, replica: int = 0) -> subprocess.Popen:
        c = container(self.deployments[stage])
        env = {**os.environ, **self.configmap, "PYTHONPATH": str(ROOT)}
        for e in c.get("env", []):
            if "secretKeyRef" in e.get("valueFrom", {}):
                continue  # no Secrets here: the replay runs without the token (executors/auth.py)
            ref = e.get("valueFrom", {}).get("configMapKeyRef")
            env[e["name"]] = self.configmap[ref["key"]] if ref else e.get("value", "x")
        args = list(c["args"])
        args[args.index("--port") + 1] = str(self.port(stage, replica))
        if "--port-monitoring" in args:
            args[args.index("--port-monitoring") + 1] = str(free_port())
        if "--deployments-addresses" in args:
            i = args.index("--deployments-addresses") + 1
            args[i] = re.sub(
                r'"grpc://([\w-]+)\.imgsearch\.svc:8080"',
                lambda m: ", ".join(f'"grpc://127.0.0.1:{p}"' for p in self.ports[m.group(1)]),
                args[i],
            )
        exe = str(VENV_BIN / c["command"][0])
        prefix = []
        if stage in self.drop_capabilities and "ALL" in c.get("securityContext", {}).get("capabilities", {}).get("drop", []):
            # The container drops every capability: without CAP_DAC_OVERRIDE even uid 0 obeys
            # file modes. (Not the pod's uid 10001: this machine's interpreter lives under /root.)
            prefix = [shutil.which("setpriv") or "setpriv", "--bounding-set", "-all", "--inh-caps", "-all"]
        proc = subprocess.Popen([*prefix, exe, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs[(stage, replica)] = proc
        return proc

    def wait_ready(self, stage: str, replica: int = 0, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        proc = self.procs[(stage, replica)]
        while time.monotonic() < deadline:
            # What the readiness probe asks: grpc.health.v1 Check on READY_SERVICE.
            if health(self.port(stage, replica), deploy.READY_SERVICE) == "SERVING":
                return
            if proc.poll() is not None:
                break
            time.sleep(0.3)
        err = proc.stderr.read().decode()[-3000:] if proc.poll() is not None else "(still running)"
        raise AssertionError(f"{stage}[{replica}] never became ready: {err}")

    def start_all(self) -> str:
        """Every pod, executors first; returns the gateway's address."""
        for stage in self.stages:
            for r in range(len(self.ports[stage])):
                self.start(stage, r)
        for stage in self.stages:
            for r in range(len(self.ports[stage])):
                self.wait_ready(stage, r)
        self.start(self.gateway)
        self.wait_ready(self.gateway)
        return self.host

    @property
    def host(self) -> str:
        return f"grpc://127.0.0.1:{self.port(self.gateway)}"

    def kill(self, stage: str, replica: int = 0, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[(stage, replica)]
        proc.send_signal(sig)
        proc.wait(timeout=60)

    def restart(self, stage: str, replica: int = 0) -> None:
        self.start(stage, replica)
        self.wait_ready(stage, replica)

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
