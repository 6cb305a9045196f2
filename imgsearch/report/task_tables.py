"""The report's per-task tables (issue 25): one per task with its top group, near-duplicates and the
label audit summed up per encoder. Text for report.md and report.html from the same rows."""

import html
from typing import Optional

from imgsearch.report.common import ci_text, fmt

NEAR_DUP_TITLE = "Near-duplicates: how much copies flatter recall"


def _v(value, ci) -> str:
    return fmt(value) + ci_text(ci)


def task_tables(result: dict) -> list[dict]:
    """[{id, title, metric, cols, rows, top_group sentence, note}] for every task with numbers."""
    out = []
    for t in (result.get("tasks") or {}).get("tables", []):
        zero = t["task"] == "zero_shot"
        metric = "accuracy" if t["task"].startswith("knn") else t["metric"]
        cols = (
            ["encoder", f"{metric} [95% CI]"]
            + (["accuracy@5 [95% CI]"] if zero else [])
            + (["balanced accuracy [95% CI]"] if t["task"] not in ("retrieval", "text_to_image") else [])
            + ["top group"]
        )
        group = set((t.get("top_group") or {}).get("group") or [])
        rows = []
        for enc, c in t["rows"].items():
            row = [enc, _v(c["value"], c.get("ci"))]
            if zero:
                row.append(_v(c.get("accuracy@5"), c.get("accuracy@5_ci")))
            if t["task"] not in ("retrieval", "text_to_image"):
                row.append(_v(c.get("balanced"), c.get("balanced_ci")))
            row.append("yes" if enc in group else ("–" if not group else ""))
            rows.append(row)
        sentence = (t.get("top_group") or {}).get("sentence") or t.get("note") or ""
        if zero and t.get("chance") is not None:
            sentence = (sentence + " " if sentence else "") + f"Chance: accuracy@1 {t['chance']:.3f}."
        out.append({"id": f"task-{t['task']}", "title": t["title"], "cols": cols, "rows": rows, "sentence": sentence})
    return out


def near_dup_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    cols = [
        "encoder",
        "threshold",
        "pairs",
        "same label",
        "cross label",
        "queries with copies",
        "R@1 with copies",
        "R@1 without",
        "mAP@10 with",
        "mAP@10 without",
        "how found",
    ]
    rows = []
    for r in result["encoders"]:
        nd = r.get("near_duplicates")
        if r.get("status") != "ok" or not nd:
            continue
        ret = nd.get("retrieval") or {}
        kept, ex = ret.get("kept") or {}, ret.get("excluded") or {}
        kci, eci = ret.get("kept_ci") or {}, ret.get("excluded_ci") or {}
        rows.append(
            [
                r["encoder"],
                f"{nd['threshold']:.2f}",
                f"{nd['pairs']:,}",
                f"{nd['same_label']:,}",
                f"{nd['cross_label']:,}",
                str(nd.get("queries_with_copies", 0)),
                _v(kept.get("recall@1"), kci.get("recall@1")),
                _v(ex.get("recall@1"), eci.get("recall@1")),
                _v(kept.get("mAP@10"), kci.get("mAP@10")),
                _v(ex.get("mAP@10"), eci.get("mAP@10")),
                nd["method"] + ("" if nd.get("complete") else " — " + "; ".join(nd.get("notes") or [])),
            ]
        )
    return cols, rows


def audit_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    cols = ["encoder", "possible mislabels", "outliers", "probe sample"]
    rows = []
    for r in result["encoders"]:
        a = r.get("label_audit")
        if r.get("status") != "ok" or a is None:
            continue
        p = r.get("probe") or {}
        rows.append(
            [
                r["encoder"],
                str(len(a.get("mislabels", []))),
                str(len(a.get("outliers", []))),
                f"{p.get('images', 0):,} images ({p.get('per_label', '–')} a label)" if p.get("labelled") else "no probe",
            ]
        )
    return cols, rows


def md_table(cols: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] + [
        "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows
    ]


def html_table(tid: str, cols: list[str], rows: list[list[str]], key: Optional[int] = 0) -> str:
    e = html.escape
    return (
        f"<table id='{e(tid)}'><tr>"
        + "".join(f"<th>{e(c)}</th>" for c in cols)
        + "</tr>"
        + "".join(
            (f"<tr data-encoder='{e(row[key])}'>" if key is not None else "<tr>") + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
            for row in rows
        )
        + "</table>"
    )
