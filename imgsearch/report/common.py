"""Shared bits of the report's pieces: colours, labels, number formats."""

from functools import lru_cache
from typing import Optional

from PIL import Image

from imgsearch.grid import thumbnail

GREEN, RED, GREY = (30, 150, 60), (200, 40, 40), (150, 150, 150)
PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
CELL_THUMB = 72
RANDOM_NOTE = "TINY RANDOM MODEL: weights are random, its numbers say nothing about the real encoder"


@lru_cache(maxsize=4096)
def thumb(path: Optional[str], size: int) -> Image.Image:
    return thumbnail(path, size)


def label(rec: dict) -> str:
    return rec["encoder"] + (" (random)" if rec.get("random_weights") else "")


def runtime_text(rec: dict) -> str:
    """The runtime the encoder reported (its /info), e.g. ``onnx-int8 (CPUExecutionProvider)``, ``torch (cpu)``;
    flagged when it is not the one its ``@runtime`` asked for."""
    info = rec.get("info") or {}
    runtime = rec.get("runtime") or info.get("runtime")
    if not runtime:
        return "remote" if str(info.get("device", "")).startswith("remote") else "–"
    where = rec.get("onnx_provider") or info.get("onnx_provider") or info.get("device")
    asked = rec.get("requested_runtime")
    return f"{runtime}{f' ({where})' if where else ''}{f' — asked for {asked}' if asked and asked != runtime else ''}"


def as_int(v):
    return None if v is None else int(v)


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def ci_text(ci: Optional[list], digits: int = 3) -> str:
    return "" if not ci else f" [{ci[0]:.{digits}f}–{ci[1]:.{digits}f}]"
