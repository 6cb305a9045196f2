"""Across encoders: which differences are real, and where the encoders disagree by label."""

from imgsearch.compare.ranks import rank_intervals, top_group, winner_sentence
from imgsearch.compare.significance import compare_pairs

DISAGREEING_LABELS = 10


def label_disagreement(runs: list[dict]) -> dict:
    """recall@1 per label per encoder, and the labels where the encoders differ most."""
    ok = [r for r in runs if r.get("status") == "ok" and r.get("per_label_recall@1")]
    labels = sorted(set().union(*[set(r["per_label_recall@1"]) for r in ok])) if ok else []
    table = {lab: {r["encoder"]: r["per_label_recall@1"].get(lab) for r in ok} for lab in labels}
    spread = {
        lab: max(v for v in row.values() if v is not None) - min(v for v in row.values() if v is not None)
        for lab, row in table.items()
        if any(v is not None for v in row.values())
    }
    top = sorted((lab for lab in spread if spread[lab] > 0), key=lambda lab: (-spread[lab], lab))[:DISAGREEING_LABELS]
    return {"recall@1": table, "most_disagreeing": [{"label": lab, "spread": round(spread[lab], 6)} for lab in top]}


def significance(runs: list[dict], n_boot: int) -> dict:
    ok = [r for r in runs if r.get("status") == "ok" and (r.get("quality") or {}).get("labelled")]
    per_ap = {r["encoder"]: {i: a for i, a in enumerate(r["per_query"]["ap"]) if a is not None} for r in ok}
    pairs = compare_pairs(per_ap, n_boot)
    means = {r["encoder"]: r["quality"].get("mAP@10") for r in ok}
    group = top_group(pairs, means)
    return {
        "metric": "AP@10 per query",
        "test": f"paired randomisation test (10,000 sign swaps); 95% CI by paired bootstrap; p-values Holm-adjusted across the {len(pairs)} pairs",
        "correction": "holm",
        "pairs": pairs,
        "top_group": group,
        "ranks": rank_intervals({r["encoder"]: r["per_query"]["ap"] for r in ok}, n_boot),
        "winner": winner_sentence(group, pairs, len(means)),
    }
