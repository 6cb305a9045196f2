"""Which images a compare run queries with: a stable sample by content hash, or an outside folder.

Relevance is "same label" (sub-folder name). In-index queries are excluded from their own results.
"""

import hashlib
import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from PIL import Image

from executors.loader.executor import label_for
from imgsearch.indexing import SCAN_PAGE, SCAN_TARGET
from imgsearch.scan_pages import ScanPages

logger = logging.getLogger(__name__)


@dataclass
class Item:
    path: str
    hash: str
    label: Optional[str]


@dataclass
class QuerySet:
    """The indexed images (as the loader sees them) and the queries, shared by every encoder."""

    items: list[Item] = field(default_factory=list)
    queries: list[Item] = field(default_factory=list)
    candidates: int = 0  # queries the fraction picked, before --max-queries
    how: str = ""

    def to_json(self) -> dict:
        return {
            "items": [[it.path, it.hash, it.label] for it in self.items],
            "queries": [[q.path, q.hash, q.label] for q in self.queries],
            "candidates": self.candidates,
            "how": self.how,
        }

    @classmethod
    def from_json(cls, data: dict) -> "QuerySet":
        return cls([Item(*x) for x in data["items"]], [Item(*x) for x in data["queries"]], data["candidates"], data["how"])

    def label_counts(self) -> dict[Optional[str], int]:
        counts: dict[Optional[str], int] = {}
        for it in self.items:
            counts[it.label] = counts.get(it.label, 0) + 1
        return counts


def scan(gateway, data: str) -> list[Item]:
    """The indexable images (under a folder path or URL) as the loader sees them (first of each content hash)."""
    params = {"data": str(data), "collection": "compare-scan", "dataset": "compare-scan"}
    seen, items = set(), []
    for page in ScanPages(gateway, params, SCAN_PAGE, target=SCAN_TARGET):
        for doc in page.docs:
            if doc.error or not doc.hash or not doc.uri or doc.hash in seen:
                continue
            seen.add(doc.hash)
            items.append(Item(doc.uri, doc.hash, doc.label))
    return items


def pick_queries(items: list[Item], fraction: float, max_queries: Optional[int] = None) -> list[Item]:
    """A stable, label-stratified sample: per label, ceil(fraction·n) images by content hash;
    then, past ``max_queries``, the ones with the lowest content hash (a uniform sample).

    Labels with a single image are skipped (nothing relevant to find) unless nothing is labelled.
    """
    by_label: dict[Optional[str], list[Item]] = {}
    for it in items:
        by_label.setdefault(it.label, []).append(it)
    labelled = any(lab is not None for lab in by_label)
    picked = []
    for label in sorted(by_label, key=lambda x: (x is None, x or "")):
        group = sorted(by_label[label], key=lambda it: it.hash)
        if labelled and (label is None or len(group) < 2):
            continue
        picked.extend(group[: max(1, math.ceil(fraction * len(group)))])
    if max_queries is not None and len(picked) > max_queries:
        picked = sorted(picked, key=lambda it: it.hash)[:max_queries]
    return sorted(picked, key=lambda it: (it.label or "", it.path))


def in_index_queries(items: list[Item], fraction: float, max_queries: int) -> QuerySet:
    candidates = len(pick_queries(items, fraction))
    queries = pick_queries(items, fraction, max_queries)
    how = (
        f"{fraction:g} of each label's images by content hash ({candidates})"
        + (f", then the {len(queries)} with the lowest content hash (--max-queries)" if candidates > len(queries) else "")
        + "; each excluded from its own results"
    )
    return QuerySet(items, queries, candidates, how)


def outside_queries(folder: Path) -> list[Item]:
    items = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            data = path.read_bytes()
            if _looks_like_image(data):
                items.append(Item(str(path), hashlib.sha256(data).hexdigest(), label_for(path, folder)))
    return items


def _looks_like_image(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        return True
    except Exception:
        return False
