"""Tiny, randomly initialised stand-ins for every hub checkpoint the encoders load.

``build_tiny_model(kind, out_dir, seed)`` writes a folder laid out like a hub checkpoint
(``config.json`` + ``model.safetensors`` + ``preprocessor_config.json`` and, for the
text-capable kinds, the tokenizer files), so production code loads it exactly as it
would load the real thing::

    AutoConfig.from_pretrained(folder)
    <ModelClass>.from_pretrained(folder)            # see TINY_MODEL_CLASSES
    AutoImageProcessor.from_pretrained(folder)
    AutoTokenizer.from_pretrained(folder)            # clip, blip2-itm only

Nothing is downloaded. Every model is built from a config after ``torch.manual_seed``,
so the same seed gives byte-identical weights; each folder is well under 2 MB and loads
in a fraction of a second. Images are 32 px (DINOv2: resize to 36, crop 32 — the real
checkpoint's 256 -> 224 scaled down), so the processors are cheap too.

The model/processor classes mirror the real checkpoints:

    kind          real checkpoint               model class                  processor
    clip          openai/clip-vit-base-patch32  CLIPModel                    CLIPImageProcessor
    bit           google/bit-50                 BitModel                     BitImageProcessor
    efficientnet  google/efficientnet-b7        EfficientNetModel            EfficientNetImageProcessor
    vit           google/vit-*-in21k            ViTModel                     ViTImageProcessor
    dinov2        facebook/dinov2-base          Dinov2Model                  BitImageProcessor
    blip2         Salesforce/blip2-opt-2.7b     Blip2Model                   BlipImageProcessor
    blip2-itm     Salesforce/blip2-itm-vit-g    Blip2ForImageTextRetrieval   BlipImageProcessor

Weights are not the library's init (which leaves a random EfficientNet outputting zeros
and a random Q-Former ignoring the image) but fan-in scaled, with EfficientNet's
BatchNorm statistics calibrated on one seeded batch: unrelated photos get clearly
different embeddings and a re-encoded JPEG of a photo stays its nearest neighbour, so
the tiny models are usable for search tests, not just shape tests.

``reference_image_embedding`` / ``reference_text_embedding`` compute embeddings with the
plain transformers calls (see the notes in each), as an independent check on encoders.

Tokenizers: clip gets a real ``CLIPTokenizer`` (byte-level BPE, tiny vocabulary: the 2x256
byte symbols, a few whole words such as "doge", "cat", "dog", "meme", and
``<|startoftext|>``/``<|endoftext|>``; pad = eos = ``<|endoftext|>`` = the highest id, as
in the real one); blip2-itm gets a real ``BertTokenizer`` (WordPiece, lower-cased, [CLS]
first). The blip2 (OPT) kind is image-only and ships no tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_KINDS = ("clip", "bit", "efficientnet", "vit", "dinov2", "blip2", "blip2-itm")

# The class the production code uses to load each kind (and its tests check).
TINY_MODEL_CLASSES = {
    "clip": "CLIPModel",
    "bit": "BitModel",
    "efficientnet": "EfficientNetModel",
    "vit": "ViTModel",
    "dinov2": "Dinov2Model",
    "blip2": "Blip2Model",
    "blip2-itm": "Blip2ForImageTextRetrieval",
}

# Embedding size each tiny model gives the way the production encoders take it.
TINY_DIMS = {
    "clip": 16,  # config.projection_dim
    "bit": 64,  # config.hidden_sizes[-1]
    "efficientnet": 128,  # config.hidden_dim
    "vit": 32,  # config.hidden_size
    "dinov2": 32,  # config.hidden_size
    "blip2": 32,  # config.qformer_config.hidden_size
    "blip2-itm": 16,  # config.image_text_hidden_size
}

TEXT_KINDS = ("clip", "blip2-itm")

IMAGE_SIZE = 32

# Words every tiny tokenizer knows as single tokens (anything else still tokenizes:
# CLIP falls back to byte symbols, BERT to [UNK]).
WORDS = (
    "a", "an", "the", "of", "photo", "picture", "image", "meme", "doge", "dog", "dogs",
    "cat", "cats", "shiba", "inu", "funny", "cute", "red", "green", "blue", "car",
    "tree", "house", "man", "woman", "text", "with", "and", "on", "in",
)

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def build_tiny_model(kind: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random checkpoint of ``kind`` into ``out_dir`` and return ``out_dir``."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown tiny model kind {kind!r}; known: {', '.join(TINY_KINDS)}")
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, processor, tokenizer = _BUILDERS[kind](seed, torch)
    model.eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir


def build_all(root: Path, seed: int = 0) -> dict[str, Path]:
    """Build every kind under ``root/<kind>``."""
    return {kind: build_tiny_model(kind, Path(root) / kind, seed) for kind in TINY_KINDS}


# --------------------------------------------------------------------------- tokenizers


def _clip_tokenizer(max_length: int):
    """A real ``CLIPTokenizer`` (byte-level BPE with ``</w>`` word ends), tiny vocabulary.

    Vocabulary: the 256 byte symbols, the same 256 with ``</w>``, the merge chain of every
    word in WORDS, then ``<|startoftext|>`` and ``<|endoftext|>`` last, so the EOS id is
    the highest id (the real CLIP property the legacy ``argmax`` pooling relies on).
    """
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for word in WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        if len(parts) == 1:
            continue
        left = parts[0]
        for right in parts[1:]:
            pair = (left, right)
            left = left + right
            if pair not in seen:
                seen.add(pair)
                merges.append(pair)
            if left not in vocab:
                vocab[left] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
    return tok


def _bert_tokenizer(max_length: int):
    """A real ``BertTokenizer`` (WordPiece, lower case) over a tiny vocabulary."""
    from transformers import BertTokenizer

    vocab: dict[str, int] = {}
    for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
        vocab[t] = len(vocab)
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    for c in "abcdefghijklmnopqrstuvwxyz0123456789":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault("##" + c, len(vocab))
    for p in ".,!?'\"-":
        vocab.setdefault(p, len(vocab))
    return BertTokenizer(vocab=vocab, model_max_length=max_length)


# --------------------------------------------------------------------------- builders


def _processor(name: str, **kwargs):
    """Image processor ``name`` (e.g. "CLIPImageProcessor").

    transformers 5.x splits each processor into a torchvision class (``name``) and a PIL
    one (``name + "Pil"``); without torchvision ``name`` falls back to the PIL class with a
    warning. Either way ``save_pretrained`` writes ``"image_processor_type": name`` (the
    "Pil" suffix is stripped), exactly like a hub checkpoint.
    """
    import transformers

    try:
        import torchvision  # noqa: F401

        cls = getattr(transformers, name)
    except ImportError:
        cls = getattr(transformers, name + "Pil", None) or getattr(transformers, name)
    return cls(**kwargs)


def _build_clip(seed, torch):
    from transformers import CLIPConfig, CLIPModel

    max_len = 32
    tok = _clip_tokenizer(max_len)
    text_config = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=max_len,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,  # != 2: pool at the first EOS, not argmax(ids)
        pad_token_id=tok.pad_token_id,
        projection_dim=16,
    )
    vision_config = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=8,
        projection_dim=16,
    )
    config = CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=16)
    torch.manual_seed(seed)
    model = CLIPModel(config)
    _signal_preserving_init(model, torch)
    processor = _processor(
        "CLIPImageProcessor",
        do_resize=True,
        size={"shortest_edge": IMAGE_SIZE},
        resample=3,
        do_center_crop=True,
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        do_convert_rgb=True,
    )
    return model, processor, tok


def _build_bit(seed, torch):
    from transformers import BitConfig, BitModel

    # google/bit-50: preactivation ResNet, "SAME" padding, dynamic-padding stem.
    config = BitConfig(
        embedding_size=8,
        hidden_sizes=[16, 32, 48, 64],
        depths=[1, 1, 1, 1],
        layer_type="preactivation",
        global_padding="SAME",
        embedding_dynamic_padding=True,
        num_groups=4,  # must divide every width incl. the bottleneck's hidden/4
    )
    torch.manual_seed(seed)
    model = BitModel(config)
    _signal_preserving_init(model, torch)
    processor = _processor(
        "BitImageProcessor",
        do_resize=True,
        size={"shortest_edge": IMAGE_SIZE},
        resample=2,  # google/bit-50: shortest edge 448, crop 448, bilinear, mean/std 0.5
        do_center_crop=True,
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_convert_rgb=True,
    )
    return model, processor, None


def _build_efficientnet(seed, torch):
    from transformers import EfficientNetConfig, EfficientNetModel

    # width 0.1 -> every stage 8..32 channels, top conv round_filters(1280) = 128;
    # depth 0.1 -> one block per stage. hidden_dim must equal round_filters(config, 1280)
    # (top_bn is sized by hidden_dim, top_conv by round_filters).
    config = EfficientNetConfig(
        image_size=IMAGE_SIZE,
        width_coefficient=0.1,
        depth_coefficient=0.1,
        hidden_dim=128,
        dropout_rate=0.0,
        drop_connect_rate=0.0,
    )
    torch.manual_seed(seed)
    model = EfficientNetModel(config)
    _signal_preserving_init(model, torch)
    _calibrate_batchnorm(model, torch, seed)
    # google/efficientnet-b7: resize straight to 600x600 (no crop); mean ImageNet,
    # std sqrt(ImageNet std) applied twice (do_normalize, then include_top divides by
    # std again), i.e. ImageNet normalisation overall.
    processor = _processor(
        "EfficientNetImageProcessor",
        do_resize=True,
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        resample=2,  # the real one: 0 (nearest) at 600 px; nearest at 32 px is too noisy
        do_center_crop=False,
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_rescale=True,
        rescale_factor=1 / 255,
        rescale_offset=False,
        do_normalize=True,
        image_mean=IMAGENET_MEAN,
        image_std=[0.47853944, 0.4732864, 0.47434163],
        include_top=True,
    )
    return model, processor, None


def _build_vit(seed, torch):
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=IMAGE_SIZE,
        patch_size=8,
    )
    torch.manual_seed(seed)
    model = ViTModel(config)  # with pooler, like the in21k checkpoints
    _signal_preserving_init(model, torch)
    processor = _processor(
        "ViTImageProcessor",
        do_resize=True,
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        resample=2,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return model, processor, None


def _build_dinov2(seed, torch):
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        image_size=IMAGE_SIZE,
        patch_size=8,
    )
    torch.manual_seed(seed)
    model = Dinov2Model(config)
    _signal_preserving_init(model, torch)
    # facebook/dinov2-base: BitImageProcessor, shortest_edge 256 -> centre crop 224,
    # bicubic, ImageNet mean/std. Scaled: 36 -> 32.
    processor = _processor(
        "BitImageProcessor",
        do_resize=True,
        size={"shortest_edge": 36},
        resample=3,
        do_center_crop=True,
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        do_convert_rgb=True,
    )
    return model, processor, None


def _blip2_config(qformer_vocab_size: int, use_qformer_text_input: bool = False, **extra):
    from transformers import Blip2Config

    vision_config = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=8,
        initializer_range=0.02,  # the default (1e-10) gives near-constant outputs
    )
    qformer_config = dict(
        vocab_size=qformer_vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        cross_attention_frequency=1,
        # The ITM checkpoint runs text through the Q-Former: its layers need the text
        # feed-forward (intermediate/output), which exists only with this flag.
        use_qformer_text_input=use_qformer_text_input,
    )
    text_config = dict(  # tiny OPT
        model_type="opt",
        vocab_size=64,
        hidden_size=16,
        word_embed_proj_dim=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        max_position_embeddings=32,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
    )
    return Blip2Config(
        vision_config=vision_config,
        qformer_config=qformer_config,
        text_config=text_config,
        num_query_tokens=4,
        **extra,
    )


def _blip_processor():
    # Salesforce/blip2-*: resize straight to 224x224 (bicubic), OpenAI CLIP mean/std.
    return _processor(
        "BlipImageProcessor",
        do_resize=True,
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        resample=3,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        do_convert_rgb=True,
    )


def _build_blip2(seed, torch):
    from transformers import Blip2Model

    config = _blip2_config(qformer_vocab_size=64)
    torch.manual_seed(seed)
    model = Blip2Model(config)
    _signal_preserving_init(model, torch)
    _randomise_query_tokens(model, torch)
    return model, _blip_processor(), None


def _build_blip2_itm(seed, torch):
    from transformers import Blip2ForImageTextRetrieval

    tok = _bert_tokenizer(max_length=32)
    config = _blip2_config(
        qformer_vocab_size=len(tok), use_qformer_text_input=True, image_text_hidden_size=16
    )
    torch.manual_seed(seed)
    model = Blip2ForImageTextRetrieval(config)
    _signal_preserving_init(model, torch)
    _randomise_query_tokens(model, torch)
    return model, _blip_processor(), tok


def _signal_preserving_init(model, torch):
    """Re-initialise so random features actually depend on the image.

    The library inits (normal(0, 0.02) for every Linear/Conv, BatchNorm weights included)
    shrink the signal at every layer: a random EfficientNet outputs exact zeros in eval
    mode, and a random Q-Former's output barely depends on the image (cosine 0.999
    between unrelated photos). Fan-in scaled weights and unit BatchNorm keep the
    activations O(1), so different images give clearly different embeddings.
    Deterministic: called right after construction, under the same seed.
    """
    from torch import nn

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
                if module.weight is not None:
                    module.weight.fill_(1.0)
                if module.bias is not None:
                    module.bias.zero_()


def _calibrate_batchnorm(model, torch, seed: int) -> None:
    """Set every BatchNorm's running mean/var from one seeded batch of random inputs.

    With the identity running stats of a fresh model, eval-mode BatchNorm does not
    normalise, and on 32 px inputs the late stages are 1x1 maps where a depthwise kxk
    kernel sees one tap, so even fan-in scaled weights lose ~5x per block: the tiny
    EfficientNet's embedding norm ends near 1e-4. Calibrated stats keep every block's
    output at unit scale.
    """
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch -> exactly its statistics
    model.train()
    with torch.no_grad():
        model(pixel_values=x)
    model.eval()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _randomise_query_tokens(model, torch):
    # post_init leaves query_tokens at zeros/normal(0, 0.02) depending on version; make
    # them clearly distinct per token (still seed-deterministic: called after the seed).
    with torch.no_grad():
        model.query_tokens.normal_(0.0, 0.5)


_BUILDERS = {
    "clip": _build_clip,
    "bit": _build_bit,
    "efficientnet": _build_efficientnet,
    "vit": _build_vit,
    "dinov2": _build_dinov2,
    "blip2": _build_blip2,
    "blip2-itm": _build_blip2_itm,
}


# --------------------------------------------------------------------------- reference


def load_tiny_model(kind: str, folder: Path):
    """The model class production uses for ``kind``, loaded from ``folder`` in eval mode."""
    import transformers

    cls = getattr(transformers, TINY_MODEL_CLASSES[kind])
    return cls.from_pretrained(folder, dtype="float32").eval()


def reference_image_embedding(kind: str, folder: Path, images) -> "torch.Tensor":
    """Image embeddings (B, TINY_DIMS[kind]) computed the way the encoders must, unnormalised
    except where the model itself normalises (blip2-itm). An independent reference for
    encoder tests; ``images`` are RGB PIL images or (H, W, 3) uint8 arrays."""
    import torch
    from transformers import AutoImageProcessor

    model = load_tiny_model(kind, folder)
    processor = AutoImageProcessor.from_pretrained(folder)
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        return _image_features(kind, model, pixel_values)


def _image_features(kind, model, pixel_values):
    import torch
    from torch.nn import functional as F

    if kind == "clip":
        return model.get_image_features(pixel_values=pixel_values).pooler_output
    if kind == "bit":
        return model(pixel_values=pixel_values).pooler_output.flatten(1)
    if kind == "efficientnet":
        return model(pixel_values=pixel_values).last_hidden_state.mean(dim=(2, 3))
    if kind == "vit":
        return model(pixel_values=pixel_values).last_hidden_state[:, 0]
    if kind == "dinov2":
        return model(pixel_values=pixel_values).pooler_output
    if kind == "blip2":
        q = model.get_qformer_features(pixel_values=pixel_values)
        q = q if torch.is_tensor(q) else q.last_hidden_state
        return q.mean(dim=1)
    if kind == "blip2-itm":
        per_query = blip2_itm_query_embeddings(model, pixel_values)  # (B, Q, D), unit rows
        return F.normalize(per_query.mean(dim=1), dim=-1)
    raise ValueError(kind)


def blip2_itm_query_embeddings(model, pixel_values):
    """(B, num_query_tokens, image_text_hidden_size), each row L2-normalised: exactly
    ``Blip2ForImageTextRetrieval(..., use_image_text_matching_head=False).image_embeds``."""
    import torch
    from torch.nn import functional as F

    image_embeds = model.vision_model(pixel_values=pixel_values).last_hidden_state
    mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
    query = model.query_tokens.expand(image_embeds.shape[0], -1, -1)
    out = model.qformer(
        query_embeds=query, encoder_hidden_states=image_embeds, encoder_attention_mask=mask
    ).last_hidden_state
    out = out.to(model.vision_projection.weight.dtype)
    return F.normalize(model.vision_projection(out), dim=-1)


def reference_text_embedding(kind: str, folder: Path, texts: list[str]) -> "torch.Tensor":
    """Text embeddings (N, TINY_DIMS[kind]) in the image space (clip, blip2-itm)."""
    import torch
    from torch.nn import functional as F
    from transformers import AutoTokenizer

    model = load_tiny_model(kind, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        if kind == "clip":
            return model.get_text_features(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
            ).pooler_output
        if kind == "blip2-itm":
            embeds = model.embeddings(input_ids=enc["input_ids"])
            out = model.qformer(
                query_embeds=embeds, query_length=0, attention_mask=enc["attention_mask"]
            ).last_hidden_state
            out = out.to(model.text_projection.weight.dtype)
            return F.normalize(model.text_projection(out[:, 0, :]), dim=-1)
    raise ValueError(f"{kind} has no text tower")


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


if __name__ == "__main__":  # python tests/tiny_models.py OUT_DIR
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny_models")
    for kind, folder in build_all(root).items():
        print(f"{kind:13s} {folder_size(folder) / 1024:7.1f} KiB  {folder}")
        print("   ", json.dumps(sorted(p.name for p in folder.iterdir())))
