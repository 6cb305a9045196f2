"""The report's sections for every task beyond retrieval (issue 25), as one block of report.md and
one of report.html: per-task tables with their top groups, near-duplicates, the label audit, maps."""

import html

from imgsearch.report.embedding_map import MAP_CSS, map_section
from imgsearch.report.pair_grids import GRID_CSS, audit_grid, near_duplicate_grid
from imgsearch.report.task_tables import (
    NEAR_DUP_TITLE,
    audit_rows,
    html_table,
    md_table,
    near_dup_rows,
    task_tables,
)

CSS = "<style>" + GRID_CSS + MAP_CSS + "</style>"
EXPLAIN = (
    "Each task's table marks its top group: the best encoder and those not significantly worse than it "
    "(paired on the same items: randomisation test on per-query AP@10, exact McNemar test on per-image "
    "hits; Holm-corrected over the comparisons with the best). Brackets: 95% intervals."
)


def tasks_markdown(result: dict) -> list[str]:
    tables = task_tables(result)
    lines: list[str] = []
    if tables:
        lines += ["", "## Per task", "", EXPLAIN]
        for t in tables:
            lines += ["", f"### {t['title']}", "", *md_table(t["cols"], t["rows"]), "", t["sentence"]]
    cols, rows = near_dup_rows(result)
    if rows:
        nd = (result.get("tasks") or {}).get("near_duplicates") or {}
        lines += [
            "",
            f"## {NEAR_DUP_TITLE}",
            "",
            *md_table(cols, rows),
            "",
            f"Queries' near-duplicates were {nd.get('mode', '')}d from their candidates; the headline numbers are "
            f"the '{'without' if nd.get('mode') == 'exclude' else 'with copies'}' ones. Cross-label pairs (first 10):",
            "",
        ]
        lines += [
            f"- `{p['a']}` [{p['label_a']}] ≈ `{p['b']}` [{p['label_b']}] ({', '.join(p['encoders'])})"
            for p in nd.get("pairs", [])
            if not p["same_label"]
        ][:10]
    cols, rows = audit_rows(result)
    if rows:
        audit = (result.get("tasks") or {}).get("label_audit") or {}
        lines += ["", "## Label audit", "", *md_table(cols, rows), "", audit.get("method", ""), ""]
        lines += [
            f"- {f['kind']}: `{f['path']}` [{f['label']}]"
            + (f" → {f['suggested']}" if f.get("suggested") else "")
            + f" ({len(f['encoders'])} encoders)"
            for f in audit.get("flagged", [])[:20]
        ]
    return lines


def tasks_html(result: dict) -> list[str]:
    e = html.escape
    parts = [CSS]
    tables = task_tables(result)
    if tables:
        parts.append(f"<h2>Per task</h2><p>{e(EXPLAIN)}</p>")
        for t in tables:
            parts.append(
                f"<h3>{e(t['title'])}</h3>"
                + html_table(t["id"], t["cols"], t["rows"])
                + f"<p class='top-group' data-task='{e(t['id'])}'>{e(t['sentence'])}</p>"
            )
    cols, rows = near_dup_rows(result)
    if rows:
        parts.append(f"<h2>{e(NEAR_DUP_TITLE)}</h2>" + html_table("near-dup-summary", cols, rows))
    parts.append(near_duplicate_grid(result))
    cols, rows = audit_rows(result)
    if rows:
        parts.append(html_table("audit-summary", cols, rows))
    parts.append(audit_grid(result))
    parts.append(map_section(result))
    return [p for p in parts if p]
