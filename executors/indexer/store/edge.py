"""Qdrant Edge embedded in this process: one ``EdgeShard`` per collection.

Each collection lives under ``<workspace>/qdrant/<collection>/shard/`` with its metadata in
``<workspace>/qdrant/<collection>/meta.json``; one process at a time holds the workspace.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from typing import Any

import numpy as np
from qdrant_edge import (
    CountRequest,
    EdgeShard,
    Point,
    QueryBatchRequest,
    ScrollRequest,
    UpdateOperation,
)

from .edge_config import _edge_config, query_requests
from .interface import (
    _NAME_RE,
    DEFAULT_QUANTIZATION,
    CollectionInfo,
    Excludes,
    Hit,
    StoreInUseError,
    UnknownCollectionError,
    VectorStore,
    _check_limit,
    _check_vectors,
    _merge_dim,
    _norm_ids,
    _vec,
    check_quantization,
    validate_name,
)
from .workspace import du, lock_workspace, unlock_workspace, write_json_atomic

logger = logging.getLogger(__name__)


class EdgeStore(VectorStore):
    """Qdrant Edge embedded in process: one EdgeShard per collection in the workspace.

    Durability: every update goes to the shard's write-ahead log before ``update()``
    returns, and the WAL lives in the kernel's page cache, so an acknowledged upsert
    survives kill -9 of this process without a flush (tested). ``flush()`` (persisting the
    segments, and letting the WAL be truncated) after every 256-vector batch cut upsert
    throughput markedly (`app.py bench`'s store rows), for no kill -9 benefit, so it
    runs at most every ``flush_interval_s`` seconds and on close(); that bounds WAL replay
    on restart to a few seconds of writes.
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
        self._lock_fd = lock_workspace(self.root, self.workspace)

    def _release_workspace_lock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            unlock_workspace(fd)

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
                config = None if self.read_only else _edge_config(self._dim(name), check_quantization(name, self._meta(name), None))
                sh = EdgeShard.load(self._shard_dir(name), config)
            except Exception as e:  # the engine raises a bare Exception
                if "WouldBlock" in str(e):
                    raise StoreInUseError(
                        f"collection {name!r} in workspace {self.workspace} is in use by another process or store (its WAL is locked): {e}"
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

        self._check_writable()
        validate_name(name)
        dim = int(dim)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        full_meta = _merge_dim(meta, dim)
        asked = full_meta.pop("quantization", None)
        with self._lock:
            if self._shard_exists(name):
                check_quantization(name, self._meta(name), asked)
                have = self._dim(name)
                if have != dim:
                    raise ValueError(
                        f"collection {name!r} exists with dim {have}, cannot use it with dim {dim}; use another collection name or drop it first"
                    )
                if not os.path.exists(self._meta_path(name)):  # crashed between shard and meta
                    write_json_atomic(self._meta_path(name), {**full_meta, "quantization": asked or DEFAULT_QUANTIZATION})
                return
            sdir = self._shard_dir(name)
            # A half-created shard (crash during create) would make create() fail: clear it.
            if os.path.isdir(sdir):
                shutil.rmtree(sdir)
            os.makedirs(sdir)
            full_meta["quantization"] = check_quantization(name, None, asked)
            sh = EdgeShard.create(sdir, _edge_config(dim, full_meta["quantization"]))
            self._shards[name] = sh
            self._dims[name] = dim
            self._last_flush[name] = time.monotonic()
            write_json_atomic(self._meta_path(name), full_meta)
            logger.info("created collection %s (dim %d) in %s", name, dim, self.root)

    def has_collection(self, name: str) -> bool:
        return self._shard_exists(validate_name(name))

    def _meta(self, name: str) -> dict | None:
        try:
            with open(self._meta_path(name), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def collection_meta(self, name: str) -> dict | None:
        if not self.has_collection(name):
            return None
        try:
            with open(self._meta_path(name), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return {"dim": self._dim(name)}

    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:

        self._check_writable()
        sh = self._shard(name)
        ids = _norm_ids(ids)
        v = _check_vectors(ids, vectors, self._dim(name), payloads)
        if not ids:
            return
        # One batched operation per call: the per-call overhead dominates small batches.
        # A row's memoryview hands the engine its float32s without a Python float per value
        # (tolist() would build and read back one per value).
        # (qdrant_edge's stub types the vector as list[float]; the engine reads any float32 buffer)
        points = [Point(i, memoryview(row), p) for i, row, p in zip(ids, v, payloads)]  # type: ignore[arg-type]
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

        self._check_writable()
        if not ids:
            return
        sh = self._shard(name)
        point_ids: list[int | uuid.UUID | str] = list(_norm_ids(ids))  # typed as qdrant_edge's (invariant) list
        sh.update(UpdateOperation.set_payload(point_ids, payload))
        self._maybe_flush(name, sh)

    def search_batch(
        self,
        name: str,
        vectors: np.ndarray,
        limit: int,
        score_threshold: float | None = None,
        exclude_ids: Excludes = None,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        """Several queries in one engine call: they share one pass over the segments."""

        sh = self._shard(name)
        _check_limit(limit)
        requests = query_requests(vectors, self._dim(name), limit, score_threshold, exclude_ids, with_vectors)
        if not requests:
            return []
        results = sh.query_batch(QueryBatchRequest(requests))
        return [[Hit(str(p.id), float(p.score), p.payload or {}, _vec(p.vector) if with_vectors else None) for p in res] for res in results]

    def retrieve(self, name: str, ids: list[str], with_vectors: bool = False) -> list[Hit]:
        sh = self._shard(name)
        if not ids:
            return []
        recs = sh.retrieve(_norm_ids(ids), with_payload=True, with_vector=with_vectors)
        return [Hit(str(r.id), 0.0, r.payload or {}, _vec(r.vector) if with_vectors else None) for r in recs]

    def scroll_page(self, name: str, offset: str | None, limit: int, with_vectors: bool = False) -> tuple[list[Hit], str | None]:
        sh = self._shard(name)
        _check_limit(limit)
        start = None if offset is None else _norm_ids([offset])[0]
        recs, nxt = sh.scroll(ScrollRequest(offset=start, limit=limit, with_payload=True, with_vector=with_vectors))
        hits = [Hit(str(r.id), 0.0, r.payload or {}, _vec(r.vector) if with_vectors else None) for r in recs]
        return hits, None if nxt is None else str(nxt)

    def count(self, name: str) -> int:

        return int(self._shard(name).count(CountRequest(exact=True)))

    def delete(self, name: str, ids: list[str]) -> int:

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
        return du(cdir) if os.path.isdir(cdir) else None

    def wal_bytes(self, name: str) -> int | None:
        """The write-ahead log's share of disk_bytes. It does not grow with the collection: after
        a flush the engine keeps one closed 32 MiB segment and the open one (27-61 MB measured
        from 10k to 200k × 512)."""
        wal = os.path.join(self._shard_dir(name), "wal")
        return du(wal) if os.path.isdir(wal) else None

    # -- extras
    def flush(self) -> None:
        """Persist every open shard's segments now (also truncates their WAL)."""
        with self._lock:
            for name, sh in self._shards.items():
                sh.flush()
                self._last_flush[name] = time.monotonic()

    def optimize(self, name: str) -> bool:
        """Build the HNSW index and quantised vectors of what was added (blocking).

        The engine holds the GIL while it builds (tens of seconds per 100k vectors), so
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

    def __del__(self) -> None:  # best effort: never leave the lock/WAL held by a dropped object
        try:
            self.close()
        except Exception:
            pass
