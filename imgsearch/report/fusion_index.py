"""The fusion and index-setting sections: fused encoders against the best single one, and what
HNSW and quantisation cost in recall@10."""

from imgsearch.report.common import ci_text, fmt

FUSION_COLS = ["fused", "mAP@10 [95% CI]", "R@1", "ms / image (sum)", "against", "Δ mAP@10 [95% CI]", "p", "better?"]


def fusion_rows(result: dict) -> list[list[str]]:
    rows = []
    fusion = result.get("fusion") or {}
    for name, row in sorted((fusion.get("rows") or {}).items(), key=lambda kv: -(kv[1]["quality"].get("mAP@10") or -1)):
        q, t = row["quality"], row.get("test") or {}
        ci = t.get("ci")
        better = "–" if t.get("p") is None else (("yes" if t["diff"] > 0 else "no: worse") if t.get("significant") else "no")
        rows.append(
            [
                name,
                fmt(q.get("mAP@10")) + ci_text((q.get("ci") or {}).get("mAP@10")),
                fmt(q.get("recall@1")),
                fmt(row["cost"].get("ms_per_image"), 2),
                row["against"],
                "–" if t.get("diff") is None else f"{t['diff']:+.3f}" + (f" [{ci[0]:+.3f}…{ci[1]:+.3f}]" if ci else ""),
                "–" if t.get("p") is None else ("< 0.001" if t["p"] < 0.001 else f"{t['p']:.3f}"),
                better,
            ]
        )
    return rows


FUSION_NOTE = (
    "Reciprocal-rank fusion (k = 60) of each encoder's stored top-k per query; a fused set costs the sum of "
    "its encoders (they all encode every image). Each row is tested against the best single encoder on "
    "per-query AP@10 (paired randomisation test, not adjusted across the rows)."
)


# --- the index setting (compare/quantization.py)

INDEX_SETTINGS = ("hnsw", "int8", "int8+rescore", "binary", "binary+rescore")
INDEX_COLS = ["entry", "vectors (sampled of)", *[f"{s} recall@10" for s in INDEX_SETTINGS], "RAM B / vector: none / int8 / binary"]
INDEX_NOTE = (
    "recall@10 of Qdrant's approximate search against exact search on the same vectors (each query's own "
    "point excluded). hnsw: the HNSW graph over the full vectors (m 16, ef_construct 100, searched with ef 128, "
    "the store's settings); int8 / binary: the quantised vectors alone; +rescore: the best 2 × 10 of those "
    "rescored with the full vectors. RAM: the vector bytes held in RAM per point when only the quantised copy "
    "is kept there. `app.py index --quantization none|int8|binary` picks the setting."
)


def index_rows(result: dict) -> list[list[str]]:
    rows = []
    for name, r in ((result.get("quantization") or {}).get("per_encoder") or {}).items():
        s = r.get("settings") or {}
        if not s:
            rows.append([name, "–", *["–"] * len(INDEX_SETTINGS), r.get("skipped", "")])
            continue
        ram = " / ".join(str(s[k]["ram_bytes_per_vector"]) for k in ("hnsw", "int8", "binary") if k in s)
        rows.append(
            [
                name,
                f"{r['vectors']:,} of {r['of']:,}" if r["vectors"] != r["of"] else f"{r['vectors']:,}",
                *[fmt((s.get(k) or {}).get("recall@10"), 4) for k in INDEX_SETTINGS],
                ram,
            ]
        )
    return rows
