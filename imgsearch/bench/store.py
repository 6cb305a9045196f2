"""The vector store alone: the embedded Qdrant engine (EdgeStore) at growing sizes, and
qdrant-client's local mode for comparison (the two embedded choices; picked by this).

Vectors are clustered like image embeddings (1,000 centres plus noise, 512-d), payloads
the ones the indexer stores (``point_payload``). Per size: upserts/s in batches of 256
through the store layer (Python conversion included), exact-scan search before the index
is built, the time to build it (``optimize``), indexed search p50/p99 with recall@10
against exact NumPy search, and bytes on disk per vector against the 2,048 raw bytes of
float32 × 512.
"""

import hashlib
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from executors.docs import ImageDoc
from executors.indexer.executor import point_payload
from executors.indexer.store import EdgeStore, ServerStore, VectorStore, point_id

logger = logging.getLogger(__name__)

DIM = 512
BATCH = 256
QUERIES = 200


def make_data(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, DIM)).astype(np.float32)
    vecs = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, DIM)).astype(np.float32)
    hashes = [hashlib.sha256(i.to_bytes(8, "little")).hexdigest() for i in range(n)]
    uris = [f"/data/images/{i // 1000:04d}/{i:07d}.jpg" for i in range(n)]
    docs = (
        ImageDoc(uri=uri, hash=h, label=f"{i // 1000:04d}", width=640, height=480, model="bench", size=48_000, mime="image/jpeg")
        for i, (uri, h) in enumerate(zip(uris, hashes))
    )
    payloads = [point_payload(d, [uri]) for d, uri in zip(docs, uris)]  # what the indexer stores for a new image
    return [point_id(h) for h in hashes], vecs, payloads


def _fill(store: VectorStore, ids: list[str], vecs: np.ndarray, payloads: list[dict]) -> float:
    store.ensure_collection("bench", DIM, {"model": "bench"})
    started = time.perf_counter()
    for s in range(0, len(ids), BATCH):
        store.upsert("bench", ids[s : s + BATCH], vecs[s : s + BATCH], payloads[s : s + BATCH])
    return len(ids) / (time.perf_counter() - started)


def _queries(vecs: np.ndarray, n: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return vecs[rng.integers(0, len(vecs), n)] + 0.3 * rng.standard_normal((n, DIM)).astype(np.float32)


def _latency(store: VectorStore, queries: np.ndarray) -> tuple[float, float, list[list[str]]]:
    store.search("bench", queries[0], 10)  # warm-up
    lat, got = [], []
    for q in queries:
        t = time.perf_counter()
        hits = store.search("bench", q, 10)
        lat.append(time.perf_counter() - t)
        got.append([h.id for h in hits])
    return float(np.percentile(lat, 50) * 1e3), float(np.percentile(lat, 99) * 1e3), got


def _recall(ids: list[str], vecs: np.ndarray, queries: np.ndarray, got: list[list[str]]) -> float:
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    hits = 0
    for q, found in zip(queries, got):
        top = np.argsort(-(unit @ (q / np.linalg.norm(q))))[:10]
        hits += len({ids[i] for i in top} & set(found))
    return hits / (10 * len(queries))


def edge_row(n: int, optimize: bool = True) -> dict:
    ids, vecs, payloads = make_data(n)
    queries = _queries(vecs, QUERIES)
    with tempfile.TemporaryDirectory(prefix="bench_store_") as ws:
        store = EdgeStore(ws)
        try:
            ups = _fill(store, ids, vecs, payloads)
            p50, p99, got = _latency(store, queries)
            row = {
                "backend": "qdrant-edge (embedded, default)",
                "n": n,
                "upserts_per_second": round(ups),
                "exact_p50_ms": round(p50, 2),
                "exact_p99_ms": round(p99, 2),
                "exact_recall_at_10": round(_recall(ids, vecs, queries, got), 3),
            }
            if optimize:
                t = time.perf_counter()
                store.optimize("bench")
                row["optimize_seconds"] = round(time.perf_counter() - t, 1)
                p50, p99, got = _latency(store, queries)
                row.update(p50_ms=round(p50, 2), p99_ms=round(p99, 2), recall_at_10=round(_recall(ids, vecs, queries, got), 3))
            store.flush()
            disk = store.disk_bytes("bench") or 0
            row.update(
                disk_bytes=disk,
                wal_bytes=store.wal_bytes("bench") or 0,
                disk_bytes_per_vector=round(disk / n),
                disk_vs_raw=round(disk / (n * DIM * 4), 2),
            )
        finally:
            store.close()
    return row


def local_mode_row(n: int) -> dict:
    from qdrant_client import QdrantClient

    ids, vecs, payloads = make_data(n)
    queries = _queries(vecs, 50)
    with tempfile.TemporaryDirectory(prefix="bench_store_local_") as path:
        client = QdrantClient(path=path)
        store = ServerStore(client=client)
        try:
            ups = _fill(store, ids, vecs, payloads)
            p50, p99, got = _latency(store, queries)
            disk = sum(f.stat().st_blocks * 512 for f in Path(path).rglob("*") if f.is_file())
        finally:
            client.close()
    return {
        "backend": "qdrant-client local mode",
        "n": n,
        "upserts_per_second": round(ups),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "recall_at_10": round(_recall(ids, vecs, queries, got), 3),
        "disk_bytes_per_vector": round(disk / n),
        "disk_vs_raw": round(disk / (n * DIM * 4), 2),
    }


def _fit(lo: dict, hi: dict, size: Callable[[dict], int]) -> tuple[float, float]:
    """(× raw float32 bytes per vector, fixed MB) of the line through two rows' sizes."""
    per_raw = (size(hi) - size(lo)) / ((hi["n"] - lo["n"]) * DIM * 4)
    return round(per_raw, 3), round((size(lo) - per_raw * lo["n"] * DIM * 4) / 1e6, 1)


def disk_fit(rows: list[dict]) -> dict | None:
    """Disk as × raw bytes per vector + fixed MB, through the smallest and the largest embedded
    row: over all bytes, and without the write-ahead log, whose bounded size (EdgeStore.wal_bytes)
    depends on where each size leaves its open segment, not on the size."""
    edge = sorted((r for r in rows if "wal_bytes" in r), key=lambda r: r["n"])
    if len(edge) < 2 or edge[0]["n"] == edge[-1]["n"]:
        return None
    lo, hi = edge[0], edge[-1]
    per_raw, fixed_mb = _fit(lo, hi, lambda r: r["disk_bytes"])
    data_per_raw, data_fixed_mb = _fit(lo, hi, lambda r: r["disk_bytes"] - r["wal_bytes"])
    return {
        "per_raw": per_raw,
        "fixed_mb": fixed_mb,
        "data_per_raw": data_per_raw,
        "data_fixed_mb": data_fixed_mb,
        "wal_mb": [round(r["wal_bytes"] / 1e6, 1) for r in edge],
    }


def run_store(sizes: list[int], local_size: int) -> list[dict]:
    rows = [edge_row(n) for n in sizes]
    if local_size:
        rows.append(local_mode_row(local_size))
    return rows
