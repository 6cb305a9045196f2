"""QdrantIndexer: stores vectors in Qdrant (one collection per model) and searches them.

Embedded by default (the Qdrant engine in process, data under ``store_path``); a Qdrant
server or cluster when ``qdrant_url`` is set. Point ids derive from the content hash, so
re-indexing adds nothing and retries cannot duplicate.

Every request names its collection in ``parameters['collection']``; the client derives
the name from the dataset and the model and shows it to the user.
"""

import logging
import os
import time
from typing import Optional

import numpy as np
from docarray import DocList
from docarray.typing import ID
from jina import requests

from executors import limits
from executors.auth import PATH_FIELDS, paths_allowed
from executors.docs import ImageDoc, Reply, failed
from executors.flow_kwargs import flow_kwarg
from executors.indexer.store import EdgeStore, ServerStore, VectorStore, point_id
from executors.loader.filetypes import mime_by_name
from executors.stage import Stage

logger = logging.getLogger(__name__)

# What a point stores: only what cannot be derived, as converting payloads is most of an
# upsert's cost (every field is converted per point; see docs/performance.md). full_payload puts
# the rest back for every reader: ``model`` is the collection's, and ``label``, ``mime`` and
# ``paths`` are stored only where they differ from what the uri says (its folder, its
# extension's type, ``[uri]``). Points stored before this carry every field themselves.
STORED_FIELDS = ("uri", "hash", "width", "height", "size")


def open_store(store_path: str, qdrant_url: Optional[str] = None, api_key: Optional[str] = None) -> VectorStore:
    if qdrant_url:
        return ServerStore(qdrant_url, api_key=api_key or None)
    return EdgeStore(store_path)


def stored_paths(payload: dict) -> list[str]:
    """Every path recorded for a stored image: ``paths``, or its one ``uri`` where ``paths`` was
    not stored (one path only, or stored before ``paths`` existed)."""
    return list(payload.get("paths") or ([payload["uri"]] if payload.get("uri") else []))


def _by_name(uri: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """The label and MIME type a uri itself says: its folder's name (the loader's label for
    any file below the data root, see label_for) and its extension's type."""
    return (os.path.basename(os.path.dirname(uri)), mime_by_name(uri)) if uri else (None, None)


def point_payload(doc: ImageDoc, paths: list[str]) -> dict:
    """The payload stored for an image found at ``paths`` (see STORED_FIELDS)."""
    payload = {k: getattr(doc, k) for k in STORED_FIELDS}
    label, mime = _by_name(doc.uri)
    if doc.label != label:
        payload["label"] = doc.label
    if doc.mime != mime:
        payload["mime"] = doc.mime
    if paths != [doc.uri]:
        payload["paths"] = paths
    return payload


def full_payload(payload: dict, model: Optional[str] = None) -> dict:
    """Every field of a stored image, whatever its collection's age: the derived ones put back
    (``model`` from the caller, who knows the collection's)."""
    label, mime = _by_name(payload.get("uri"))
    return {"model": model, "label": label, "mime": mime, **payload, "paths": stored_paths(payload)}


def _match(hit, model: Optional[str], show_paths: bool) -> dict:
    """One search result; without the paths that name files on the server unless the caller
    may see them (executors/auth.py paths_allowed): /stored_paths guards the same list."""
    match = {**full_payload(hit.payload, model), "id": hit.id, "score": float(hit.score)}
    if not show_paths:
        for name in PATH_FIELDS:
            match.pop(name, None)
    return match


def _point_of(doc: ImageDoc) -> str:
    """The point id of a document's image; asked only of documents with a hash."""
    if not doc.hash:
        raise ValueError(f"document {doc.uri or doc.id} has no hash: it names no stored point")
    return point_id(doc.hash)


def _collection(parameters: Optional[dict]) -> str:
    name = (parameters or {}).get("collection")
    if not name:
        raise ValueError("request parameters must name the 'collection'")
    return str(name)


class QdrantIndexer(Stage):
    def __init__(
        self,
        store_path: str = "workspace",
        qdrant_url: Optional[str] = None,
        api_key: Optional[str] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        store_path = flow_kwarg("store_path", store_path, "workspace")
        qdrant_url = flow_kwarg("qdrant_url", qdrant_url, None)
        self.store = open_store(store_path, qdrant_url, flow_kwarg("api_key", api_key, None))
        self._models: dict[str, Optional[str]] = {}  # collection -> model, from its metadata
        logger.info("indexer: %s", f"Qdrant server {qdrant_url}" if qdrant_url else f"embedded Qdrant in {store_path}")

    def _model(self, name: str) -> Optional[str]:
        """The collection's model, cached: a server store would ask over the network each search."""
        if name not in self._models:
            self._models[name] = (self.store.collection_meta(name) or {}).get("model")
        return self._models[name]

    @requests(on="/scan")
    def mark_indexed(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> DocList[ImageDoc]:
        """Tell the client which scanned files are stored already, so it embeds only the rest."""
        name = _collection(parameters)
        hashed = [d for d in docs if not failed(d) and d.hash]
        stored = {}
        if hashed and self.store.has_collection(name):
            with self.timed("scan", len(hashed)):
                found = self.store.retrieve(name, [_point_of(d) for d in hashed])
            stored = {h.id: stored_paths(h.payload) for h in found}
        for doc in hashed:
            doc.indexed = _point_of(doc) in stored
            doc.paths = stored.get(_point_of(doc))  # so the client can tell a new path of a stored image
        return docs

    @requests(on="/index")
    def index(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> DocList[ImageDoc]:
        parameters = parameters or {}
        name = _collection(parameters)
        ready = [d for d in docs if not failed(d) and d.embedding is not None and d.hash]
        for doc in docs:
            if not failed(doc) and doc.embedding is None:
                doc.error = "no embedding reached the indexer"
        if ready:
            vectors = np.stack([np.asarray(d.embedding, dtype=np.float32) for d in ready])
            self.store.ensure_collection(
                name,
                vectors.shape[1],
                {
                    "model": ready[0].model,
                    "encoder": parameters.get("encoder_name"),  # not "encoder": Jina routes keys named after executors
                    "dataset": parameters.get("dataset"),
                    "dim": int(vectors.shape[1]),
                    # None: a new collection gets the default, an existing one keeps its own
                    "quantization": parameters.get("quantization"),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            )
            ids = [_point_of(d) for d in ready]
            with self.timed("upsert", len(ready)):
                # A retried request may re-store a point: keep the paths recorded for it already.
                before = {h.id: stored_paths(h.payload) for h in self.store.retrieve(name, ids)}
                payloads = []
                for pid, d in zip(ids, ready):
                    paths = before.get(pid, []) + [p for p in (d.paths or ([d.uri] if d.uri else [])) if p and p not in before.get(pid, [])]
                    payloads.append(point_payload(d, paths))
                self.store.upsert(name, ids, vectors, payloads)
            for doc in ready:
                doc.indexed = True
        for doc in docs:
            doc.embedding = doc.tensor = doc.blob = None  # the client needs only the outcome
        return docs

    @requests(on="/add_paths")
    def add_paths(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> Reply:
        """Record more paths (``doc.paths``) of stored images: duplicates under other names, or moved files."""
        name = _collection(parameters)
        wanted: dict[str, list[str]] = {}
        for doc in docs:
            if doc.hash and (doc.paths or doc.uri):
                wanted.setdefault(point_id(doc.hash), []).extend(doc.paths or ([doc.uri] if doc.uri else []))
        updated = 0
        if wanted and self.store.has_collection(name):
            for hit in self.store.retrieve(name, list(wanted)):
                have = stored_paths(hit.payload)
                new = [p for p in dict.fromkeys(wanted[hit.id]) if p not in have]
                if new:
                    self.store.set_payload(name, [hit.id], {"paths": have + new})
                    updated += 1
        return {"collection": name, "updated": updated}

    @requests(on="/stored_paths")
    def list_paths(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> DocList[ImageDoc]:
        """One page of the collection's stored images: ``limit`` points in id order after the
        point id ``after`` (none: from the first), each as a document with its id, hash and paths.
        The client pages with the last id it got, so memory stays flat at any collection size."""
        parameters = parameters or {}
        name = _collection(parameters)
        limit = max(1, min(int(parameters.get("limit", 1024)), 16384))
        after = parameters.get("after") or None
        out = DocList[ImageDoc]()
        if not self.store.has_collection(name):
            return out
        # The page starts at ``after`` itself (Qdrant's offset includes it): one more, and it dropped.
        page, _ = self.store.scroll_page(name, after, limit + 1 if after else limit)
        if after and page and page[0].id == str(after):
            page = page[1:]
        for hit in page[:limit]:
            out.append(ImageDoc(id=ID(hit.id), hash=hit.payload.get("hash"), paths=stored_paths(hit.payload)))
        return out

    @requests(on="/remove_paths")
    def remove_paths(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> DocList[ImageDoc]:
        """Forget paths (``doc.paths``) of stored images (``doc.hash``) whose files are gone or
        hold other bytes now; an image left with no path is deleted. Each document comes back
        with ``indexed`` True (kept, with its other paths), False (deleted) or None (not stored)."""
        name = _collection(parameters)
        gone: dict[str, set[str]] = {}
        for doc in docs:
            if doc.hash and doc.paths:
                gone.setdefault(point_id(doc.hash), set()).update(doc.paths)
        kept: dict[str, bool] = {}
        if gone and self.store.has_collection(name):
            deleted = []
            # Against the paths stored now, not the client's copy: an index run since may have added some.
            for hit in self.store.retrieve(name, list(gone)):
                have = stored_paths(hit.payload)
                keep = [p for p in have if p not in gone[hit.id]]
                kept[hit.id] = bool(keep)
                if not keep:
                    deleted.append(hit.id)
                elif len(keep) < len(have):
                    uri = hit.payload.get("uri")
                    self.store.set_payload(name, [hit.id], {"uri": uri if uri in keep else keep[0], "paths": keep})
            if deleted:
                with self.timed("delete", len(deleted)):
                    self.store.delete(name, deleted)
        for doc in docs:
            doc.indexed = kept.get(point_id(doc.hash)) if doc.hash else None
        return docs

    @requests(on="/search")
    def search(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> DocList[ImageDoc]:
        parameters = parameters or {}
        name = _collection(parameters)
        top_k = limits.top_k(parameters)
        show_paths = paths_allowed(parameters)
        threshold = parameters.get("score_threshold")
        threshold = None if threshold is None else float(threshold)
        exclude_self = bool(parameters.get("exclude_self", False))
        queries: list[tuple[ImageDoc, np.ndarray]] = []
        for doc in docs:
            if failed(doc):
                continue
            vector: Optional[np.ndarray] = doc.embedding
            if vector is None and doc.hash:
                # "More like this": search with the stored vector, no re-encoding.
                found = self.store.retrieve(name, [point_id(doc.hash)], with_vectors=True)
                if not found:
                    doc.error = f"no stored image with hash {doc.hash} in collection '{name}'"
                    continue
                vector = found[0].vector
            if vector is None:
                doc.error = "nothing to search with: no embedding, image or stored hash"
                continue
            queries.append((doc, np.asarray(vector, dtype=np.float32)))
        if queries:
            # One engine call for the whole request: concurrent single queries arrive here
            # together when the flow batches /search dynamically.
            excludes = [[point_id(d.hash)] if exclude_self and d.hash else None for d, _ in queries]
            with self.timed("search", len(queries)):
                results = self.store.search_batch(name, np.stack([v for _, v in queries]), top_k, threshold, excludes)
            model = self._model(name)
            for (doc, _), hits in zip(queries, results):
                doc.matches = [_match(hit, model, show_paths) for hit in hits]
        keep_vector = bool(parameters.get("return_query_vector", False))  # compare's zero-shot reads the prompts' vectors
        for doc in docs:
            if not keep_vector:
                doc.embedding = None
            doc.tensor = doc.blob = None
        return docs

    @requests(on="/optimize")
    def optimize(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> Reply:
        """Build the collection's search index over what was added (see VectorStore.optimize)."""
        name = _collection(parameters)
        if not self.store.has_collection(name):
            return {"collection": name, "optimized": False, "seconds": 0.0}
        started = time.perf_counter()
        with self.timed("optimize", 0):
            changed = self.store.optimize(name)
        return {"collection": name, "optimized": bool(changed), "seconds": round(time.perf_counter() - started, 3)}

    @requests(on="/count")
    def count(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> Reply:
        name = _collection(parameters)
        return {"collection": name, "count": self.store.count(name) if self.store.has_collection(name) else 0}

    @requests(on="/delete")
    def delete(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None, **kwargs) -> Reply:
        """Delete the documents' images (by hash) or, with ``drop: true``, the whole collection."""
        parameters = parameters or {}
        name = _collection(parameters)
        if parameters.get("drop"):
            self._models.pop(name, None)
            return {"collection": name, "dropped": self.store.drop_collection(name)}
        ids = [point_id(d.hash) for d in docs if d.hash]
        return {"collection": name, "deleted": self.store.delete(name, ids) if ids else 0}

    @requests(on="/stats")
    def stats(self, docs: DocList[ImageDoc], **kwargs) -> Reply:
        return {"collections": [{"name": c.name, "count": c.count, "disk_bytes": c.disk_bytes, **c.meta} for c in self.store.list_collections()]}

    def close(self) -> None:
        self.store.close()
        super().close()
