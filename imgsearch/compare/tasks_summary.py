"""Across encoders, per task: one table each (retrieval, text→image, zero-shot, kNN, probe) with
its top group; every near-duplicate pair and every flagged image, by path."""

import logging
from typing import Optional

import numpy as np

from imgsearch.compare import label_audit
from imgsearch.compare.knn import PROBE_MAX, PROBE_PER_LABEL
from imgsearch.compare.proportion import from_bits
from imgsearch.compare.queries import QuerySet
from imgsearch.compare.top_group import top_group

logger = logging.getLogger(__name__)

REPORT_PAIRS = 1_000  # near-duplicate pairs listed in report.json across encoders (the issue asks for >= 500)

# (task, title, the record's section, the number shown, its per-item values for the test)
TASKS = [
    ("retrieval", "image→image retrieval", "quality", "mAP@10", None),
    ("text_to_image", "text→image retrieval (label names)", "text_quality", "mAP@10", None),
    ("zero_shot", "zero-shot classification", "zero_shot", "accuracy@1", "hits"),
    ("knn_1", "kNN, k = 1 (leave-one-out)", "knn", "1nn", "hits"),
    ("knn_10", "kNN, k = 10 similarity-weighted", "knn", "10nn_weighted", "hits"),
    (
        "probe",
        f"linear probe (logistic regression, stratified 5-fold, seed 0; on a per-label sample: the first "
        f"{PROBE_PER_LABEL} images of each label by content hash, {PROBE_MAX:,} in all)",
        "probe",
        "accuracy",
        "hits",
    ),
]


def _cell(rec: dict, section: str, key: str) -> Optional[dict]:
    s = rec.get(section) or {}
    if not s.get("labelled"):
        return None
    if section == "knn":
        s = s.get(key) or {}
        return {
            "value": s.get("accuracy"),
            "ci": (s.get("ci") or {}).get("accuracy"),
            "balanced": s.get("balanced_accuracy"),
            "balanced_ci": (s.get("ci") or {}).get("balanced_accuracy"),
            "hits": s.get("hits"),
        }
    return {
        "value": s.get(key),
        "ci": (s.get("ci") or {}).get(key),
        "balanced": s.get("balanced_accuracy"),
        "balanced_ci": (s.get("ci") or {}).get("balanced_accuracy"),
        "hits": s.get("hits"),
        **({"accuracy@5": s.get("accuracy@5"), "accuracy@5_ci": (s.get("ci") or {}).get("accuracy@5")} if section == "zero_shot" else {}),
    }


def tasks_summary(runs: list[dict], qs: QuerySet, opts, n_boot: Optional[int] = None) -> dict:
    n_boot = n_boot or opts.bootstrap
    ok = [r for r in runs if r.get("status") == "ok"]
    tables = []
    for task, title, section, key, _ in TASKS:
        rows = {r["encoder"]: c for r in ok if (c := _cell(r, section, key)) is not None and c["value"] is not None}
        if not rows:
            continue
        if task == "retrieval":
            values = {r["encoder"]: np.array([a for a in r["per_query"]["ap"] if a is not None]) for r in ok if r["encoder"] in rows}
        elif task == "text_to_image":
            values = {}
        else:
            values = {e: from_bits(c["hits"]).astype(np.float64) for e, c in rows.items() if c.get("hits")}
        group = top_group(values, n_boot, "accuracy" if section == "knn" else key) if len(values) > 1 else None
        chance = next(((r.get("zero_shot") or {}).get("chance@1") for r in ok if (r.get("zero_shot") or {}).get("labelled")), None)
        for c in rows.values():
            c.pop("hits", None)
        tables.append(
            {
                "task": task,
                "title": title,
                "metric": key,
                "rows": rows,
                "top_group": group,
                **({"chance": chance} if task == "zero_shot" else {}),
                "note": "no per-item values (one query per label): no top group" if task == "text_to_image" and len(rows) > 1 else None,
            }
        )
    images = {"paths": [it.path for it in qs.items], "labels": [it.label for it in qs.items]}
    for r in ok:  # the per-item bits served the tests; report.json does not need them
        for section in ("zero_shot", "probe"):
            (r.get(section) or {}).pop("hits", None)
        for k in ("1nn", "10nn_weighted"):
            ((r.get("knn") or {}).get(k) or {}).pop("hits", None)
    return {
        "tables": tables,
        "near_duplicates": near_duplicate_pairs(ok, images, opts),
        "label_audit": label_audit.combine(ok, images),
        "maps": [r["encoder"] for r in ok if (r.get("map") or {}).get("points")],
    }


def near_duplicate_pairs(runs: list[dict], images: dict, opts) -> dict:
    """Every pair any encoder found, by path (the first REPORT_PAIRS: those more encoders found, then the closest)."""
    found: dict[tuple[int, int], dict] = {}
    for r in runs:
        for a, b, s in (r.get("near_duplicates") or {}).get("list", []):
            if a < 0 or b < 0:
                continue
            key = (min(a, b), max(a, b))
            e = found.setdefault(key, {"encoders": [], "score": {}})
            e["encoders"].append(r["encoder"])
            e["score"][r["encoder"]] = s
    ordered = sorted(found.items(), key=lambda kv: (-len(kv[1]["encoders"]), -max(kv[1]["score"].values()), kv[0]))
    pairs = [
        {
            "a": images["paths"][a],
            "b": images["paths"][b],
            "label_a": images["labels"][a],
            "label_b": images["labels"][b],
            "same_label": images["labels"][a] == images["labels"][b],
            "encoders": e["encoders"],
            "score": e["score"],
            "images": [a, b],
        }
        for (a, b), e in ordered[:REPORT_PAIRS]
    ]
    return {
        "threshold": opts.near_duplicate_threshold,
        "mode": opts.near_duplicates,
        "total": len(found),
        "cross_label": sum(1 for (a, b) in found if images["labels"][a] != images["labels"][b]),
        "cap": REPORT_PAIRS,
        "pairs": pairs,
    }
