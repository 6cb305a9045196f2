"""An encoder's towers on ONNX Runtime: sessions on graphs traced from the model's own
``image_features`` / ``text_features`` (runtimes.py exports and caches them), swapped in for the
torch towers. A mixin of base.py's TorchEncoder, whose attributes it reads."""

import gc
import logging
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np
import torch

from executors.encoders.preprocess import ImagePreprocessor
from executors.encoders.runtimes import (
    OnnxTower,
    Tower,
    calibration_images,
    calibration_source,
    discard_graph,
    export_graph,
    graph_key,
    graph_path,
)
from executors.encoders.specs import EncoderSpec
from executors.errors import first_line

logger = logging.getLogger(__name__)


class _DamagedGraph(Exception):
    def __init__(self, path: Path, exc: Exception):
        super().__init__(str(path))
        self.path, self.exc = path, exc


class _Encoder(Protocol):
    """What OnnxTowers reads of the encoder it is mixed into (base.py's TorchEncoder)."""

    runtime: str
    checkpoint: str
    spec: EncoderSpec
    preprocess: ImagePreprocessor
    _revision: str
    onnx_cuda: bool
    lanes: int
    num_threads: int
    tokenizer: Any
    model: Optional[torch.nn.Module]
    image_tower: Tower
    text_tower: Tower

    @property
    def supports_text(self) -> bool: ...

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor: ...

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor: ...

    def _torch_image_features(self, pixels: torch.Tensor) -> torch.Tensor: ...


class OnnxTowers:
    """``_use_onnx``: the towers on onnxruntime (TorchEncoder's model, preprocessing, runtime)."""

    model: Optional[torch.nn.Module]
    image_tower: Tower
    text_tower: Tower

    def _use_onnx(self: _Encoder, cached_only: bool = False) -> bool:
        """Swap the towers for onnxruntime sessions on graphs traced from this model
        (exported on first use); with ``cached_only``, only if every graph is cached already,
        so the torch model need not be loaded. Whether the towers were swapped."""
        int8 = self.runtime == "onnx-int8"
        h, w = self.preprocess.input_size
        revision, cls = self._revision, type(self).__name__
        source = calibration_source() if int8 else ""  # its name keys the graph; the photos decode on export only
        image_key = graph_key(self.checkpoint, revision, "image", f"{cls}|{h}x{w}")
        text_key = graph_key(self.checkpoint, revision, "text", cls)
        if cached_only:
            keys = [(image_key, source)] + ([(text_key, "")] if self.supports_text else [])
            if not all(graph_path(key, int8, source).is_file() for key, source in keys):
                return False

        def calibration() -> list[dict[str, np.ndarray]]:
            return [{"pixel_values": self.preprocess([p]).numpy()} for p in calibration_images()]

        def session(path: Path, names: list[str], threads: int) -> OnnxTower:
            try:
                return OnnxTower(path, names, threads, self.onnx_cuda)
            except Exception as exc:  # onnxruntime's errors derive from Exception alone
                if not cached_only:  # just exported: a real failure
                    raise
                raise _DamagedGraph(path, exc) from exc

        try:
            path = export_graph(
                self.model,
                self.image_features,
                [torch.zeros(2, 3, h, w)],
                ["pixel_values"],
                {"pixel_values": {0: "batch"}},
                image_key,
                int8,
                calibration if int8 else None,
                source,
            )
            self.image_tower = session(path, ["pixel_values"], 1 if self.lanes > 1 else self.num_threads)
            if self.supports_text:
                names = ["input_ids", "attention_mask"]
                example = []
                if not cached_only:
                    tokens = self.tokenizer(["a photo of a cat", "two dogs"], padding=True, return_tensors="pt")
                    example = [tokens[n] for n in names]
                path = export_graph(
                    self.model,
                    self.text_features,
                    example,
                    names,
                    {n: {0: "batch", 1: "tokens"} for n in names},
                    text_key,
                    int8,
                )
                self.text_tower = session(path, names, self.num_threads)
        except _DamagedGraph as damaged:
            # A cut-off or corrupted cache file (a full disk, a killed copy): exported again
            # from the model, which the caller now loads, instead of failing every start.
            logger.warning(
                "%s: the cached graph %s cannot be loaded (%s); exporting it again", self.spec.name, damaged.path, first_line(damaged.exc, 300)
            )
            discard_graph(damaged.path)
            self.image_tower, self.text_tower = self._torch_image_features, self.text_features
            return False
        if self.model is not None:  # both towers run in onnxruntime now: free torch's copy of the weights
            self.model = None
            gc.collect()  # a quarter of a second: only when there was a model to free
        return True
