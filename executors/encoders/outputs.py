"""Small helpers for reading transformers model outputs the same way across versions."""

import torch


def features_tensor(output) -> torch.Tensor:
    """``get_*_features`` return a tensor in transformers 4 and a ModelOutput in 5."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is not None:
        return pooled
    raise TypeError(f"cannot find features in {type(output).__name__}")
