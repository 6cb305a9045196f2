"""A task's top group: the best encoder and every encoder not significantly worse than it.

The best mean is tested against each other encoder on the same items (per-query AP@10: the paired
randomisation test and paired bootstrap interval of compare/significance.py; per-image hits: the
exact McNemar test, which is that randomisation test's exact form for 0/1 values), and the p-values are Holm-corrected over
those comparisons: an encoder leaves the top group only when its Holm-adjusted p < 0.05 and the
interval of the difference excludes zero. (Issue 24 brings Holm correction to the retrieval
verdicts; the lead can make this and that one function.)
"""

import logging

import numpy as np

from imgsearch.compare.significance import ALPHA, SEED, _interval, paired_test

logger = logging.getLogger(__name__)

MAX_ITEMS = 20_000  # items per randomisation test (the first ones): keeps 10,000 sign swaps to a few seconds


def paired_binary_test(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = SEED) -> dict:
    """For 0/1 values (hit or miss per image): the exact McNemar test on the discordant items, and the
    paired bootstrap of the difference drawn as a multinomial over the four (a, b) cells — the
    same distributions as the randomisation test and the item bootstrap, without their m-wide matrices."""
    from scipy.stats import binomtest

    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    m = a.size
    if m < 2:
        return {"queries": m, "diff": None, "ci": None, "p": None, "significant": False}
    cells = np.array([(a & b).sum(), (a & ~b).sum(), (~a & b).sum(), (~a & ~b).sum()], np.float64)
    draws = np.random.default_rng(seed).multinomial(m, cells / m, size=n_boot)
    ci = _interval((draws[:, 1] - draws[:, 2]) / m)
    discordant = int(cells[1] + cells[2])
    p = binomtest(int(cells[1]), discordant, 0.5).pvalue if discordant else 1.0
    diff = (cells[1] - cells[2]) / m
    return {
        "queries": m,
        "diff": round(float(diff), 6),
        "ci": ci,
        "p": round(float(p), 6),
        "significant": bool(p < ALPHA and ci is not None and (ci[0] > 0 or ci[1] < 0)),
    }


def _binary(v: np.ndarray) -> bool:
    return bool(np.isin(v, (0.0, 1.0)).all())


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the given order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def top_group(values: dict[str, np.ndarray], n_boot: int = 1000, metric: str = "") -> dict:
    """``values``: per encoder, its per-item values on the same items. Encoders whose item count
    differs from the best one's cannot be paired and are left out of the test (and said so)."""
    means = {e: float(np.mean(v)) for e, v in values.items() if len(v)}
    if not means:
        return {"best": None, "group": [], "sentence": "no values to compare"}
    best = max(means, key=lambda e: (means[e], e))
    others = [e for e in means if e != best and len(values[e]) == len(values[best])]
    unpaired = [e for e in means if e != best and e not in others]
    tests = {
        e: (
            paired_binary_test(values[best], values[e], n_boot)
            if _binary(values[best]) and _binary(values[e])
            else paired_test(values[best][:MAX_ITEMS], values[e][:MAX_ITEMS], n_boot)
        )
        for e in others
    }
    testable = [e for e in others if tests[e].get("p") is not None]
    adjusted = dict(zip(testable, holm([tests[e]["p"] for e in testable])))
    group = [best]
    for e in others:
        t = tests[e]
        worse = e in adjusted and adjusted[e] < ALPHA and t["ci"] is not None and t["ci"][0] > 0
        if not worse:
            group.append(e)
    comparisons = [
        {
            "encoder": e,
            "diff": tests[e].get("diff"),
            "ci": tests[e].get("ci"),
            "p": tests[e].get("p"),
            "p_holm": round(adjusted[e], 6) if e in adjusted else None,
        }
        for e in others
    ]
    if len(means) == 1:
        sentence = f"only {best} has this number"
    elif len(group) == 1 and not unpaired:
        sentence = f"{best} is best{' on ' + metric if metric else ''}, significantly better than every other encoder (Holm-corrected)"
    else:
        sentence = f"top group: {', '.join(group)} (best {best}; the others in it are not significantly worse, Holm-corrected)"
    if unpaired:
        sentence += f"; not tested (other items): {', '.join(unpaired)}"
    return {"best": best, "group": group, "comparisons": comparisons, "sentence": sentence}
