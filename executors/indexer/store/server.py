"""A Qdrant server (or any ``QdrantClient``, e.g. local mode in tests) behind the store interface.

Collection metadata lives in the collection's own ``metadata`` field (qdrant-client >= 1.15 /
server >= 1.15).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from .interface import (_NAME_RE, FULL_SCAN_THRESHOLD_KB, HNSW_EF_CONSTRUCT, HNSW_M,
                                               RESCORE_OVERSAMPLING, SEARCH_HNSW_EF, CollectionInfo, Hit,
                                               UnknownCollectionError, VectorStore, _check_limit, _check_query,
                                               _check_vectors, _merge_dim, _norm_ids, _vec, validate_name)

logger = logging.getLogger(__name__)


def _server_search_params():
    return models.SearchParams(
        hnsw_ef=SEARCH_HNSW_EF,
        quantization=models.QuantizationSearchParams(rescore=True, oversampling=RESCORE_OVERSAMPLING),
    )


class ServerStore(VectorStore):
    """A Qdrant server (or any QdrantClient, e.g. local mode) behind the same interface.

    Collection metadata is stored in the collection's ``metadata`` field. Upserts use
    ``wait=True`` so they are in the server's WAL when this returns.
    """

    # Keeps one REST request well under the server's 32 MiB JSON body limit at 2k-d.
    _UPSERT_CHUNK = 1000

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 10,
        *,
        client: Any | None = None,
    ):

        if client is None:
            if not url:
                raise ValueError("ServerStore needs a url or a client")
            client = QdrantClient(url=url, api_key=api_key, timeout=int(math.ceil(timeout)))
            self._owns_client = True
        else:
            self._owns_client = False
        self.client = client
        self.url = url
        self._dims: dict[str, int] = {}

    def _names(self) -> list[str]:
        return sorted(c.name for c in self.client.get_collections().collections)

    def _unknown(self, name: str) -> UnknownCollectionError:
        return UnknownCollectionError(name, self._names())

    def _require(self, name: str) -> None:
        if not self.has_collection(name):
            raise self._unknown(name)

    def _dim(self, name: str) -> int:
        d = self._dims.get(name)
        if d is None:
            if not self.has_collection(name):
                raise self._unknown(name)
            vp = self.client.get_collection(name).config.params.vectors
            if isinstance(vp, dict):
                vp = vp.get("") or next(iter(vp.values()))
            d = int(vp.size)
            self._dims[name] = d
        return d

    def ensure_collection(self, name: str, dim: int, meta: dict) -> None:

        validate_name(name)
        dim = int(dim)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        full_meta = _merge_dim(meta, dim)
        if not self.has_collection(name):
            try:
                self.client.create_collection(
                    name,
                    vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                    hnsw_config=models.HnswConfigDiff(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT,
                                                      full_scan_threshold=FULL_SCAN_THRESHOLD_KB),
                    quantization_config=models.ScalarQuantization(
                        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
                    ),
                    metadata=full_meta,
                )
                logger.info("created collection %s (dim %d) on %s", name, dim, self.url or "client")
                self._dims[name] = dim
                return
            except Exception:
                if not self.has_collection(name):  # not a lost create race: a real error
                    raise
        self._dims.pop(name, None)
        have = self._dim(name)
        if have != dim:
            raise ValueError(
                f"collection {name!r} exists with dim {have}, cannot use it with dim {dim}; "
                "use another collection name or drop it first"
            )

    def has_collection(self, name: str) -> bool:
        return bool(self.client.collection_exists(validate_name(name)))

    def collection_meta(self, name: str) -> dict | None:
        if not self.has_collection(name):
            return None
        return dict(self.client.get_collection(name).config.metadata or {})

    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:

        ids = _norm_ids(ids)
        v = _check_vectors(ids, vectors, self._dim(name), payloads)
        rows = v.tolist()
        for s in range(0, len(ids), self._UPSERT_CHUNK):
            e = s + self._UPSERT_CHUNK
            self.client.upsert(
                name,
                points=models.Batch(ids=ids[s:e], vectors=rows[s:e], payloads=list(payloads[s:e])),
                wait=True,
            )

    def existing_ids(self, name: str, ids: list[str]) -> set[str]:
        if not ids or not self.has_collection(name):
            return set()
        ids = _norm_ids(ids)
        found: set[str] = set()
        for s in range(0, len(ids), 10_000):
            recs = self.client.retrieve(name, ids[s : s + 10_000], with_payload=False, with_vectors=False)
            found.update(str(uuid.UUID(str(r.id))) for r in recs)
        return found

    def set_payload(self, name: str, ids: list[str], payload: dict) -> None:
        if not ids:
            return
        self._require(name)
        self.client.set_payload(name, payload=payload, points=_norm_ids(ids), wait=True)

    def search_batch(
        self,
        name: str,
        vectors: np.ndarray,
        limit: int,
        score_threshold: float | None = None,
        exclude_ids: list[list[str] | None] | None = None,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        """Several queries in one round trip (the server plans them together)."""

        _check_limit(limit)
        dim = self._dim(name)
        excludes = exclude_ids or [None] * len(vectors)
        requests = [
            models.QueryRequest(
                query=_check_query(v, dim).tolist(),
                limit=int(limit),
                filter=models.Filter(must_not=[models.HasIdCondition(has_id=_norm_ids(ex))]) if ex else None,
                score_threshold=score_threshold,
                with_payload=True,
                with_vector=with_vectors,
                params=_server_search_params(),
            )
            for v, ex in zip(vectors, excludes)
        ]
        if not requests:
            return []
        results = self.client.query_batch_points(name, requests=requests)
        return [
            [
                Hit(str(uuid.UUID(str(p.id))), float(p.score), p.payload or {}, _vec(p.vector) if with_vectors else None)
                for p in r.points
            ]
            for r in results
        ]

    def retrieve(self, name: str, ids: list[str], with_vectors: bool = False) -> list[Hit]:
        self._require(name)
        if not ids:
            return []
        recs = self.client.retrieve(name, _norm_ids(ids), with_payload=True, with_vectors=with_vectors)
        return [
            Hit(str(uuid.UUID(str(r.id))), 0.0, r.payload or {}, _vec(r.vector) if with_vectors else None)
            for r in recs
        ]

    def scroll(self, name: str, with_vectors: bool = False, batch: int = 1000) -> Iterator[Hit]:
        self._require(name)
        _check_limit(batch)

        def gen() -> Iterator[Hit]:
            offset = None
            while True:
                recs, offset = self.client.scroll(
                    name, limit=batch, offset=offset, with_payload=True, with_vectors=with_vectors
                )
                for r in recs:
                    yield Hit(
                        str(uuid.UUID(str(r.id))), 0.0, r.payload or {}, _vec(r.vector) if with_vectors else None
                    )
                if offset is None or not recs:
                    return

        return gen()

    def count(self, name: str) -> int:
        self._require(name)
        return int(self.client.count(name, exact=True).count)

    def delete(self, name: str, ids: list[str]) -> int:

        present = self.existing_ids(name, ids)
        if not present:
            return 0
        self.client.delete(name, points_selector=models.PointIdsList(points=sorted(present)), wait=True)
        return len(present)

    def drop_collection(self, name: str) -> bool:
        self._dims.pop(name, None)
        if not self.has_collection(name):
            return False
        self.client.delete_collection(name)
        logger.info("dropped collection %s on %s", name, self.url or "client")
        return True

    def list_collections(self) -> list[CollectionInfo]:
        out = []
        for n in self._names():
            if not _NAME_RE.match(n):  # created by someone else with a name we would not use
                continue
            info = self.client.get_collection(n)
            cnt = int(self.client.count(n, exact=True).count)
            out.append(CollectionInfo(n, dict(info.config.metadata or {}), cnt, None))
        return out

    def disk_bytes(self, name: str) -> int | None:
        return None

    def flush(self) -> None:
        """Nothing to do: the server persists on its own (upserts wait for its WAL)."""

    def optimize(self, name: str) -> bool:
        """Nothing to do: the server runs its optimisers itself."""
        return False

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
