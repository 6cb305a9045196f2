"""`app.py up`: a long-lived gRPC server that prints its gateways and stops cleanly on SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netlisten import is_loopback, listening, process_tree

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.flow, pytest.mark.slow]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_up_serves_until_sigterm_and_leaves_no_process(tmp_path):
    from imgsearch.flow import Gateway, free_port

    port = free_port()
    # As users run it, without a token (unset: a set but empty one stops the executors at start-up).
    env = {**{k: v for k, v in os.environ.items() if k != "IMGSEARCH_TOKEN"}, "PYTHONPATH": str(ROOT), "IMGSEARCH_START_METHOD": "fork"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "up", "--encoder", "efficientnet-lite0", "--port", str(port), "--store", str(tmp_path / "store")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Serving gRPC"):
                break
        assert lines and lines[-1].startswith("Serving gRPC"), lines
        host = f"grpc://127.0.0.1:{port}"
        assert lines[0].split()[:2] == ["efficientnet-lite0", host] and "collections: none yet" in lines[0]
        assert Gateway(host).encoder_info().encoder == "efficientnet-lite0"

        tree = process_tree(proc.pid)
        sockets = [a for addrs in listening(tree).values() for a in addrs]
        assert len(tree) >= 6 and f"127.0.0.1:{port}" in sockets  # app.py, gateway, four executors
        assert all(is_loopback(a) for a in sockets), sockets

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        time.sleep(0.5)
        assert not [pid for pid in tree if _alive(pid)], "processes of the flow survived SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()
