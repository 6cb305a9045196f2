"""The containers tier (`pytest -m containers`, issue 28): the images built with podman, the flow run as containers.

`docker/e2e.sh build` builds the CPU images and the EfficientNet-Lite0 encoder (layers cached
after the first run); then each pod starts from its generated Deployment's container spec
(imgsearch/deploy/pods.py), a folder of JPEG, PNG, HEIC (libheif) and DNG (LibRaw) photos is
indexed and searched through the containerized gateway, and the vectors are compared with the
local flow's. Needs root and podman (the script installs podman); left out of the default run.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from corpus import make_dng, make_photo

from imgsearch.deploy.container_check import MIN_COSINE, images_in, run_check, sample_folder

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.containers,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("apt-get") is None and shutil.which("podman") is None,
        reason="needs root and podman (or apt-get to install it)",
    ),
]


@pytest.fixture(scope="module")
def images():
    run = subprocess.run([str(ROOT / "docker" / "e2e.sh"), "build"], capture_output=True, text=True, timeout=3600, check=False)
    assert run.returncode == 0, run.stderr[-4000:]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """scikit-image's photos (JPEG, PNG, HEIC) and a camera RAW, as users' folders hold them."""
    root = sample_folder(tmp_path_factory.mktemp("input") / "photos")
    (root / "camera").mkdir()
    (root / "camera" / "shot.dng").write_bytes(make_dng(make_photo(None, (320, 256), seed=44)))
    return root


def _only_loopback(pods) -> None:
    """Host networking: every socket the containers listen on is on loopback (read from /proc)."""
    from netlisten import listening, process_tree

    for stage in [*pods.stages, pods.gateway]:
        sockets = [a for addrs in listening(process_tree(pods.pid(stage))).values() for a in addrs]
        assert sockets and all(a.startswith(("127.", "::1")) for a in sockets), (stage, sockets)


def test_the_flow_runs_as_containers_with_the_local_flows_vectors(images, folder, tmp_path):
    result = run_check(folder, tmp_path, measure_cache=True, while_up=_only_loopback)
    assert result["images"] == len(images_in(folder)) >= 11
    assert result["first_match"] == result["images"]  # every image came back first
    assert result["min_cosine"] >= MIN_COSINE
    assert set(result["start_seconds"]) == {"loader", "normalizer", "encoder-efficientnet-lite0", "indexer", "gateway-efficientnet-lite0"}
    weights = result["encoder_weights"]
    assert weights["baked"] > 0 and weights["mounted_cold"] > 0 and weights["mounted_warm"] > 0
    print(result)


def test_the_flow_runs_with_a_read_only_root_file_system(images, folder, tmp_path):
    """What the manifests ask for once they set readOnlyRootFilesystem (issue 27): nothing writes outside its volumes."""
    result = run_check(folder, tmp_path, read_only=True, measure_cache=False)
    assert result["read_only"] and result["first_match"] == result["images"]
    assert result["min_cosine"] >= MIN_COSINE
