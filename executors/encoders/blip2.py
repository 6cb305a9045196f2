"""BLIP-2: Q-Former output averaged over its query tokens.

With an image-text retrieval checkpoint (``Blip2ForImageTextRetrieval``, e.g.
Salesforce/blip2-itm-vit-g) the query outputs are first projected into the shared
image-text space, so text queries work; with a generative checkpoint (``Blip2Model``,
e.g. Salesforce/blip2-opt-2.7b) the raw Q-Former output is used and search is image-only.
"""

from typing import TYPE_CHECKING, Union

import torch

from executors.encoders.base import TorchEncoder

if TYPE_CHECKING:
    from transformers import Blip2ForImageTextRetrieval, Blip2VisionModelWithProjection

_RETRIEVAL_ARCH = "Blip2ForImageTextRetrieval"


class Blip2Encoder(TorchEncoder):
    family = "blip2"

    def inspect_checkpoint(self, checkpoint: str) -> None:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(checkpoint)
        self._retrieval = _RETRIEVAL_ARCH in (getattr(config, "architectures", None) or [])

    def load_model(self, checkpoint: str) -> torch.nn.Module:
        # Here: transformers' model stack takes 1.6 s to import, which an ONNX start from cache skips.
        from transformers import Blip2ForImageTextRetrieval, Blip2VisionModelWithProjection

        if self._retrieval:
            return Blip2ForImageTextRetrieval.from_pretrained(checkpoint, dtype=self.dtype)
        # A generative checkpoint: load the vision tower, query tokens and Q-Former only,
        # not its multi-billion-parameter language model (its projection stays unused).
        return Blip2VisionModelWithProjection.from_pretrained(checkpoint, dtype=self.dtype)

    @property
    def supports_text(self) -> bool:
        return self._retrieval

    def _blip2(self) -> Union["Blip2ForImageTextRetrieval", "Blip2VisionModelWithProjection"]:
        """The torch model (loaded, as load_model returns it): the towers are read from it."""
        from transformers import Blip2ForImageTextRetrieval, Blip2VisionModelWithProjection  # imported already

        if not isinstance(self.model, (Blip2ForImageTextRetrieval, Blip2VisionModelWithProjection)):
            raise RuntimeError(f"{self.family}: no torch BLIP-2 model loaded (got {type(self.model).__name__})")
        return self.model

    def _query_outputs(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, num_query_tokens, qformer hidden): the Q-Former's reading of the image."""
        model = self._blip2()
        image_embeds = model.vision_model(pixel_values=pixel_values).last_hidden_state
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        queries = model.query_tokens.expand(image_embeds.shape[0], -1, -1)
        return model.qformer(query_embeds=queries, encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask).last_hidden_state

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        queries = self._query_outputs(pixel_values)
        if not self._retrieval:
            return queries.mean(dim=1)
        # The reference scores text against each projected query token (max over tokens);
        # one vector per image needs a single point, so average the normalised tokens.
        projection = self._blip2().vision_projection
        queries = queries.to(projection.weight.dtype)  # the Q-Former stays fp32
        projected = torch.nn.functional.normalize(projection(queries), dim=-1)
        return projected.mean(dim=1)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from transformers import Blip2ForImageTextRetrieval  # imported already: load_model made the model

        model = self._blip2()
        if not isinstance(model, Blip2ForImageTextRetrieval):  # supports_text is False: never asked
            raise RuntimeError(f"{self.family}: {type(model).__name__} has no text tower")
        embeds = model.embeddings(input_ids=input_ids)
        hidden = model.qformer(query_embeds=embeds, query_length=0, attention_mask=attention_mask).last_hidden_state
        return model.text_projection(hidden[:, 0, :].to(model.text_projection.weight.dtype))
