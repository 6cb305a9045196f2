"""Micro-benchmark of the vector-store layer (executors/indexer/store.py).

EdgeStore (Qdrant Edge in process) at 10k and 100k random 512-d vectors: upsert
throughput in batches of 256, search latency (top-10, p50/p99) and bytes on disk per
vector against the 2048 raw bytes of a float32×512 vector. qdrant-client local mode
(ServerStore over QdrantClient(path=...)) at 10k only, for comparison: it is pure Python.

    .venv/bin/python benchmarks/store_bench.py [--sizes 10000 100000] [--optimize]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from executors.indexer.store import EdgeStore, ServerStore, VectorStore, point_id  # noqa: E402

DIM = 512
BATCH = 256
QUERIES = 200


def make_data(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    hashes = [hashlib.sha256(i.to_bytes(8, "little")).hexdigest() for i in range(n)]
    # A payload shaped like the indexer's (path, hash, size), so payload cost is counted.
    payloads = [{"path": f"/data/images/{i:07d}.jpg", "hash": h, "width": 640, "height": 480} for i, h in enumerate(hashes)]
    return [point_id(h) for h in hashes], vecs, payloads


def fill(store: VectorStore, name: str, ids: list[str], vecs: np.ndarray, payloads: list[dict]) -> float:
    """Upsert everything in batches; returns vectors per second."""
    store.ensure_collection(name, DIM, {"model": "bench", "dim": DIM})
    t = time.perf_counter()
    for s in range(0, len(ids), BATCH):
        store.upsert(name, ids[s : s + BATCH], vecs[s : s + BATCH], payloads[s : s + BATCH])
    return len(ids) / (time.perf_counter() - t)


def search_latency(store: VectorStore, name: str, n_queries: int = QUERIES) -> tuple[float, float]:
    qs = np.random.default_rng(1).standard_normal((n_queries, DIM)).astype(np.float32)
    store.search(name, qs[0], 10)  # warm-up (page cache, thread pool)
    lat = []
    for q in qs:
        t = time.perf_counter()
        store.search(name, q, 10)
        lat.append(time.perf_counter() - t)
    return float(np.percentile(lat, 50) * 1e3), float(np.percentile(lat, 99) * 1e3)


def row(label: str, n: int, ups: float, p50: float, p99: float, per_vec: float | None) -> None:
    disk = f"{per_vec:8.0f} B ({per_vec / (DIM * 4):.2f}x raw)" if per_vec is not None else "       n/a"
    print(f"{label:<34} {n:>7} {ups:>10.0f} {p50:>8.2f} {p99:>8.2f}   {disk}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--local-size", type=int, default=10_000, help="qdrant-client local mode size (0 = skip)")
    ap.add_argument("--optimize", action="store_true", help="also build HNSW and re-measure search (slow)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    print(f"{DIM}-d float32 (raw {DIM * 4} B/vector), upsert batches of {BATCH}, top-10 search over {QUERIES} queries")
    print(f"{'backend':<34} {'n':>7} {'upserts/s':>10} {'p50 ms':>8} {'p99 ms':>8}   disk/vector")
    for n in args.sizes:
        ids, vecs, payloads = make_data(n)
        # The second row is what flushing per upsert call would cost (WAL alone is kill -9 safe).
        variants = [("edge (flush every 5 s, default)", 5.0), ("edge (flush after every batch)", 0.0)]
        for label, interval in variants:
            with tempfile.TemporaryDirectory(prefix="store_bench_") as ws:
                store = EdgeStore(ws, flush_interval_s=interval)
                ups = fill(store, "bench", ids, vecs, payloads)
                p50, p99 = search_latency(store, "bench")
                store.flush()
                per_vec = store.disk_bytes("bench") / n
                row(label, n, ups, p50, p99, per_vec)
                if args.optimize and interval > 0:
                    t = time.perf_counter()
                    store.optimize("bench")
                    took = time.perf_counter() - t
                    p50, p99 = search_latency(store, "bench")
                    store.flush()
                    row(f"edge + HNSW (optimize {took:.0f} s)", n, float("nan"), p50, p99, store.disk_bytes("bench") / n)
                store.close()

    if args.local_size:
        from qdrant_client import QdrantClient

        n = args.local_size
        ids, vecs, payloads = make_data(n)
        with tempfile.TemporaryDirectory(prefix="store_bench_local_") as path:
            client = QdrantClient(path=path)
            store = ServerStore(client=client)
            ups = fill(store, "bench", ids, vecs, payloads)
            p50, p99 = search_latency(store, "bench", n_queries=50)
            disk = sum(f.stat().st_blocks * 512 for f in Path(path).rglob("*") if f.is_file()) / n
            row("qdrant-client local mode (path=)", n, ups, p50, p99, disk)
            client.close()


if __name__ == "__main__":
    main()
