"""Model-specific preprocessing, taken from the checkpoint's own image-processor config.

This is the only place pixels become model inputs, for every encoder: resizing, cropping
and normalisation constants are whatever the checkpoint's ``preprocessor_config.json``
says (or the spec's config for checkpoints that ship none), never copied per encoder.

Processors on transformers' generic PIL pipeline (resize → centre crop → rescale →
normalise: CLIP, BiT, ViT, DINOv2, BLIP) take a fast path: the geometry still runs
through the processor's own ``resize``/``center_crop`` on uint8 pixels, but rescaling and
normalisation run once per batch as one fused torch op instead of per image in float64
NumPy (13.7 → ~2 ms per 800×600 image for CLIP's config on this 2-core machine). Any
other processor (EfficientNet's) is called as it is.
"""

import logging
from typing import Any, Optional, Sequence

import numpy as np
import torch
import transformers
from transformers import AutoImageProcessor

logger = logging.getLogger(__name__)


def _generic_pipeline(processor: Any) -> bool:
    """Whether the processor runs transformers' stock PIL steps (nothing model-specific)."""
    try:
        from transformers.image_processing_backends import PilBackend
    except ImportError:  # older transformers: always call the processor itself
        return False
    cls = type(processor)
    return (
        isinstance(processor, PilBackend)
        and cls._preprocess is PilBackend._preprocess
        and cls.resize is PilBackend.resize
        and cls.center_crop is PilBackend.center_crop
        and not getattr(processor, "do_pad", False)
    )


class ImagePreprocessor:
    """uint8 RGB arrays (H, W, 3) → the ``pixel_values`` tensor the model expects."""

    def __init__(self, processor: Any):
        self.processor = processor
        self.fast = _generic_pipeline(processor)
        if self.fast:
            p = processor
            scale = float(p.rescale_factor) if p.do_rescale else 1.0
            mean = np.asarray(p.image_mean if p.do_normalize else [0.0], dtype=np.float64)
            std = np.asarray(p.image_std if p.do_normalize else [1.0], dtype=np.float64)
            # (x * scale - mean) / std  ==  x * (scale / std) - mean / std, one pass per batch
            self._mul = torch.tensor(np.broadcast_to(scale / std, (3,)), dtype=torch.float32).view(1, 3, 1, 1)
            self._sub = torch.tensor(np.broadcast_to(mean / std, (3,)), dtype=torch.float32).view(1, 3, 1, 1)

    @classmethod
    def load(cls, checkpoint: str, config: Optional[dict] = None) -> "ImagePreprocessor":
        # The PIL backend wherever torchvision is installed too (GPU images, for nvJPEG):
        # transformers would pick its torchvision processors there, which the fast path and
        # ``resize_rule`` do not know, and the CPU path would change with the machine.
        if config is not None:
            config = dict(config)
            name = config.pop("image_processor_type")
            processor_cls = getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)
            return cls(processor_cls(**config))
        return cls(AutoImageProcessor.from_pretrained(checkpoint, backend="pil"))

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model input, for warm-up and reports."""
        p = self.processor
        size = getattr(p, "crop_size", None) if getattr(p, "do_center_crop", False) else None
        size = size or getattr(p, "size", None) or {}
        if "height" in size and size["height"]:
            return int(size["height"]), int(size["width"])
        edge = int(size.get("shortest_edge") or 224)
        return edge, edge

    def resize_rule(self) -> Optional[dict]:
        """The model's first resize, for the normalizer to apply where it decodes.

        ``{"shortest_edge": S, "resample": R}`` or ``{"height": H, "width": W, "resample": R}``;
        applying it earlier turns this processor's own resize into a no-op (same size), so
        only model-sized pixels travel between the services. None when the rule is not one
        of these plain forms (then the full image is sent).
        """
        p = self.processor
        if not self.fast or not p.do_resize:
            return None
        size, resample = p.size, int(p.resample if p.resample is not None else 2)
        if size.shortest_edge and not size.longest_edge:
            return {"shortest_edge": int(size.shortest_edge), "resample": resample}
        if size.height and size.width:
            return {"height": int(size.height), "width": int(size.width), "resample": resample}
        return None

    def __call__(self, images: Sequence[np.ndarray], device: Optional[torch.device] = None) -> torch.Tensor:
        """The batch as float32 on ``device`` (default CPU). On a GPU the fast path ships the
        uint8 pixels (a quarter of the bytes) and rescales and normalises there."""
        if not self.fast:
            out = self.processor(images=list(images), return_tensors="pt", input_data_format="channels_last")
            return out["pixel_values"].to(device) if device is not None else out["pixel_values"]
        p = self.processor
        chw = []
        for img in images:
            x = np.moveaxis(np.asarray(img, dtype=np.uint8), -1, 0)  # the processor works channels-first
            if p.do_resize:
                x = p.resize(image=x, size=p.size, resample=p.resample)
            if p.do_center_crop:
                x = p.center_crop(x, p.crop_size)
            chw.append(x)
        batch = torch.from_numpy(np.stack(chw))
        if device is not None and device.type != "cpu":
            batch = batch.pin_memory().to(device, non_blocking=True)
        return self.normalise(batch)

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """Rescale and normalise a resized, cropped uint8 (B, 3, H, W) batch, on its device
        (fast path only; the device decoder's pixels end here too)."""
        batch = batch.float()
        return batch.mul_(self._mul.to(batch.device)).sub_(self._sub.to(batch.device))

    def describe(self) -> dict:
        """The settings that matter for reproducing a run."""
        p = self.processor
        keys = ("size", "crop_size", "do_center_crop", "resample", "image_mean", "image_std")
        return {
            "processor": type(p).__name__,
            "fast_path": self.fast,
            **{k: _plain(getattr(p, k, None)) for k in keys},
        }


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if hasattr(value, "items"):  # transformers' SizeDict
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return str(value)
