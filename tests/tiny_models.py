"""Reference embeddings for the tiny models (imgsearch/tiny_models builds them).

``reference_image_embedding`` / ``reference_text_embedding`` compute embeddings with the
plain transformers calls (see the notes in each), as an independent check on encoders.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imgsearch.tiny_models import TINY_MODEL_CLASSES

if TYPE_CHECKING:
    import torch


def load_tiny_model(kind: str, folder: Path):
    """The model class production uses for ``kind``, loaded from ``folder`` in eval mode."""
    import transformers

    cls = getattr(transformers, TINY_MODEL_CLASSES[kind])
    return cls.from_pretrained(folder, dtype="float32").eval()


def reference_image_embedding(kind: str, folder: Path, images) -> "torch.Tensor":
    """Image embeddings (B, TINY_DIMS[kind]) computed the way the encoders must, unnormalised
    except where the model itself normalises (blip2-itm). An independent reference for
    encoder tests; ``images`` are RGB PIL images or (H, W, 3) uint8 arrays."""
    import torch
    from transformers import AutoImageProcessor

    model = load_tiny_model(kind, folder)
    processor = AutoImageProcessor.from_pretrained(folder)
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        return _image_features(kind, model, pixel_values)


def _image_features(kind, model, pixel_values):
    import torch
    from torch.nn import functional as F

    if kind == "clip":
        return model.get_image_features(pixel_values=pixel_values).pooler_output
    if kind == "bit":
        return model(pixel_values=pixel_values).pooler_output.flatten(1)
    if kind == "efficientnet":
        return model(pixel_values=pixel_values).last_hidden_state.mean(dim=(2, 3))
    if kind == "vit":
        return model(pixel_values=pixel_values).last_hidden_state[:, 0]
    if kind == "dinov2":
        return model(pixel_values=pixel_values).pooler_output
    if kind == "blip2":
        q = model.get_qformer_features(pixel_values=pixel_values)
        q = q if torch.is_tensor(q) else q.last_hidden_state
        return q.mean(dim=1)
    if kind == "blip2-itm":
        per_query = blip2_itm_query_embeddings(model, pixel_values)  # (B, Q, D), unit rows
        return F.normalize(per_query.mean(dim=1), dim=-1)
    raise ValueError(kind)


def blip2_itm_query_embeddings(model, pixel_values):
    """(B, num_query_tokens, image_text_hidden_size), each row L2-normalised: exactly
    ``Blip2ForImageTextRetrieval(..., use_image_text_matching_head=False).image_embeds``."""
    import torch
    from torch.nn import functional as F

    image_embeds = model.vision_model(pixel_values=pixel_values).last_hidden_state
    mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
    query = model.query_tokens.expand(image_embeds.shape[0], -1, -1)
    out = model.qformer(query_embeds=query, encoder_hidden_states=image_embeds, encoder_attention_mask=mask).last_hidden_state
    out = out.to(model.vision_projection.weight.dtype)
    return F.normalize(model.vision_projection(out), dim=-1)


def reference_text_embedding(kind: str, folder: Path, texts: list[str]) -> "torch.Tensor":
    """Text embeddings (N, TINY_DIMS[kind]) in the image space (clip, blip2-itm)."""
    import torch
    from torch.nn import functional as F
    from transformers import AutoTokenizer

    model = load_tiny_model(kind, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        if kind == "clip":
            return model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output
        if kind == "blip2-itm":
            embeds = model.embeddings(input_ids=enc["input_ids"])
            out = model.qformer(query_embeds=embeds, query_length=0, attention_mask=enc["attention_mask"]).last_hidden_state
            out = out.to(model.text_projection.weight.dtype)
            return F.normalize(model.text_projection(out[:, 0, :]), dim=-1)
    raise ValueError(f"{kind} has no text tower")


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
