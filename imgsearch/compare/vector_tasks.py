"""One encoder's tasks beyond retrieval, all from its stored vectors (no encoder runs again).

Near-duplicates first (they decide what a query may find under ``--near-duplicates exclude``),
then retrieval without them, kNN, the linear probe, the label audit, zero-shot classification
(text-capable encoders, from the prompts' vectors) and the 2-D map. Results name images by their
number in the run's image table, as the per-query results do.
"""

import logging
import time
from typing import Optional

import numpy as np

from imgsearch.compare import (
    embedding_map,
    knn,
    label_audit,
    near_duplicates,
    zero_shot,
)
from imgsearch.compare.evaluation import KS, MAP_K, ranking_cis
from imgsearch.compare.neighbours import nearest
from imgsearch.compare.options import CompareOptions
from imgsearch.compare.queries import QuerySet
from imgsearch.compare.stratify import label_codes
from imgsearch.metrics import average_precision_at_k

logger = logging.getLogger(__name__)

PAIRS_KEPT = 1_000  # near-duplicate pairs kept per encoder (best first); report.json lists REPORT_PAIRS across encoders
SAMPLE_ROWS = 2_000  # kNN rows with --queries DIR (outside queries): the first labelled images by content hash


def run_tasks(vectors: np.ndarray, labels: list, hashes: list, qs: QuerySet, opts: CompareOptions, rec: dict, text: Optional[dict] = None) -> dict:
    """Everything this module adds to one encoder's record; ``rec``'s per-query results and quality
    are rewritten in place when near-duplicates are excluded."""
    codes, names = label_codes(labels)
    number = {it.hash: i for i, it in enumerate(qs.items)}
    item = np.array([number.get(h, -1) for h in hashes], np.int64)
    row_of = {h: i for i, h in enumerate(hashes)}
    seconds: dict[str, float] = {}
    out: dict = {}
    t = time.perf_counter()
    pairs = near_duplicates.find_pairs(vectors, opts.near_duplicate_threshold)
    in_index = not opts.queries and "per_query" in rec
    qrows = (
        np.array([row_of.get(q.hash, -1) for q in qs.queries], np.int64)
        if in_index
        else np.array(sorted((r for r in range(len(hashes)) if codes[r] >= 0), key=lambda r: hashes[r])[:SAMPLE_ROWS], np.int64)
    )
    partners = near_duplicates.partners(pairs, qrows[qrows >= 0])
    same = codes[pairs.a] == codes[pairs.b]
    nd = {
        "threshold": opts.near_duplicate_threshold,
        "pairs": pairs.total,
        "same_label": int(same.sum()),
        "cross_label": int((~same & (codes[pairs.a] >= 0) & (codes[pairs.b] >= 0)).sum()),
        "method": pairs.method,
        "complete": pairs.complete,
        "notes": pairs.notes,
        "images_with_copies": len(set(pairs.a.tolist()) | set(pairs.b.tolist())),
        "queries_with_copies": len(partners),
        "mode": opts.near_duplicates,
        "list": [
            [int(item[a]), int(item[b]), round(float(s), 4)] for a, b, s in zip(pairs.a[:PAIRS_KEPT], pairs.b[:PAIRS_KEPT], pairs.score[:PAIRS_KEPT])
        ],
    }
    if in_index and (rec.get("quality") or {}).get("labelled"):
        nd["retrieval"] = _retrieval_both_ways(vectors, codes, qrows, partners, item, rec, opts)
    out["near_duplicates"] = nd
    seconds["near_duplicates"] = time.perf_counter() - t
    exclude = partners if opts.near_duplicates == "exclude" else None
    t = time.perf_counter()
    ok = qrows >= 0
    top, scores = nearest(vectors, qrows[ok], knn.KNN_K, exclude)
    out["knn"] = knn.knn_accuracy(top, scores, codes, codes[qrows[ok]], opts.bootstrap)
    seconds["knn"] = time.perf_counter() - t
    t = time.perf_counter()
    probe = knn.linear_probe(vectors, codes, hashes, opts.bootstrap)
    out["probe"] = probe.summary
    seconds["probe"] = time.perf_counter() - t
    t = time.perf_counter()
    mis = label_audit.mislabels(codes, probe.pred_probs, probe.classes)
    far, fence = label_audit.outliers(vectors, hashes)
    out["label_audit"] = {
        "mislabels": [
            {"image": int(item[m["row"]]), "suggested": names[m["suggested"]], "confidence": m["confidence"]} for m in mis if item[m["row"]] >= 0
        ],
        "outliers": [{"image": int(item[f["row"]]), "similarity": f["similarity"]} for f in far if item[f["row"]] >= 0],
        "outlier_fence": fence,
    }
    seconds["label_audit"] = time.perf_counter() - t
    if text:
        t = time.perf_counter()
        out["zero_shot"] = zero_shot.classify(vectors, codes, names, text, opts.bootstrap)
        seconds["zero_shot"] = time.perf_counter() - t
    t = time.perf_counter()
    out["map"] = embedding_map.project(vectors, hashes, item)
    seconds["map"] = time.perf_counter() - t
    out["task_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    return out


def _retrieval_both_ways(
    vectors: np.ndarray, codes: np.ndarray, qrows: np.ndarray, partners: dict[int, list[int]], item: np.ndarray, rec: dict, opts: CompareOptions
) -> dict:
    """recall@k and mAP@10 with the queries' near-duplicates among their candidates and without;
    under ``exclude`` the per-query results (and so the headline, grid and verdicts) become the latter."""
    per, quality = rec["per_query"], rec["quality"]
    kept = {k: quality.get(k) for k in (*[f"recall@{k}" for k in KS], f"mAP@{MAP_K}")}
    kept_ci = {k: (quality.get("ci") or {}).get(k) for k in kept}
    changed = {key: list(per[key]) for key in ("ap", *[f"hit@{k}" for k in KS], "top", "scores")}
    counts = np.bincount(codes[codes >= 0], minlength=max(1, int(codes.max()) + 1)) if (codes >= 0).any() else np.zeros(1, int)
    affected = [qi for qi, r in enumerate(qrows) if r >= 0 and int(r) in partners]
    if affected:
        rows = qrows[affected]
        top, scores = nearest(vectors, rows, max(opts.top_k, MAP_K), partners)
        for j, qi in enumerate(affected):
            r, qcode = int(rows[j]), codes[rows[j]]
            if qcode < 0:
                continue
            n_rel = int(counts[qcode]) - 1 - sum(1 for p in partners[r] if codes[p] == qcode)
            rel = [bool(c == qcode) for c in codes[top[j]]]
            useful = n_rel > 0
            changed["ap"][qi] = average_precision_at_k(rel, MAP_K, n_rel) if useful else None
            for k in KS:
                changed[f"hit@{k}"][qi] = (1.0 if any(rel[:k]) else 0.0) if useful else None
            changed["top"][qi] = item[top[j, : opts.top_k]].tolist()
            changed["scores"][qi] = [round(float(x), 4) for x in scores[j, : opts.top_k]]
    without = {f"recall@{k}": _mean(changed[f"hit@{k}"]) for k in KS} | {f"mAP@{MAP_K}": _mean(changed["ap"])}
    without_ci = ranking_cis(changed, opts.bootstrap)
    if opts.near_duplicates == "exclude" and affected:
        per.update(changed)
        quality.update(without)
        quality.setdefault("ci", {}).update(without_ci)
    return {"kept": kept, "kept_ci": kept_ci, "excluded": without, "excluded_ci": without_ci, "queries_changed": len(affected)}


def _mean(values: list) -> Optional[float]:
    v = [x for x in values if x is not None]
    return round(float(np.mean(v)), 6) if v else None
