"""Shared pieces of the fault-injection suite: real processes, real files, real gRPC.

Not a conftest.py: a second module named conftest would shadow tests/conftest.py for the
other test files (`from conftest import ...`); the test modules import the fixtures.

`pytest -m faults` runs the suite alone; IMGSEARCH_SOAK_SECONDS sets the soak's length
(default 20 s in CI; e.g. 120 for the long run).
"""

import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOAK_SECONDS = float(os.environ.get("IMGSEARCH_SOAK_SECONDS", "20"))


def app(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python app.py ...` as users run it (fork: a fresh process has run no torch)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "IMGSEARCH_START_METHOD": "fork"},
    )


def app_popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "IMGSEARCH_START_METHOD": "fork"},
    )


def wait_for_progress(run: subprocess.Popen, at_least: int, timeout: float) -> int:
    """Read `app.py index`'s progress bar (stderr, "N/TOTAL", or "Nimg" for a bucket, which is not
    counted before it is scanned) until N >= at_least; return N."""
    fd, seen, buf = run.stderr.fileno(), 0, b""
    deadline = time.monotonic() + timeout
    while seen < at_least:
        assert run.poll() is None, f"index ended before {at_least} images were stored: {buf[-3000:]!r}"
        assert time.monotonic() < deadline, f"only {seen} images stored after {timeout} s"
        if select.select([fd], [], [], 0.2)[0]:
            buf += os.read(fd, 65536)
            counts = re.findall(rb"(\d+)(?:/\d+ |img )\[", buf)
            seen = int(counts[-1]) if counts else 0
    return seen


def write_photos(folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (64, 48)) -> list[Path]:
    from corpus import make_photo

    paths = [folder / f"label{i % 4}" / f"photo_{seed + i:05d}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        make_photo(path, size=size, seed=seed + i)
    return paths


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def proc_usage(pid: int) -> tuple[int, int]:
    """(resident memory in KiB, open file descriptors) of a live process, from /proc."""
    with open(f"/proc/{pid}/status") as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def shared_dir():
    """A folder every user can read: the replayed loader runs as the pod's non-root user,
    and pytest's own tmp folders are private to root."""
    path = Path(tempfile.mkdtemp(prefix="imgsearch-faults-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """Only the tiny random CLIP (fast to build and to run), not every tiny model."""
    from imgsearch.tiny_models import build_tiny_model

    return build_tiny_model("clip", tmp_path_factory.mktemp("tiny-clip"))
