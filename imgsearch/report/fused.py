"""The fusion section: every fused set of encoders against the best single encoder."""

from imgsearch.report.common import ci_text, fmt

FUSION_COLS = ["fused", "mAP@10 [95% CI]", "R@1", "ms / image (sum)", "against", "Δ mAP@10 [95% CI]", "p", "better?"]


def fusion_rows(result: dict) -> list[list[str]]:
    rows = []
    fusion = result.get("fusion") or {}
    for name, row in sorted((fusion.get("rows") or {}).items(), key=lambda kv: -(kv[1]["quality"].get("mAP@10") or -1)):
        q, t = row["quality"], row.get("test") or {}
        ci = t.get("ci")
        better = "–" if t.get("p") is None else (("yes" if t["diff"] > 0 else "no: worse") if t.get("significant") else "no")
        rows.append([name, fmt(q.get("mAP@10")) + ci_text((q.get("ci") or {}).get("mAP@10")), fmt(q.get("recall@1")),
                     fmt(row["cost"].get("ms_per_image"), 2), row["against"],
                     "–" if t.get("diff") is None else f"{t['diff']:+.3f}" + (f" [{ci[0]:+.3f}…{ci[1]:+.3f}]" if ci else ""),
                     "–" if t.get("p") is None else ("< 0.001" if t["p"] < 0.001 else f"{t['p']:.3f}"), better])
    return rows


FUSION_NOTE = ("Reciprocal-rank fusion (k = 60) of each encoder's stored top-k per query; a fused set costs the sum of "
               "its encoders (they all encode every image). Each row is tested against the best single encoder on "
               "per-query AP@10 (paired randomisation test, not adjusted across the rows).")
