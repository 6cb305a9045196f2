"""The flow started by hand, exactly as docs/architecture.md says (`jina flow --uses flows/index.yml`).

The command is read from the doc, its variables used as written (only the store folder and
the port are swapped for a temporary folder and a free loopback port), and no other flow
variable is set: an unset one must mean its default, as for a user typing the command.
"""

import dataclasses
import io
import itertools
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from executors.docs import ImageDoc
from imgsearch.flow import Gateway, fit_parameter, free_port
from imgsearch.indexing import encoder_info, run_index
from imgsearch.searching import run_search

pytestmark = [pytest.mark.slow, pytest.mark.flow]

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "architecture.md"
START_TIMEOUT_S = 240.0


def documented_command() -> tuple[dict[str, str], list[str]]:
    """The by-hand command of docs/architecture.md: its variables and its argv."""
    (command,) = re.findall(r"`([^`]*jina flow --uses flows/index\.yml[^`]*)`", DOC.read_text())
    words = shlex.split(command)
    assigns = list(itertools.takewhile(lambda w: re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", w), words))
    argv = words[len(assigns) :]
    return dict(w.split("=", 1) for w in assigns), argv


@dataclasses.dataclass
class ByHandFlow:
    proc: subprocess.Popen
    log: Path
    host: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def failure(self) -> str:
        """The log from its first error on (the stage that failed reports it long before
        Jina's final abort), for the assertion message."""
        out = self.output()
        first = min((i for i in (out.find("Traceback"), out.find("ERROR")) if i >= 0), default=0)
        return out[max(0, first - 2000) :][:12000]


@pytest.fixture(scope="module")
def by_hand_flow(tmp_path_factory) -> Iterator[ByHandFlow]:
    variables, argv = documented_command()
    assert argv[0] == "jina" and "IMGSEARCH_STORE" in variables and "GATEWAY_PORT" in variables
    port = free_port()
    variables.update(IMGSEARCH_STORE=str(tmp_path_factory.mktemp("store")), GATEWAY_PORT=str(port))
    flow_vars = set(re.findall(r"\$\{\{\s*ENV\.(\w+)\s*\}\}", (REPO / "flows" / "index.yml").read_text()))
    # The others stay unset, and Jina logs at its default level (the suite's conftest lowers it).
    env = {k: v for k, v in os.environ.items() if k not in flow_vars | {"JINA_LOG_LEVEL"}}
    # The checkout's packages (a user has the project installed); a wide console, so Jina's
    # log lines are not wrapped.
    env.update(variables, PYTHONPATH=str(REPO), COLUMNS="400")
    log = tmp_path_factory.mktemp("by-hand") / "flow.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "jina"), *argv[1:]], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    flow = ByHandFlow(proc, log, f"grpc://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_listening(port) and Gateway(flow.host, timeout=5).ready()):
            assert proc.poll() is None, f"the flow exited with {proc.returncode}:\n{flow.failure()}"
            assert time.monotonic() < deadline, f"the flow was not ready in {START_TIMEOUT_S} s:\n{flow.failure()}"
            time.sleep(0.5)
        yield flow
    finally:
        # The flow's own process group (start_new_session): Ctrl-C, as by hand, then kill
        # (what is left of it: the flow may have exited already, its children not).
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                continue


def _listening(port: int) -> bool:
    """The gateway binds its port last, once every executor is up (probing before that
    only fills the log with Jina's client errors)."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _gateway_pid(flow: ByHandFlow) -> int:
    """The gateway process of this flow, from its start-up line in the flow's log."""
    found = re.search(r"gateway/rep-0@(\d+) gateway: (\w+), Jina fixes applied", flow.output())
    assert found, f"the gateway did not report the Jina fixes:\n{flow.output()[-4000:]}"
    assert found.group(2) == "PatchedGRPCGateway"
    return int(found.group(1))


def test_searches_find_each_indexed_photo_first(by_hand_flow, photo_dir):
    gw = Gateway(by_hand_flow.host)
    info = encoder_info(gw)
    assert info.encoder == "efficientnet-lite0"
    summary = run_index(gw, photo_dir, info, batch_size=4, progress=False)
    queries = sorted(photo_dir.rglob("*_full.jpg"))
    assert summary.indexed == len(list(photo_dir.rglob("*.jpg"))) and not summary.skipped, summary
    for query in queries:
        found = run_search(gw, summary.collection, info, image=query, top_k=3)
        assert Path(found.matches[0]["path"]).name == query.name, (query, found.matches)


def test_the_gateway_runs_the_jina_fixes_and_sleeps_while_requests_wait(by_hand_flow, photo_dir):
    """The gateway process is the patched class, and while a client keeps its prefetch of
    requests in flight (the encoder the bottleneck) it waits asleep: Jina's own gateway
    spins on `await asyncio.sleep(0)` then, burning most of a core."""
    pid = _gateway_pid(by_hand_flow)
    assert pid in _descendants(by_hand_flow.proc.pid)  # this flow's gateway, still running
    gw = Gateway(by_hand_flow.host)
    info = encoder_info(gw)
    collection = run_index(gw, photo_dir, info, batch_size=4, progress=False).collection
    # A small image: the gateway's own work per request (moving the bytes) stays small next
    # to the encoder's, so what it burns while requests wait shows.
    blob = io.BytesIO()
    Image.open(sorted(photo_dir.rglob("*_full.jpg"))[0]).resize((64, 64)).save(blob, format="JPEG")
    docs = [ImageDoc(blob=blob.getvalue()) for _ in range(96)]
    params = {"collection": collection, "top_k": 1, **fit_parameter(info)}
    wall, cpu = time.perf_counter(), _cpu_seconds(pid)
    gw.post("/search", docs, params, request_size=1)  # one request per image, 4 in flight
    wall, cpu = time.perf_counter() - wall, _cpu_seconds(pid) - cpu
    assert wall > 1.0  # requests did wait on the encoder for a while
    # Spinning costs a whole core (cpu/wall near 1) whatever the load; the gateway's real work per
    # request (moving bytes, counting them for /metrics) was 0.2-0.32 of the wall here.
    assert cpu / wall < 0.5, f"gateway used {cpu:.2f} s of CPU in {wall:.2f} s with requests in flight"


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out
