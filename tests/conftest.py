"""Shared fixtures: tiny models built once per session, real photos, the odd-file corpus."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from imgsearch.tiny_models import TINY_KIND  # noqa: E402 (after the path set-up above)

# Nothing in the tests may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("JINA_LOG_LEVEL", "ERROR")
# This process embeds with torch in process, so flows it starts must not fork from it
# (OpenMP deadlocks in forked children): they fork from a clean fork server holding the
# imports, restarted when a variable changes between flows (imgsearch/processes.py).
# app.py's default, fork, is what the tests running app.py as a process use.
os.environ.setdefault("IMGSEARCH_START_METHOD", "forkserver")


def _ports_of_this_worker() -> None:
    """Under pytest-xdist, each worker draws its flows' ports from its own share of the
    listening range (imgsearch/ports.py): two workers can never pick the same port between one
    reserving it and its executor binding it."""
    from imgsearch.ports import ENV_MAX, ENV_MIN, ephemeral_range, listening_range

    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    span = listening_range(ephemeral_range())
    if not worker.startswith("gw") or count < 2 or span is None or ENV_MIN in os.environ:
        return
    share = (span[1] - span[0] + 1) // count
    low = span[0] + int(worker[2:]) * share
    os.environ[ENV_MIN], os.environ[ENV_MAX] = str(low), str(low + share - 1)


_ports_of_this_worker()

# encoder registry name -> its tiny model kind, from the registry
TINY_FOR_ENCODER = TINY_KIND


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory) -> Path:
    """ONNX graphs the encoders export (runtime onnx is the CPU default) go to this session's
    temp folder, not the user's cache; flows started later inherit the variable."""
    path = tmp_path_factory.getbasetemp() / "onnx-cache"
    os.environ["IMGSEARCH_ONNX_CACHE"] = str(path)
    # The loaders' memory of scanned files and objects (executors/loader/storage.py) too.
    os.environ.setdefault("IMGSEARCH_OBJECT_CACHE", str(tmp_path_factory.getbasetemp() / "objects.sqlite"))
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Every tiny model kind, built once per session (sentence-transformers style)."""
    from imgsearch.tiny_models import build_all

    return build_all(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photographs bundled with scikit-image."""
    import skimage.data as data

    return {
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "astronaut": data.astronaut(),
        "rocket": data.rocket(),
        "motorcycle": data.stereo_motorcycle()[0],
    }


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory, photos) -> Path:
    """The photos as JPEG files, one folder (label) per photo, two crops each."""
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    for name, arr in photos.items():
        folder = root / name
        folder.mkdir()
        h, w = arr.shape[:2]
        Image.fromarray(arr).save(folder / f"{name}_full.jpg", quality=90)
        Image.fromarray(arr[: int(h * 0.8), int(w * 0.15) :]).save(folder / f"{name}_crop.jpg", quality=85)
    return root


def pytest_collection_modifyitems(config, items):
    """The quick tier (`pytest -m "not slow"`) leaves out everything that starts processes: a test
    marked flow, web or faults is also slow."""
    containers_asked = "containers" in (config.getoption("-m") or "")
    for item in items:
        if any(item.get_closest_marker(m) for m in ("flow", "web", "faults", "containers")) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
        # The containers tier builds images (minutes, cold): only when asked for by name (issue 28).
        if item.get_closest_marker("containers") and not containers_asked:
            item.add_marker(pytest.mark.skip(reason="the containers tier: `pytest -m containers` (root, podman; builds the images)"))
