"""ViT: the CLS token of the last hidden state (before the classification pooler)."""

import torch

from executors.encoders.base import TorchEncoder


class VitEncoder(TorchEncoder):
    family = "vit"

    def load_model(self, checkpoint: str) -> torch.nn.Module:
        from transformers import ViTModel  # here: 1.6 s of imports a cached ONNX start skips

        return ViTModel.from_pretrained(checkpoint, add_pooling_layer=False, dtype=self.dtype)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.model is None:  # the ONNX graphs run instead; they never call this
            raise RuntimeError(f"{self.family}: no torch model loaded")
        return self.model(pixel_values=pixel_values).last_hidden_state[:, 0]
