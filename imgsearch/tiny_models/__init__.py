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

The reference embeddings the encoder tests check against live in tests/tiny_models.py.

Tokenizers: clip gets a real ``CLIPTokenizer`` (byte-level BPE, tiny vocabulary: the 2x256
byte symbols, a few whole words such as "doge", "cat", "dog", "meme", and
``<|startoftext|>``/``<|endoftext|>``; pad = eos = ``<|endoftext|>`` = the highest id, as
in the real one); blip2-itm gets a real ``BertTokenizer`` (WordPiece, lower-cased, [CLS]
first). The blip2 (OPT) kind is image-only and ships no tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from executors.encoders.specs import SPECS
from imgsearch.tiny_models.builders import BUILDERS

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

MARKER = "IMGSEARCH_TINY_RANDOM_MODEL.txt"


# encoder name → tiny kind: each spec names its stand-in (None where its weights need no hub).
TINY_KIND: dict[str, str] = {name: spec.tiny for name, spec in SPECS.items() if spec.tiny}


def build_tiny_model(kind: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random checkpoint of ``kind`` into ``out_dir`` and return ``out_dir``."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown tiny model kind {kind!r}; known: {', '.join(TINY_KINDS)}")
    import torch  # here, not at the top: `app.py` imports this package without building anything

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, processor, tokenizer = BUILDERS[kind](seed, torch)
    model.eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir


def build_all(root: Path, seed: int = 0) -> dict[str, Path]:
    """Build every kind under ``root/<kind>``."""
    return {kind: build_tiny_model(kind, Path(root) / kind, seed) for kind in TINY_KINDS}


def build_for_encoders(out: Path, seed: int = 0) -> dict[str, Path]:
    """Tiny random checkpoints for every hub encoder (`app.py tiny-models`, machines without a hub).

    They load and run exactly like the real ones, but their weights are random: every
    report that uses one says so. Each folder carries a marker file.
    """
    built = {}
    for encoder, kind in TINY_KIND.items():
        folder = build_tiny_model(kind, Path(out) / kind, seed)
        mark_random(folder, f"Tiny randomly initialised '{kind}' model (seed {seed}) built by `app.py tiny-models`")
        built[encoder] = folder
    return built


def mark_random(folder: Path, what: str) -> None:
    (Path(folder) / MARKER).write_text(
        f"{what} for offline tests and demos. Its vectors carry no meaning: quality numbers from it are not a real encoder's.\n"
    )


def is_tiny_random(model: Optional[str]) -> bool:
    if not model:
        return False
    return (Path(model) / MARKER).is_file()
