"""Evaluation alone, on synthetic vectors: how its cost grows with the collection.

    python -m imgsearch.compare.synthetic --images 12500,25000,50000,100000 --queries 2000

Clustered unit vectors (one cluster per label, plus noise) stand in for an encoder's; the
same code as `app.py compare` then scores every query against the whole collection
(blockwise), summarises, and bootstraps the intervals. Prints one row per size, with
the time per million scores and the ratio to the smallest size, and the evaluation's
peak memory beyond the vectors themselves (tracemalloc sees numpy's allocations).
"""

import argparse
import time
import tracemalloc

import numpy as np

from executors.stage import peak_rss_mb
from imgsearch.compare.significance import stratification_ci
from imgsearch.compare.stratify import stratify


def clustered(n: int, dim: int, labels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, labels, size=n)
    centres = rng.normal(size=(labels, dim)).astype(np.float32)
    v = rng.normal(scale=1.5, size=(n, dim)).astype(np.float32)
    v += centres[lab]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v, lab


def measure(n: int, queries: int, dim: int, labels: int, n_boot: int) -> dict:
    vectors, lab = clustered(n, dim, labels)
    rows = np.random.default_rng(1).choice(n, size=min(queries, n), replace=False)
    tracemalloc.start()
    t0 = time.perf_counter()
    st = stratify(vectors, lab, rows)
    summary = st.summary()
    t1 = time.perf_counter()
    stratification_ci(st, n_boot)
    t2 = time.perf_counter()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"images": n, "scores_m": len(rows) * (n - 1) / 1e6, "stratify_s": t1 - t0, "bootstrap_s": t2 - t1,
            "total_s": t2 - t0, "peak_mb": peak / 1e6, "auc": summary["auc"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="12500,25000,50000,100000")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--labels", type=int, default=10)
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    rows = [measure(int(n), args.queries, args.dim, args.labels, args.bootstrap) for n in args.images.split(",")]
    base = rows[0]
    print(f"{args.queries} queries, dim {args.dim}, {args.labels} labels, {args.bootstrap} bootstrap resamples")
    print("| images | scores (M) | stratify s | bootstrap s | total s | s per M scores | × smallest (images ×) | peak MB beyond vectors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['images']:,} | {r['scores_m']:.0f} | {r['stratify_s']:.1f} | {r['bootstrap_s']:.1f} | {r['total_s']:.1f} | "
              f"{r['total_s'] / r['scores_m']:.3f} | {r['total_s'] / base['total_s']:.1f} ({r['images'] / base['images']:.0f}) | "
              f"{r['peak_mb']:.0f} |")
    print(f"process peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
