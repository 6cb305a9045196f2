"""Evaluation alone, on synthetic vectors: how its cost grows with the collection.

    python -m imgsearch.compare.synthetic --images 12500,25000,50000,100000 --queries 2000
    python -m imgsearch.compare.synthetic --images 10000,100000 --decision

``--decision`` times what turns the numbers into a decision instead, for 3 encoders: the
Holm-adjusted pairwise tests, the bootstrap rank intervals, reciprocal-rank fusion of every pair
and all three, and the index-setting check (HNSW / int8 / binary recall@10 against exact search,
on at most 10,000 of the vectors).

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
    return {
        "images": n,
        "scores_m": len(rows) * (n - 1) / 1e6,
        "stratify_s": t1 - t0,
        "bootstrap_s": t2 - t1,
        "total_s": t2 - t0,
        "peak_mb": peak / 1e6,
        "auc": summary["auc"],
    }


def measure_decision(n: int, queries: int, dim: int, labels: int, n_boot: int, encoders: int = 3) -> dict:
    """The costs this part of compare adds, at n vectors (one encoder's, for the index check)."""
    from imgsearch.compare.fusion import fuse_runs
    from imgsearch.compare.quantization import index_recall
    from imgsearch.compare.ranks import rank_intervals
    from imgsearch.compare.significance import compare_pairs

    vectors, lab = clustered(n, dim, labels)
    rng = np.random.default_rng(2)
    q_rows = rng.choice(n, size=min(queries, n), replace=False)
    aps = {f"e{i}": list(np.clip(rng.normal(0.6 + 0.01 * i, 0.2, len(q_rows)), 0, 1)) for i in range(encoders)}
    t0 = time.perf_counter()
    compare_pairs({e: {str(i): ap for i, ap in enumerate(v)} for e, v in aps.items()}, n_boot)
    t1 = time.perf_counter()
    rank_intervals(aps, n_boot)
    t2 = time.perf_counter()
    labels_of = [f"l{x}" for x in lab]
    paths = [str(i) for i in range(n)]
    runs = [
        {
            "encoder": e,
            "status": "ok",
            "quality": {"labelled": True, "mAP@10": float(np.mean(v))},
            "per_query": {"ap": v, "top": [[int(x) for x in rng.choice(n, 10, replace=False)] for _ in q_rows]},
        }
        for e, v in aps.items()
    ]
    fuse_runs(runs, labels_of, paths, [[paths[r], labels_of[r]] for r in q_rows], {}, n_boot)
    t3 = time.perf_counter()
    check = index_recall(vectors)
    t4 = time.perf_counter()
    return {
        "images": n,
        "pairs_s": t1 - t0,
        "ranks_s": t2 - t1,
        "fusion_s": t3 - t2,
        "index_check_s": t4 - t3,
        "checked": check["vectors"],
        "recall": {k: v["recall@10"] for k, v in check["settings"].items()},
    }


def main_decision(args) -> None:
    print(f"{args.queries} queries, dim {args.dim}, {args.labels} labels, 3 encoders, {args.bootstrap} bootstrap resamples")
    print(
        "| images | pairs (3) + Holm s | rank intervals s | fusion (4 sets) s | index check s (vectors) | "
        "recall@10 hnsw / int8 / int8+rescore / binary / binary+rescore |"
    )
    print("|---:|---:|---:|---:|---:|---|")
    for n in args.images.split(","):
        r = measure_decision(int(n), args.queries, args.dim, args.labels, args.bootstrap)
        rec = " / ".join(f"{r['recall'][k]:.3f}" for k in ("hnsw", "int8", "int8+rescore", "binary", "binary+rescore"))
        print(
            f"| {r['images']:,} | {r['pairs_s']:.2f} | {r['ranks_s']:.2f} | {r['fusion_s']:.2f} | "
            f"{r['index_check_s']:.1f} ({r['checked']:,}) | {rec} |",
            flush=True,
        )
    print(f"process peak RSS {peak_rss_mb():.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="12500,25000,50000,100000")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--labels", type=int, default=10)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--decision", action="store_true", help="time the decision's parts instead (tests, ranks, fusion, index check)")
    args = ap.parse_args()
    if args.decision:
        return main_decision(args)
    rows = [measure(int(n), args.queries, args.dim, args.labels, args.bootstrap) for n in args.images.split(",")]
    base = rows[0]
    print(f"{args.queries} queries, dim {args.dim}, {args.labels} labels, {args.bootstrap} bootstrap resamples")
    print("| images | scores (M) | stratify s | bootstrap s | total s | s per M scores | × smallest (images ×) | peak MB beyond vectors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['images']:,} | {r['scores_m']:.0f} | {r['stratify_s']:.1f} | {r['bootstrap_s']:.1f} | {r['total_s']:.1f} | "
            f"{r['total_s'] / r['scores_m']:.3f} | {r['total_s'] / base['total_s']:.1f} ({r['images'] / base['images']:.0f}) | "
            f"{r['peak_mb']:.0f} |"
        )
    print(f"process peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
