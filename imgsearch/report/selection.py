"""What the report shows from the per-query results: grid rows, wins, each query's matches.

Per-query results are compact (report.json): per encoder, aligned with the query list,
AP@10, hits, and the top-k as numbers into ``result["images"]`` with their scores.
"""

import random
from typing import Optional

GRID_SEED = 0


def ok_runs(result: dict) -> list[dict]:
    return [r for r in result["encoders"] if r.get("status") == "ok"]


def matches(result: dict, rec: dict, qi: int, k: int) -> list[dict]:
    """Query ``qi``'s first k results for one encoder: path, label, score, relevant."""
    images = result["images"]
    qlabel = result["queries"]["list"][qi][1]
    per = rec["per_query"]
    out = []
    for n, score in zip(per["top"][qi][:k], per["scores"][qi][:k]):
        path = images["paths"][n] if n >= 0 else None
        label = images["labels"][n] if n >= 0 else None
        out.append({"path": path, "label": label, "score": score, "relevant": None if qlabel is None else label == qlabel})
    return out


def _aps(result: dict) -> dict[str, list[Optional[float]]]:
    return {r["encoder"]: r["per_query"]["ap"] for r in ok_runs(result)}


def _answered(result: dict) -> list[int]:
    ok = ok_runs(result)
    n = len(result["queries"]["list"])
    return [qi for qi in range(n) if all(r["per_query"]["top"][qi] for r in ok)] if ok else []


def _spread(aps: dict[str, list], qi: int) -> float:
    vals = [v[qi] for v in aps.values() if v[qi] is not None]
    return max(vals) - min(vals) if len(vals) > 1 else 0.0


def _row(result: dict, qi: int, why: str) -> dict:
    k = result["grid"]["k"]
    path, label = result["queries"]["list"][qi]
    cells, aps = {}, {}
    for r in ok_runs(result):
        cells[r["encoder"]] = matches(result, r, qi, k)
        if r["per_query"]["ap"][qi] is not None:
            aps[r["encoder"]] = r["per_query"]["ap"][qi]
    best = max(aps.values()) if aps else None
    winners = [e for e, a in aps.items() if best is not None and abs(a - best) < 1e-9]
    tie = len(aps) > 1 and len(winners) == len(aps)
    return {"query": path, "label": label, "qi": qi, "why": why, "cells": cells, "ap": aps, "winner": [] if tie else winners, "tie": tie}


def grid_rows(result: dict) -> list[dict]:
    """``grid.rows`` queries: where the encoders' AP@10 differ most, plus a quarter drawn at
    random (seeded); then one row for each of the labels where encoders disagree most."""
    n_rows = result["grid"]["rows"]
    answered = _answered(result)
    if n_rows <= 0 or not answered:
        return []
    aps = _aps(result)
    n_random = n_rows // 4 if len(aps) > 1 else n_rows
    ranked = sorted(answered, key=lambda qi: (-_spread(aps, qi), qi))
    top = ranked[: n_rows - n_random]
    rest = sorted(set(answered) - set(top))
    drawn = sorted(random.Random(GRID_SEED).sample(rest, min(n_random, len(rest))))
    rows = [_row(result, qi, "encoders disagree most") for qi in top] + [_row(result, qi, "random") for qi in drawn]
    by_qi = {row["qi"]: row for row in rows}
    labels = result["queries"]["list"]
    for item in (result.get("labels") or {}).get("most_disagreeing", []):
        why = f"label '{item['label']}' (recall@1 spread {item['spread']:.2f})"
        of_label = [qi for qi in ranked if labels[qi][1] == item["label"]]
        shown = next((qi for qi in of_label if qi in by_qi), None)
        if shown is not None:  # the label already has a row: say so there rather than repeat it
            by_qi[shown]["why"] += "; " + why
        elif of_label:
            by_qi[of_label[0]] = _row(result, of_label[0], why)
            rows.append(by_qi[of_label[0]])
    return rows


def winner_counts(result: dict) -> dict[str, float]:
    """Over every query (not only the grid's): wins by AP@10, a tie split evenly."""
    aps = _aps(result)
    counts = {e: 0.0 for e in aps}
    n = len(result["queries"]["list"])
    for qi in range(n):
        vals = {e: a for e, v in aps.items() if (a := v[qi]) is not None}
        if not vals:
            continue
        best = max(vals.values())
        winners = [e for e, a in vals.items() if abs(a - best) < 1e-9]
        for e in winners:
            counts[e] += 1 / len(winners)
    return {e: round(c, 2) for e, c in counts.items()}
