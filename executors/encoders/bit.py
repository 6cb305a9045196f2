"""BigTransfer (BiT): the pooled output of the ResNet."""

import torch

from executors.encoders.base import TorchEncoder


class BitEncoder(TorchEncoder):
    family = "bit"
    channels_last = True

    def load_model(self, checkpoint: str) -> torch.nn.Module:
        from transformers import BitModel  # here: 1.6 s of imports a cached ONNX start skips

        return BitModel.from_pretrained(checkpoint, dtype=self.dtype)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.model is None:  # the ONNX graphs run instead; they never call this
            raise RuntimeError(f"{self.family}: no torch model loaded")
        return self.model(pixel_values=pixel_values).pooler_output.flatten(1)  # (B, C, 1, 1)
