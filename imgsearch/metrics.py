"""Retrieval metrics for `app.py compare`: pure functions over ranked lists and scores.

Nothing here touches a model, a flow or a file, so each number can be checked against a
hand-computed case (tests/test_metrics.py).

Definitions (one query = one ranked result list, the query itself already excluded):

- ``recall@k``: the fraction of queries with at least one relevant result among the first
  k (the "Recall@K" of image-retrieval benchmarks such as SOP/CUB; it is a hit rate).
  Queries with no relevant item in the collection are left out.
- ``AP@k`` (for ``mAP@k``): sum over ranks i ≤ k of precision@i · rel(i), divided by
  min(k, number of relevant items in the collection).
- ``ROC AUC``: the probability that a relevant (same-label) result scores higher than an
  irrelevant one, ties counting one half (Mann–Whitney U / (n_pos · n_neg)).
- ``break gap`` of one query: the score of the last relevant result ranked before the
  first irrelevant one minus the score of that first irrelevant result; only for queries
  whose first result is relevant and whose list holds an irrelevant result. Large gaps
  mean a score threshold can cut the list cleanly.
- ``suggest_threshold``: the score t that maximises F1 when "score ≥ t" is read as
  "relevant" over all (query, result) pairs; with its precision and recall.

AUC and threshold come from one sort and cumulative counts (``score_curve``), so millions
of scores cost a sort; imgsearch/compare/stratify.py feeds it binned counts instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Optional, Sequence

import numpy as np


def recall_at_k(relevance: Sequence[Sequence[bool]], k: int, n_relevant: Optional[Sequence[int]] = None) -> Optional[float]:
    """Hit rate at k over queries; ``n_relevant[i] == 0`` drops query i. None without queries."""
    hits = []
    for i, rel in enumerate(relevance):
        if n_relevant is not None and n_relevant[i] == 0:
            continue
        hits.append(1.0 if any(rel[:k]) else 0.0)
    return float(np.mean(hits)) if hits else None


def average_precision_at_k(rel: Sequence[bool], k: int, n_relevant: int) -> Optional[float]:
    """AP@k of one ranked list; None when nothing in the collection is relevant."""
    if n_relevant <= 0:
        return None
    found, total = 0, 0.0
    for i, r in enumerate(rel[:k], start=1):
        if r:
            found += 1
            total += found / i
    return total / min(k, n_relevant)


def mean_average_precision_at_k(relevance: Sequence[Sequence[bool]], k: int, n_relevant: Sequence[int]) -> Optional[float]:
    each = [average_precision_at_k(rel, k, n) for rel, n in zip(relevance, n_relevant)]
    aps = [a for a in each if a is not None]
    return float(np.mean(aps)) if aps else None


def auc_from_counts(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC AUC from per-value counts along the last axis (ascending values; equal values tie,
    counting one half). Rows of a 2-D input are separate score sets, e.g. bootstrap resamples."""
    neg_below = np.cumsum(neg, axis=-1) - neg
    return (pos * (neg_below + 0.5 * neg)).sum(-1) / (pos.sum(-1) * neg.sum(-1))


def score_curve(pos: np.ndarray, neg: np.ndarray, values: np.ndarray) -> tuple[Optional[float], Optional["Threshold"]]:
    """ROC AUC and the best-F1 cut from per-value counts: one cumulative pass, O(values).

    ``values`` ascending (distinct scores, or score bins' lower edges), ``pos[i]`` / ``neg[i]``
    how many relevant / irrelevant scores equal (fall in) ``values[i]``. Equal scores are
    ties: they count one half in the AUC and fall on the same side of every cut.
    """
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0:
        return None, None
    auc = float(auc_from_counts(pos, neg)) if n_neg > 0 else None
    tp = np.cumsum(pos[::-1])[::-1]  # kept when the cut is values[i]: every score ≥ values[i]
    fp = np.cumsum(neg[::-1])[::-1]
    f1 = np.where(tp > 0, 2 * tp / np.maximum(tp + fp + n_pos, 1), -1.0)
    best = f1.max()
    i = int(np.nonzero(f1 >= best - 1e-12)[0].max())  # among equal F1 the higher cut: fewer results kept
    return auc, Threshold(float(values[i]), float(tp[i] / (tp[i] + fp[i])), float(tp[i] / n_pos), float(f1[i]))


def _exact_counts(positive: Sequence[float], negative: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.asarray(positive, dtype=np.float64)
    neg = np.asarray(negative, dtype=np.float64)
    values, inverse = np.unique(np.concatenate([pos, neg]), return_inverse=True)
    return (np.bincount(inverse[: pos.size], minlength=values.size), np.bincount(inverse[pos.size :], minlength=values.size), values)


def roc_auc(positive: Sequence[float], negative: Sequence[float]) -> Optional[float]:
    """P(score of a relevant result > score of an irrelevant one), ties one half."""
    if len(positive) == 0 or len(negative) == 0:
        return None
    return score_curve(*_exact_counts(positive, negative))[0]


def break_gap(scores: Sequence[float], rel: Sequence[bool]) -> Optional[float]:
    """Score drop at the first irrelevant result, after a leading run of relevant ones."""
    if not rel or not rel[0]:
        return None
    for i, r in enumerate(rel):
        if not r:
            return float(scores[i - 1] - scores[i])
    return None


@dataclass
class Threshold:
    threshold: float
    precision: float
    recall: float
    f1: float

    def to_json(self) -> dict:
        return {k: round(v, 6) for k, v in asdict(self).items()}


def suggest_threshold(positive: Sequence[float], negative: Sequence[float]) -> Optional[Threshold]:
    """The cut (keep score ≥ t) with the best F1 over the given relevant/irrelevant scores.

    Candidates are the observed scores; among equal F1 the higher threshold wins (fewer
    results kept for the same quality). Recall is relative to the relevant scores given.
    """
    if len(positive) == 0:
        return None
    return score_curve(*_exact_counts(positive, negative))[1]


def histogram(values: Iterable[float], bins: int = 80, lo: float = -1.0, hi: float = 1.0) -> list[int]:
    arr = np.asarray(list(values), dtype=np.float64)
    counts, _ = np.histogram(np.clip(arr, lo, hi), bins=bins, range=(lo, hi))
    return counts.astype(int).tolist()


@dataclass
class RankedQuery:
    """One query's ranked results: labels and scores in rank order, the query excluded."""

    label: Optional[str]
    result_labels: list[Optional[str]]
    scores: list[float]
    n_relevant: int  # items in the collection with the query's label, the query excluded

    @property
    def relevance(self) -> list[bool]:
        return [self.label is not None and lab == self.label for lab in self.result_labels]


def evaluate(queries: Sequence[RankedQuery], ks: Sequence[int] = (1, 5, 10), map_k: int = 10) -> dict:
    """Every quality and stratification number for one encoder's queries.

    Relevant/irrelevant score distributions use each query's whole returned list (the
    caller decides how deep that is; the whole collection makes the AUC exact).
    """
    labelled = [q for q in queries if q.label is not None]
    if not labelled:
        return {"labelled": False, "queries": len(queries)}
    rels = [q.relevance for q in labelled]
    nrel = [q.n_relevant for q in labelled]
    pos = [s for q, rel in zip(labelled, rels) for s, r in zip(q.scores, rel) if r]
    neg = [s for q, rel in zip(labelled, rels) for s, r in zip(q.scores, rel) if not r]
    gaps = [g for g in (break_gap(q.scores, rel) for q, rel in zip(labelled, rels)) if g is not None]
    thr = suggest_threshold(pos, neg)
    out = {
        "labelled": True,
        "queries": len(labelled),
        "queries_with_relevant": sum(1 for n in nrel if n > 0),
        **{f"recall@{k}": recall_at_k(rels, k, nrel) for k in ks},
        f"mAP@{map_k}": mean_average_precision_at_k(rels, map_k, nrel),
        "auc": roc_auc(pos, neg),
        "mean_relevant_score": float(np.mean(pos)) if pos else None,
        "mean_irrelevant_score": float(np.mean(neg)) if neg else None,
        "separation": float(np.mean(pos) - np.mean(neg)) if pos and neg else None,
        "break_gap": float(np.mean(gaps)) if gaps else None,
        "break_gap_queries": len(gaps),
        "threshold": thr.to_json() if thr else None,
        "relevant_scores": len(pos),
        "irrelevant_scores": len(neg),
        "histogram_relevant": histogram(pos),
        "histogram_irrelevant": histogram(neg),
    }
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()}


def per_query_ap(query: RankedQuery, k: int = 10) -> Optional[float]:
    return average_precision_at_k(query.relevance, k, query.n_relevant)
