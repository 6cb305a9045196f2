"""The simulated scale-out (`app.py bench --simulate-gpu-ms`): the stand-in encoder, replicas
through the real flow, and the bench command. Figures are checked for form, never timed, except
the stand-in's lower bound (a batch takes at least its milliseconds)."""

import asyncio
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from docarray import DocList
from test_cli import app

from executors.docs import ImageDoc


def _image(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _grid_projection(img: np.ndarray, matrix: np.ndarray, grid: int) -> np.ndarray:
    """The documented projection, written out pixel by pixel: the executor's vectorised one must agree."""
    h, w = img.shape[:2]
    feats = []
    for i in range(grid):
        y = int(round(i * (h - 1) / (grid - 1)))
        for j in range(grid):
            x = int(round(j * (w - 1) / (grid - 1)))
            feats.extend(float(c) / 255.0 - 0.5 for c in img[y, x, :3])
    v = np.asarray(feats) @ matrix.astype(np.float64)
    return v / np.linalg.norm(v)


def test_simulated_gpu_gives_real_distinct_unit_vectors_and_takes_its_time():
    from imgsearch.bench.simulated_gpu import GRID, SimulatedGpuEncoder

    enc = SimulatedGpuEncoder(ms=150, stands_for="clip", batch_size=4, size=64)
    images = [_image(i) for i in range(6)] + [_image(0)]  # the last is the first again
    docs = DocList[ImageDoc]([ImageDoc(tensor=img) for img in images] + [ImageDoc(text="a dog"), ImageDoc(text="a dog")])
    started = time.perf_counter()
    asyncio.run(enc.encode(docs))
    elapsed = time.perf_counter() - started
    # 7 images in batches of 4 and 2 texts: 3 batches of at least 150 ms each.
    assert elapsed >= 3 * 0.150

    assert all(d.error is None and d.tensor is None for d in docs)
    vectors = np.stack([np.asarray(d.embedding) for d in docs])
    assert vectors.shape == (9, 512) and vectors.dtype == np.float32  # CLIP's dimension
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = vectors[:6] @ vectors[:6].T
    assert np.abs(cos[~np.eye(6, dtype=bool)]).max() < 0.99  # distinct images, distinct vectors
    np.testing.assert_allclose(vectors[0], vectors[6], atol=1e-6)  # the same image, the same vector (to float rounding)
    np.testing.assert_array_equal(vectors[7], vectors[8])
    for img, vec in zip(images[:3], vectors):
        np.testing.assert_allclose(vec, _grid_projection(img, enc.matrix, GRID), atol=1e-5)
    assert {d.model for d in docs} == {"simulated-gpu:clip:150ms"}

    info = enc.info()
    assert (info.encoder, info.dim, info.batch_size, info.lanes) == ("clip", 512, 4, 1)
    assert info.resize_rule == {"height": 64, "width": 64, "resample": 2}
    timing = enc.timings(DocList[ImageDoc]())["handlers"]["encode_images"]
    assert timing["calls"] == 1 and timing["docs"] == 9 and timing["seconds"] >= 0.45


def test_simulated_gpu_refuses_bad_settings_and_inputs():
    from imgsearch.bench.simulated_gpu import SimulatedGpuEncoder

    for bad in ({"ms": -1}, {"ms": math.inf}, {"batch_size": 0}, {"size": 0}):
        with pytest.raises(ValueError):
            SimulatedGpuEncoder(**bad)
    with pytest.raises(Exception, match="unknown encoder|not-an-encoder"):
        SimulatedGpuEncoder(stands_for="not-an-encoder")
    enc = SimulatedGpuEncoder(ms=1, batch_size=2)
    docs = DocList[ImageDoc]([ImageDoc(), ImageDoc(tensor=np.zeros((2, 2), np.uint8)), ImageDoc(tensor=_image(1))])
    asyncio.run(enc.encode(docs))
    assert docs[0].error and docs[0].embedding is None  # nothing to embed: said so
    assert docs[1].error and docs[1].embedding is None  # not an RGB image: refused as a real encoder refuses it
    assert docs[2].error is None and docs[2].embedding is not None


@pytest.mark.flow
def test_two_encoder_replicas_share_the_requests(tmp_path):
    from imgsearch.bench.images import synthetic_folder
    from imgsearch.bench.scaleout import replica_timings
    from imgsearch.bench.simulated_gpu import write_config
    from imgsearch.flow import FlowConfig, Gateway, local_flow
    from imgsearch.indexing import encoder_info, run_index
    from imgsearch.searching import run_search

    folder = synthetic_folder(tmp_path / "images", 24, 96, 72)
    yaml_path = write_config(tmp_path / "cfg", 100, "clip", 2, 32)
    config = FlowConfig("clip", store=str(tmp_path / "store"), uses={"encoder": str(yaml_path)}, replicas={"encoder": 2})
    with local_flow("clip", config=config) as host:
        gateway = Gateway(host)
        info = encoder_info(gateway)
        assert info.model == "simulated-gpu:clip:100ms" and int(info.dim) == 512
        assert info.replicas == 2  # the gateway counts a local flow's Jina replicas too
        summary = run_index(gateway, folder, info, batch_size=2, dataset="spread", progress=False, prefetch=4)
        assert summary.indexed == 24 and summary.skipped == []
        timings = replica_timings(gateway, {"encoder": 2})
        query = sorted(folder.rglob("*.jpg"))[5]
        found = run_search(gateway, summary.collection, info, image=query)
    replicas = {k: v for k, v in timings.items() if k.startswith("encoder/")}
    assert len(replicas) == 2 and len({v["pid"] for v in replicas.values()}) == 2  # two processes
    calls = [int(v["handlers"]["encode_images"]["calls"]) for v in replicas.values()]
    docs = [int(v["handlers"]["encode_images"]["docs"]) for v in replicas.values()]
    assert sorted(calls) == [6, 6] and docs == [12, 12], calls  # 12 requests of 2 images, round-robin
    assert summary.count == 24  # every image stored once, whichever replica embedded it
    # The stored vectors are the images' own: the query finds its own file first, at cosine 1.
    assert Path(found.matches[0]["path"]).name == query.name and found.matches[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert found.matches[1]["score"] < 0.99


@pytest.mark.flow
@pytest.mark.slow
def test_bench_simulate_gpu_prints_the_scaleout_table(tmp_path):
    run = app(
        "bench",
        "--simulate-gpu-ms",
        "60",
        "--encoder-replicas",
        "2",
        "1",
        "--images",
        "32",
        "--simulate-batch",
        "4",
        "--next-stage-replicas",
        "2",
        "--out",
        str(tmp_path / "out"),
        "--cache",
        str(tmp_path / "cache"),
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Scale-out: simulated GPU encoders standing in for clip, 60 ms per batch of 4, 32 images" in run.stdout
    s = json.loads((tmp_path / "out" / "bench.json").read_text())["scaleout"]
    rows = s["rows"]
    assert [r["replicas"]["encoder"] for r in rows] == [1, 2]  # measured from the fewest up
    assert all(r["indexed"] == 32 and r["skipped"] == 0 for r in rows)
    assert rows[0]["speedup"] == 1.0 and rows[0]["efficiency"] == 1.0
    assert rows[1]["speedup"] == pytest.approx(rows[1]["images_per_second"] / rows[0]["images_per_second"], abs=0.01)
    assert rows[1]["efficiency"] == pytest.approx(rows[1]["speedup"] / 2, abs=0.01)
    assert rows[1]["prefetch"] >= 4  # two requests in flight per encoder replica
    assert sorted(rows[1]["stages"]["encoder"]["requests_per_replica"]) == [4, 4]  # 8 requests, round-robin
    assert s["next_stage"] in ("loader", "normalizer") and s["busiest_stage"] in ("loader", "normalizer", "indexer", "gateway")
    again = s["next_stage_row"]
    assert again["replicas"] == {**rows[1]["replicas"], s["next_stage"]: 2} and again["indexed"] == 32
    lines = [line.split() for line in run.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [line[:2] for line in lines] == [["1", "-"], ["2", "-"], ["2", f"{s['next_stage']}×2"]]
    assert [float(line[2]) for line in lines] == [pytest.approx(r["images_per_second"], abs=0.06) for r in (*rows, again)]
    assert (tmp_path / "out" / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_options_refuse_bad_scaleout_settings():
    from executors.errors import UserError
    from imgsearch.bench.options import BenchOptions

    for bad in ({"simulate_gpu_ms": 0.0}, {"encoder_replicas": []}, {"encoder_replicas": [1, 1]}, {"encoder_replicas": [0]}, {"simulate_batch": 0}):
        with pytest.raises(UserError):
            BenchOptions(**bad)  # type: ignore[arg-type]


def test_flow_config_passes_replicas_and_uses_to_jina(tmp_path):
    """The FlowConfig fields reach Jina's Flow as arguments (without starting it)."""
    from imgsearch.flow import FlowConfig
    from imgsearch.flow.local import _flow_sharing

    yaml_path = tmp_path / "x.yml"
    config = FlowConfig("clip", replicas={"encoder": 3, "normalizer": 2}, uses={"encoder": str(yaml_path)})
    flow = _flow_sharing(config, 12345, config.placeholders(12345), {})
    assert flow["encoder"].args.replicas == 3 and flow["normalizer"].args.replicas == 2 and flow["indexer"].args.replicas == 1
    assert flow["encoder"].args.uses == str(yaml_path) and flow["loader"].args.uses.endswith("executors/loader/config.yml")


def test_scaleout_flags_resolve_into_bench_options():
    from imgsearch.cli import build_parser
    from imgsearch.cli.settings import resolve

    parse = lambda *a: resolve(build_parser().parse_args(["bench", *a])).options  # noqa: E731
    opts = parse("--simulate-gpu-ms", "250", "--encoder-replicas", "1", "4", "--simulate-batch", "8", "--next-stage-replicas", "0")
    assert (opts.simulate_gpu_ms, opts.encoder_replicas, opts.simulate_batch, opts.next_stage_replicas) == (250.0, [1, 4], 8, 0)
    assert parse().simulate_gpu_ms is None  # the scale-out runs only when asked for


def test_a_bad_replica_count_is_one_clear_error():
    run = app("bench", "--simulate-gpu-ms", "100", "--encoder-replicas", "1", "0", timeout=60)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "--encoder-replicas: counts within 1..64" in run.stderr and "Traceback" not in run.stderr
