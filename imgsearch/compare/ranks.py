"""Many encoders at once: Holm-adjusted p-values, the top group and bootstrap rank intervals.

With 7 encoders, 21 paired tests at the 5% level call about one pair different by chance, so
the p-values are Holm-adjusted across all pairs (statsmodels' ``multipletests(method="holm")``
gives the same numbers; tests/test_compare_ranks.py checks it). The **top group** is the
best encoder and every encoder not significantly worse than it after that adjustment; each
encoder's **rank interval** comes from resampling the queries (as MTEB/MIEB report rank
stability): in how many resamples does it come first, second, ...
"""

import logging
from typing import Optional

import numpy as np

from imgsearch.compare.significance import ALPHA, SEED, resample_weights

logger = logging.getLogger(__name__)


def _pair(pairs: list[dict], a: str, b: str) -> Optional[dict]:
    return next((p for p in pairs if {p["a"], p["b"]} == {a, b}), None)


def top_group(pairs: list[dict], means: dict[str, Optional[float]]) -> list[str]:
    """The best encoder by mean, then every encoder not significantly worse than it (best first)."""
    known = {n: m for n, m in means.items() if m is not None}
    ranked = sorted(known, key=lambda n: -known[n])
    if not ranked:
        return []
    best = ranked[0]
    group = [best]
    for other in ranked[1:]:
        p = _pair(pairs, best, other)
        beaten = p is not None and p["significant"] and (p["diff"] > 0) == (p["a"] == best)
        if not beaten:
            group.append(other)
    return group


def rank_intervals(per_query: dict[str, list[Optional[float]]], n_boot: int = 1000, seed: int = SEED) -> dict[str, dict]:
    """Per encoder: its rank by mean per-query value (1 = best) and the 95% interval of that rank
    over bootstrap resamples of the queries, plus how often it ranked first."""
    names = list(per_query)
    if not names:
        return {}
    values = np.array([[np.nan if v is None else v for v in per_query[n]] for n in names], dtype=np.float64)
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    w = resample_weights(values.shape[1], n_boot, seed)  # (n_boot, queries)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (w @ filled.T) / (w @ present.T.astype(np.float64))  # (n_boot, encoders)
        observed = filled.sum(1) / present.sum(1)
    means = np.where(np.isnan(means), -np.inf, means)
    # rank = 1 + how many encoders have a strictly higher mean: tied encoders share the better rank
    ranks = 1 + (means[:, None, :] > means[:, :, None]).sum(axis=2)  # (n_boot, encoders)
    obs = np.where(np.isnan(observed), -np.inf, observed)
    obs_rank = 1 + (obs[None, :] > obs[:, None]).sum(axis=1)
    out = {}
    for j, n in enumerate(names):
        lo, hi = np.percentile(ranks[:, j], [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
        out[n] = {"rank": int(obs_rank[j]), "ci": [int(np.floor(lo)), int(np.ceil(hi))], "first": round(float((ranks[:, j] == 1).mean()), 4)}
    return out


def winner_sentence(group: list[str], pairs: list[dict], n_encoders: int) -> dict:
    """The winner line, resting on the top group (Holm-adjusted paired tests)."""
    if not group:
        return {"encoder": None, "top_group": [], "sentence": "no labelled queries, so no winner"}
    best = group[0]
    if n_encoders < 2:
        return {"encoder": None, "top_group": group, "sentence": f"only {best} has quality numbers, so there is nothing to beat"}
    if len(group) == 1:
        return {
            "encoder": best,
            "top_group": group,
            "sentence": f"winner: {best} (best mAP@10, significantly better than every other encoder, Holm-adjusted)",
        }
    others = ", ".join(group[1:])
    return {
        "encoder": None,
        "top_group": group,
        "sentence": f"no clear winner: {best} has the best mAP@10 but is not significantly better than {others} "
        f"(Holm-adjusted); top group: {', '.join(group)}",
    }


def winner(pairs: list[dict], names: list[str], means: dict[str, Optional[float]]) -> dict:
    """The encoder with the best mean AP@10, named only if it significantly beats every other."""
    scored = {n: means.get(n) for n in names}
    return winner_sentence(top_group(pairs, scored), pairs, sum(v is not None for v in scored.values()))
