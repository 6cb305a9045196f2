"""DINOv2: the CLS token after the final layer norm."""

import torch

from executors.encoders.base import TorchEncoder


class Dinov2Encoder(TorchEncoder):
    family = "dinov2"

    def load_model(self, checkpoint: str) -> torch.nn.Module:
        from transformers import Dinov2Model  # here: 1.6 s of imports a cached ONNX start skips

        return Dinov2Model.from_pretrained(checkpoint, dtype=self.dtype)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.model is None:  # the ONNX graphs run instead; they never call this
            raise RuntimeError(f"{self.family}: no torch model loaded")
        return self.model(pixel_values=pixel_values).pooler_output
