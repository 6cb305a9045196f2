"""What one request may cost, checked by every stage as if the request came straight from a client.

A client can name one executor with ``target_executor`` (Jina's gateway honours it, and the
project's own client uses it so that /scan skips the encoder), and on a cluster every
executor's port is reachable from inside the namespace. So no stage trusts that an earlier
one checked its input: each bounds what it is given (docs/reliability.md, threat model).

- ``MAX_DOCS_PER_REQUEST`` documents per /search or /index request (Stage, before any handler);
- ``MAX_TOP_K`` matches per query (indexer);
- ``MAX_OUTPUT_PIXELS`` pixels per image after the resize a client asks for (``fit``), and per
  image tensor an encoder is handed; ``MAX_ASPECT`` bounds how elongated such a tensor may be,
  so a 1×N strip cannot be blown up by the encoder's own resize either;
- ``MAX_IMAGE_BYTES`` (executors/docs.py) per image's bytes, wherever bytes arrive;
- ``MAX_REQUEST_MB`` MiB per request, at the gateway (executors/gateway), however it is started.
Each can be lowered (or raised) per process with its environment variable.
"""

import logging
import os
from typing import Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

# The largest image file the pipeline accepts (loader and client): bigger ones are refused
# with a reason. 32 MiB holds any ordinary photo; a request carries up to a batch of them,
# and one gRPC message must stay well under protobuf's 2 GB limit. (executors/docs.py re-exports it.)
MAX_IMAGE_BYTES = 32 * 1024 * 1024

MAX_DOCS_ENV = "IMGSEARCH_MAX_DOCS_PER_REQUEST"
MAX_TOP_K_ENV = "IMGSEARCH_MAX_TOP_K"
MAX_OUTPUT_PIXELS_ENV = "IMGSEARCH_MAX_OUTPUT_PIXELS"
MAX_REQUEST_MB_ENV = "IMGSEARCH_MAX_REQUEST_MB"
# The gateway refuses larger requests (gRPC RESOURCE_EXHAUSTED): the largest legitimate one is
# a search carrying one query image of at most MAX_IMAGE_BYTES (32 MiB).
MAX_REQUEST_MB = 64
# Twice the project's largest /index request (an encoder's batch: at most MAX_BATCH, 1024, on a GPU).
MAX_DOCS_PER_REQUEST = 2048
# compare asks for 1000 (its score_depth); a page of the web UI for at most 500.
MAX_TOP_K = 1000
# 4096² pixels: a model-sized image many times over (uint8 RGB: 48 MiB), far below what an
# executor's memory limit holds, for any fit rule the normalizer accepts (each side ≤ 4096).
MAX_OUTPUT_PIXELS = 4096 * 4096
MAX_ASPECT = 64  # longer side / shorter side of an image tensor handed to an encoder


class RequestTooLarge(ValueError):
    """A request over one of the caps; refused whole, before any handler runs."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number") from None
    if n < 1:
        raise ValueError(f"{name} must be at least 1, not {n}")
    return n


def max_request_bytes() -> int:
    """The gateway's cap on one request's bytes (IMGSEARCH_MAX_REQUEST_MB, in MiB)."""
    raw = os.environ.get(MAX_REQUEST_MB_ENV, "").strip()
    try:
        mb = float(raw) if raw else MAX_REQUEST_MB
    except ValueError:
        raise ValueError(f"{MAX_REQUEST_MB_ENV}={raw!r} is not a number of MiB") from None
    if mb <= 0:
        raise ValueError(f"{MAX_REQUEST_MB_ENV} must be positive, not {raw}")
    return int(mb * 2**20)


def max_docs() -> int:
    return _env_int(MAX_DOCS_ENV, MAX_DOCS_PER_REQUEST)


def max_top_k() -> int:
    return _env_int(MAX_TOP_K_ENV, MAX_TOP_K)


def max_output_pixels() -> int:
    return _env_int(MAX_OUTPUT_PIXELS_ENV, MAX_OUTPUT_PIXELS)


# The endpoints whose documents each cost a read, a decode or a forward pass. Others carry light
# documents by design: /scan hands the indexer a page of 2048 scanned files (hashes only).
COUNTED_ENDPOINTS = frozenset({"/search", "/index"})


def check_request(endpoint: str, docs: Optional[Sequence], limit: Optional[int] = None) -> None:
    """RequestTooLarge when a search or index request carries more documents than a stage takes
    at once."""
    if endpoint not in COUNTED_ENDPOINTS:
        return
    n = len(docs) if docs is not None else 0
    limit = limit or max_docs()
    if n > limit:
        raise RequestTooLarge(
            f"{endpoint}: {n} documents in one request, more than the limit of {limit} ({MAX_DOCS_ENV}); send them in smaller requests"
        )


def top_k(parameters: Optional[dict], default: int = 10) -> int:
    """The request's ``top_k``, refused (ValueError) outside 1..max_top_k()."""
    raw = (parameters or {}).get("top_k", default)
    try:
        k = int(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"top_k must be a whole number, not {raw!r}") from None
    limit = max_top_k()
    if not 1 <= k <= limit:
        raise ValueError(f"top_k must be between 1 and {limit} ({MAX_TOP_K_ENV}), not {k}")
    return k


def check_pixels(width: int, height: int, what: str = "the resized image") -> Optional[str]:
    """Why an image of width×height pixels is refused, or None."""
    limit = max_output_pixels()
    if width * height > limit:
        return f"{what} would be {width}×{height} = {width * height} pixels, over the limit of {limit}"
    return None


def tensor_error(tensor: object) -> Optional[str]:
    """Why an image tensor handed to an encoder is refused (not uint8 H×W×3, too many
    pixels, too elongated for the model's resize), or None."""
    arr = np.asarray(tensor)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        return f"image pixels must be uint8 height×width×3, not {arr.dtype} {tuple(arr.shape)}"
    height, width = arr.shape[:2]
    if max(height, width) > MAX_ASPECT * min(height, width):
        return f"image of {width}×{height} pixels is more elongated than {MAX_ASPECT}:1"
    return check_pixels(width, height, "the image")


def blob_error(blob: bytes) -> Optional[str]:
    """Why an image's bytes handed to a stage are refused (over MAX_IMAGE_BYTES), or None."""
    if len(blob) > MAX_IMAGE_BYTES:
        return f"image too large: {len(blob)} bytes > limit {MAX_IMAGE_BYTES}"
    return None
