"""CLIP: projected image features, and text features in the same space."""

import torch

from executors.encoders.base import TorchEncoder
from executors.encoders.outputs import features_tensor


class ClipEncoder(TorchEncoder):
    family = "clip"

    def load_model(self, checkpoint: str) -> torch.nn.Module:
        from transformers import CLIPModel  # here: 1.6 s of imports a cached ONNX start skips

        return CLIPModel.from_pretrained(checkpoint, dtype=self.dtype)

    @property
    def supports_text(self) -> bool:
        return True

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return features_tensor(self.model.get_image_features(pixel_values=pixel_values))

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return features_tensor(
            self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        )
