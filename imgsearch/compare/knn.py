"""kNN and linear-probe accuracy: how well an encoder's space separates the labels.

- **kNN, leave-one-out**: each query image is classified by its nearest stored images (itself left
  out, its near-duplicates too under ``--near-duplicates exclude``): k = 1, and k = 10 with each
  neighbour's vote weighted by its cosine similarity (ties go to the label first by name, as
  scikit-learn's ``KNeighborsClassifier`` does). Over the compare's queries, which are a
  label-stratified sample, against the whole collection: linear in the collection's size.
- **Linear probe**: scikit-learn's ``LogisticRegression`` on the unit vectors, stratified 5-fold
  cross-validation with a fixed seed, on a per-label sample (the first ``per_label`` images of each
  label by content hash, with ``PROBE_MAX`` images in all), so 100k images cost what 10k do. Its
  out-of-fold class probabilities, and the fold models' mean for the images outside the sample, are
  what the label audit reads.
"""

import logging
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from imgsearch.compare.proportion import (
    balanced_ci,
    bits,
    labelled_balanced_accuracy,
    proportion_ci,
)

logger = logging.getLogger(__name__)

KNN_K = 10
PROBE_FOLDS = 5
PROBE_SEED = 0
PROBE_PER_LABEL = 100  # images per label in the probe's sample ...
PROBE_MAX = 10_000  # ... and in all: past it, fewer per label (at least PROBE_MIN_PER_LABEL)
PROBE_MIN_PER_LABEL = 10
PROBE_C = 10.0  # unit vectors have small coordinates: a weak penalty
PROBE_MAX_ITER = 300


def knn_predict(top: np.ndarray, top_scores: np.ndarray, codes: np.ndarray, k: int, weighted: bool) -> np.ndarray:
    """Predicted label code per row of ``top`` (-1: no labelled neighbour)."""
    n_labels = int(codes.max()) + 1 if codes.size and codes.max() >= 0 else 0
    out = np.full(len(top), -1, np.int64)
    if not n_labels or not top.shape[1]:
        return out
    nb = codes[top[:, :k]]
    w = top_scores[:, :k].astype(np.float64) if weighted else np.ones(nb.shape)
    votes = np.zeros((len(top), n_labels))
    ok = nb >= 0
    np.add.at(votes, (np.nonzero(ok)[0], nb[ok]), w[ok])
    has = ok.any(1)
    out[has] = votes[has].argmax(1)  # ties: the smallest code, i.e. the label first by name
    return out


def knn_accuracy(top: np.ndarray, top_scores: np.ndarray, codes: np.ndarray, query_codes: np.ndarray, n_boot: int) -> dict:
    """accuracy and balanced accuracy of 1-NN and similarity-weighted 10-NN over the labelled queries."""
    lab = query_codes >= 0
    out: dict = {"queries": int(lab.sum()), "k": KNN_K}
    if not lab.any():
        return {"labelled": False}
    for name, k, weighted in (("1nn", 1, False), (f"{KNN_K}nn_weighted", KNN_K, True)):
        hits = (knn_predict(top[lab], top_scores[lab], codes, k, weighted) == query_codes[lab]).astype(np.int8)
        out[name] = {
            "accuracy": round(float(hits.mean()), 6),
            "balanced_accuracy": round(labelled_balanced_accuracy(hits, query_codes[lab]), 6),
            "ci": {"accuracy": proportion_ci(hits, n_boot), "balanced_accuracy": balanced_ci(hits, query_codes[lab], n_boot)},
            "hits": bits(hits),
        }
    return {"labelled": True, **out}


@dataclass
class ProbeResult:
    summary: dict
    pred_probs: Optional[np.ndarray]  # (n, labels) for every labelled image; None: no probe
    classes: np.ndarray  # the label codes of pred_probs' columns


def probe_sample(codes: np.ndarray, hashes: list[str], per_label: int = PROBE_PER_LABEL, max_total: int = PROBE_MAX) -> tuple[np.ndarray, int]:
    """(rows, per label): the first images of each label by content hash, labels with too few left out."""
    labels = [c for c in np.unique(codes[codes >= 0]) if (codes == c).sum() >= 2]
    if not labels:
        return np.zeros(0, np.int64), 0
    per = max(PROBE_MIN_PER_LABEL, min(per_label, max_total // len(labels)))
    rows = []
    for c in labels:
        members = np.nonzero(codes == c)[0]
        rows.extend(sorted(members.tolist(), key=lambda r: hashes[r])[:per])
    return np.array(sorted(rows), np.int64), per


def linear_probe(
    vectors: np.ndarray, codes: np.ndarray, hashes: list[str], n_boot: int, per_label: int = PROBE_PER_LABEL, max_total: int = PROBE_MAX
) -> ProbeResult:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    rows, per = probe_sample(codes, hashes, per_label, max_total)
    y = codes[rows]
    classes = np.unique(y)
    folds = min(PROBE_FOLDS, int(np.bincount(y).max()) if y.size else 0)
    if classes.size < 2 or folds < 2:
        return ProbeResult({"labelled": False, "reason": "fewer than two labels with two images"}, None, classes)
    x = vectors[rows]
    oof = np.zeros((len(rows), classes.size), np.float32)  # float32: 100k images × 1,000 labels is 400 MB
    col = {c: j for j, c in enumerate(classes)}
    labelled = np.nonzero(codes >= 0)[0]
    rest = np.setdiff1d(labelled, rows)
    rest_probs = np.zeros((len(rest), classes.size), np.float32)
    # One BLAS thread: lbfgs on a few thousand rows runs 50x slower when its threads fight the machine's
    # other work (measured: 0.09 s against 5.7 s for 112 images on 2 busy cores).
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # "the least populated class has fewer members than n_splits"; convergence
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=PROBE_SEED).split(x, y):
            clf = LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER).fit(x[train], y[train])
            cols = [col[c] for c in clf.classes_]
            oof[np.ix_(test, cols)] = clf.predict_proba(x[test])
            if len(rest):
                rest_probs[:, cols] += clf.predict_proba(vectors[rest]) / folds
    hits = (classes[oof.argmax(1)] == y).astype(np.int8)
    pred_probs = np.zeros((len(vectors), classes.size), np.float32)
    pred_probs[rows] = oof
    pred_probs[rest] = rest_probs
    summary = {
        "labelled": True,
        "images": int(len(rows)),
        "per_label": per,
        "labels": int(classes.size),
        "folds": folds,
        "seed": PROBE_SEED,
        "C": PROBE_C,
        "accuracy": round(float(hits.mean()), 6),
        "balanced_accuracy": round(labelled_balanced_accuracy(hits, y), 6),
        "ci": {"accuracy": proportion_ci(hits, n_boot), "balanced_accuracy": balanced_ci(hits, y, n_boot)},
        "hits": bits(hits),
    }
    return ProbeResult(summary, pred_probs, classes)
