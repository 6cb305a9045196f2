"""Collection names: one per (dataset, model[, runtime][, fixed size]), shared by every client."""

import re
from pathlib import Path
from typing import Optional


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def collection_name(dataset: str, model: str, resize: Optional[int] = None, runtime: str | None = None) -> str:
    """One collection per (dataset, model[, runtime][, fixed size]): e.g. ``memes--openai-clip-vit-base-patch32``.

    ``runtime`` is given only where one was asked for by name (compare's ``encoder@runtime``), so
    its vectors (int8's above all) never mix with another runtime's; without it the name is the
    plain one. A slug never holds ``--``, so no two of these names can meet."""
    name = f"{slug(dataset)}--{slug(Path(model).name if Path(model).is_dir() else model)}"
    name += f"--{slug(runtime)}" if runtime else ""
    return f"{name}--{resize}px" if resize else name
