"""ONNX Runtime path: parity with torch for every family, the graph cache, the runtime choice, the flow."""

import logging

import numpy as np
import pytest
import torch
from conftest import TINY_FOR_ENCODER
from test_encoders import _images, make_encoder

from executors.encoders.runtimes import RuntimeChoiceError, resolve_runtime, session_providers

PARITY = 0.9999  # cosine between the torch and onnx vectors of one input


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a * b).sum(axis=1).min())


@pytest.mark.parametrize("name", sorted(TINY_FOR_ENCODER))
def test_every_family_runs_on_onnx_with_the_torch_vectors(name, tiny_models):
    model = str(tiny_models[TINY_FOR_ENCODER[name]])
    ref = make_encoder(name, model, runtime="torch", batch_size=3)
    enc = make_encoder(name, model, runtime="onnx", batch_size=3)
    assert enc.info().runtime == "onnx" and enc.info().onnx_provider == "CPUExecutionProvider"
    assert enc.model is None  # both towers in onnxruntime: torch's copy of the weights is freed
    images = _images(7)  # odd sizes; batches of 3, 3, 1 exercise the dynamic batch axis
    vecs = enc.embed_images(images)
    assert vecs.dtype == np.float32 and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert _min_cosine(vecs, ref.embed_images(images)) >= PARITY
    assert enc.supports_text == ref.supports_text
    if enc.supports_text:  # texts of different lengths exercise the dynamic token axis
        texts = ["a doge meme", "cat", "a very long caption " * 30, "two dogs playing in the snow at night"]
        assert _min_cosine(enc.embed_texts(texts), ref.embed_texts(texts)) >= PARITY


def test_the_graph_is_exported_once_and_keyed_by_the_weights(tiny_models, tmp_path, onnx_cache, caplog, monkeypatch):
    import shutil

    model = tmp_path / "vit"
    shutil.copytree(tiny_models["vit"], model)
    with caplog.at_level(logging.INFO, logger="executors.encoders.runtimes"):
        first = make_encoder("vit", str(model), runtime="onnx")
    assert any("exporting to ONNX took" in r.getMessage() for r in caplog.records)
    caplog.clear()
    # From the cache, torch's copy of the weights is never loaded: a start that tried fails.
    from executors.encoders.vit import VitEncoder

    def no_torch_load(self, checkpoint):
        raise AssertionError("the torch model was loaded although its graph is cached")

    monkeypatch.setattr(VitEncoder, "load_model", no_torch_load)
    with caplog.at_level(logging.INFO, logger="executors.encoders.runtimes"):
        again = make_encoder("vit", str(model), runtime="onnx")
    monkeypatch.undo()
    assert not any("exporting" in r.getMessage() for r in caplog.records)  # from the cache
    assert again.image_tower.path == first.image_tower.path and first.image_tower.path.is_relative_to(onnx_cache)
    images = _images(3)
    assert _min_cosine(again.embed_images(images), first.embed_images(images)) >= 0.99999
    # New weights in the same folder: a new graph, not the stale one.
    from transformers import ViTModel

    net = ViTModel.from_pretrained(model)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.5)
    net.save_pretrained(model)
    changed = make_encoder("vit", str(model), runtime="onnx")
    assert changed.image_tower.path != first.image_tower.path
    img = _images(1)
    ref = make_encoder("vit", str(model), runtime="torch")
    assert _min_cosine(changed.embed_images(img), ref.embed_images(img)) >= PARITY


def test_a_damaged_cached_graph_is_exported_again(tiny_models, tmp_path, monkeypatch, caplog):
    """A cached graph cut short (a full disk, a killed copy) fails to load: the encoder warns,
    loads the model, exports the graph again and starts with the same vectors, instead of
    failing every start until someone finds the cache."""
    monkeypatch.setenv("IMGSEARCH_ONNX_CACHE", str(tmp_path))
    model = str(tiny_models[TINY_FOR_ENCODER["clip"]])
    first = make_encoder("clip", model, runtime="onnx")
    graph = first.image_tower.path
    graph.write_bytes(graph.read_bytes()[:1000])
    with caplog.at_level(logging.INFO):
        again = make_encoder("clip", model, runtime="onnx")
    messages = [r.getMessage() for r in caplog.records]
    assert any("cannot be loaded" in m and str(graph) in m for m in messages), messages
    assert any("exporting to ONNX took" in m for m in messages)
    assert again.image_tower.path == graph and again.model is None
    images = _images(3)
    assert _min_cosine(again.embed_images(images), first.embed_images(images)) >= 0.99999
    texts = ["a cat", "two dogs"]  # the text graph, undamaged, is the cached one
    assert _min_cosine(again.embed_texts(texts), first.embed_texts(texts)) >= 0.99999


def test_a_damaged_cached_plan_is_made_again(tiny_models, tmp_path, monkeypatch, caplog):
    """A preprocessing plan that parses but lacks a field: the encoder warns, preprocesses
    with the processor, and caches a whole plan again; its vectors are unchanged."""
    import json

    monkeypatch.setenv("IMGSEARCH_ONNX_CACHE", str(tmp_path))  # this test's plan alone
    model = str(tiny_models[TINY_FOR_ENCODER["clip"]])
    first = make_encoder("clip", model, runtime="onnx")
    plans = list(tmp_path.glob("*preprocess*.json"))
    assert len(plans) == 1
    damaged = dict(first.preprocess.plan)
    del damaged["center_crop"]
    plans[0].write_text(json.dumps(damaged))
    with caplog.at_level(logging.WARNING, logger="executors.encoders.base"):
        again = make_encoder("clip", model, runtime="onnx")
    assert any("ignoring the cached preprocessing plan" in r.getMessage() and "center_crop" in r.getMessage() for r in caplog.records)
    images = _images(3)
    assert np.allclose(again.embed_images(images), first.embed_images(images), atol=1e-6)
    assert json.loads(plans[0].read_text()) == first.preprocess.plan  # cached whole again


@pytest.mark.parametrize("name", ["clip", "blip2"])
def test_text_towers_start_from_the_cache_without_the_torch_model(name, tiny_models, monkeypatch):
    model = str(tiny_models[TINY_FOR_ENCODER[name]])
    first = make_encoder(name, model, runtime="onnx", batch_size=4)  # exports, or finds, both graphs
    cls = type(first)
    monkeypatch.setattr(cls, "load_model", lambda self, checkpoint: pytest.fail("torch model loaded"))
    again = make_encoder(name, model, runtime="onnx", batch_size=4)
    assert again.supports_text and again.text_tower.path == first.text_tower.path
    texts = ["a doge meme", "two dogs playing in the snow"]
    assert _min_cosine(again.embed_texts(texts), first.embed_texts(texts)) >= 0.99999
    images = _images(2)
    assert _min_cosine(again.embed_images(images), first.embed_images(images)) >= 0.99999


def test_index_lanes_choice(monkeypatch):
    from executors.encoders.runtimes import index_lanes

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("ENCODER_LANES", raising=False)
    assert index_lanes(None, "onnx", cpu, 4) == 1  # one batch at a time unless asked
    assert index_lanes("auto", "onnx", cpu, 4) == 4 and index_lanes("auto", "onnx-int8", cpu, 2) == 2
    assert index_lanes("auto", "torch", cpu, 4) == 1 and index_lanes("auto", "onnx", cuda, 4) == 1
    assert index_lanes("3", "onnx", cpu, 2) == 3 and index_lanes("3", "torch", cpu, 2) == 1
    monkeypatch.setenv("ENCODER_LANES", "auto")
    assert index_lanes(None, "onnx", cpu, 2) == 2
    for bad in ("0", "many", "-1"):
        with pytest.raises(RuntimeChoiceError, match="ENCODER_LANES"):
            index_lanes(bad, "onnx", cpu, 2)


def test_lanes_encode_requests_side_by_side_with_the_same_vectors(tiny_models):
    """Two lanes: two /index requests are inside the model at once, each batch on a
    single-threaded session, and the vectors are the one-lane vectors."""
    import asyncio
    import threading

    from docarray import DocList

    from executors.docs import ImageDoc

    model = str(tiny_models[TINY_FOR_ENCODER["vit"]])
    one = make_encoder("vit", model, runtime="onnx", batch_size=4, num_threads=2)
    two = make_encoder("vit", model, runtime="onnx", batch_size=4, num_threads=2, lanes="2")
    assert (one.lanes, two.lanes) == (1, 2) and two.info().lanes == 2
    assert two.image_tower.session.get_session_options().intra_op_num_threads == 1
    assert one.image_tower.session.get_session_options().intra_op_num_threads == 2
    images = _images(6)
    assert _min_cosine(two.embed_images(images), one.embed_images(images)) >= 0.99999

    def both_inside(enc) -> bool:
        met = threading.Barrier(2, timeout=3)
        inner = enc.encode_docs

        def encode_docs(docs):
            met.wait()  # returns only once the other request is inside too
            inner(docs)

        enc.encode_docs = encode_docs

        async def main():
            batches = [DocList[ImageDoc](ImageDoc(tensor=img) for img in images[i::2]) for i in range(2)]
            return await asyncio.gather(*(enc.encode(b) for b in batches))

        try:
            done = asyncio.run(main())
        except threading.BrokenBarrierError:
            return False
        finally:
            enc.encode_docs = inner
        assert all(d.embedding is not None for batch in done for d in batch)
        return True

    assert both_inside(two)
    assert not both_inside(one)  # one lane: one request at a time


def test_runtime_choice(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("ENCODER_RUNTIME", raising=False)
    assert resolve_runtime(None, cpu) == "onnx" and resolve_runtime(None, cuda) == "torch"
    assert resolve_runtime("auto", cpu, "bfloat16") == "torch"  # the graphs are fp32
    monkeypatch.setenv("ENCODER_RUNTIME", "")  # an unset ${{ ENV.* }}: the default
    assert resolve_runtime(None, cpu) == "onnx"
    monkeypatch.setenv("ENCODER_RUNTIME", "torch")
    assert resolve_runtime(None, cpu) == "torch" and resolve_runtime("onnx-int8", cpu) == "onnx-int8"
    with pytest.raises(RuntimeChoiceError, match="choose one of"):
        resolve_runtime("tensorrt", cpu)
    with pytest.raises(RuntimeChoiceError, match="needs runtime torch"):
        resolve_runtime("onnx", cpu, "float16")
    assert resolve_runtime("torch-bf16", cpu) == resolve_runtime("torch-bf16", cpu, "bfloat16") == "torch-bf16"
    with pytest.raises(RuntimeChoiceError, match="torch-bf16 runs bfloat16"):
        resolve_runtime("torch-bf16", cpu, "float32")


@pytest.mark.parametrize("name", ["clip", "efficientnet"])
def test_torch_bf16_runs_the_torch_model_in_bfloat16_close_to_fp32(name, tiny_models):
    """A convolutional and a transformer family: the weights in bfloat16, one lane, no ONNX
    graph, vectors close to fp32's (bf16 keeps 8 bits of mantissa) and still unit length."""
    model = str(tiny_models[TINY_FOR_ENCODER[name]])
    ref = make_encoder(name, model, runtime="torch", batch_size=3)
    enc = make_encoder(name, model, runtime="torch-bf16", batch_size=3, lanes="auto")
    info = enc.info()
    assert (info.runtime, info.dtype, enc.lanes) == ("torch-bf16", "bfloat16", 1)
    assert next(enc.model.parameters()).dtype == torch.bfloat16 and not info.onnx_provider
    images = _images(5)
    vecs = enc.embed_images(images)
    assert vecs.dtype == np.float32 and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert _min_cosine(vecs, ref.embed_images(images)) >= 0.98


def test_onnx_on_a_gpu_prefers_tensorrt_then_cuda_and_the_cpu_last(tmp_path, tiny_models):
    trt, cuda, cpu = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
    got = session_providers([cpu, cuda, trt], True, tmp_path / "trt")
    assert [p if isinstance(p, str) else p[0] for p in got] == [trt, cuda, cpu]
    assert got[0][1]["trt_engine_cache_path"] == str(tmp_path / "trt")  # engines built once
    assert session_providers([cpu, cuda], True, tmp_path) == [cuda, cpu]
    assert session_providers([cpu, cuda, trt], False, tmp_path) == [cpu]
    # Asked for CUDA where this onnxruntime has no GPU provider: the CPU runs it, and /info says so.
    import onnxruntime

    if cuda not in onnxruntime.get_available_providers():
        enc = make_encoder("vit", str(tiny_models["vit"]), runtime="onnx", device="cuda")
        assert enc.info().onnx_provider == cpu and enc.embed_images(_images(2)).shape[0] == 2


def _photo_set(photos: dict) -> tuple[list[str], list[np.ndarray]]:
    """The photos, each also cropped, flipped and shrunk: near-duplicates to rank."""
    names, images = [], []
    for name, arr in photos.items():
        h, w = arr.shape[:2]
        for kind, img in (
            ("full", arr),
            ("crop", arr[h // 8 :, : w * 7 // 8]),
            ("flip", arr[:, ::-1]),
            ("small", arr[::3, ::3]),
            ("top", arr[: h * 2 // 3]),
        ):
            names.append(f"{name}/{kind}")
            images.append(np.ascontiguousarray(img))
    return names, images


@pytest.mark.slow
def test_lite0_real_weights_on_onnx_same_vectors_and_same_top10(photos):
    ref = make_encoder("efficientnet-lite0", runtime="torch")
    enc = make_encoder("efficientnet-lite0", runtime="onnx")
    assert (ref.batch_size, enc.batch_size) == (32, 8)  # the CPU defaults per runtime (base.py)
    names, images = _photo_set(photos)
    a, b = ref.embed_images(images), enc.embed_images(images)
    assert _min_cosine(a, b) >= PARITY
    top_a = np.argsort(-(a @ a.T), axis=1, kind="stable")[:, :10]
    top_b = np.argsort(-(b @ b.T), axis=1, kind="stable")[:, :10]
    assert (top_a == top_b).all(), [names[i] for i in np.nonzero((top_a != top_b).any(axis=1))[0]]
    assert names[top_b[names.index("coffee/full"), 1]].startswith("coffee/")  # and they mean something


@pytest.mark.slow
@pytest.mark.flow
@pytest.mark.parametrize("runtime, lanes", [("onnx", None), ("torch", None), ("onnx", "2")])
def test_the_flow_indexes_and_searches_on_either_runtime(runtime, lanes, photo_dir, tmp_path, monkeypatch):
    from imgsearch.flow import Gateway, local_flow
    from imgsearch.indexing import encoder_info, run_index
    from imgsearch.searching import run_search

    monkeypatch.setenv("ENCODER_RUNTIME", runtime)  # what `app.py index --runtime` sets
    with local_flow("efficientnet-lite0", store=str(tmp_path / "store"), lanes=lanes) as host:
        gw = Gateway(host)
        info = encoder_info(gw)
        assert info.runtime == runtime and info.dim == 1280 and info.lanes == int(lanes or 1)
        done = run_index(gw, photo_dir, info, batch_size=4, progress=False)
        assert done.indexed == 10 and not done.skipped
        found = run_search(gw, done.collection, info, image=photo_dir / "chelsea" / "chelsea_crop.jpg", top_k=3)
    assert found.matches[0]["path"].endswith("chelsea_crop.jpg") and found.matches[0]["score"] > 0.999
    assert found.matches[1]["label"] == "chelsea"  # the other crop of the same photo comes next


@pytest.mark.slow
@pytest.mark.flow
def test_indexing_keeps_every_lane_busy(tmp_path):
    """With more lanes than the flow's default requests in flight (4), `run_index` sends one
    request per lane and two more, so the lanes are all fed: the encoder reports 6 batches
    at once (with 4 in flight it could never pass 4), and every image is stored."""
    from PIL import Image

    from imgsearch.flow import Gateway, local_flow
    from imgsearch.indexing import encoder_info, index_prefetch, run_index

    rng = np.random.default_rng(7)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(72):  # small JPEGs: decoding is cheap, so the requests wait at the encoder
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC).save(folder / f"{i:03d}.jpg", quality=90)
    with local_flow("efficientnet-lite0", store=str(tmp_path / "store"), runtime="onnx", lanes="6") as host:
        gw = Gateway(host)
        info = encoder_info(gw)
        assert info.lanes == 6 and index_prefetch(info) == 8
        done = run_index(gw, folder, info, batch_size=2, progress=False)
        assert done.indexed == 72 and not done.skipped
        assert encoder_info(gw).lanes_peak_busy >= 5


def _needs_quantiser() -> None:
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"onnxruntime's quantiser cannot be imported here ({exc})")


def test_a_cached_int8_start_decodes_no_calibration_photos(tiny_models, monkeypatch):
    """The calibration photos' name keys the int8 graph; the photos themselves are decoded
    only to export it (once), not on every start, nor twice on the first."""
    _needs_quantiser()
    import executors.encoders.onnx_towers as towers

    model = str(tiny_models[TINY_FOR_ENCODER["vit"]])
    decoded = []
    real = towers.calibration_images
    monkeypatch.setattr(towers, "calibration_images", lambda: decoded.append(1) or real())
    first = make_encoder("vit", model, runtime="onnx-int8", batch_size=4)
    assert len(decoded) <= 1  # once if it exported, never if another test had
    monkeypatch.setattr(towers, "calibration_images", lambda: pytest.fail("calibration photos decoded on a cached start"))
    again = make_encoder("vit", model, runtime="onnx-int8", batch_size=4)
    assert again.image_tower.path == first.image_tower.path and "int8" in again.image_tower.path.parent.name


@pytest.mark.slow
def test_lite0_int8_stays_close_to_fp32_and_finds_the_same_photo(photos):
    _needs_quantiser()
    ref = make_encoder("efficientnet-lite0", runtime="onnx")
    enc = make_encoder("efficientnet-lite0", runtime="onnx-int8")
    assert enc.info().runtime == "onnx-int8" and "int8" in enc.image_tower.path.parent.name
    names, images = _photo_set(photos)
    a, b = ref.embed_images(images), enc.embed_images(images)
    assert _min_cosine(a, b) >= 0.95  # quantisation costs a little (measured 0.96), not the meaning
    sims = b @ b.T
    np.fill_diagonal(sims, -1)
    same_photo = [names[i].split("/")[0] == names[j].split("/")[0] for i, j in enumerate(sims.argmax(axis=1))]
    assert all(same_photo)


def test_int8_text_tower_is_quantised_dynamically(tiny_models):
    _needs_quantiser()
    enc = make_encoder("clip", str(tiny_models["clip"]), runtime="onnx-int8")
    ref = make_encoder("clip", str(tiny_models["clip"]), runtime="onnx")
    texts = ["a doge meme", "cat", "two dogs playing in the snow at night"]
    got = enc.embed_texts(texts)
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    assert _min_cosine(got, ref.embed_texts(texts)) >= 0.9
    assert enc.text_tower.path != ref.text_tower.path


def test_the_bench_prints_what_each_runtime_ran_on():
    import io

    from imgsearch.bench.runtimes import print_runtimes

    runs = {
        "torch": {"best_images_per_second": 900.0, "best_batch_size": 64, "speedup_vs_torch": 1.0, "provider": "torch cuda", "dtype": "bfloat16"},
        "onnx": {
            "best_images_per_second": 1200.0,
            "best_batch_size": 64,
            "speedup_vs_torch": 1.33,
            "provider": "TensorrtExecutionProvider",
            "dtype": "float32",
        },
        "onnx-int8": {"error": "no quantiser"},
    }
    out = io.StringIO()
    print_runtimes({"encoders": [{"encoder": "vit", "runtimes": runs}]}, out)
    ran_on = next(line for line in out.getvalue().splitlines() if "ran on" in line)
    assert "torch cuda bfloat16" in ran_on and "Tensorrt float32" in ran_on


_CACHED_START = """
import sys, numpy as np
from executors.encoders.efficientnet import EfficientNetEncoder
enc = EfficientNetEncoder(name="efficientnet-lite0", runtime="onnx")
h, w = enc.preprocess.arrival_size
enc.embed_images([np.zeros((h, w + 40, 3), np.uint8), np.zeros((h + 9, w, 3), np.uint8)])
print("HEAVY", sorted(m for m in ("transformers.modeling_utils", "transformers.image_processing_utils") if m in sys.modules))
"""


@pytest.mark.slow
def test_a_cached_onnx_start_imports_none_of_transformers_model_or_processor_code(tmp_path):
    """Those imports are 1.9 s of a 2-core machine's start (most of `app.py search`): an ONNX
    encoder whose graph and preprocessing plan are cached starts, and embeds images as the
    flow sends them, without them. The first start (exporting) may import them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "IMGSEARCH_ONNX_CACHE": str(tmp_path), "PYTHONPATH": str(repo)}
    runs = [
        subprocess.run([sys.executable, "-c", _CACHED_START], cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=True)
        for _ in range(2)
    ]
    assert any(tmp_path.glob("*.json")) and any(tmp_path.glob("*/model.onnx"))  # plan and graph cached
    assert "HEAVY ['transformers.image_processing_utils', 'transformers.modeling_utils']" in runs[0].stdout
    assert "HEAVY []" in runs[1].stdout, runs[1].stdout + runs[1].stderr[-2000:]


def test_torch_bf16_warns_where_the_cpu_would_emulate_it(tiny_models, monkeypatch, caplog):
    import executors.encoders.plan as plan
    from executors.encoders.runtimes import cpu_has_native_bf16

    assert cpu_has_native_bf16() in (True, False, None)  # read from this machine's CPU flags
    monkeypatch.setattr(plan, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="executors.encoders.plan"):
        make_encoder("clip", str(tiny_models[TINY_FOR_ENCODER["clip"]]), runtime="torch-bf16")
    assert any("without native bfloat16" in r.getMessage() for r in caplog.records)


def test_torch_bf16_is_refused_on_a_gpu_without_bfloat16(monkeypatch):
    """A T4 or V100 has no bfloat16: one clear error at start, before any weights load."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")
    with pytest.raises(RuntimeChoiceError, match="Tesla T4 has no bfloat16"):
        make_encoder("efficientnet-lite0", runtime="torch-bf16", device="cuda")


def test_int8_calibrates_on_a_folder_listed_once(tmp_path, monkeypatch):
    """IMGSEARCH_INT8_CALIBRATION: the graph is named by the folder and its image count, and
    the photos decoded for it come from that same listing (listed once); a folder without
    images is one clear error."""
    from PIL import Image

    from executors.encoders import runtimes

    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.jpg", "sub/b.png", "c.jpeg"]):
        Image.new("RGB", (20 + i, 16), (i * 60, 10, 200)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    monkeypatch.setenv("IMGSEARCH_INT8_CALIBRATION", str(folder))
    runtimes._calibration_files.cache_clear()
    assert runtimes.calibration_source() == f"{folder}:3"
    photos = runtimes.calibration_images()
    assert sorted(p.shape for p in photos) == [(16, 20, 3), (16, 21, 3), (16, 22, 3)]
    assert runtimes._calibration_files.cache_info().misses == 1  # one listing for both
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("IMGSEARCH_INT8_CALIBRATION", str(empty))
    with pytest.raises(RuntimeChoiceError, match="holds no .jpg/.png images"):
        runtimes.calibration_source()
