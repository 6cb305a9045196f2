"""The tiny stand-in checkpoints must load and run exactly like the hub ones."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import transformers  # noqa: E402
from tiny_models import folder_size, load_tiny_model, reference_image_embedding, reference_text_embedding
from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from imgsearch.tiny_models import TEXT_KINDS, TINY_DIMS, TINY_KINDS, TINY_MODEL_CLASSES, build_tiny_model

hf_logging.disable_progress_bar()

EXPECTED_PROCESSOR = {
    "clip": "CLIPImageProcessor",
    "bit": "BitImageProcessor",
    "efficientnet": "EfficientNetImageProcessor",
    "vit": "ViTImageProcessor",
    "dinov2": "BitImageProcessor",
    "blip2": "BlipImageProcessor",
    "blip2-itm": "BlipImageProcessor",
}
EXPECTED_TOKENIZER = {"clip": "CLIPTokenizer", "blip2-itm": "BertTokenizer"}


def _output_dim(kind: str, config) -> int:
    """The config attribute that gives each kind's embedding size."""
    return {
        "clip": lambda c: c.projection_dim,
        "bit": lambda c: c.hidden_sizes[-1],
        "efficientnet": lambda c: c.hidden_dim,
        "vit": lambda c: c.hidden_size,
        "dinov2": lambda c: c.hidden_size,
        "blip2": lambda c: c.qformer_config.hidden_size,
        "blip2-itm": lambda c: c.image_text_hidden_size,
    }[kind](config)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_models")
    for kind in TINY_KINDS:
        build_tiny_model(kind, root / kind, seed=0)
    return root


@pytest.fixture(scope="session")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    # Two clearly different RGB uint8 images, not square, bigger than the model input.
    a = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    b = np.zeros((40, 56, 3), np.uint8)
    b[:, :28] = (250, 20, 20)
    b[:, 28:] = (10, 200, 90)
    return [a, b]


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_folder_is_small_and_complete(tiny_root, kind):
    folder = tiny_root / kind
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= names
    if kind in TEXT_KINDS:
        assert {"tokenizer.json", "tokenizer_config.json"} <= names
    assert folder_size(folder) < 2 * 1024 * 1024


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_loads_back_like_a_hub_checkpoint(tiny_root, kind):
    folder = tiny_root / kind
    config = AutoConfig.from_pretrained(folder)
    assert config.architectures == [TINY_MODEL_CLASSES[kind]]
    cls = getattr(transformers, TINY_MODEL_CLASSES[kind])
    model, info = cls.from_pretrained(folder, output_loading_info=True)
    assert type(model) is cls
    assert not model.training
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    processor = AutoImageProcessor.from_pretrained(folder)
    # Without torchvision transformers 5 gives the PIL variant (e.g. CLIPImageProcessorPil).
    assert type(processor).__name__ in (EXPECTED_PROCESSOR[kind], EXPECTED_PROCESSOR[kind] + "Pil")
    assert _output_dim(kind, config) == TINY_DIMS[kind]


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_image_features(tiny_root, images, kind):
    feats = reference_image_embedding(kind, tiny_root / kind, images)
    assert feats.shape == (2, TINY_DIMS[kind])
    assert feats.dtype == torch.float32
    assert torch.isfinite(feats).all()
    assert feats.norm(dim=-1).min() > 1e-3  # not the all-zero output of a dead network
    cos = torch.nn.functional.cosine_similarity(feats[0], feats[1], dim=0)
    assert cos < 0.999  # different images, different embeddings
    # A PIL batch gives the same pixels as the (H, W, 3) uint8 arrays.
    from PIL import Image

    processor = AutoImageProcessor.from_pretrained(tiny_root / kind)
    as_arrays = processor(images=images, return_tensors="pt")["pixel_values"]
    as_pil = processor(images=[Image.fromarray(i) for i in images], return_tensors="pt")["pixel_values"]
    assert torch.equal(as_arrays, as_pil)


@pytest.mark.parametrize("kind", TEXT_KINDS)
def test_text_features_share_the_image_space(tiny_root, images, kind):
    folder = tiny_root / kind
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(tokenizer).__name__ == EXPECTED_TOKENIZER[kind]
    config = AutoConfig.from_pretrained(folder)
    vocab = config.text_config.vocab_size if kind == "clip" else config.qformer_config.vocab_size
    assert len(tokenizer) == vocab
    texts = ["a photo of a doge", "cat", "an elephant on a skateboard " * 20]
    feats = reference_text_embedding(kind, folder, texts)
    assert feats.shape == (3, TINY_DIMS[kind])
    assert torch.isfinite(feats).all()
    if kind == "clip":  # the model's own image-text logits are these two embeddings' cosines, scaled
        model = load_tiny_model(kind, folder)
        pixels = AutoImageProcessor.from_pretrained(folder)(images=images, return_tensors="pt")["pixel_values"]
        tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            logits = model(pixel_values=pixels, **tokens).logits_per_image
        img = reference_image_embedding(kind, folder, images)
        cosines = torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(feats, dim=-1).T
        assert torch.allclose(cosines * model.logit_scale.exp(), logits, atol=1e-4)
    # A text embeds the same alone as padded in a batch.
    alone = reference_text_embedding(kind, folder, ["cat"])
    assert torch.allclose(alone[0], feats[1], atol=1e-5)


def test_clip_tokenizer_and_config_agree_on_eos(tiny_root):
    folder = tiny_root / "clip"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text_config = AutoConfig.from_pretrained(folder).text_config
    assert text_config.eos_token_id == tokenizer.eos_token_id == len(tokenizer) - 1
    assert text_config.bos_token_id == tokenizer.bos_token_id
    assert text_config.max_position_embeddings == tokenizer.model_max_length
    ids = tokenizer(["doge " * 100, "cat"], padding=True, truncation=True)["input_ids"]
    assert len(ids[0]) == text_config.max_position_embeddings
    assert ids[0][0] == tokenizer.bos_token_id and ids[0][-1] == tokenizer.eos_token_id
    assert ids[1][:3] == [tokenizer.bos_token_id, tokenizer.convert_tokens_to_ids("cat</w>"), tokenizer.eos_token_id]


def test_blip2_itm_matches_the_model_forward(tiny_root, images):
    """The reference per-query embeddings are what the ITC forward computes, and its
    similarity is the max over query tokens."""
    folder = tiny_root / "blip2-itm"
    model = load_tiny_model("blip2-itm", folder)
    pixel_values = AutoImageProcessor.from_pretrained(folder)(images=images, return_tensors="pt")["pixel_values"]
    enc = AutoTokenizer.from_pretrained(folder)(["a doge meme", "cat"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(pixel_values=pixel_values, **enc, use_image_text_matching_head=False)
    text = reference_text_embedding("blip2-itm", folder, ["a doge meme", "cat"])
    assert torch.allclose(out.text_embeds, text, atol=1e-5)
    assert out.image_embeds.shape == (2, model.config.num_query_tokens, TINY_DIMS["blip2-itm"])
    per_query = out.image_embeds @ text.T  # (B, Q, N)
    assert torch.allclose(out.logits_per_image, per_query.max(dim=1).values, atol=1e-5)


def test_same_seed_same_weights(tiny_root, tmp_path):
    from safetensors.torch import load_file

    for kind in TINY_KINDS:
        again = build_tiny_model(kind, tmp_path / "again" / kind, seed=0)
        a = load_file(tiny_root / kind / "model.safetensors")
        b = load_file(again / "model.safetensors")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), kind
        assert (tiny_root / kind / "config.json").read_bytes() == (again / "config.json").read_bytes()
    other = load_file(build_tiny_model("vit", tmp_path / "seed1", seed=1) / "model.safetensors")
    base = load_file(tiny_root / "vit" / "model.safetensors")
    assert any(not torch.equal(base[k], other[k]) for k in base)
