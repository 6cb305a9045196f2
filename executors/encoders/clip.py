"""CLIP: projected image features, and text features in the same space."""

from typing import TYPE_CHECKING

import torch

from executors.encoders.base import TorchEncoder
from executors.encoders.outputs import features_tensor

if TYPE_CHECKING:
    from transformers import CLIPModel


class ClipEncoder(TorchEncoder):
    family = "clip"

    def load_model(self, checkpoint: str) -> torch.nn.Module:
        from transformers import CLIPModel  # here: 1.6 s of imports a cached ONNX start skips

        return CLIPModel.from_pretrained(checkpoint, dtype=self.dtype)

    @property
    def supports_text(self) -> bool:
        return True

    def _clip(self) -> "CLIPModel":
        """The torch model (loaded, as load_model returns it): the towers are read from it."""
        from transformers import CLIPModel  # imported already: load_model made the model

        if not isinstance(self.model, CLIPModel):
            raise RuntimeError(f"{self.family}: no torch CLIP model loaded (got {type(self.model).__name__})")
        return self.model

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return features_tensor(self._clip().get_image_features(pixel_values=pixel_values))

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return features_tensor(self._clip().get_text_features(input_ids=input_ids, attention_mask=attention_mask))
