"""The store interface: what every backend stores and returns, ids, and input checks.

Point ids are uuid5 strings derived from the image's sha256 (:func:`point_id`), so the
same image always maps to the same point and re-indexing is idempotent. Vectors are
compared by cosine; Qdrant stores them L2-normalised, so vectors read back are unit length.
"""

from __future__ import annotations

import logging
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from executors.errors import UserError

logger = logging.getLogger(__name__)

# Fixed namespace of this project: changing it would orphan every stored point.
POINT_NAMESPACE = uuid.UUID("5d1f3c2e-8a4b-5e6f-9a0b-1c2d3e4f5a6b")

# Collection names become folder names, so keep them to a safe, portable alphabet.
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,199}$")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# --------------------------------------------------------------------------- interface


@dataclass
class Hit:
    id: str
    score: float
    payload: dict
    vector: np.ndarray | None = None


@dataclass
class CollectionInfo:
    name: str
    meta: dict
    # None only when a read-only EdgeStore cannot open the shard because a writer holds it.
    count: int | None
    disk_bytes: int | None


class StoreInUseError(UserError, RuntimeError):
    """The workspace (or one of its shards) is held by another process/store."""


class UnknownCollectionError(UserError, KeyError):
    """A collection that does not exist was asked for."""

    def __init__(self, name: str, existing: list[str]):
        self.name = name
        self.existing = existing
        listing = ", ".join(repr(n) for n in existing) if existing else "none"
        self.message = f"unknown collection {name!r}; existing collections: {listing}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


# Index settings, one place for both backends (measured by `app.py bench`'s store rows).
# HNSW (m 16) over int8 scalar-quantised vectors kept in RAM, searched with ef 128 and
# the top candidates rescored on the original float vectors (2x oversampling): an order of
# magnitude faster than an exact scan at 100k with the same top-10 (docs/performance.md).
# Collections below ~5k vectors (10 MB) stay exact.
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
FULL_SCAN_THRESHOLD_KB = 10_000
SEARCH_HNSW_EF = 128
RESCORE_OVERSAMPLING = 2.0
# What the HNSW search reads: int8 (the default above), binary (1 bit a dimension, 32× less RAM
# than fp32) or none (the full vectors). Chosen per collection at creation (`app.py index
# --quantization`), kept in its metadata; `app.py compare` measures what each costs in recall@10.
QUANTIZATIONS = ("none", "int8", "binary")
DEFAULT_QUANTIZATION = "int8"


def check_quantization(name: str, meta: dict | None, asked: str | None) -> str:
    """The collection's setting (its metadata's; collections made before the setting are int8),
    checked against the one asked for (None: whatever it has)."""
    if asked is not None and asked not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {asked!r}: one of {', '.join(QUANTIZATIONS)}")
    if meta is None:  # a new collection
        return asked or DEFAULT_QUANTIZATION
    have = meta.get("quantization") or DEFAULT_QUANTIZATION
    if asked is not None and asked != have:
        raise ValueError(
            f"collection {name!r} exists with quantization {have}, cannot index it with {asked}; "
            f"index it with --quantization {have}, or drop it first"
        )
    return have


def point_id(content_hash: str) -> str:
    """Deterministic point id (uuid5 string) for an image's sha256 hex digest."""
    return str(uuid.uuid5(POINT_NAMESPACE, content_hash.strip().lower()))


# Per query of a batch: point ids left out of its results (e.g. the query image itself), or None.
Excludes = list[list[str] | None] | None


class VectorStore(ABC):
    """What the indexer, compare and the web page need from a vector store; one subclass per backend."""

    @abstractmethod
    def ensure_collection(self, name: str, dim: int, meta: dict) -> None: ...
    @abstractmethod
    def has_collection(self, name: str) -> bool: ...
    @abstractmethod
    def collection_meta(self, name: str) -> dict | None: ...
    @abstractmethod
    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None: ...
    @abstractmethod
    def existing_ids(self, name: str, ids: list[str]) -> set[str]: ...
    @abstractmethod
    def set_payload(self, name: str, ids: list[str], payload: dict) -> None: ...
    def search(
        self,
        name: str,
        vector: np.ndarray,
        limit: int,
        score_threshold: float | None = None,
        exclude_ids: list[str] | None = None,
        with_vectors: bool = False,
    ) -> list[Hit]:
        """One query: a batch of one, for every backend (search_batch builds the engine's request)."""
        excludes: Excludes = [exclude_ids] if exclude_ids else None
        return self.search_batch(name, np.asarray(vector)[None], limit, score_threshold, excludes, with_vectors)[0]

    @abstractmethod
    def search_batch(
        self,
        name: str,
        vectors: np.ndarray,
        limit: int,
        score_threshold: float | None = None,
        exclude_ids: Excludes = None,
        with_vectors: bool = False,
    ) -> list[list[Hit]]: ...
    @abstractmethod
    def retrieve(self, name: str, ids: list[str], with_vectors: bool = False) -> list[Hit]: ...
    @abstractmethod
    def optimize(self, name: str) -> bool: ...
    @abstractmethod
    def scroll_page(self, name: str, offset: str | None, limit: int, with_vectors: bool = False) -> tuple[list[Hit], str | None]:
        """Up to ``limit`` points in id order from ``offset`` (a point id, included; None: the
        first), and the id the next page starts at (None after the last)."""

    def scroll(self, name: str, with_vectors: bool = False, batch: int = 1000) -> Iterator[Hit]:
        """Every point, read in pages of ``batch``: memory stays flat at any collection size."""
        _check_limit(batch)
        first = self.scroll_page(name, None, batch, with_vectors)  # an unknown collection raises now

        def gen() -> Iterator[Hit]:
            page, offset = first
            while True:
                yield from page
                if offset is None or not page:
                    return
                page, offset = self.scroll_page(name, offset, batch, with_vectors)

        return gen()

    @abstractmethod
    def count(self, name: str) -> int: ...
    @abstractmethod
    def delete(self, name: str, ids: list[str]) -> int: ...
    @abstractmethod
    def drop_collection(self, name: str) -> bool: ...
    @abstractmethod
    def list_collections(self) -> list[CollectionInfo]: ...
    @abstractmethod
    def disk_bytes(self, name: str) -> int | None: ...
    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- helpers


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"invalid collection name {name!r}: use 1-200 letters, digits, '_', '-' or '.', not starting with '.'")
    return name


def _norm_ids(ids: list[str]) -> list[str]:
    """Canonical uuid strings, so ids compare equal to what the engines hand back."""
    out = []
    for i in ids:
        if isinstance(i, str) and _CANONICAL_UUID.fullmatch(i):  # point_id()'s own form: ~5x cheaper than parsing
            out.append(i)
            continue
        try:
            out.append(str(uuid.UUID(str(i))))
        except ValueError:
            raise ValueError(f"point id {i!r} is not a uuid; use point_id(sha256)") from None
    return out


def _check_vectors(ids: list[str], vectors: np.ndarray, dim: int, payloads: list[dict] | None) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or v.shape[1] != dim:
        raise ValueError(f"vectors must have shape (n, {dim}), got {v.shape}")
    if v.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} ids but {v.shape[0]} vectors")
    if payloads is not None and len(payloads) != len(ids):
        raise ValueError(f"{len(ids)} ids but {len(payloads)} payloads")
    finite = np.asarray(np.isfinite(v).all(axis=1))  # an array: numpy's stubs allow a scalar here
    norms = np.linalg.norm(np.where(finite[:, None], v, 0.0), axis=1)
    bad = np.flatnonzero(~finite | (norms <= 0.0))
    if bad.size:
        shown = ", ".join(ids[i] for i in bad[:10]) + (" ..." if bad.size > 10 else "")
        raise ValueError(f"{bad.size} vector(s) are NaN/inf or zero-norm (cosine undefined): ids {shown}")
    return v


def _check_query(vector: np.ndarray, dim: int | None) -> np.ndarray:
    q = np.asarray(vector, dtype=np.float32).reshape(-1)
    if dim is not None and q.shape[0] != dim:
        raise ValueError(f"query vector has {q.shape[0]} dimensions, collection has {dim}")
    if not np.isfinite(q).all() or not np.any(q):
        raise ValueError("query vector is NaN/inf or zero-norm")
    return q


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")


def _vec(v: Any) -> np.ndarray | None:
    if v is None:
        return None
    if isinstance(v, dict):  # named vectors: we only use the default (unnamed) one
        v = v.get("", next(iter(v.values()), None))
    return None if v is None else np.asarray(v, dtype=np.float32)


def _merge_dim(meta: dict, dim: int) -> dict:
    m = dict(meta or {})
    if "dim" in m and int(m["dim"]) != dim:
        raise ValueError(f"meta says dim={m['dim']} but dim={dim} was given")
    m["dim"] = dim
    return m


# --------------------------------------------------------------------------- EdgeStore
