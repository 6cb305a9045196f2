"""One encoder's evaluation: ranking metrics from the flow's answers, score stratification
from the stored vectors, and a 95% interval on every number.

Per-query results are kept compactly (image numbers into the run's image table and
scores), never as repeated paths and payloads.
"""

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Optional

import numpy as np

from executors.docs import ImageDoc
from imgsearch.compare.options import CompareOptions
from imgsearch.compare.queries import Item, QuerySet
from imgsearch.compare.significance import mean_ci, stratification_ci
from imgsearch.compare.stratify import label_codes, read_vectors, stratify
from imgsearch.flow import fit_parameter
from imgsearch.metrics import RankedQuery, average_precision_at_k, evaluate

logger = logging.getLogger(__name__)

SEARCH_CHUNK = 32
KS = (1, 5, 10)
MAP_K = 10
SCORE_DIGITS = 4


def search(gateway, collection: str, docs: list[ImageDoc], depth: int, info: Optional[dict] = None) -> list[ImageDoc]:
    params = {"collection": collection, "top_k": depth, "exclude_self": True, **fit_parameter(info or {})}
    out = []
    for start in range(0, len(docs), SEARCH_CHUNK):
        chunk = docs[start : start + SEARCH_CHUNK]
        out.extend(gateway.post("/search", chunk, params, request_size=len(chunk)))
    return out


def _ranked(doc: ImageDoc, label: Optional[str], n_relevant: int) -> RankedQuery:
    matches = doc.matches or []
    return RankedQuery(label, [m.get("label") for m in matches], [float(m.get("score", 0.0)) for m in matches], n_relevant)


def rank_queries(gateway, info: dict, collection: str, count: int, opts: CompareOptions, qs: QuerySet) -> dict:
    """Send every query through the flow; per-query hits, AP@10 and top-k as image numbers."""
    label_count = qs.label_counts()
    in_index = {it.hash for it in qs.items}
    number = {it.hash: i for i, it in enumerate(qs.items)}
    outside = opts.queries is not None
    # In-index queries: the flow ranks the top results, the stored vectors give every score
    # afterwards. Outside queries: the flow scores the first `score_depth` results.
    depth = max(1, min(opts.score_depth if outside else max(opts.top_k, MAP_K), count))
    docs = [ImageDoc(uri=q.path, hash=q.hash, blob=Path(q.path).read_bytes()) if outside else ImageDoc(uri=q.path, hash=q.hash)
            for q in qs.queries]
    t0 = time.perf_counter()
    answers = {d.hash: d for d in search(gateway, collection, docs, depth, info)}
    search_seconds = time.perf_counter() - t0
    per = {"ap": [], **{f"hit@{k}": [] for k in KS}, "top": [], "scores": [], "errors": {}}
    ranked = []
    for qi, q in enumerate(qs.queries):
        doc = answers.get(q.hash)
        n_rel = label_count.get(q.label, 0) - (1 if q.hash in in_index else 0) if q.label is not None else 0
        if doc is None or doc.error:
            per["errors"][qi] = doc.error if doc else "no answer"
            per["ap"].append(None)
            for k in KS:
                per[f"hit@{k}"].append(None)
            per["top"].append([])
            per["scores"].append([])
            continue
        rq = _ranked(doc, q.label, n_rel)
        ranked.append(rq)
        rel = rq.relevance
        useful = q.label is not None and n_rel > 0
        per["ap"].append(average_precision_at_k(rel, MAP_K, n_rel) if useful else None)
        for k in KS:
            per[f"hit@{k}"].append((1.0 if any(rel[:k]) else 0.0) if useful else None)
        top = (doc.matches or [])[: opts.top_k]
        per["top"].append([number.get(m.get("hash"), -1) for m in top])
        per["scores"].append([round(float(m.get("score", 0.0)), SCORE_DIGITS) for m in top])
    quality = evaluate(ranked, ks=KS, map_k=MAP_K) if outside else _ranking_quality(per, len(ranked))
    return {"per_query": per, "quality": quality, "search_ms_per_query": round(1000 * search_seconds / max(1, len(docs)), 3),
            "score_depth": depth if outside else count, "scores_cover_collection": (depth >= count - 1) if outside else True}


def _ranking_quality(per: dict, answered: int) -> dict:
    aps = [a for a in per["ap"] if a is not None]
    if not aps:
        return {"labelled": False, "queries": answered}
    out = {"labelled": True, "queries": answered, "queries_with_relevant": len(aps)}
    for k in KS:
        hits = [h for h in per[f"hit@{k}"] if h is not None]
        out[f"recall@{k}"] = round(float(np.mean(hits)), 6)
    out[f"mAP@{MAP_K}"] = round(float(np.mean(aps)), 6)
    return out


def ranking_cis(per: dict, n_boot: int) -> dict:
    cis = {f"recall@{k}": mean_ci(per[f"hit@{k}"], n_boot) for k in KS}
    cis[f"mAP@{MAP_K}"] = mean_ci(per["ap"], n_boot)
    return cis


def per_label_recall(per: dict, queries: list[Item]) -> dict[str, float]:
    """recall@1 per query label (queries with something relevant only)."""
    hits: dict[str, list[float]] = {}
    for q, h in zip(queries, per["hit@1"]):
        if q.label is not None and h is not None:
            hits.setdefault(q.label, []).append(h)
    return {lab: round(float(np.mean(v)), 6) for lab, v in sorted(hits.items())}


def text_quality(gateway, collection: str, count: int, opts: CompareOptions, qs: QuerySet) -> dict:
    """One text query per label (its name, or a caption from --captions), for text-capable encoders."""
    label_count = qs.label_counts()
    captions = json.loads(opts.captions.read_text()) if opts.captions else {}
    labels = sorted(lab for lab in label_count if lab is not None)
    texts = {lab: captions.get(lab) or lab.replace("-", " ").replace("_", " ") for lab in labels}
    depth = max(1, min(max(opts.top_k, MAP_K), count))
    by_text = {d.text: d for d in search(gateway, collection, [ImageDoc(text=t) for t in texts.values()], depth)}
    ranked = [_ranked(by_text[t], lab, label_count[lab]) for lab, t in texts.items()
              if t in by_text and not by_text[t].error]
    tq = evaluate(ranked, ks=KS, map_k=MAP_K) if ranked else {"labelled": False, "queries": 0}
    tq = {k: v for k, v in tq.items() if not k.startswith("histogram")}
    if ranked:
        ci = {f"recall@{k}": mean_ci([1.0 if any(r.relevance[:k]) else 0.0 for r in ranked], opts.bootstrap) for k in KS}
        ci[f"mAP@{MAP_K}"] = mean_ci([average_precision_at_k(r.relevance, MAP_K, r.n_relevant) for r in ranked], opts.bootstrap)
        tq["ci"] = ci
    return {"text_quality": tq, "text_queries": "captions file" if opts.captions else "label names"}


def stratify_collection(store, collection: str, qs: QuerySet, n_boot: int) -> tuple[dict, str]:
    """Stratification of every in-index query against the whole collection, with intervals;
    and the digest of the collection's content (its sorted content hashes)."""
    vectors, labels, hashes = read_vectors(store, collection)
    digest = content_digest(hashes)
    codes, _ = label_codes(labels)
    row = {h: i for i, h in enumerate(hashes)}
    rows = np.array([row[q.hash] for q in qs.queries if q.hash in row and q.label is not None], dtype=np.int64)
    if rows.size == 0 or vectors.size == 0:
        return {}, digest
    st = stratify(vectors, codes, rows)
    summary = st.summary()
    summary["ci"] = stratification_ci(st, n_boot)
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()}, digest


def content_digest(hashes: list[Optional[str]]) -> str:
    h = hashlib.sha256()
    for x in sorted(str(v) for v in hashes):
        h.update(x.encode() + b"\n")
    return h.hexdigest()
