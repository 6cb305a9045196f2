"""A Qdrant server (or any ``QdrantClient``, e.g. local mode in tests) behind the store interface.

Collection metadata lives in the collection's own ``metadata`` field (qdrant-client >= 1.15 /
server >= 1.15).

Fit for a server or a cluster: gRPC (``prefer_grpc``) with numpy vectors, upserts batched and
acknowledged (``wait=True``), transient errors (gRPC UNAVAILABLE/DEADLINE_EXCEEDED, HTTP 5xx,
connection resets) retried with backoff within a deadline, collections that exist remembered
instead of asked for on every call, and the cluster layout (``ClusterLayout``: shards,
replication, write consistency) passed at creation and recorded in the collection's metadata.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.conversions.common_types import PointId

from .interface import (
    _NAME_RE,
    FULL_SCAN_THRESHOLD_KB,
    HNSW_EF_CONSTRUCT,
    HNSW_M,
    RESCORE_OVERSAMPLING,
    SEARCH_HNSW_EF,
    CollectionInfo,
    Excludes,
    Hit,
    UnknownCollectionError,
    VectorStore,
    _check_limit,
    _check_query,
    _check_vectors,
    _merge_dim,
    _norm_ids,
    _vec,
    check_quantization,
    validate_name,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_DEADLINE_S = 30.0  # how long one call keeps retrying transient errors
_TRANSIENT_GRPC = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED")


def _quantization_config(quantization: str):
    if quantization == "binary":
        return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
    if quantization == "int8":
        return models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True))
    return None


@dataclass(frozen=True)
class ClusterLayout:
    """How a collection is spread over a Qdrant cluster (all 1 on a single node).

    From QDRANT_SHARD_NUMBER, QDRANT_REPLICATION_FACTOR, QDRANT_WRITE_CONSISTENCY_FACTOR (the
    Kubernetes ConfigMap sets them for the cluster `app.py k8s --qdrant-nodes N` generates).
    """

    shard_number: int = 1
    replication_factor: int = 1
    write_consistency_factor: int = 1

    @classmethod
    def from_env(cls) -> "ClusterLayout":
        def get(name: str) -> int:
            value = int(os.environ.get(name) or 1)
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
            return value

        return cls(get("QDRANT_SHARD_NUMBER"), get("QDRANT_REPLICATION_FACTOR"), get("QDRANT_WRITE_CONSISTENCY_FACTOR"))


def is_transient(exc: BaseException) -> bool:
    """An error worth retrying: the server restarting, overloaded or briefly unreachable."""
    code = getattr(exc, "code", None)
    if callable(code):  # grpc.RpcError
        try:
            return getattr(code(), "name", "") in _TRANSIENT_GRPC
        except Exception:  # noqa: BLE001 - a half-built RpcError: judge by its text below
            pass
    status = getattr(exc, "status_code", None)  # qdrant_client's UnexpectedResponse (REST)
    if isinstance(status, int):
        return status >= 500 or status == 429
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    name = type(exc).__name__
    return name in ("ResponseHandlingException", "ConnectError", "ReadTimeout", "RemoteProtocolError")


def with_retries(call: Callable[[], T], what: str, deadline_s: float = RETRY_DEADLINE_S, sleep: Callable[[float], None] | None = None) -> T:
    """``call()``, retried with exponential backoff on transient errors until ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    wait = 0.2
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + wait > deadline:
                raise
            logger.warning("%s: transient error (%s); retrying in %.1fs", what, exc, wait)
            (sleep or time.sleep)(wait)
            wait = min(wait * 2, 5.0)


def _server_search_params():
    return models.SearchParams(
        hnsw_ef=SEARCH_HNSW_EF,
        quantization=models.QuantizationSearchParams(rescore=True, oversampling=RESCORE_OVERSAMPLING),
    )


def _excluding(ids: list[str]) -> models.Filter:
    """A filter leaving these points out (ids typed as qdrant-client's models' invariant list)."""
    has_id: list[models.ExtendedPointId] = list(_norm_ids(ids))
    return models.Filter(must_not=[models.HasIdCondition(has_id=has_id)])


def api_key_from_env(read_only: bool) -> str | None:
    """QDRANT_API_KEY; a reader (compare, stats) takes QDRANT_READ_ONLY_API_KEY where one is set,
    so a component that only reads cannot write even if it is subverted."""
    key = (os.environ.get("QDRANT_READ_ONLY_API_KEY") if read_only else None) or os.environ.get("QDRANT_API_KEY")
    if not key and os.environ.get("QDRANT_API_KEY_FILE"):  # a mounted Secret: never argv (ps shows it)
        with open(os.environ["QDRANT_API_KEY_FILE"]) as fh:
            key = fh.read().strip()
    return key or None


class ServerStore(VectorStore):
    """A Qdrant server (or any QdrantClient, e.g. local mode) behind the same interface.

    Collection metadata is stored in the collection's ``metadata`` field. Upserts use
    ``wait=True`` so they are in the server's WAL (on ``write_consistency_factor`` replicas)
    when this returns. ``api_key`` defaults to the environment's (``api_key_from_env``).
    """

    # Keeps one request well under the server's message limits at 2k-d (32 MiB for REST JSON).
    _UPSERT_CHUNK = 1000

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 10,
        *,
        client: Any | None = None,
        layout: ClusterLayout | None = None,
        retry_deadline_s: float = RETRY_DEADLINE_S,
        read_only: bool = False,
    ):

        if client is None:
            if not url:
                raise ValueError("ServerStore needs a url or a client")
            client = QdrantClient(url=url, api_key=api_key or api_key_from_env(read_only), timeout=int(math.ceil(timeout)), prefer_grpc=True)
            self._owns_client = True
        else:
            self._owns_client = False
        self.client = client
        self.url = url
        self.layout = layout or ClusterLayout.from_env()
        self.retry_deadline_s = retry_deadline_s
        self._dims: dict[str, int] = {}
        self._known: set[str] = set()  # collections seen to exist: not asked again

    def _call(self, what: str, call: Callable[[], T]) -> T:
        return with_retries(call, what, self.retry_deadline_s)

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
            if vp is None:  # made by another program: not a collection of this store's shape
                raise ValueError(f"collection {name!r} has no dense vector config")
            d = int(vp.size)
            self._dims[name] = d
        return d

    def ensure_collection(self, name: str, dim: int, meta: dict) -> None:

        validate_name(name)
        dim = int(dim)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        # A cluster layout is recorded with the collection; single-node (all 1) needs no record.
        layout = asdict(self.layout) if self.layout != ClusterLayout() else {}
        full_meta = {**_merge_dim(meta, dim), **layout}
        asked = full_meta.pop("quantization", None)
        full_meta["quantization"] = check_quantization(name, None, asked)
        if not self.has_collection(name):
            try:
                self.client.create_collection(
                    name,
                    shard_number=self.layout.shard_number,
                    replication_factor=self.layout.replication_factor,
                    write_consistency_factor=self.layout.write_consistency_factor,
                    vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                    hnsw_config=models.HnswConfigDiff(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT, full_scan_threshold=FULL_SCAN_THRESHOLD_KB),
                    quantization_config=_quantization_config(full_meta["quantization"]),
                    metadata=full_meta,
                )
                logger.info("created collection %s (dim %d, %s) on %s", name, dim, self.layout, self.url or "client")
                self._dims[name] = dim
                self._known.add(name)
                return
            except Exception:
                if not self.has_collection(name):  # not a lost create race: a real error
                    raise
        self._dims.pop(name, None)
        check_quantization(name, self.collection_meta(name), asked)
        have = self._dim(name)
        if have != dim:
            raise ValueError(
                f"collection {name!r} exists with dim {have}, cannot use it with dim {dim}; use another collection name or drop it first"
            )

    def has_collection(self, name: str) -> bool:
        """Asked of the server once per collection that exists; a drop (here) forgets it."""
        if validate_name(name) in self._known:
            return True
        exists = bool(self._call("collection_exists", lambda: self.client.collection_exists(name)))
        if exists:
            self._known.add(name)
        return exists

    def collection_meta(self, name: str) -> dict | None:
        if not self.has_collection(name):
            return None
        return dict(self.client.get_collection(name).config.metadata or {})

    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:

        ids = _norm_ids(ids)
        v = _check_vectors(ids, vectors, self._dim(name), payloads)
        # upload_collection takes the numpy array as it is (no per-float Python lists, no
        # pydantic models) and sends batches of _UPSERT_CHUNK, each acknowledged (wait=True).
        # An upsert by id is idempotent, so a retried call cannot duplicate.
        self._call(
            "upsert",
            lambda: self.client.upload_collection(
                name, vectors=v, payload=list(payloads), ids=ids, batch_size=self._UPSERT_CHUNK, wait=True, max_retries=0
            ),
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
        points: list[PointId] = list(_norm_ids(ids))  # typed as qdrant-client's (invariant) list
        self.client.set_payload(name, payload=payload, points=points, wait=True)

    def search_batch(
        self,
        name: str,
        vectors: np.ndarray,
        limit: int,
        score_threshold: float | None = None,
        exclude_ids: Excludes = None,
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
                filter=_excluding(ex) if ex else None,
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
            [Hit(str(uuid.UUID(str(p.id))), float(p.score), p.payload or {}, _vec(p.vector) if with_vectors else None) for p in r.points]
            for r in results
        ]

    def retrieve(self, name: str, ids: list[str], with_vectors: bool = False) -> list[Hit]:
        self._require(name)
        if not ids:
            return []
        recs = self.client.retrieve(name, _norm_ids(ids), with_payload=True, with_vectors=with_vectors)
        return [Hit(str(uuid.UUID(str(r.id))), 0.0, r.payload or {}, _vec(r.vector) if with_vectors else None) for r in recs]

    def scroll_page(self, name: str, offset: str | None, limit: int, with_vectors: bool = False) -> tuple[list[Hit], str | None]:
        self._require(name)
        _check_limit(limit)
        start = None if offset is None else _norm_ids([offset])[0]
        recs, nxt = self.client.scroll(name, limit=limit, offset=start, with_payload=True, with_vectors=with_vectors)
        hits = [Hit(str(uuid.UUID(str(r.id))), 0.0, r.payload or {}, _vec(r.vector) if with_vectors else None) for r in recs]
        return hits, None if nxt is None else str(uuid.UUID(str(nxt)))

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
        self._known.discard(name)
        if not self.has_collection(name):
            return False
        self.client.delete_collection(name)
        self._known.discard(name)
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
