"""Encoder replicas behind one name, balanced per request by the gateway (issue 26).

A headless Service's name resolves to every ready pod. Here three encoder processes listen on
127.0.0.2, 127.0.0.3 and 127.0.0.4 at one port, and a DNS server on loopback (tests/dns_server.py)
answers for one name with their addresses, as the cluster's DNS would. The flow's gateway is
started with that name as its encoder's address; each replica's share is read from its own
``/timings`` counters, asked directly.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from corpus import make_photo
from dns_server import DnsServer
from docarray import DocList

from executors.docs import ImageDoc
from executors.gateway import replicas
from imgsearch.flow import Gateway, local_flow
from imgsearch.flow.local import FlowConfig
from imgsearch.flowfile import REPO
from imgsearch.indexing import run_index
from imgsearch.ports import free_port

pytestmark = pytest.mark.flow

ENCODER = "vit"
NAME = "encoder.replicas.test"
REPLICA_IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
FOURTH_IP = "127.0.0.5"
START_LIMIT_S = 180
DROP_LIMIT_S = 10.0


class Replica:
    """One encoder process on its own loopback address, as one pod of the Deployment."""

    def __init__(self, ip: str, port: int, model: Path, log: Path):
        self.ip, self.port = ip, port
        cmd = [str(Path(sys.executable).parent / "jina"), "executor", "--uses", str(REPO / f"executors/encoders/configs/{ENCODER}.yml")]
        cmd += ["--uses-with", json.dumps({"model": str(model)}), "--name", "encoder", "--host", ip, "--port", str(port)]
        env = {**os.environ, "PYTHONPATH": str(REPO), "JINA_LOG_LEVEL": "WARNING"}
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def wait_ready(self) -> None:
        from jina.serve.runtimes.servers import BaseServer

        deadline = time.monotonic() + START_LIMIT_S
        while not BaseServer.is_ready(self.address, timeout=1.0):
            assert self.proc.poll() is None, f"replica {self.ip} exited with {self.proc.returncode}: {Path(self._log.name).read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"replica {self.ip} not ready after {START_LIMIT_S} s"
            time.sleep(0.2)

    def images_encoded(self) -> int:
        """This replica's own count of images it encoded, asked of it directly."""
        from jina.serve.networking.utils import send_request_sync
        from jina.types.request.data import DataRequest

        req = DataRequest()
        req.header.exec_endpoint = "/timings"
        req.data.docs = DocList[ImageDoc]()
        answer = send_request_sync(req, self.address, timeout=10.0).parameters["__results__"]
        (timings,) = answer.values()
        handlers = timings["handlers"]
        return int(sum(h["docs"] for name, h in handlers.items() if name.startswith("encode_")))

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def _images(folder: Path, n: int, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        make_photo(folder / f"img{i:04d}.jpg", size=(64, 48), seed=i)
    return folder


@pytest.fixture
def dns(monkeypatch):
    with DnsServer() as server:
        # The gateway process inherits these: lookups go to this server, every second.
        monkeypatch.setenv(replicas.NAMESERVER_ENV, server.address)
        monkeypatch.setenv(replicas.RESOLVE_INTERVAL_ENV, "1")
        yield server


@pytest.fixture
def encoder_pods(tmp_path, tiny_models, dns):
    port = free_port()
    started: list[Replica] = []

    def start(ip: str) -> Replica:
        replica = Replica(ip, port, tiny_models[ENCODER], tmp_path / f"replica-{ip}.log")
        started.append(replica)
        return replica

    pods = [start(ip) for ip in REPLICA_IPS]
    for pod in pods:
        pod.wait_ready()
    dns.set(NAME, REPLICA_IPS)  # ready pods only, as a headless Service lists them
    try:
        yield port, pods, start
    finally:
        for pod in started:
            pod.stop()


def test_requests_spread_over_replicas_and_follow_them_as_they_go_and_come(tmp_path, encoder_pods, dns):
    port, pods, start = encoder_pods
    config = FlowConfig(ENCODER, store=str(tmp_path / "store"), external={"encoder": f"{NAME}:{port}"})
    data = _images(tmp_path / "data", 240)
    with local_flow(ENCODER, config=config) as host:
        gw = Gateway(host)
        info = gw.encoder_info()
        assert info.replicas == 3  # the gateway reports what it balances over

        # 1. Spread: 60 requests of 4 images, each replica within ±20% of a third.
        first = run_index(gw, data, info, batch_size=4, progress=False)
        assert first.indexed == 240 and first.count == 240
        shares = [pod.images_encoded() for pod in pods]
        assert sum(shares) >= 240
        mean = sum(shares) / len(shares)
        assert all(abs(s - mean) <= 0.2 * mean for s in shares), shares

        # 2. A replica killed (SIGKILL) mid-run: nothing lost, nothing indexed twice, the run goes on.
        more = _images(data, 480, start=240)
        killed = pods[0]
        before_kill = [pod.images_encoded() for pod in pods[1:]]
        start_count = killed.images_encoded()
        killed_at: list[float] = []

        def kill_mid_run() -> None:
            while killed.images_encoded() < start_count + 8:  # it has taken part in this run
                time.sleep(0.05)
            killed.kill()
            killed_at.append(time.monotonic())
            dns.set(NAME, REPLICA_IPS[1:])  # the endpoint controller drops the pod soon after

        killer = threading.Thread(target=kill_mid_run, daemon=True)
        killer.start()
        second = run_index(gw, more, info, batch_size=4, progress=False)
        finished_at = time.monotonic()
        killer.join(timeout=10)
        assert killed_at and killed_at[0] < finished_at, "the replica was not killed while the run went on"
        assert killed.proc.returncode == -signal.SIGKILL
        assert second.indexed == 480 and second.count == 720, second
        after_kill = [pod.images_encoded() for pod in pods[1:]]
        assert all(a > b for a, b in zip(after_kill, before_kill)), (before_kill, after_kill)
        # The gateway drops it at once: the failure wakes its lookup (and the timer would in 1 s).
        deadline = killed_at[0] + DROP_LIMIT_S
        while gw.encoder_info().replicas != 2:
            assert time.monotonic() < deadline, "the killed replica is still counted"
            time.sleep(0.2)

        # 3. A fourth replica started mid-run gets traffic within 30 s.
        fourth = start(FOURTH_IP)
        fourth.wait_ready()
        dns.set(NAME, [*REPLICA_IPS[1:], FOURTH_IP])
        seen_at = time.monotonic()
        batch = 0
        while fourth.images_encoded() == 0:
            assert time.monotonic() - seen_at < 30, "the new replica got no request within 30 s"
            folder = _images(tmp_path / f"late{batch}", 8, start=1000 + 8 * batch)
            run_index(gw, folder, info, batch_size=2, dataset="data", progress=False)
            batch += 1
        assert gw.encoder_info().replicas == 3
        (data_collection,) = [c for c in gw.collections() if c.name == first.collection]
        assert data_collection.count == 720 + 8 * batch
