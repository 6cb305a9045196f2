"""How well scores separate same-label from other-label images, over the whole collection.

Every query is scored against every stored vector as a ``queries × collection`` matrix
product, a block of queries at a time, so memory is bounded by the block, never by
queries × images, and nothing is kept per score. Each score lands in one of ``BINS`` fine
bins over [-1, 1] (width 1.2e-6); AUC and the best-F1 threshold then come from the bins'
cumulative counts (``metrics.score_curve``), the 80-bar histograms from summing bins.
The same pass keeps each query's exact top-k, for the ranking metrics and the grid.
Per query it keeps a coarse histogram (``COARSE`` bins holding equal shares of a sample of the
scores, so they are fine where the scores are) and a few sums, which the bootstrap resamples.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import numpy as np

from imgsearch.metrics import score_curve

logger = logging.getLogger(__name__)

COARSE = 400  # per-query bins for the bootstrap of AUC: equal-mass bins of a sample of the scores
EDGE_SAMPLE_QUERIES = 64  # the queries whose scores place those bins
BINS = 400 * 4096
HIST_BINS = 80  # the report's histograms
BLOCK_SCORES = 1 << 21  # scores per block (a block of queries × the whole collection): ~100 MB of temporaries
MAX_BLOCK_QUERIES = 1024


@dataclass
class Stratification:
    """Whole-collection counts for one encoder, plus what the bootstrap needs per query."""

    pos: np.ndarray  # (BINS,) relevant scores per fine bin
    neg: np.ndarray
    pos_sum: np.ndarray  # (queries,) per-query sums and counts of relevant / irrelevant scores
    neg_sum: np.ndarray
    pos_n: np.ndarray
    neg_n: np.ndarray
    gap: np.ndarray  # (queries,) break gap, NaN where undefined
    coarse: np.ndarray  # (queries, COARSE, 2) int32: [:, :, 0] irrelevant, [:, :, 1] relevant
    coarse_edges: np.ndarray  # (COARSE - 1,) inner bin edges of ``coarse``
    top: np.ndarray  # (queries, k) rows of each query's best-scoring images, best first (the query excluded)
    top_scores: np.ndarray  # (queries, k)

    def __post_init__(self) -> None:
        # fine bin → coarse bin, looked up per score (a binary search per score costs 10× more)
        self.coarse_of_fine = np.searchsorted(self.coarse_edges, fine_edges(), side="right").astype(np.int32)

    def summary(self) -> dict:
        auc, thr = score_curve(self.pos, self.neg, fine_edges())
        n_pos, n_neg = int(self.pos_n.sum()), int(self.neg_n.sum())
        gaps = self.gap[~np.isnan(self.gap)]
        mean_pos = float(self.pos_sum.sum() / n_pos) if n_pos else None
        mean_neg = float(self.neg_sum.sum() / n_neg) if n_neg else None
        return {
            "auc": auc,
            "mean_relevant_score": mean_pos,
            "mean_irrelevant_score": mean_neg,
            "separation": mean_pos - mean_neg if mean_pos is not None and mean_neg is not None else None,
            "break_gap": float(gaps.mean()) if gaps.size else None,
            "break_gap_queries": int(gaps.size),
            "threshold": thr.to_json() if thr else None,
            "relevant_scores": n_pos,
            "irrelevant_scores": n_neg,
            "histogram_relevant": self.pos.reshape(HIST_BINS, -1).sum(1).astype(int).tolist(),
            "histogram_irrelevant": self.neg.reshape(HIST_BINS, -1).sum(1).astype(int).tolist(),
        }


def fine_edges() -> np.ndarray:
    """Each fine bin's lower edge: "score ≥ edge" keeps exactly the bins from there up."""
    return -1.0 + 2.0 * np.arange(BINS, dtype=np.float64) / BINS


def stratify(vectors: np.ndarray, labels: np.ndarray, query_rows: np.ndarray, top_k: int = 10, block_scores: int = BLOCK_SCORES) -> Stratification:
    """``vectors`` (n, d) unit rows, ``labels`` (n,) ints (-1: none), ``query_rows`` indices of
    the queries among them. Each query's own row is left out of its scores."""
    n, m = len(vectors), len(query_rows)
    block = min(MAX_BLOCK_QUERIES, max(1, block_scores // max(1, n)))
    st = Stratification(
        np.zeros(BINS, np.int64),
        np.zeros(BINS, np.int64),
        np.zeros(m),
        np.zeros(m),
        np.zeros(m, np.int64),
        np.zeros(m, np.int64),
        np.full(m, np.nan),
        np.zeros((m, COARSE, 2), np.int32),
        _coarse_edges(vectors, query_rows),
        np.zeros((m, min(top_k, max(0, n - 1))), np.int64),
        np.zeros((m, min(top_k, max(0, n - 1))), np.float32),
    )
    for start in range(0, m, block):
        rows = query_rows[start : start + block]
        _block(st, slice(start, start + len(rows)), vectors[rows] @ vectors.T, labels[rows], labels, rows)
    return st


def _coarse_edges(vectors: np.ndarray, query_rows: np.ndarray) -> np.ndarray:
    """COARSE - 1 edges splitting a sample of the scores (the first queries') into equal shares."""
    sample = (vectors[query_rows[:EDGE_SAMPLE_QUERIES]] @ vectors.T).ravel()
    sample = sample[:: max(1, sample.size // 250_000)]  # a quarter million is plenty to place 400 edges
    if sample.size == 0:
        return np.linspace(-1, 1, COARSE + 1)[1:-1]
    edges = np.quantile(sample.astype(np.float64), np.linspace(0, 1, COARSE + 1)[1:-1])
    return np.maximum.accumulate(edges)  # equal scores give equal edges: empty bins, which do no harm


def _block(st: Stratification, out: slice, scores: np.ndarray, qlabels: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> None:
    b = len(rows)
    np.clip(scores, -1.0, 1.0, out=scores)
    rel = (labels[None, :] == qlabels[:, None]) & (qlabels[:, None] >= 0)
    own = np.zeros_like(rel)
    own[np.arange(b), rows] = True
    rel &= ~own
    irr = ~rel & ~own
    keys = np.minimum(((scores.astype(np.float64) + 1.0) * (BINS / 2)).astype(np.int64), BINS - 1)
    # One bincount for both classes: key·2 + relevant; the query's own score goes to a spare slot.
    code = keys * 2 + rel
    code[own] = 2 * BINS
    counts = np.bincount(code.ravel(), minlength=2 * BINS + 1)[: 2 * BINS].reshape(BINS, 2)
    st.neg += counts[:, 0]
    st.pos += counts[:, 1]
    coarse = st.coarse_of_fine[keys] * 2 + rel + (np.arange(b, dtype=np.int32) * 2 * COARSE)[:, None]
    coarse[own] = b * 2 * COARSE
    st.coarse[out] = np.bincount(coarse.ravel(), minlength=b * 2 * COARSE + 1)[:-1].reshape(b, COARSE, 2)
    st.pos_sum[out] = np.sum(scores, axis=1, where=rel, dtype=np.float64)
    st.neg_sum[out] = np.sum(scores, axis=1, where=irr, dtype=np.float64)
    st.pos_n[out] = rel.sum(1)
    st.neg_n[out] = irr.sum(1)
    # Break gap: the first irrelevant result is the best-scoring irrelevant one; the last
    # relevant before it the lowest relevant score above it (none: the first result is irrelevant).
    first_irr = np.max(scores, axis=1, where=irr, initial=-np.inf)
    last_rel = np.min(scores, axis=1, where=rel & (scores > first_irr[:, None]), initial=np.inf)
    ok = np.isfinite(first_irr) & np.isfinite(last_rel)
    st.gap[out] = np.where(ok, last_rel - np.where(ok, first_irr, 0), np.nan)
    # The exact top-k of each query, the query itself excluded: what the ranking metrics use.
    k = st.top.shape[1]
    if k:
        scores[np.arange(b), rows] = -np.inf
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)  # by score, then by row: a stable order for ties
        st.top[out] = np.take_along_axis(part, order, axis=1)
        st.top_scores[out] = np.take_along_axis(vals, order, axis=1)


def read_vectors(store, collection: str, page: int = 1000) -> tuple[np.ndarray, list[Optional[str]], list[str]]:
    """(vectors, labels, hashes) of a collection, read with paged scrolls (embedded or server store)."""
    # Here, not at the top: the indexer module imports jina, which the pure functions above do not need.
    from executors.indexer.executor import full_payload

    total = store.count(collection)
    vectors: Optional[np.ndarray] = None
    labels: list[Optional[str]] = []
    hashes: list[str] = []
    for i, hit in enumerate(_points(store, collection, page)):
        if i >= total:
            break  # points added since the count: this evaluation is of the count's snapshot
        vec = np.asarray(hit.vector, dtype=np.float32)
        if vectors is None:
            vectors = np.empty((total, vec.size), np.float32)
        vectors[i] = vec
        labels.append(full_payload(hit.payload)["label"])  # stored only where the folder does not say it
        hashes.append(hit.payload.get("hash"))
    if vectors is None:
        return np.zeros((0, 0), np.float32), [], []
    return vectors[: len(hashes)], labels, hashes


def _points(store, collection: str, page: int) -> Iterator:
    return store.scroll(collection, with_vectors=True, batch=page)


def label_codes(labels: list[Optional[str]]) -> tuple[np.ndarray, list[str]]:
    names = sorted({lab for lab in labels if lab is not None})
    where = {lab: i for i, lab in enumerate(names)}
    return np.array([where.get(lab, -1) if lab is not None else -1 for lab in labels], dtype=np.int64), names
