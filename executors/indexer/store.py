"""Vector-store layer of the indexer: Qdrant, one collection per model.

Two backends behind one small interface (:class:`VectorStore`):

* :class:`EdgeStore` – Qdrant Edge embedded in this process (``qdrant_edge``). One
  ``EdgeShard`` per collection under ``<workspace>/qdrant/<collection>/shard/`` and the
  collection's metadata in ``<workspace>/qdrant/<collection>/meta.json``.
* :class:`ServerStore` – a Qdrant server through ``qdrant_client`` (or any
  ``QdrantClient``, e.g. local mode in tests); metadata lives in the collection's own
  ``metadata`` field (qdrant-client >= 1.15 / server >= 1.15).

Point ids are uuid5 strings derived from the image's sha256 (:func:`point_id`), so the
same image always maps to the same point and re-indexing is idempotent. Vectors are
compared by cosine; Qdrant stores them L2-normalised, so vectors read back are unit length.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

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


class StoreInUseError(RuntimeError):
    """The workspace (or one of its shards) is held by another process/store."""


class UnknownCollectionError(KeyError):
    """A collection that does not exist was asked for."""

    def __init__(self, name: str, existing: list[str]):
        self.name = name
        self.existing = existing
        listing = ", ".join(repr(n) for n in existing) if existing else "none"
        self.message = f"unknown collection {name!r}; existing collections: {listing}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


# Index settings, one place for both backends (benchmarks/: `app.py bench --store-only`).
# HNSW (m 16) over int8 scalar-quantised vectors kept in RAM, searched with ef 128 and
# the top candidates rescored on the original float vectors (2x oversampling): at 100k
# × 512 that measured p50 0.7 ms / p99 1.2 ms with recall@10 1.00 against exact search,
# where an exact scan takes 10-14 ms. Collections below ~5k vectors (10 MB) stay exact.
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
FULL_SCAN_THRESHOLD_KB = 10_000
SEARCH_HNSW_EF = 128
RESCORE_OVERSAMPLING = 2.0


def point_id(content_hash: str) -> str:
    """Deterministic point id (uuid5 string) for an image's sha256 hex digest."""
    return str(uuid.uuid5(POINT_NAMESPACE, content_hash.strip().lower()))


@runtime_checkable
class VectorStore(Protocol):
    def ensure_collection(self, name: str, dim: int, meta: dict) -> None: ...
    def has_collection(self, name: str) -> bool: ...
    def collection_meta(self, name: str) -> dict | None: ...
    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None: ...
    def existing_ids(self, name: str, ids: list[str]) -> set[str]: ...
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
        excludes = [exclude_ids] if exclude_ids else None
        return self.search_batch(name, np.asarray(vector)[None], limit, score_threshold, excludes, with_vectors)[0]

    def search_batch(
        self,
        name: str,
        vectors: np.ndarray,
        limit: int,
        score_threshold: float | None = None,
        exclude_ids: list[list[str] | None] | None = None,
        with_vectors: bool = False,
    ) -> list[list[Hit]]: ...
    def retrieve(self, name: str, ids: list[str], with_vectors: bool = False) -> list[Hit]: ...
    def optimize(self, name: str) -> bool: ...
    def scroll(self, name: str, with_vectors: bool = False, batch: int = 1000) -> Iterator[Hit]: ...
    def count(self, name: str) -> int: ...
    def delete(self, name: str, ids: list[str]) -> int: ...
    def drop_collection(self, name: str) -> bool: ...
    def list_collections(self) -> list[CollectionInfo]: ...
    def disk_bytes(self, name: str) -> int | None: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- helpers


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"invalid collection name {name!r}: use 1-200 letters, digits, '_', '-' or '.', "
            "not starting with '.'"
        )
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
    finite = np.isfinite(v).all(axis=1)
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


def _du(path: str) -> int:
    """Bytes actually allocated under path (like du): WAL segments are sparse."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except FileNotFoundError:  # the optimiser may swap segments while we walk
                continue
            total += st.st_blocks * 512
    return total


def _write_json_atomic(path: str, data: dict) -> None:
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    # fsync the directory so the rename itself survives a crash.
    dfd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _merge_dim(meta: dict, dim: int) -> dict:
    m = dict(meta or {})
    if "dim" in m and int(m["dim"]) != dim:
        raise ValueError(f"meta says dim={m['dim']} but dim={dim} was given")
    m["dim"] = dim
    return m


# --------------------------------------------------------------------------- EdgeStore


def _edge_config(dim: int):
    from qdrant_edge import (Distance, EdgeConfig, EdgeVectorParams, HnswIndexConfig, ScalarQuantizationConfig,
                             ScalarType)

    return EdgeConfig(
        vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine),
        hnsw_config=HnswIndexConfig(m=HNSW_M, ef_construct=HNSW_EF_CONSTRUCT,
                                    full_scan_threshold=FULL_SCAN_THRESHOLD_KB, max_indexing_threads=0),
        quantization_config=ScalarQuantizationConfig(type=ScalarType.Int8, quantile=0.99, always_ram=True),
    )


def _edge_search_params():
    from qdrant_edge import QuantizationSearchParams, SearchParams

    return SearchParams(hnsw_ef=SEARCH_HNSW_EF,
                        quantization=QuantizationSearchParams(rescore=True, oversampling=RESCORE_OVERSAMPLING))


class EdgeStore(VectorStore):
    """Qdrant Edge embedded in process: one EdgeShard per collection in the workspace.

    Durability: every update goes to the shard's write-ahead log before ``update()``
    returns, and the WAL lives in the kernel's page cache, so an acknowledged upsert
    survives kill -9 of this process without a flush (tested). ``flush()`` (persisting the
    segments, and letting the WAL be truncated) after every 256-vector batch cut upsert
    throughput by 17-33% (benchmarks/store_bench.py, 512-d), for no kill -9 benefit, so it
    runs at most every ``flush_interval_s`` seconds and on close(); that bounds WAL replay
    on restart to a few seconds of writes (50k×512 unflushed replays in ~1.8 s).
    ``flush_interval_s=0`` flushes after every call. Protection against power loss/OS
    crash (WAL fsync) is not attempted.
    """

    def __init__(self, workspace: str, read_only: bool = False, flush_interval_s: float = 5.0):
        self.workspace = os.path.abspath(workspace)
        self.root = os.path.join(self.workspace, "qdrant")
        self.read_only = read_only
        self.flush_interval_s = flush_interval_s
        self._shards: dict[str, Any] = {}
        self._dims: dict[str, int] = {}
        self._last_flush: dict[str, float] = {}
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self._closed = False
        if not read_only:
            os.makedirs(self.root, exist_ok=True)
            self._acquire_workspace_lock()

    # -- workspace lock
    def _acquire_workspace_lock(self) -> None:
        path = os.path.join(self.root, ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            try:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            who = f"pid {holder}" + (", this process" if holder == str(os.getpid()) else "")
            raise StoreInUseError(
                f"workspace {self.workspace} is in use by another process ({who}); "
                "stop that indexer first, or open the store read-only"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_workspace_lock(self) -> None:
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- paths and shards
    def _coll_dir(self, name: str) -> str:
        return os.path.join(self.root, validate_name(name))

    def _shard_dir(self, name: str) -> str:
        return os.path.join(self._coll_dir(name), "shard")

    def _meta_path(self, name: str) -> str:
        return os.path.join(self._coll_dir(name), "meta.json")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("store is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise PermissionError(f"store on {self.workspace} was opened read-only")

    def _shard_exists(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self._shard_dir(name), "edge_config.json"))

    def _names(self) -> list[str]:
        try:
            entries = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [n for n in entries if _NAME_RE.match(n) and self._shard_exists(n)]

    def _unknown(self, name: str) -> UnknownCollectionError:
        return UnknownCollectionError(name, self._names())

    def _shard(self, name: str):
        """Open (lazily, cached) the shard of an existing collection."""
        from qdrant_edge import EdgeShard

        self._check_open()
        sh = self._shards.get(name)
        if sh is not None:
            return sh
        with self._lock:
            sh = self._shards.get(name)
            if sh is not None:
                return sh
            if not self._shard_exists(name):
                raise self._unknown(name)
            try:
                # Passing the config upgrades collections made before the index settings.
                sh = EdgeShard.load(self._shard_dir(name), None if self.read_only else _edge_config(self._dim(name)))
            except Exception as e:  # the engine raises a bare Exception
                if "WouldBlock" in str(e):
                    raise StoreInUseError(
                        f"collection {name!r} in workspace {self.workspace} is in use by another "
                        f"process or store (its WAL is locked): {e}"
                    ) from e
                raise
            self._shards[name] = sh
            self._last_flush[name] = time.monotonic()
            logger.debug("opened shard %s", self._shard_dir(name))
            return sh

    def _dim(self, name: str) -> int:
        d = self._dims.get(name)
        if d is None:
            if not self._shard_exists(name):
                raise self._unknown(name)
            with open(os.path.join(self._shard_dir(name), "edge_config.json"), encoding="utf-8") as f:
                d = int(json.load(f)["vectors"][""]["size"])
            self._dims[name] = d
        return d

    def _maybe_flush(self, name: str, sh) -> None:
        now = time.monotonic()
        if now - self._last_flush.get(name, 0.0) >= self.flush_interval_s:
            sh.flush()
            self._last_flush[name] = now

    # -- interface
    def ensure_collection(self, name: str, dim: int, meta: dict) -> None:
        from qdrant_edge import EdgeShard

        self._check_writable()
        validate_name(name)
        dim = int(dim)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        full_meta = _merge_dim(meta, dim)
        with self._lock:
            if self._shard_exists(name):
                have = self._dim(name)
                if have != dim:
                    raise ValueError(
                        f"collection {name!r} exists with dim {have}, cannot use it with dim {dim}; "
                        "use another collection name or drop it first"
                    )
                if not os.path.exists(self._meta_path(name)):  # crashed between shard and meta
                    _write_json_atomic(self._meta_path(name), full_meta)
                return
            sdir = self._shard_dir(name)
            # A half-created shard (crash during create) would make create() fail: clear it.
            if os.path.isdir(sdir):
                shutil.rmtree(sdir)
            os.makedirs(sdir)
            sh = EdgeShard.create(sdir, _edge_config(dim))
            self._shards[name] = sh
            self._dims[name] = dim
            self._last_flush[name] = time.monotonic()
            _write_json_atomic(self._meta_path(name), full_meta)
            logger.info("created collection %s (dim %d) in %s", name, dim, self.root)

    def has_collection(self, name: str) -> bool:
        return self._shard_exists(validate_name(name))

    def collection_meta(self, name: str) -> dict | None:
        if not self.has_collection(name):
            return None
        try:
            with open(self._meta_path(name), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return {"dim": self._dim(name)}

    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:
        from qdrant_edge import Point, UpdateOperation

        self._check_writable()
        sh = self._shard(name)
        ids = _norm_ids(ids)
        v = _check_vectors(ids, vectors, self._dim(name), payloads)
        if not ids:
            return
        # One batched operation per call: the per-call overhead dominates small batches.
        # A row's memoryview hands the engine its float32s without a Python float per value
        # (tolist() plus reading the list back cost ~13 µs per 512-d vector, this ~8).
        points = [Point(i, memoryview(row), p) for i, row, p in zip(ids, v, payloads)]
        sh.update(UpdateOperation.upsert_points(points))
        self._maybe_flush(name, sh)

    def existing_ids(self, name: str, ids: list[str]) -> set[str]:
        if not ids or not self.has_collection(name):
            return set()
        sh = self._shard(name)
        ids = _norm_ids(ids)
        found: set[str] = set()
        for s in range(0, len(ids), 10_000):
            recs = sh.retrieve(ids[s : s + 10_000], with_payload=False, with_vector=False)
            found.update(str(r.id) for r in recs)
        return found

    def set_payload(self, name: str, ids: list[str], payload: dict) -> None:
        """Set these payload keys on existing points (other keys stay); through the WAL like upserts."""
        from qdrant_edge import UpdateOperation

        self._check_writable()
        if not ids:
            return
        sh = self._shard(name)
        sh.update(UpdateOperation.set_payload(_norm_ids(ids), payload))
        self._maybe_flush(name, sh)

    def search_batch(
        self,
        name: str,
        vectors: np.ndarray,
        limit: int,
        score_threshold: float | None = None,
        exclude_ids: list[list[str] | None] | None = None,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        """Several queries in one engine call: they share one pass over the segments."""
        from qdrant_edge import Filter, HasIdCondition, Query, QueryBatchRequest, QueryRequest

        sh = self._shard(name)
        _check_limit(limit)
        dim = self._dim(name)
        params = _edge_search_params()
        excludes = exclude_ids or [None] * len(vectors)
        requests = [
            QueryRequest(
                query=Query.Nearest(_check_query(v, dim).tolist()),
                limit=int(limit),
                filter=Filter(must_not=[HasIdCondition(set(_norm_ids(ex)))]) if ex else None,
                with_payload=True,
                with_vector=with_vectors,
                score_threshold=score_threshold,
                params=params,
            )
            for v, ex in zip(vectors, excludes)
        ]
        if not requests:
            return []
        results = sh.query_batch(QueryBatchRequest(requests))
        return [
            [Hit(str(p.id), float(p.score), p.payload or {}, _vec(p.vector) if with_vectors else None) for p in res]
            for res in results
        ]

    def retrieve(self, name: str, ids: list[str], with_vectors: bool = False) -> list[Hit]:
        sh = self._shard(name)
        if not ids:
            return []
        recs = sh.retrieve(_norm_ids(ids), with_payload=True, with_vector=with_vectors)
        return [Hit(str(r.id), 0.0, r.payload or {}, _vec(r.vector) if with_vectors else None) for r in recs]

    def scroll(self, name: str, with_vectors: bool = False, batch: int = 1000) -> Iterator[Hit]:
        from qdrant_edge import ScrollRequest

        sh = self._shard(name)  # raise now, not at the first next()
        _check_limit(batch)

        def gen() -> Iterator[Hit]:
            offset = None
            while True:
                recs, offset = sh.scroll(
                    ScrollRequest(offset=offset, limit=batch, with_payload=True, with_vector=with_vectors)
                )
                for r in recs:
                    yield Hit(str(r.id), 0.0, r.payload or {}, _vec(r.vector) if with_vectors else None)
                if offset is None or not recs:
                    return

        return gen()

    def count(self, name: str) -> int:
        from qdrant_edge import CountRequest

        return int(self._shard(name).count(CountRequest(exact=True)))

    def delete(self, name: str, ids: list[str]) -> int:
        from qdrant_edge import UpdateOperation

        self._check_writable()
        if not ids or not self.has_collection(name):
            return 0
        present = self.existing_ids(name, ids)
        if not present:
            return 0
        sh = self._shard(name)
        sh.update(UpdateOperation.delete_points(sorted(present)))
        self._maybe_flush(name, sh)
        return len(present)

    def drop_collection(self, name: str) -> bool:
        self._check_writable()
        cdir = self._coll_dir(name)
        with self._lock:
            sh = self._shards.pop(name, None)
            self._dims.pop(name, None)
            self._last_flush.pop(name, None)
            if sh is not None:
                sh.close()
            if not os.path.isdir(cdir):
                return False
            # Rename first so a crash mid-delete never leaves a half collection visible
            # (names cannot start with '.', so the trash folder is never listed).
            trash = os.path.join(self.root, f".trash-{name}-{uuid.uuid4().hex[:8]}")
            os.replace(cdir, trash)
            shutil.rmtree(trash, ignore_errors=True)
            logger.info("dropped collection %s from %s", name, self.root)
            return True

    def list_collections(self) -> list[CollectionInfo]:
        out = []
        for n in self._names():
            try:
                cnt: int | None = self.count(n)
            except StoreInUseError:
                logger.warning("collection %s is held by a writer; count unavailable", n)
                cnt = None
            out.append(CollectionInfo(n, self.collection_meta(n) or {}, cnt, self.disk_bytes(n)))
        return out

    def disk_bytes(self, name: str) -> int | None:
        cdir = self._coll_dir(name)
        return _du(cdir) if os.path.isdir(cdir) else None

    def wal_bytes(self, name: str) -> int | None:
        """The write-ahead log's share of disk_bytes. It does not grow with the collection: after
        a flush the engine keeps one closed 32 MiB segment and the open one (27-61 MB measured
        from 10k to 200k × 512)."""
        wal = os.path.join(self._shard_dir(name), "wal")
        return _du(wal) if os.path.isdir(wal) else None

    # -- extras
    def flush(self) -> None:
        """Persist every open shard's segments now (also truncates their WAL)."""
        with self._lock:
            for name, sh in self._shards.items():
                sh.flush()
                self._last_flush[name] = time.monotonic()

    def optimize(self, name: str) -> bool:
        """Build the HNSW index and quantised vectors of what was added (blocking).

        The engine holds the GIL while it builds (~15-35 s per 100k × 512 on 2 cores), so
        this runs when a client asks (``app.py index`` does once its images are stored),
        not behind the back of searches. Until then search is an exact scan.
        """
        self._check_writable()
        return bool(self._shard(name).optimize())

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for name, sh in list(self._shards.items()):
                try:
                    if not self.read_only:
                        sh.flush()
                    sh.close()
                except Exception:
                    logger.exception("closing shard %s failed", name)
            self._shards.clear()
            self._release_workspace_lock()

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: never leave the lock/WAL held by a dropped object
        try:
            self.close()
        except Exception:
            pass


# --------------------------------------------------------------------------- ServerStore


def _server_search_params():
    from qdrant_client import models

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
        from qdrant_client import QdrantClient

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
        from qdrant_client import models

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
        from qdrant_client import models

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
        from qdrant_client import models

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
        from qdrant_client import models

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

    def __enter__(self) -> ServerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
