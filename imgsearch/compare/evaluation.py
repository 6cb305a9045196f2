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
from typing import Any, Optional, Sequence

import numpy as np

from executors.contracts import EncoderInfo
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
LATENCY_QUERIES = 64


def search(gateway, collection: str, docs: list[ImageDoc], depth: int, info: Optional[EncoderInfo] = None) -> list[ImageDoc]:
    params = {"collection": collection, "top_k": depth, "exclude_self": True, **(fit_parameter(info) if info else {})}
    out = []
    for start in range(0, len(docs), SEARCH_CHUNK):
        chunk = docs[start : start + SEARCH_CHUNK]
        out.extend(gateway.post("/search", chunk, params, request_size=len(chunk)))
    return out


def _ranked(doc: ImageDoc, label: Optional[str], n_relevant: int) -> RankedQuery:
    matches = doc.matches or []
    return RankedQuery(label, [m.get("label") for m in matches], [float(m.get("score", 0.0)) for m in matches], n_relevant)


def _empty_per() -> dict:
    return {"ap": [], **{f"hit@{k}": [] for k in KS}, "top": [], "scores": [], "errors": {}}


def _add(per: dict, qi: int, rel: list[bool], n_rel: int, labelled: bool, top: list[int], scores: list[float]) -> None:
    useful = labelled and n_rel > 0
    per["ap"].append(average_precision_at_k(rel, MAP_K, n_rel) if useful else None)
    for k in KS:
        per[f"hit@{k}"].append((1.0 if any(rel[:k]) else 0.0) if useful else None)
    per["top"].append(top)
    per["scores"].append([round(float(x), SCORE_DIGITS) for x in scores])


def _missing(per: dict, qi: int, why: str) -> None:
    per["errors"][qi] = why
    _add(per, qi, [], 0, False, [], [])


def rank_outside_queries(gateway, info: EncoderInfo, collection: str, count: int, opts: CompareOptions, qs: QuerySet) -> dict:
    """Outside images (--queries DIR), sent as bytes through the flow, scored to --score-depth."""
    label_count = qs.label_counts()
    number: dict[Optional[str], int] = {it.hash: i for i, it in enumerate(qs.items)}  # looked up by a match's hash, if any
    depth = max(1, min(opts.score_depth, count))
    docs = [ImageDoc(uri=q.path, hash=q.hash, blob=Path(q.path).read_bytes()) for q in qs.queries]
    t0 = time.perf_counter()
    answers = {d.hash: d for d in search(gateway, collection, docs, depth, info)}
    search_seconds = time.perf_counter() - t0
    per, ranked = _empty_per(), []
    for qi, q in enumerate(qs.queries):
        doc = answers.get(q.hash)
        if doc is None or doc.error:
            _missing(per, qi, (doc.error if doc else None) or "no answer")
            continue
        n_rel = label_count.get(q.label, 0) if q.label is not None else 0
        rq = _ranked(doc, q.label, n_rel)
        ranked.append(rq)
        top = (doc.matches or [])[: opts.top_k]
        _add(
            per, qi, rq.relevance, n_rel, q.label is not None, [number.get(m.get("hash"), -1) for m in top], [float(m.get("score", 0.0)) for m in top]
        )
    return {
        "per_query": per,
        "quality": evaluate(ranked, ks=KS, map_k=MAP_K),
        "search_ms_per_query": round(1000 * search_seconds / max(1, len(docs)), 3),
        "score_depth": depth,
        "scores_cover_collection": depth >= count - 1,
    }


def search_latency(gateway, info: EncoderInfo, collection: str, qs: QuerySet, n: int = LATENCY_QUERIES) -> dict:
    """Search time through the gateway on a sample of the in-index queries (their ranking comes
    from the stored vectors, exactly: `evaluate_in_index`)."""
    docs = [ImageDoc(uri=q.path, hash=q.hash) for q in qs.queries[:n]]
    t0 = time.perf_counter()
    search(gateway, collection, docs, MAP_K, info)
    return {"search_ms_per_query": round(1000 * (time.perf_counter() - t0) / max(1, len(docs)), 3), "search_latency_queries": len(docs)}


def evaluate_in_index(store, collection: str, qs: QuerySet, opts: CompareOptions, data: Optional[tuple] = None) -> tuple[dict, str]:
    """Every in-index query against the whole collection from the stored vectors, in one blockwise
    pass: exact top-k (ranking metrics, grid) and score stratification, with 95% intervals.
    ``data``: the collection's (vectors, labels, hashes) when already read."""
    vectors, labels, hashes = data if data is not None else read_vectors(store, collection)
    digest = content_digest(hashes)
    codes, _ = label_codes(labels)
    row = {h: i for i, h in enumerate(hashes)}
    number = {it.hash: i for i, it in enumerate(qs.items)}
    item_of_row = np.array([number.get(h, -1) for h in hashes], dtype=np.int64)
    present = [qi for qi, q in enumerate(qs.queries) if q.hash in row]
    rows = np.array([row[qs.queries[qi].hash] for qi in present], dtype=np.int64)
    st = stratify(vectors, codes, rows, top_k=max(opts.top_k, MAP_K))
    per, j = _empty_per(), 0
    for qi in range(len(qs.queries)):
        if j >= len(present) or present[j] != qi:
            _missing(per, qi, "not in the collection")
            continue
        qcode = codes[rows[j]]
        top = st.top[j]
        rel = [bool(qcode >= 0 and c == qcode) for c in codes[top]]
        _add(per, qi, rel, int(st.pos_n[j]), bool(qcode >= 0), item_of_row[top[: opts.top_k]].tolist(), st.top_scores[j, : opts.top_k].tolist())
        j += 1
    quality = _ranking_quality(per, len(present))
    if quality.get("labelled"):
        summary = st.summary()
        cis = {**ranking_cis(per, opts.bootstrap), **stratification_ci(st, opts.bootstrap)}
        quality.update({k: (round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()}, ci=cis)
    return {"per_query": per, "quality": quality, "score_depth": len(hashes), "scores_cover_collection": True}, digest


def _ranking_quality(per: dict, answered: int) -> dict:
    aps = [a for a in per["ap"] if a is not None]
    if not aps:
        return {"labelled": False, "queries": answered}
    out: dict[str, Any] = {"labelled": True, "queries": answered, "queries_with_relevant": len(aps)}
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
    ranked = [_ranked(by_text[t], lab, label_count[lab]) for lab, t in texts.items() if t in by_text and not by_text[t].error]
    tq = evaluate(ranked, ks=KS, map_k=MAP_K) if ranked else {"labelled": False, "queries": 0}
    tq = {k: v for k, v in tq.items() if not k.startswith("histogram")}
    if ranked:
        ci = {f"recall@{k}": mean_ci([1.0 if any(r.relevance[:k]) else 0.0 for r in ranked], opts.bootstrap) for k in KS}
        ci[f"mAP@{MAP_K}"] = mean_ci([average_precision_at_k(r.relevance, MAP_K, r.n_relevant) for r in ranked], opts.bootstrap)
        tq["ci"] = ci
    return {"text_quality": tq, "text_queries": "captions file" if opts.captions else "label names"}


def content_digest(hashes: Sequence[Optional[str]]) -> str:
    h = hashlib.sha256()
    for x in sorted(str(v) for v in hashes):
        h.update(x.encode() + b"\n")
    return h.hexdigest()
