"""BLIP-2: Q-Former output averaged over its query tokens.

With an image-text retrieval checkpoint (``Blip2ForImageTextRetrieval``, e.g.
Salesforce/blip2-itm-vit-g) the query outputs are first projected into the shared
image-text space, so text queries work; with a generative checkpoint (``Blip2Model``,
e.g. Salesforce/blip2-opt-2.7b) the raw Q-Former output is used and search is image-only.
"""

import torch

from executors.encoders.base import TorchEncoder

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

    def _query_outputs(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, num_query_tokens, qformer hidden): the Q-Former's reading of the image."""
        image_embeds = self.model.vision_model(pixel_values=pixel_values).last_hidden_state
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        queries = self.model.query_tokens.expand(image_embeds.shape[0], -1, -1)
        return self.model.qformer(
            query_embeds=queries, encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask
        ).last_hidden_state

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        queries = self._query_outputs(pixel_values)
        if not self._retrieval:
            return queries.mean(dim=1)
        # The reference scores text against each projected query token (max over tokens);
        # one vector per image needs a single point, so average the normalised tokens.
        queries = queries.to(self.model.vision_projection.weight.dtype)  # the Q-Former stays fp32
        projected = torch.nn.functional.normalize(self.model.vision_projection(queries), dim=-1)
        return projected.mean(dim=1)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embeds = self.model.embeddings(input_ids=input_ids)
        hidden = self.model.qformer(
            query_embeds=embeds, query_length=0, attention_mask=attention_mask
        ).last_hidden_state
        return self.model.text_projection(hidden[:, 0, :].to(self.model.text_projection.weight.dtype))
