"""Model-specific preprocessing, taken from the checkpoint's own image-processor config.

This is the only place pixels become model inputs, for every encoder: resizing, cropping
and normalisation constants are whatever the checkpoint's ``preprocessor_config.json``
says (or the spec's config for checkpoints that ship none), never copied per encoder.
"""

import logging
from typing import Any, Optional, Sequence

import numpy as np
import torch
import transformers
from transformers import AutoImageProcessor

logger = logging.getLogger(__name__)


class ImagePreprocessor:
    """uint8 RGB arrays (H, W, 3) → the ``pixel_values`` tensor the model expects."""

    def __init__(self, processor: Any):
        self.processor = processor

    @classmethod
    def load(cls, checkpoint: str, config: Optional[dict] = None) -> "ImagePreprocessor":
        if config is not None:
            config = dict(config)
            processor_cls = getattr(transformers, config.pop("image_processor_type"))
            return cls(processor_cls(**config))
        return cls(AutoImageProcessor.from_pretrained(checkpoint))

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model input, for warm-up and reports."""
        p = self.processor
        size = getattr(p, "crop_size", None) if getattr(p, "do_center_crop", False) else None
        size = size or getattr(p, "size", None) or {}
        if "height" in size:
            return int(size["height"]), int(size["width"])
        edge = int(size.get("shortest_edge", 224))
        return edge, edge

    def __call__(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        out = self.processor(
            images=list(images), return_tensors="pt", input_data_format="channels_last"
        )
        return out["pixel_values"]

    def describe(self) -> dict:
        """The settings that matter for reproducing a run."""
        p = self.processor
        keys = ("size", "crop_size", "do_center_crop", "resample", "image_mean", "image_std")
        return {"processor": type(p).__name__, **{k: _plain(getattr(p, k, None)) for k in keys}}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)
