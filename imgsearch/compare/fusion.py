"""Reciprocal-rank fusion: do two cheap encoders together beat one expensive one?

Each query's fused ranking scores an image by the sum, over the fused encoders, of
1 / (K + its rank in that encoder's list) (Cormack et al. 2009; ranx's ``fuse(method="rrf")``,
which tests/test_compare_fusion.py checks this against). The lists are the encoders' stored
top-k per query (``--top-k``, 10 by default), so fusing costs no new search; a fused row's cost is
the sum of its encoders'. Every pair of labelled encoders is fused, and all of them together.
"""

import itertools
import logging
from collections import Counter
from typing import Optional

import numpy as np

from imgsearch.compare.significance import ALPHA, mean_ci, paired_test
from imgsearch.metrics import average_precision_at_k

logger = logging.getLogger(__name__)

RRF_K = 60
MAP_K = 10
KS = (1, 5, 10)
MAX_MEMBERS = 8  # past it, only the fusion of all (8 encoders: 28 pairs)
SUMMED = ("ms_per_image", "peak_rss_mb", "ram_bytes_per_vector", "disk_bytes_per_vector", "index_s_per_10k", "price_per_1000")


def rrf(lists: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked lists of item numbers (negative: no item) → [(item, score)], best first,
    ties by item number."""
    scores: dict[int, float] = {}
    for ranked in lists:
        for rank, item in enumerate(ranked, 1):
            if item >= 0:
                scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _relevant_counts(image_labels: list, image_paths: list, queries: list) -> list[int]:
    """Per query: how many images share its label, itself excluded when it is in the collection."""
    count = Counter(lab for lab in image_labels if lab is not None)
    indexed = set(image_paths)
    return [0 if lab is None else count[lab] - (1 if path in indexed else 0) for path, lab in queries]


def fuse(members: list[dict], image_labels: list, image_paths: list, queries: list, n_boot: int) -> dict:
    """One fused row from its members' per-query top lists: per-query AP@10 and hits, quality, intervals."""
    n_rel = _relevant_counts(image_labels, image_paths, queries)
    ap: list[Optional[float]] = []  # None: a query with nothing relevant in the collection
    hits: dict[int, list[Optional[float]]] = {k: [] for k in KS}
    for qi, (_, qlab) in enumerate(queries):
        lists = [m["per_query"]["top"][qi] for m in members]
        if qlab is None or n_rel[qi] <= 0 or not any(lists):
            ap.append(None)
            for k in KS:
                hits[k].append(None)
            continue
        fused = [item for item, _ in rrf(lists)][:MAP_K]
        rel = [image_labels[i] == qlab for i in fused]
        ap.append(average_precision_at_k(rel, MAP_K, n_rel[qi]))
        for k in KS:
            hits[k].append(1.0 if any(rel[:k]) else 0.0)
    aps = [a for a in ap if a is not None]
    quality: dict = {"labelled": bool(aps), "queries": len(aps)}
    if aps:
        quality.update({f"recall@{k}": round(float(np.mean([h for h in hits[k] if h is not None])), 6) for k in KS})
        quality["mAP@10"] = round(float(np.mean(aps)), 6)
        quality["ci"] = {"mAP@10": mean_ci(ap, n_boot), "recall@1": mean_ci(hits[1], n_boot)}
    return {"members": [m["encoder"] for m in members], "quality": quality, "per_query_ap": ap}


def _name(members: list[str]) -> str:
    return "rrf(" + "+".join(members) + ")"


def fuse_runs(runs: list[dict], image_labels: list, image_paths: list, queries: list, cost: dict[str, dict], n_boot: int = 1000) -> dict:
    """Every pair of labelled encoders fused, and all of them; each set against the best single encoder."""
    ok = [r for r in runs if r.get("status") == "ok" and (r.get("quality") or {}).get("labelled")]
    if len(ok) < 2:
        return {}
    groups = [list(g) for g in itertools.combinations(ok, 2)] if len(ok) <= MAX_MEMBERS else []
    if len(ok) > 2:
        groups.append(ok)
    best = max(ok, key=lambda r: r["quality"]["mAP@10"])
    rows = {}
    for members in groups:
        row = fuse(members, image_labels, image_paths, queries, n_boot)
        pair = [(a, b) for a, b in zip(row.pop("per_query_ap"), best["per_query"]["ap"]) if a is not None and b is not None]
        test = paired_test(np.array([a for a, _ in pair]), np.array([b for _, b in pair]), n_boot) if pair else {}
        costs = [cost.get(m["encoder"]) or {} for m in members]
        summed = {k: (round(sum(c[k] for c in costs), 3) if all(c.get(k) is not None for c in costs) else None) for k in SUMMED}
        rows[_name(row["members"])] = {**row, "cost": summed, "against": best["encoder"], "test": test}
    top = max(rows.items(), key=lambda kv: kv[1]["quality"].get("mAP@10") or -1.0)
    return {"k": RRF_K, "depth": "each encoder's stored top-k", "rows": rows, "best": {"name": top[0], "sentence": _sentence(top[0], top[1], best)}}


def _sentence(name: str, row: dict, best: dict) -> str:
    t = row.get("test") or {}
    q, bq = row["quality"].get("mAP@10"), best["quality"]["mAP@10"]
    ms = row["cost"].get("ms_per_image")
    cost = f", {ms:.1f} ms per image together" if ms is not None else ""
    if t.get("p") is None or q is None:
        return f"Fusion: {name} could not be tested against {best['encoder']}."
    ptext = "p < 0.001" if t["p"] < 0.001 else f"p = {t['p']:.3f}"
    if t["p"] < ALPHA and t.get("significant") and t["diff"] > 0:
        return f"Fusing pays: {name} reaches mAP@10 {q:.3f} against {bq:.3f} for {best['encoder']} alone ({t['diff']:+.3f}, {ptext}{cost})."
    verdict = "worse than" if t.get("significant") and t["diff"] < 0 else "not significantly better than"
    return f"Fusing does not pay here: the best fusion, {name} (mAP@10 {q:.3f}{cost}), is {verdict} {best['encoder']} alone ({bq:.3f}, {ptext})."


def cost_rows(fusion: dict) -> dict[str, dict]:
    """Fused rows for the cost table: each fused set with its summed cost and its mAP@10."""
    out = {}
    for name, row in (fusion.get("rows") or {}).items():
        c = row["cost"]
        out[name] = {
            **c,
            "quality": row["quality"].get("mAP@10"),
            "quality_detail": row["quality"],
            "fused": True,
            "runtime": "fused",
            "ms_measured_on": "sum of the members'",
            "leaves_machine": False,
        }
    return out


def shown_rows(rows: dict[str, dict]) -> dict[str, dict]:
    """Of the fused rows, those worth a line in the short table: on the front, or the best."""
    fused = {n: r for n, r in rows.items() if r.get("fused")}
    if not fused:
        return {}
    best = max(fused, key=lambda n: fused[n].get("quality") or -1.0)
    return {n: r for n, r in fused.items() if r.get("pareto") or n == best}


def significant_note(test: Optional[dict]) -> str:
    if not test or test.get("p") is None:
        return "–"
    return ("yes: better" if test["diff"] > 0 else "yes: worse") if test["significant"] else "no"
