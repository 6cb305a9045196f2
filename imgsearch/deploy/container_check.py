"""The flow as containers, checked against the local flow and measured (docker/e2e.sh, issue 28).

    python -m imgsearch.deploy.container_check [FOLDER] [--encoder efficientnet-lite0] [--json]

Starts one encoder's pods from the generated k8s/ Deployments as podman containers
(imgsearch/deploy/pods.py), each until its own gRPC probes pass; indexes FOLDER through the
containerized gateway with `app.py index --host` (the folder copied onto the loader's data
volume), searches with every image (`app.py search --host`, each must come back first), then
indexes the same files with the local flow and compares the two stores' vectors (cosine).
Also measures each image's size, each pod's time from `podman run` to passing probes, and the
encoder's start with its weights baked in the image versus on a mounted cache volume (the
`app.py k8s --model-cache` variant of its Deployment: cold, then warm).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgsearch.deploy.names import APP_UID, CONFIGMAP, HF_HOME
from imgsearch.deploy.pods import Cluster, Pods, container_of, load, podman
from imgsearch.flowfile import REPO

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".avif", ".webp", ".dng", ".tif", ".tiff", ".gif", ".bmp"}
MIN_COSINE = 0.9999


def sample_folder(folder: Path) -> Path:
    """scikit-image's photos as JPEG (full and cropped), PNG and HEIC (libheif in the images)."""
    import pillow_heif
    from PIL import Image
    from skimage import data

    pillow_heif.register_heif_opener()
    photos = {"coffee": data.coffee(), "chelsea": data.chelsea(), "astronaut": data.astronaut(), "rocket": data.rocket()}
    for name, arr in photos.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        h, w = arr.shape[:2]
        Image.fromarray(arr).save(folder / name / f"{name}_full.jpg", quality=90)
        Image.fromarray(arr[: int(h * 0.8), int(w * 0.15) :]).save(folder / name / f"{name}_crop.jpg", quality=85)
    Image.fromarray(photos["coffee"][::2, ::2]).save(folder / "coffee" / "coffee_small.png")
    Image.fromarray(photos["rocket"][:, ::-1]).save(folder / "rocket" / "rocket_mirror.heic", quality=90)
    return folder


# What Jina writes outside the volumes, even with a read-only root: a temp folder its request
# handler makes at start, and lock files under ~/.cache/jina (the images' user's home is /home/app).
READ_ONLY_WRITABLE = {"tmp": "/tmp", "home-cache": "/home/app/.cache"}


def read_only_root(dep: dict) -> None:
    """What a Deployment needs for a read-only root file system: the setting, and an emptyDir at
    each of READ_ONLY_WRITABLE's paths that the spec does not mount already."""
    c, pod = container_of(dep), dep["spec"]["template"]["spec"]
    c.setdefault("securityContext", {})["readOnlyRootFilesystem"] = True
    for name, path in READ_ONLY_WRITABLE.items():
        if not any(m["mountPath"] == path for m in c.get("volumeMounts", [])):
            c.setdefault("volumeMounts", []).append({"name": name, "mountPath": path})
            pod.setdefault("volumes", []).append({"name": name, "emptyDir": {"sizeLimit": "1Gi"}})


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _owned(path: Path) -> Path:
    """A host folder the pods' uid can write, as a volume's fsGroup would make it."""
    path.mkdir(parents=True, exist_ok=True)
    for p in [path, *path.rglob("*")]:
        shutil.chown(p, APP_UID, APP_UID)
    return path


def _app(*args: str, token: str = "", cwd: Path) -> dict:
    # No token: the variable unset (an empty one stops every stage at start-up, executors/auth.py).
    env = {k: v for k, v in os.environ.items() if k != "IMGSEARCH_TOKEN"} | {"PYTHONPATH": str(REPO)}
    if token:
        env["IMGSEARCH_TOKEN"] = token
    run = subprocess.run(
        [sys.executable, str(REPO / "app.py"), *args, "--json"], capture_output=True, text=True, cwd=cwd, env=env, timeout=900, check=False
    )
    if run.returncode != 0:
        raise RuntimeError(f"app.py {' '.join(args[:1])} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout)


def vectors(store: Path, collection: str) -> dict[str, np.ndarray]:
    from executors.indexer.store import EdgeStore

    with EdgeStore(str(store), read_only=True) as s:
        return {h.id: np.asarray(h.vector, np.float32) for h in s.scroll(collection, with_vectors=True)}


def image_sizes(names: list[str]) -> dict[str, int]:
    out = {}
    for name in names:
        run = podman("image", "inspect", "-f", "{{.Size}}", name, check=False)
        if run.returncode == 0:
            out[name] = int(run.stdout.strip())
    return out


def run_check(
    folder: Path,
    work: Path,
    encoder: str = "efficientnet-lite0",
    k8s: Path = REPO / "k8s",
    read_only: bool = False,
    measure_cache: bool = True,
    while_up: Callable[[Pods], None] | None = None,
) -> dict:
    """Everything the module docstring says; the figures and results as a dict. Raises on a failed check.
    ``while_up(pods)`` is called once every pod is up, before indexing (tests inspect them there)."""
    manifests = load(k8s)
    if read_only:
        for d in manifests:
            if d["kind"] == "Deployment":
                read_only_root(d)
    configmap = next(d for d in manifests if d["kind"] == "ConfigMap" and d["metadata"]["name"] == CONFIGMAP)["data"]
    name = folder.name
    data = work / "claims" / "imgsearch-data"
    shutil.copytree(folder, data / name, dirs_exist_ok=True)
    token = secrets.token_hex(16)
    store = _owned(work / "claims" / "store")
    cluster = Cluster(
        # No Qdrant image here: the indexer's embedded store on a folder; no model hub.
        configmap={**configmap, "QDRANT_URL": "", "HF_HUB_OFFLINE": "1"},
        secrets={
            ("imgsearch-token", "token"): token,
            ("imgsearch-metrics-token", "token"): secrets.token_hex(16),
            ("qdrant-api-key", "api-key"): secrets.token_hex(16),
            ("qdrant-api-key", "read-only-api-key"): secrets.token_hex(16),
        },
        claims={"imgsearch-data": _owned(data)},
        store=store,
    )
    files = images_in(folder)
    result: dict = {"encoder": encoder, "images": len(files), "read_only": read_only, "start_seconds": {}}
    with Pods(manifests, encoder, cluster) as pods:
        for stage in pods.stages:
            result["start_seconds"][stage] = round(pods.start_healthy(stage), 2)
        result["start_seconds"][pods.gateway] = round(pods.start_healthy(pods.gateway), 2)
        if while_up is not None:
            while_up(pods)
        summary = _app("index", "--host", pods.host, "--encoder", encoder, "--data", f"/data/{name}", token=token, cwd=work)
        if summary["indexed"] != len(files):
            raise AssertionError(f"indexed {summary['indexed']} of {len(files)} images: {summary.get('skipped')}")
        collection = summary["collection"]
        result.update(collection=collection, index_seconds=round(summary["seconds"], 2))
        firsts = []
        for path in files:
            found = _app(
                "search",
                "--host",
                pods.host,
                "--encoder",
                encoder,
                "--image",
                str(path),
                "--top-k",
                "1",
                "--data",
                f"/data/{name}",
                "--out",
                str(work),
                token=token,
                cwd=work,
            )["matches"]
            want = f"/data/{name}/{path.relative_to(folder)}"
            if not found or found[0]["path"] != want:
                raise AssertionError(f"searching with {want}: first match {found[:1]}")
            firsts.append(want)
        result["first_match"] = len(firsts)
        pods.stop("indexer")  # releases the embedded store
        ours = vectors(store, collection)

        # The same files through the local flow (same folder name, so the same collection).
        local = work / "local" / name
        shutil.copytree(folder, local, dirs_exist_ok=True)
        env_store = work / "local-store"
        summary = _app("index", "--encoder", encoder, "--data", str(local), "--store", str(env_store), cwd=work)
        theirs = vectors(env_store, summary["collection"])
        if set(ours) != set(theirs):
            raise AssertionError(f"different images stored: containers {len(ours)}, local {len(theirs)}")
        cosines = [float(ours[k] @ theirs[k] / (np.linalg.norm(ours[k]) * np.linalg.norm(theirs[k]))) for k in ours]
        result["min_cosine"] = min(cosines)
        if result["min_cosine"] < MIN_COSINE:
            raise AssertionError(f"vectors differ from the local flow's: min cosine {result['min_cosine']:.6f}")
        if measure_cache:
            result["encoder_weights"] = measure_weights(encoder, cluster, pods, work)
    images = sorted(
        {container_of(d)["image"] for d in manifests if d["kind"] == "Deployment" and d["metadata"]["name"] in [*pods.stages, pods.gateway]}
    )
    result["image_bytes"] = image_sizes(images)
    return result


def measure_weights(encoder: str, cluster: Cluster, pods: Pods, work: Path) -> dict:
    """The encoder's start with weights baked in, then with the --model-cache Deployment (an empty
    cache volume at HF_HOME: the first start fills it, the second reads it)."""
    from imgsearch import deploy

    stage = f"encoder-{encoder}"
    variant = [
        d for rel, text in deploy.render(encoders=(encoder,), model_cache="model-cache").items() if rel.startswith("k8s/") for d in _docs(text)
    ]
    dep = next(d for d in variant if d["kind"] == "Deployment" and d["metadata"]["name"] == stage)
    out: dict[str, float | str] = {}
    pods.stop(stage)
    out["baked"] = round(pods.start_healthy(stage), 2)
    pods.stop(stage)
    cluster.claims["model-cache"] = _owned(work / "claims" / "model-cache")
    baked_dep, pods.deployments[stage] = pods.deployments[stage], dep
    try:
        out["mounted_cold"] = round(pods.start_healthy(stage), 2)
        pods.stop(stage)
        out["mounted_warm"] = round(pods.start_healthy(stage), 2)
        out["mounted_at"] = HF_HOME
    finally:
        pods.stop(stage)
        pods.deployments[stage] = baked_dep
    return out


def _docs(text: str) -> list[dict]:
    import yaml

    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and "kind" in d]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imgsearch.deploy.container_check", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", nargs="?", type=Path, help="images to index (default: scikit-image's photos, JPEG/PNG/HEIC)")
    p.add_argument("--encoder", default="efficientnet-lite0", help="the encoder whose pods run (default: efficientnet-lite0)")
    p.add_argument(
        "--read-only",
        action="store_true",
        help="run every container with a read-only root file system (and emptyDirs at /tmp and ~/.cache where the spec has none)",
    )
    p.add_argument("--no-cache-timing", action="store_true", help="skip the baked-vs-mounted weights timing")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="imgsearch-e2e-") as tmp:
        work = Path(tmp)
        folder = args.folder or sample_folder(work / "input" / "photos")
        result = run_check(folder.resolve(), work, args.encoder, read_only=args.read_only, measure_cache=not args.no_cache_timing)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
