"""Compare's tasks beyond retrieval, alone, on synthetic vectors: how each cost grows.

    python -m imgsearch.compare.tasks_bench --images 10000,100000

Clustered unit vectors (compare/synthetic.py) with 1% planted near-duplicate copies, and a
label vector per label for zero-shot; then the same functions as `app.py compare` (near-duplicates,
kNN over --queries query rows, the probe, the label audit, zero-shot, the map, a top-group test).
Prints one row per size: seconds per task, and the process's peak RSS.
"""

import argparse
import logging
import time

import numpy as np

from executors.stage import peak_rss_mb
from imgsearch.compare import (
    embedding_map,
    knn,
    label_audit,
    near_duplicates,
    zero_shot,
)
from imgsearch.compare.neighbours import nearest
from imgsearch.compare.synthetic import clustered
from imgsearch.compare.top_group import top_group

logger = logging.getLogger(__name__)

TASKS = ("near_duplicates", "knn", "probe", "label_audit", "zero_shot", "map", "top_group")


def measure(n: int, queries: int, dim: int, labels: int) -> dict:
    vectors, codes = clustered(n, dim, labels)
    rng = np.random.default_rng(2)
    src = rng.choice(n, n // 100, replace=False)  # 1% re-saved copies
    vectors[: len(src)] = vectors[src] + rng.normal(scale=0.01, size=(len(src), dim)).astype(np.float32)
    vectors[: len(src)] /= np.linalg.norm(vectors[: len(src)], axis=1, keepdims=True)
    hashes = [f"{h:016x}" for h in rng.integers(0, 2**62, n)]
    item = np.arange(n)
    rows = np.sort(rng.choice(n, min(queries, n), replace=False))
    s: dict = {}
    t = time.perf_counter()
    pairs = near_duplicates.find_pairs(vectors)
    s["near_duplicates"] = time.perf_counter() - t
    logger.info("%d images: near_duplicates %.1f s, peak RSS %.0f MB", n, s["near_duplicates"], peak_rss_mb())
    t = time.perf_counter()
    top, sc = nearest(vectors, rows, knn.KNN_K, near_duplicates.partners(pairs, rows))
    k = knn.knn_accuracy(top, sc, codes, codes[rows], 1000)
    s["knn"] = time.perf_counter() - t
    logger.info("%d images: knn %.1f s, peak RSS %.0f MB", n, s["knn"], peak_rss_mb())
    t = time.perf_counter()
    probe = knn.linear_probe(vectors, codes, hashes, 1000)
    s["probe"] = time.perf_counter() - t
    logger.info("%d images: probe %.1f s, peak RSS %.0f MB", n, s["probe"], peak_rss_mb())
    t = time.perf_counter()
    label_audit.mislabels(codes, probe.pred_probs, probe.classes)
    label_audit.outliers(vectors, hashes)
    s["label_audit"] = time.perf_counter() - t
    logger.info("%d images: label_audit %.1f s, peak RSS %.0f MB", n, s["label_audit"], peak_rss_mb())
    t = time.perf_counter()
    centres = np.stack([vectors[codes == c].mean(0) for c in range(labels)])
    names = [str(c) for c in range(labels)]
    text = {"names": names, "weights": zero_shot.label_vectors(centres, labels), "templates": 1, "templates_given": 1, "prompts": labels}
    zs = zero_shot.classify(vectors, codes, names, text, 1000)
    s["zero_shot"] = time.perf_counter() - t
    logger.info("%d images: zero_shot %.1f s, peak RSS %.0f MB", n, s["zero_shot"], peak_rss_mb())
    t = time.perf_counter()
    embedding_map.project(vectors, hashes, item)
    s["map"] = time.perf_counter() - t
    logger.info("%d images: map %.1f s, peak RSS %.0f MB", n, s["map"], peak_rss_mb())
    t = time.perf_counter()
    from imgsearch.compare.proportion import from_bits

    hits = from_bits(zs["hits"]).astype(float)
    top_group({"a": hits, "b": np.roll(hits, 1), "c": hits[::-1].copy()})
    s["top_group"] = time.perf_counter() - t
    logger.info("%d images: top_group %.1f s, peak RSS %.0f MB", n, s["top_group"], peak_rss_mb())
    return {
        "images": n,
        "pairs": pairs.total,
        "planted": len(src),
        "method": pairs.method.split(" (")[0],
        "knn10": k["10nn_weighted"]["accuracy"],
        **s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="10000,100000")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--labels", type=int, default=10)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = [measure(int(n), args.queries, args.dim, args.labels) for n in args.images.split(",")]
    print(f"dim {args.dim}, {args.labels} labels, {args.queries} kNN queries, 1% planted copies; seconds per task")
    print("| images | " + " | ".join(TASKS) + " | total | near-dup pairs (planted) | how |")
    print("|---:|" + "---:|" * (len(TASKS) + 2) + "---|")
    for r in rows:
        print(
            f"| {r['images']:,} | " + " | ".join(f"{r[t]:.1f}" for t in TASKS) + f" | {sum(r[t] for t in TASKS):.1f} | "
            f"{r['pairs']:,} ({r['planted']:,}) | {r['method']} |"
        )
    print(f"process peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
