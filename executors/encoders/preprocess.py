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

What the fast path needs of a processor is a small plan (sizes, crop, constants). An ONNX
encoder caches it beside its graphs and starts from it without importing transformers'
processors (1.9 s of imports, most of a cached start): the flow's normalizer already sends
pixels at the model's resize size, so only the centre crop (the same slicing as
transformers') is left to do, and the processor is loaded the first time an image arrives
at another size.
"""

import logging
import threading
from typing import Any, Callable, Optional, Sequence, TypeVar

import numpy as np
import torch

from executors.normalizer.decode import fit_size

logger = logging.getLogger(__name__)

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


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


PLAN_VERSION = 1


def plan_of(processor: Any) -> dict:
    """What the fast path and the flow need of ``processor``, as plain JSON-able data."""
    fast = _generic_pipeline(processor)
    p = processor
    size = getattr(p, "crop_size", None) if getattr(p, "do_center_crop", False) else None
    size = size or getattr(p, "size", None) or {}
    if "height" in size and size["height"]:
        input_size = [int(size["height"]), int(size["width"])]
    else:
        edge = int(size.get("shortest_edge") or 224)
        input_size = [edge, edge]
    plan: dict = {
        "version": PLAN_VERSION,
        "fast": fast,
        "input_size": input_size,
        "resize_rule": _resize_rule(p) if fast else None,
        "do_resize": bool(getattr(p, "do_resize", False)),
        "center_crop": [int(p.crop_size.height), int(p.crop_size.width)] if fast and p.do_center_crop else None,
        "describe": {
            "processor": type(p).__name__,
            "fast_path": fast,
            **{k: _plain(getattr(p, k, None)) for k in ("size", "crop_size", "do_center_crop", "resample", "image_mean", "image_std")},
        },
    }
    if fast:
        scale = float(p.rescale_factor) if p.do_rescale else 1.0
        mean = np.asarray(p.image_mean if p.do_normalize else [0.0], dtype=np.float64)
        std = np.asarray(p.image_std if p.do_normalize else [1.0], dtype=np.float64)
        # (x * scale - mean) / std  ==  x * (scale / std) - mean / std, one pass per batch
        plan["mul"] = np.broadcast_to(scale / std, (3,)).tolist()
        plan["sub"] = np.broadcast_to(mean / std, (3,)).tolist()
    return plan


def _sizes(value: Any, n: int) -> bool:
    return isinstance(value, list) and len(value) == n and all(isinstance(v, int) and v > 0 for v in value)


def check_plan(plan: Any) -> None:
    """Raise ValueError naming what is wrong with a (cached) plan: a cache file that parses
    but was damaged or hand-edited must be made again, not crash the encoder's first batch."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"preprocessing plan: {what}")

    need(isinstance(plan, dict), "not a JSON object")
    need(plan.get("version") == PLAN_VERSION, f"version {plan.get('version')!r}, expected {PLAN_VERSION}")
    for key in ("fast", "do_resize"):
        need(isinstance(plan.get(key), bool), f"'{key}' is not true/false")
    need(_sizes(plan.get("input_size"), 2), "'input_size' is not [height, width]")
    for key in ("center_crop", "resize_rule"):  # None when there is none, but always there
        need(key in plan, f"'{key}' is missing")
    need(plan["center_crop"] is None or _sizes(plan["center_crop"], 2), "'center_crop' is not [height, width]")
    need(isinstance(plan.get("describe"), dict), "'describe' is not an object")
    rule = plan["resize_rule"]
    if rule is not None:
        need(
            isinstance(rule, dict)
            and isinstance(rule.get("resample"), int)
            and (_sizes([rule.get("shortest_edge")], 1) or _sizes([rule.get("height"), rule.get("width")], 2)),
            "'resize_rule' is neither {shortest_edge, resample} nor {height, width, resample}",
        )
    if plan["fast"]:
        for key in ("mul", "sub"):
            values = plan.get(key)
            need(
                isinstance(values, list)
                and len(values) == 3
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values),
                f"'{key}' is not three numbers",
            )


def _resize_rule(p: Any) -> Optional[dict]:
    if not p.do_resize:
        return None
    size, resample = p.size, int(p.resample if p.resample is not None else 2)
    if size.shortest_edge and not size.longest_edge:
        return {"shortest_edge": int(size.shortest_edge), "resample": resample}
    if size.height and size.width:
        return {"height": int(size.height), "width": int(size.width), "resample": resample}
    return None


class ImagePreprocessor:
    """uint8 RGB arrays (H, W, 3) → the ``pixel_values`` tensor the model expects.

    Made from a processor, or from its cached ``plan`` and a way to ``load`` the processor
    when an image needs it (one not at the model's resize size, or a processor off the fast
    path)."""

    def __init__(self, processor: Any = None, plan: Optional[dict] = None, load: Optional[Callable[[], Any]] = None):
        if processor is not None:
            plan = plan_of(processor)
        elif plan is None or load is None:
            raise ValueError("an ImagePreprocessor needs a processor, or a plan and a way to load the processor")
        else:
            check_plan(plan)
        self._processor, self._load = processor, load
        self._loading = threading.Lock()  # lanes may ask for it at once
        self.plan: dict = plan
        self.fast = bool(self.plan["fast"])
        if self.fast:
            self._mul = torch.tensor(self.plan["mul"], dtype=torch.float32).view(1, 3, 1, 1)
            self._sub = torch.tensor(self.plan["sub"], dtype=torch.float32).view(1, 3, 1, 1)

    @classmethod
    def load(cls, checkpoint: str, config: Optional[dict] = None) -> "ImagePreprocessor":
        import transformers
        from transformers import AutoImageProcessor

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
    def processor(self) -> Any:
        """transformers' processor, loaded on first use when made from a plan."""
        with self._loading:
            if self._processor is None:
                if self._load is None:  # the constructor takes a processor, or a plan and a loader
                    raise RuntimeError("this ImagePreprocessor has no processor and no way to load one")
                logger.info("loading the image processor (an image not at the model's size, or not on the fast path)")
                self._processor = self._load()
        return self._processor

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model input, for warm-up and reports."""
        h, w = self.plan["input_size"]
        return int(h), int(w)

    @property
    def arrival_size(self) -> tuple[int, int]:
        """(height, width) of an image as the flow's normalizer sends it (resized by
        ``resize_rule``): what a warm-up batch should look like."""
        rule = self.plan["resize_rule"]
        if rule and "shortest_edge" in rule:
            return int(rule["shortest_edge"]), int(rule["shortest_edge"])
        if rule:
            return int(rule["height"]), int(rule["width"])
        return self.input_size

    @property
    def center_crop(self) -> Optional[tuple[int, int]]:
        """(height, width) of the fast path's centre crop, None without one."""
        crop = self.plan["center_crop"]
        return (int(crop[0]), int(crop[1])) if crop else None

    def resize_rule(self) -> Optional[dict]:
        """The model's first resize, for the normalizer to apply where it decodes.

        ``{"shortest_edge": S, "resample": R}`` or ``{"height": H, "width": W, "resample": R}``;
        applying it earlier turns this processor's own resize into a no-op (same size), so
        only model-sized pixels travel between the services. None when the rule is not one
        of these plain forms (then the full image is sent).
        """
        rule = self.plan["resize_rule"]
        return dict(rule) if rule else None

    def _needs_resize(self, height: int, width: int) -> bool:
        """Whether the processor's resize would change this image (at the rule's size it
        keeps the pixels as they are: Pillow returns a copy for a same-size resize)."""
        if not self.plan["do_resize"]:
            return False
        rule = self.plan["resize_rule"]
        return rule is None or fit_size(width, height, rule) != (width, height)

    def __call__(self, images: Sequence[np.ndarray], device: Optional[torch.device] = None) -> torch.Tensor:
        """The batch as float32 on ``device`` (default CPU). On a GPU the fast path ships the
        uint8 pixels (a quarter of the bytes) and rescales and normalises there."""
        if not self.fast:
            out = self.processor(images=list(images), return_tensors="pt", input_data_format="channels_last")
            return out["pixel_values"].to(device) if device is not None else out["pixel_values"]
        crop = self.center_crop
        chw = []
        for img in images:
            x = np.moveaxis(np.asarray(img, dtype=np.uint8), -1, 0)  # the processor works channels-first
            if self._needs_resize(*x.shape[1:]):
                p = self.processor
                x = p.resize(image=x, size=p.size, resample=p.resample)
            chw.append(center_crop_chw(x, *crop) if crop is not None else x)
        shapes = {x.shape for x in chw}
        if len(shapes) != 1:
            raise ValueError(f"a batch needs images of one size, not {sorted(shapes) or 'none'}")
        if device is not None and device.type != "cpu":
            batch = torch.from_numpy(np.stack(chw)).pin_memory().to(device, non_blocking=True)
            return self.normalise(batch)
        # Each channels-last view is converted to float straight into its row: one pass per
        # image, where stacking the uint8 views first and converting after took two and
        # cost about twice the CPU (docs/performance.md).
        batch = torch.empty((len(chw), *chw[0].shape), dtype=torch.float32)
        for row, x in zip(batch, chw):
            row.copy_(torch.from_numpy(x))
        return self.normalise(batch)

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """Rescale and normalise a resized, cropped uint8 (B, 3, H, W) batch, on its device
        (fast path only; the device decoder's pixels end here too)."""
        batch = batch.float()
        return batch.mul_(self._mul.to(batch.device)).sub_(self._sub.to(batch.device))

    def describe(self) -> dict:
        """The settings that matter for reproducing a run."""
        return dict(self.plan["describe"])


def center_crop_chw(x: ArrayOrTensor, height: int, width: int) -> ArrayOrTensor:
    """transformers' centre crop (its PIL backend's) on a (C, H, W) array or tensor: where the
    image is smaller, zero padding with the odd pixel before it."""
    h, w = x.shape[-2:]
    if height > h or width > w:
        pad_w, pad_h = max(width - w, 0), max(height - h, 0)
        rows: tuple[int, int] = ((pad_h + 1) // 2, pad_h // 2)
        cols: tuple[int, int] = ((pad_w + 1) // 2, pad_w // 2)
        if isinstance(x, np.ndarray):
            x = np.pad(x, ((0, 0),) * (x.ndim - 2) + (rows, cols))
        else:
            x = torch.nn.functional.pad(x, (*cols, *rows))
        h, w = x.shape[-2:]
    top, left = (h - height) // 2, (w - width) // 2
    return x[..., top : top + height, left : left + width]


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
