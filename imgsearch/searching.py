"""`app.py search`: one query (image or text) against one collection, ranked results."""

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from executors.auth import PATHS_PARAMETER
from executors.contracts import EncoderInfo
from executors.docs import MAX_IMAGE_BYTES, ImageDoc
from executors.errors import UserError
from imgsearch.flow import RETRY_UNREACHABLE_S, SEARCH_TIMEOUT_S, Gateway, fit_parameter

logger = logging.getLogger(__name__)


class QueryError(UserError, ValueError):
    """The query itself is unusable (unreadable image, text on an image-only encoder...)."""


@dataclass
class SearchResult:
    collection: str
    encoder: str
    model: str
    query: dict  # {"image": path} or {"text": "..."}
    matches: list[dict] = field(default_factory=list)  # path, label, score, width, height, hash

    def to_json(self) -> dict:
        return asdict(self)


def run_search(
    gateway: Gateway,
    collection: str,
    info: EncoderInfo,
    image: Optional[Path] = None,
    text: Optional[str] = None,
    top_k: int = 10,
    score_threshold: Optional[float] = None,
    exclude_self: bool = False,
) -> SearchResult:
    if (image is None) == (text is None):
        raise QueryError("give exactly one of an image or a text query")
    if text is not None and not info.text:
        raise QueryError(
            f"encoder '{info.encoder}' ({info.model}) cannot embed text; search with --image, or use a text-capable encoder (clip, blip2)"
        )
    if image is not None:
        try:
            size = image.stat().st_size
            if size > MAX_IMAGE_BYTES:  # refused here, before megabytes travel to the gateway
                raise QueryError(
                    f"query image {image} is too large: {size / 2**20:.1f} MiB > the limit of "
                    f"{MAX_IMAGE_BYTES / 2**20:.0f} MiB; use a smaller or re-encoded copy"
                )
            # Bytes travel with the request so a remote gateway needs no access to this file.
            query = ImageDoc(uri=str(image), blob=image.read_bytes())
        except OSError as exc:
            raise QueryError(f"cannot read query image {image}: {exc.strerror or exc}") from exc
    else:
        query = ImageDoc(text=text)
    # with_paths: the matches' stored paths (shown and drawn); the token goes along (token_policy.py).
    params = {"collection": collection, "top_k": top_k, "exclude_self": exclude_self, PATHS_PARAMETER: True, **fit_parameter(info)}
    if score_threshold is not None:
        params["score_threshold"] = score_threshold
    # A short deadline: one image through every stage. A search changes nothing, so it may be
    # retried while an executor behind the gateway restarts.
    docs = gateway.post("/search", [query], params, timeout=SEARCH_TIMEOUT_S, retry_unreachable_s=RETRY_UNREACHABLE_S)
    if not docs:
        raise QueryError("the gateway returned no result document")
    doc = docs[0]
    if doc.error:
        raise QueryError(f"query {image or repr(text)} failed: {doc.error}")
    matches = [
        {
            "path": m.get("uri"),
            "label": m.get("label"),
            "score": float(m.get("score", 0.0)),
            "width": _int(m.get("width")),
            "height": _int(m.get("height")),
            "hash": m.get("hash"),
            "paths": m.get("paths") or [m.get("uri")],
        }
        for m in doc.matches or []
    ]
    q = {"image": str(image)} if image is not None else {"text": text}
    return SearchResult(collection, info.encoder, info.model, q, matches)


def _int(value) -> Optional[int]:
    return None if value is None else int(value)
