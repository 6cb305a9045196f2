"""JPEG decoding on the encoder's device: the normalizer leaves plain JPEGs as bytes, the
encoder decodes, turns upright, resizes, crops and normalises them itself, and the vectors
are those of the CPU path. nvJPEG needs a GPU; here the same protocol runs with the Pillow
decoder (``ENCODER_DEVICE_DECODE=pillow``), which has nvJPEG's contract (RGB, as stored)."""

import dataclasses
import io
import logging

import numpy as np
import pytest
import torch
from corpus import BOMBS, EXIF_ROTATED, OK, make_corpus
from docarray import DocList
from PIL import Image, ImageOps
from test_encoders import make_encoder

from executors.contracts import EncoderInfo
from executors.docs import ImageDoc
from executors.encoders.device_decode import (
    ENV_DEVICE_DECODE,
    DeviceDecodeError,
    DeviceDecoder,
    pillow_decode,
    resolve_device_decoder,
    upright,
)
from executors.encoders.preprocess import ImagePreprocessor, center_crop_chw
from executors.encoders.specs import SPECS
from executors.errors import UserError
from executors.normalizer.decode import ImageDecodeError, decode_image, device_jpeg
from executors.normalizer.executor import ImageNormalizer
from imgsearch.flow import fit_parameter
from imgsearch.tiny_models.processors import image_processor

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def lite0_pre() -> ImagePreprocessor:
    return ImagePreprocessor.load("efficientnet-lite0", SPECS["efficientnet-lite0"].processor)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root)


def _jpeg(arr: np.ndarray, scale: int = 1) -> bytes:
    img = Image.fromarray(arr)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_every_exif_orientation_as_pillow_does(orientation):
    arr = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)  # not square
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", exif=exif)  # lossless: pixels compared exactly
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
    ours = upright(torch.from_numpy(arr).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    assert np.array_equal(ours, expected)


@pytest.mark.parametrize("size", [(300, 200), (224, 224), (100, 250), (7, 5), (8, 300), (225, 9)])
def test_center_crop_equals_the_processors(size):
    pre = ImagePreprocessor(image_processor("CLIPImageProcessor"))
    chw = np.random.default_rng(1).integers(0, 256, (3, *size), dtype=np.uint8)
    expected = pre.processor.center_crop(chw, pre.processor.crop_size)
    assert np.array_equal(center_crop_chw(torch.from_numpy(chw), *pre.input_size).numpy(), expected)


def test_device_pixels_match_the_cpu_path(photos, lite0_pre):
    """Full-size decode + torch resize on the device against the normalizer's reduced-scale
    decode + Pillow resize: the same image in the model's input, within JPEG/filter noise."""
    decoder = DeviceDecoder("pillow", pillow_decode, lite0_pre, CPU)
    rule = lite0_pre.resize_rule()
    blobs = [_jpeg(arr, scale) for arr in photos.values() for scale in (1, 3)]
    pixels, errors = decoder(blobs)
    assert errors == [None] * len(blobs) and pixels.shape == (len(blobs), 3, *lite0_pre.input_size)
    cpu = lite0_pre([decode_image(b, fit=rule)[0] for b in blobs])
    diff = (pixels - cpu).abs().mean(dim=(1, 2, 3))
    assert float(diff.max()) < 0.03, diff  # about 1% of the normalised range
    other = (pixels - cpu.roll(2, 0)).abs().mean(dim=(1, 2, 3))  # the next photo (two scales each)
    assert float(other.min()) > 10 * float(diff.max())  # a different photo is far off


def test_a_bad_blob_gets_its_reason_and_the_others_their_pixels(photos, lite0_pre):
    decoder = DeviceDecoder("pillow", pillow_decode, lite0_pre, CPU)
    good = _jpeg(photos["coffee"])
    pixels, errors = decoder([good, b"\xff\xd8\xff garbage", good[: len(good) // 3]])
    assert errors[0] is None and "cannot decode" in errors[1] and pixels.shape[0] == 3 - sum(map(bool, errors))


def test_the_normalizer_checks_plain_jpegs_and_lets_them_through(corpus):
    """Plain JPEGs: upright size from the header, bytes left; every other file as before; bad
    files refused with the same reasons, from the header alone."""
    root, cases = corpus
    passed_bad = set()
    for rel, expected in cases.items():
        data = (root / rel).read_bytes()
        try:
            size = device_jpeg(data)
        except ImageDecodeError as exc:
            assert expected != OK, (rel, exc)
            assert rel not in BOMBS or "decompression bomb" in str(exc)
            continue
        if expected != OK:
            if size is not None:
                passed_bad.add(rel)
            continue
        img = Image.open(io.BytesIO(data))
        plain = img.format == "JPEG" and img.mode in ("RGB", "L")  # CMYK stays with Pillow
        assert (size is not None) == plain, rel
        if plain:
            assert size == decode_image(data)[1:], rel  # the upright size the CPU path reports
    # Only a file whose header is sound gets through; the encoder then gives its reason.
    assert passed_bad == {"truncated.jpg"}
    assert all(device_jpeg((root / rel).read_bytes()) for rel in EXIF_ROTATED)


def test_the_client_asks_for_bytes_only_from_an_encoder_that_decodes():
    rule = {"shortest_edge": 256, "resample": 3}
    info = EncoderInfo(encoder="clip", model="m", dim=4, resize_rule=rule)
    assert fit_parameter(dataclasses.replace(info, device_decode="nvjpeg")) == {"fit": rule, "keep_jpeg": True}
    assert fit_parameter(info) == {"fit": rule}


def test_the_choice(lite0_pre, monkeypatch, caplog):
    cuda = torch.device("cuda")
    monkeypatch.delenv(ENV_DEVICE_DECODE, raising=False)
    with caplog.at_level(logging.INFO, logger="executors.encoders.device_decode"):
        assert resolve_device_decoder(None, CPU, "torch", lite0_pre) is None  # auto on a CPU: off
    assert "not a CUDA GPU" in caplog.text
    assert resolve_device_decoder("off", cuda, "torch", lite0_pre) is None
    with pytest.raises(DeviceDecodeError, match="not a CUDA GPU") as err:
        resolve_device_decoder("on", CPU, "torch", lite0_pre)
    assert isinstance(err.value, UserError)  # a configuration mistake: exit code 2
    with pytest.raises(DeviceDecodeError, match="runtime onnx"):
        resolve_device_decoder("on", cuda, "onnx", lite0_pre)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceDecodeError, match="torchvision|cannot decode"):
            resolve_device_decoder("on", cuda, "torch", lite0_pre)
    with pytest.raises(DeviceDecodeError, match="unknown"):
        resolve_device_decoder("gpu", CPU, "torch", lite0_pre)
    assert resolve_device_decoder("pillow", CPU, "onnx", lite0_pre).name == "pillow"
    efficientnet = ImagePreprocessor(image_processor("EfficientNetImageProcessor"))
    with pytest.raises(DeviceDecodeError, match="beyond a plain resize"):
        resolve_device_decoder("pillow", CPU, "torch", efficientnet)
    monkeypatch.setenv(ENV_DEVICE_DECODE, "on")  # what the flow's encoder reads
    with pytest.raises(DeviceDecodeError, match=f"{ENV_DEVICE_DECODE}=on"):
        resolve_device_decoder(None, CPU, "torch", lite0_pre)


def _through(normalizer: ImageNormalizer, encoder, files: dict[str, bytes], keep_jpeg: bool) -> dict[str, ImageDoc]:
    docs = DocList[ImageDoc](ImageDoc(uri=rel, blob=data) for rel, data in files.items())
    params = {"fit": encoder.preprocess.resize_rule(), "keep_jpeg": keep_jpeg}
    normalizer.normalize(docs, params)
    if keep_jpeg:
        assert any(d.blob is not None for d in docs)  # JPEG bytes went on
    encoder.encode_docs(docs)
    assert all(d.blob is None and d.tensor is None for d in docs)  # nothing heavy travels further
    return {d.uri: d for d in docs}


@pytest.mark.slow
def test_the_encoder_decodes_what_the_normalizer_left_with_the_cpu_paths_vectors(corpus, photos):
    """Lite0's real weights: every good file of the odd-file corpus embedded, every bad one a
    reason (a truncated JPEG passes the header check and fails in the encoder, per document);
    photos' vectors as the CPU path's."""
    root, cases = corpus
    files = {rel: (root / rel).read_bytes() for rel in cases}
    files.update({f"{name}@{s}.jpg": _jpeg(arr, s) for name, arr in photos.items() for s in (1, 2)})
    encoder = make_encoder("efficientnet-lite0", device_decode="pillow")
    assert encoder.info().device_decode == "pillow"
    normalizer = ImageNormalizer()
    try:
        device = _through(normalizer, encoder, files, keep_jpeg=True)
        cpu = _through(normalizer, encoder, files, keep_jpeg=False)
    finally:
        normalizer.close()
    for rel, doc in device.items():
        expected = cases.get(rel, OK)
        assert (doc.error is None) == (expected == OK) == (cpu[rel].error is None), (rel, doc.error)
        if expected == OK:
            assert (doc.width, doc.height) == (cpu[rel].width, cpu[rel].height), rel
            cosine = float(np.dot(doc.embedding, cpu[rel].embedding))
            assert cosine > 0.98, (rel, cosine)
    assert "truncated" in device["truncated.jpg"].error
    names = [rel for rel in files if "@" in rel]
    a = np.stack([device[n].embedding for n in names])
    b = np.stack([cpu[n].embedding for n in names])
    photo = [n.split("@")[0] for n in names]
    assert [photo[i] for i in np.argmax(a @ b.T, axis=1)] == photo  # each finds its photo's CPU twin


@pytest.mark.slow
@pytest.mark.flow
def test_the_flow_passes_jpegs_to_the_encoder_and_finds_them_by_the_cpu_path(photo_dir, tmp_path, monkeypatch):
    from imgsearch.flow import Gateway, local_flow
    from imgsearch.indexing import encoder_info, run_index
    from imgsearch.searching import run_search

    monkeypatch.setenv(ENV_DEVICE_DECODE, "pillow")
    with local_flow("efficientnet-lite0", store=str(tmp_path / "store")) as host:
        gw = Gateway(host)
        info = encoder_info(gw)
        assert info.device_decode == "pillow"
        done = run_index(gw, photo_dir, info, batch_size=4, progress=False)  # decoded by the encoder
        assert done.indexed == 10 and not done.skipped
        query = photo_dir / "chelsea" / "chelsea_crop.jpg"
        cpu_info = dataclasses.replace(info, device_decode=None)  # the normalizer decodes this query
        by_cpu = run_search(gw, done.collection, cpu_info, image=query, top_k=3)
        by_device = run_search(gw, done.collection, info, image=query, top_k=3)
        timings = next(v for k, v in gw.call_each("/timings").items() if k.startswith("encoder"))["handlers"]
    assert timings["encode_jpegs"]["docs"] == 10 + 1  # the photos and one query came as JPEG bytes
    assert timings["encode_images"]["docs"] == 1  # the other query as pixels
    assert by_cpu.matches[0]["path"].endswith("chelsea_crop.jpg") and by_cpu.matches[0]["score"] > 0.98
    assert by_device.matches[0]["path"].endswith("chelsea_crop.jpg") and by_device.matches[0]["score"] > 0.999
    assert by_cpu.matches[1]["label"] == by_device.matches[1]["label"] == "chelsea"


def _nvjpeg_here() -> bool:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not _nvjpeg_here(), reason="needs a CUDA GPU and torchvision (nvJPEG)")
def test_nvjpeg_on_the_gpu_decodes_as_pillow_does_and_auto_turns_it_on(photos, lite0_pre, corpus):
    from executors.encoders.device_decode import nvjpeg_decode

    cuda = torch.device("cuda")
    root, _ = corpus
    blobs = [_jpeg(arr) for arr in photos.values()] + [(root / rel).read_bytes() for rel in EXIF_ROTATED]
    blobs += [(root / "greyscale.jpg").read_bytes(), (root / "progressive.jpg").read_bytes()]
    for gpu, cpu in zip(nvjpeg_decode(blobs, cuda), pillow_decode(blobs, CPU)):
        assert gpu.shape == cpu.shape and gpu.device.type == "cuda"
        assert float((gpu.cpu().float() - cpu.float()).abs().mean()) < 2.0  # IDCT rounding differs a little
    bad = nvjpeg_decode([blobs[0], b"\xff\xd8\xff" + bytes(300)], cuda)  # a JPEG marker, then nothing
    assert isinstance(bad[0], torch.Tensor) and isinstance(bad[1], str)  # one bad file, one reason
    decoder = resolve_device_decoder("auto", cuda, "torch", lite0_pre)
    assert decoder is not None and decoder.name == "nvjpeg"
    pixels, errors = decoder(blobs)
    reference, _ = DeviceDecoder("pillow", pillow_decode, lite0_pre, cuda)(blobs)
    assert errors == [None] * len(blobs) and float((pixels - reference).abs().mean()) < 0.02


@pytest.mark.parametrize("size", [(300, 250), (100, 120), (224, 224), (10, 400)])
def test_center_crop_is_the_same_on_arrays_and_tensors(size):
    """The CPU fast path crops NumPy arrays, the device path tensors: one function, one result."""
    chw = np.random.default_rng(2).integers(0, 256, (3, *size), dtype=np.uint8)
    on_array = center_crop_chw(chw, 224, 224)
    assert isinstance(on_array, np.ndarray) and on_array.shape == (3, 224, 224)
    assert np.array_equal(on_array, center_crop_chw(torch.from_numpy(chw), 224, 224).numpy())
