"""How sure the numbers are: bootstrap intervals over queries and paired tests between encoders.

Every quality number is a mean over the same queries, so its 95% interval comes from
resampling those queries (percentile bootstrap, fixed seed: a rerun gives the same interval).
Two encoders are compared on the same queries' AP@10: the interval of the mean difference
by paired bootstrap and the p-value by a paired randomisation test (swap the two encoders'
values on random queries), the test ranx and TREC-style studies use. With several pairs the
p-values are Holm-adjusted across them (``adjust_pairs``); ranks.py names the top group.
"""

import logging
from functools import lru_cache
from typing import Optional, TypeVar

import numpy as np

from imgsearch.compare.stratify import COARSE, Stratification
from imgsearch.metrics import auc_from_counts

logger = logging.getLogger(__name__)

ALPHA = 0.05
SEED = 20240601
PERMUTATIONS = 10_000


@lru_cache(maxsize=4)  # the same queries are resampled for every number: drawn once (16 MB at 2,000 × 1,000)
def resample_weights(m: int, n_boot: int, seed: int = SEED) -> np.ndarray:
    """(n_boot, m): how often each of m queries is drawn in each bootstrap sample (read-only: shared)."""
    rng = np.random.default_rng(seed)
    w = rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot).astype(np.float64) if m else np.zeros((n_boot, 0))
    w.flags.writeable = False
    return w


def _interval(samples: np.ndarray) -> Optional[list[float]]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None
    lo, hi = np.percentile(samples, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return [round(float(lo), 6), round(float(hi), 6)]


def mean_ci(values: list[Optional[float]], n_boot: int = 1000, seed: int = SEED) -> Optional[list[float]]:
    """95% interval of the mean of per-query values (None values left out)."""
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if v.size < 2:
        return None
    w = resample_weights(v.size, n_boot, seed)
    return _interval(w @ v / v.size)


def stratification_ci(st: Stratification, n_boot: int = 1000, seed: int = SEED) -> dict[str, Optional[list[float]]]:
    """Intervals for AUC, separation and break gap, resampling the queries' score sets."""
    m = len(st.gap)
    if m < 2:
        return {}
    w = resample_weights(m, n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        neg = w @ st.coarse[:, :, 0].astype(np.float64)  # (n_boot, COARSE)
        pos = w @ st.coarse[:, :, 1].astype(np.float64)
        auc = auc_from_counts(pos, neg)
        # Coarse bins count near-ties as ties, a small bias: shift the resamples by it, so the
        # interval sits around the whole-resolution AUC.
        coarse_auc = auc_from_counts(st.coarse[:, :, 1].sum(0).astype(np.float64), st.coarse[:, :, 0].sum(0).astype(np.float64))
        fine_auc = st.summary()["auc"]
        if fine_auc is not None:
            auc = auc + (fine_auc - coarse_auc)
        separation = (w @ st.pos_sum) / (w @ st.pos_n) - (w @ st.neg_sum) / (w @ st.neg_n)
        has_gap = ~np.isnan(st.gap)
        gap = (w @ np.where(has_gap, st.gap, 0.0)) / (w @ has_gap.astype(np.float64))
    assert pos.shape[1] == COARSE
    return {"auc": _interval(auc), "separation": _interval(separation), "break_gap": _interval(gap)}


def paired_test(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = SEED) -> dict:
    """Mean of a − b over paired queries, its 95% bootstrap interval and a two-sided
    randomisation p-value."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    m = d.size
    if m < 2:
        return {"queries": m, "diff": float(d.mean()) if m else None, "ci": None, "p": None, "significant": False}
    observed = d.mean()
    ci = _interval(resample_weights(m, n_boot, seed) @ d / m)
    rng = np.random.default_rng(seed + 1)
    extreme, done = 0, 0
    while done < PERMUTATIONS:  # in chunks: the sign matrix stays a few MB
        n = min(PERMUTATIONS - done, max(1, 4_000_000 // m))
        signs = rng.integers(0, 2, size=(n, m), dtype=np.int8) * 2 - 1
        extreme += int((np.abs(signs @ d / m) >= abs(observed) - 1e-12).sum())
        done += n
    p = (extreme + 1) / (PERMUTATIONS + 1)
    return {
        "queries": m,
        "diff": round(float(observed), 6),
        "ci": ci,
        "p": round(float(p), 6),
        "significant": bool(p < ALPHA and ci is not None and (ci[0] > 0 or ci[1] < 0)),
    }


def _signed(x: float) -> str:
    return f"{x:+.3f}".replace("-", "−")


def verdict(a: str, b: str, test: dict, metric: str = "mAP@10", holm_of: int = 1) -> str:
    """One sentence a user can act on (``holm_of``: the pairs its p-value was adjusted over)."""
    if test.get("diff") is None or test.get("ci") is None:
        return f"too few shared queries to compare {a} and {b}"
    lo, hi = test["ci"]
    p = test["p"]
    ptext = ("p < 0.001" if p < 0.001 else f"p = {p:.3f}") + (f", Holm-adjusted over {holm_of} pairs" if holm_of > 1 else "")
    if not test["significant"]:
        return f"no significant difference between {a} and {b} ({metric} {_signed(test['diff'])}, 95% CI {_signed(lo)}…{_signed(hi)}, {ptext})"
    winner, loser, diff, lo, hi = (a, b, test["diff"], lo, hi) if test["diff"] > 0 else (b, a, -test["diff"], -hi, -lo)
    return f"{winner} beats {loser} by {_signed(diff)} {metric} (95% CI {_signed(lo)}…{_signed(hi)}, {ptext})"


# A query's key in per-query results: its number (a report's queries) or a name (synthetic.py's).
QueryKey = TypeVar("QueryKey", int, str)


def compare_pairs(per_query_ap: dict[str, dict[QueryKey, float]], n_boot: int = 1000) -> list[dict]:
    """Every pair of encoders on the queries both answered: {a, b, diff, ci, p (Holm-adjusted
    across the pairs), p_raw, significant, verdict}."""
    names = list(per_query_ap)
    tests = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(set(per_query_ap[a]) & set(per_query_ap[b]))
            test = paired_test(np.array([per_query_ap[a][q] for q in shared]), np.array([per_query_ap[b][q] for q in shared]), n_boot)
            tests.append({"a": a, "b": b, **test})
    return [{**t, "verdict": verdict(t["a"], t["b"], t, holm_of=len(tests))} for t in adjust_pairs(tests)]


def holm(pvalues: list[Optional[float]]) -> list[Optional[float]]:
    """Holm's step-down adjustment (family-wise error at ALPHA over the pairs given); None stays None."""
    known = {i: p for i, p in enumerate(pvalues) if p is not None}
    m = len(known)
    out: list[Optional[float]] = [None] * len(pvalues)
    running = 0.0
    for j, i in enumerate(sorted(known, key=lambda i: known[i])):
        running = max(running, min(1.0, (m - j) * known[i]))  # monotone: never below an earlier one
        out[i] = running
    return out


def adjust_pairs(pairs: list[dict]) -> list[dict]:
    """Replace each pair's p by its Holm-adjusted value (the raw one kept as ``p_raw``) and
    call it significant only when the adjusted p < ALPHA and its interval excludes zero."""
    adjusted = holm([p.get("p") for p in pairs])
    out = []
    for pair, p_adj in zip(pairs, adjusted):
        ci = pair.get("ci")
        sig = bool(p_adj is not None and p_adj < ALPHA and ci is not None and (ci[0] > 0 or ci[1] < 0))
        out.append({**pair, "p_raw": pair.get("p"), "p": None if p_adj is None else round(p_adj, 6), "significant": sig})
    return out
