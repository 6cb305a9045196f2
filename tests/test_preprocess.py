"""The preprocessing fast path equals the checkpoint's own processor, and resizing where the
image is decoded (the normalizer's ``fit``) gives the encoder exactly the same input."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from executors.encoders.preprocess import ImagePreprocessor, check_plan
from executors.encoders.specs import SPECS
from executors.normalizer.decode import decode_image, fit_size
from imgsearch.tiny_models.processors import image_processor as _processor

CONFIGS = {
    "clip": ("CLIPImageProcessor", {}),
    "bit": ("BitImageProcessor", {}),
    "dinov2": ("BitImageProcessor", {"size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}}),
    "vit": ("ViTImageProcessor", {}),
    "blip": ("BlipImageProcessor", {}),
}


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = [(600, 800, 3), (333, 200, 3), (224, 298, 3), (31, 40, 3), (224, 224, 3)]
    return [rng.integers(0, 256, s, dtype=np.uint8) for s in shapes]


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_fast_path_equals_the_processor(kind):
    name, kwargs = CONFIGS[kind]
    pre = ImagePreprocessor(_processor(name, **kwargs))
    assert pre.fast, f"{name} should take the fast path"
    images = _images()
    ours = pre(images)
    ref = pre.processor(images=images, return_tensors="pt", input_data_format="channels_last")["pixel_values"]
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    assert float((ours - ref).abs().max()) < 1e-5


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["clip", "dinov2"])
def test_normalising_on_the_model_device_gives_the_same_pixels(kind, device):
    """On a GPU the uint8 batch travels and is normalised there; the values must not change."""
    name, kwargs = CONFIGS[kind]
    pre = ImagePreprocessor(_processor(name, **kwargs))
    images = _images(seed=3)
    on_device = pre(images, torch.device(device))
    assert on_device.device.type == device and on_device.dtype == torch.float32
    assert float((on_device.cpu() - pre(images)).abs().max()) < 1e-5


def test_a_batch_of_images_the_model_keeps_at_different_sizes_is_refused_clearly():
    """Without a centre crop the model's pixels keep each image's shape, so such images
    cannot share a batch: the error says so rather than failing inside a copy."""
    pre = ImagePreprocessor(_processor("CLIPImageProcessor", do_center_crop=False))
    assert pre.fast
    square, wide = np.zeros((224, 224, 3), np.uint8), np.zeros((224, 300, 3), np.uint8)
    assert pre([square, square]).shape == (2, 3, 224, 224)
    with pytest.raises(ValueError, match="one size"):
        pre([square, wide])


def test_lite0_config_takes_the_fast_path_and_efficientnet_does_not():
    lite = ImagePreprocessor.load("efficientnet-lite0", SPECS["efficientnet-lite0"].processor)
    assert lite.fast and lite.resize_rule() == {"shortest_edge": 256, "resample": 3}
    eff = ImagePreprocessor(_processor("EfficientNetImageProcessor"))
    assert not eff.fast and eff.resize_rule() is None  # model-specific steps: called as it is
    images = _images(1)[:2]
    ref = eff.processor(images=images, return_tensors="pt", input_data_format="channels_last")["pixel_values"]
    assert np.array_equal(eff(images).numpy(), ref.numpy())


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_resizing_at_decode_time_gives_the_encoder_the_same_input(kind):
    """PNG (no JPEG draft): decoding with the model's rule, then preprocessing, gives the
    model the input that preprocessing the full decoded image gives (the normalizer resizes
    with torch's antialiased kernels, Pillow's algorithm: within 2 levels of 255, almost
    every value equal); only model-sized pixels leave the normalizer."""
    name, kwargs = CONFIGS[kind]
    pre = ImagePreprocessor(_processor(name, **kwargs))
    rule = pre.resize_rule()
    assert rule is not None
    for img in _images(2):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        full, w, h = decode_image(buf.getvalue())
        fitted, w2, h2 = decode_image(buf.getvalue(), fit=rule)
        assert (w2, h2) == (w, h) == (img.shape[1], img.shape[0])  # the original size is reported
        assert (fitted.shape[1], fitted.shape[0]) == fit_size(w, h, rule)
        levels = (pre([fitted]) - pre([full])).abs() / pre._mul  # back to 0-255 pixel levels
        assert float(levels.max()) < 2.01 and float((levels > 0.01).float().mean()) < 0.01


def test_fit_shrinks_a_big_jpeg_before_it_travels():
    rng = np.random.default_rng(3)
    big = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).resize((4000, 3000))
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=90)
    pixels, w, h = decode_image(buf.getvalue(), max_side=1024, fit={"shortest_edge": 224, "resample": 3})
    assert (w, h) == (4000, 3000) and pixels.shape == (224, 298, 3)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_a_cached_plan_needs_the_processor_only_for_an_image_off_the_models_size(kind):
    """An ONNX encoder starts from the plan it cached (JSON): images as the flow sends them
    (at the resize rule's size) are preprocessed exactly as the processor does without
    loading it; the first image at another size loads it, once."""
    name, kwargs = CONFIGS[kind]
    full = ImagePreprocessor(_processor(name, **kwargs))
    loads = []
    cached = ImagePreprocessor(plan=json.loads(json.dumps(full.plan)), load=lambda: loads.append(name) or _processor(name, **kwargs))
    assert (cached.input_size, cached.resize_rule(), cached.describe(), cached.center_crop) == (
        full.input_size,
        full.resize_rule(),
        full.describe(),
        full.center_crop,
    )
    rng = np.random.default_rng(5)
    rule = full.resize_rule()
    if "shortest_edge" in rule:  # landscape, portrait and square at the rule's shorter side
        s = rule["shortest_edge"]
        shapes = [(s, s + 37), (s + 50, s), cached.arrival_size]
    else:
        shapes = [cached.arrival_size]
    arriving = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]
    assert torch.equal(cached(arriving), full(arriving)) and not loads
    others = _images(4)  # other sizes, one smaller than the crop
    assert float((cached(others) - full(others)).abs().max()) < 1e-5 and loads == [name]
    cached(others)
    assert loads == [name]


def test_the_plan_refuses_to_be_made_from_nothing():
    with pytest.raises(ValueError, match="needs a processor"):
        ImagePreprocessor(plan={"fast": True})


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.pop("center_crop"), "center_crop"),
        (lambda p: p.update(input_size=[224]), "input_size"),
        (lambda p: p.update(resize_rule={"shortest_edge": "224", "resample": 3}), "resize_rule"),
        (lambda p: p.update(mul=[1.0, 2.0]), "mul"),
        (lambda p: p.update(sub=[0.0, float("nan"), 1.0]), "sub"),
        (lambda p: p.update(fast="yes"), "fast"),
        (lambda p: p.update(version=0), "version"),
    ],
)
def test_a_damaged_plan_is_refused_with_what_is_wrong(damage, reason):
    """A cached plan that parses but is damaged (cut, edited, another version) is refused
    when made, naming the field, not at the first batch as a KeyError."""
    name, kwargs = CONFIGS["clip"]
    plan = json.loads(json.dumps(ImagePreprocessor(_processor(name, **kwargs)).plan))
    check_plan(plan)  # the undamaged plan passes
    damage(plan)
    with pytest.raises(ValueError, match=reason):
        ImagePreprocessor(plan=plan, load=lambda: None)
