"""report.md and report.html, top-down as a decision: the recommendation, a short table of
quality and cost, the charts, then the detail (tests, per label, grid, settings).

Each section is one function giving its Markdown lines and its HTML parts from the same
numbers; ``SECTIONS`` is the order, the one place that decides it. A new section is a function
and one line there.
"""

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imgsearch.report.common import CELL_THUMB, RANDOM_NOTE
from imgsearch.report.decision import (
    RANK_COLS,
    rank_rows,
    significance_text,
    summary_rows,
)
from imgsearch.report.fusion_index import FUSION_COLS, FUSION_NOTE, INDEX_COLS, INDEX_NOTE, fusion_rows, index_rows
from imgsearch.report.grid_text import grid_html, grid_md
from imgsearch.report.markup import e, html_fold, html_table, md_fold, md_table
from imgsearch.report.recommend import claims
from imgsearch.report.runtimes import runtime_rows
from imgsearch.report.selection import ok_runs
from imgsearch.report.tables import (
    LABEL_ROWS_SHOWN,
    headline_rows,
    label_rows,
    not_run,
    run_line,
    settings,
)
from imgsearch.report.tasks import tasks_html, tasks_markdown

RUNTIMES_TITLE = "One encoder, several runtimes: speed against quality"
CHARTS = (
    ("tradeoff", "Quality against cost"),
    ("headline", "Headline numbers, charted"),
    ("scores", "Score distributions: same label vs other labels"),
)
NOTES = (
    "Recall@k is the share of queries with a same-label image among the first k (the query itself excluded); "
    "mAP@10 averages AP@10 over queries; AUC is the chance a same-label result outscores an other-label one; "
    "break gap is the mean score drop at the first other-label result after a leading run of same-label ones; "
    "the threshold maximises F1 of \"score ≥ t means same label\" over all scored pairs. "
    "ms / image is the bare model's time (preprocessing and forward pass, the encoder's own handler time) in this run; "
    "wall time covers flow start-up, model load and indexing; encode img/s covers the /index requests alone. "
    "RAM B / vector: the fp32 vector and the int8 copy the index searches. "
    "Pareto: no other entry is both at least as good in mAP@10 and at least as cheap in ms / image. "
    "Brackets: 95% intervals by bootstrap over the queries; verdicts: paired randomisation test on per-query AP@10, "
    "p-values Holm-adjusted across all pairs. "
    "Runtime: what the encoder reported running on (ONNX Runtime's execution provider, or torch's device); "
    "an encoder on several runtimes (ENCODER@RUNTIME) is set against its torch entry, else its onnx one."
)


@dataclass
class Ctx:
    result: dict
    rows: list[dict]  # the grid's rows
    out: Path
    files: dict


@dataclass
class Section:
    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)


def header(c: Ctx) -> Section:
    r = c.result
    line = f"{r['created']} · {r['data']['images']} images, {r['data']['labels']} labels in `{r['data']['folder']}` · " + run_line(r)
    s = Section([f"# {r['title']}", "", line, ""], [f"<h1>{e(r['title'])}</h1>", f"<p>{e(line.replace('`', ''))}</p>"])
    for rec in ok_runs(r):
        if rec.get("random_weights"):
            s.md.append(f"> **{rec['encoder']}: {RANDOM_NOTE}** (`{rec.get('model')}`)")
            s.html.append(
                f"<div class='warn random' data-random='{e(rec['encoder'])}'>{e(rec['encoder'])}: {e(RANDOM_NOTE)} ({e(str(rec.get('model')))})</div>"
            )
    if not r["data"]["labelled"]:
        text = "no labels: images sit directly in the folder, so quality and score separation cannot be measured; timings, sizes and grids still are."
        s.md.append(f"> **{text}**")
        s.html.append(f"<div class='warn'>{e(text)}</div>")
    return s


def _code(escaped: str) -> str:
    """`command` in a claim (Markdown) as <code> in HTML."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def recommendation(c: Ctx) -> Section:
    said = claims(c.result)
    md = ["", "## Recommendation", ""] + [f"- {text} ([numbers](#{anchor}))" for text, anchor in said]
    html = (
        "<section id='recommendation'><h2>Recommendation</h2><ul>"
        + "".join(f"<li data-anchor='{e(anchor)}'>{_code(e(text))} <a href='#{e(anchor)}'>numbers</a></li>" for text, anchor in said)
        + "</ul></section>"
    )
    return Section(md, [html])


def summary(c: Ctx) -> Section:
    cols, rows, keys = summary_rows(c.result)
    fcols, frows = headline_rows(c.result)
    full_keys = [r["encoder"] for r in ok_runs(c.result)]
    title = f"Full table ({len(fcols)} columns: timings, sizes, every quality number)"
    md = ["", "<a id='summary'></a>", "", "## Quality and cost", "", *md_table(cols, rows), "", *md_fold(title, md_table(fcols, frows))]
    html = [
        "<h2>Quality and cost</h2>",
        html_table("summary", cols, rows, keys),
        html_fold(title, html_table("headline", fcols, frows, full_keys), "full-table"),
    ]
    return Section(md, html)


def runtimes(c: Ctx) -> Section:
    cols, rows = runtime_rows(c.result)
    if not rows:
        return Section()
    return Section(
        ["", f"## {RUNTIMES_TITLE}", "", *md_table(cols, rows)],
        [f"<h2>{e(RUNTIMES_TITLE)}</h2>" + html_table("runtimes", cols, rows, [row[0] for row in rows])],
    )


def not_run_section(c: Ctx) -> Section:
    missing = not_run(c.result)
    if not missing:
        return Section()
    return Section(
        ["", "## Not run", ""] + [f"- **{n}** {s}: {why}" for n, s, why in missing],
        [
            "<h2>Not run</h2><ul id='not-run'>"
            + "".join(f"<li data-encoder='{e(n)}'><b>{e(n)}</b> {e(s)}: {e(why)}</li>" for n, s, why in missing)
            + "</ul>"
        ],
    )


def _img_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def charts(c: Ctx) -> Section:
    s = Section()
    for key, title in CHARTS:
        if c.files.get(key):
            s.md += ["", f"## {title}", "", f"![{title}]({c.files[key]})"]
            s.html.append(f"<h2>{e(title)}</h2><img class='plot' id='plot-{key}' alt='{e(title)}' src='{_img_uri(c.out / c.files[key])}'>")
    return s


def significance(c: Ctx) -> Section:
    best, how, verdicts = significance_text(c.result)
    if not best:
        return Section()
    ranks = rank_rows(c.result)
    md = ["", "<a id='significance'></a>", "", "## Is the difference real?", "", f"**{best}**", "", how, ""]
    md += md_table(RANK_COLS, ranks) + [""] + [f"- {v}" for v in verdicts]
    html = (
        f"<section id='significance'><h2>Is the difference real?</h2><p id='winner'><b>{e(best)}</b></p><p>{e(how)}</p>"
        + html_table("ranks", RANK_COLS, ranks, [r[0] for r in ranks])
        + "<ul id='verdicts'>"
        + "".join(f"<li>{e(v)}</li>" for v in verdicts)
        + "</ul></section>"
    )
    return Section(md, [html])


def fusion(c: Ctx) -> Section:
    rows = fusion_rows(c.result)
    if not rows:
        return Section()
    sentence = ((c.result.get("fusion") or {}).get("best") or {}).get("sentence", "")
    return Section(
        ["", "<a id='fusion'></a>", "", "## Fusing encoders", "", sentence, "", FUSION_NOTE, "", *md_table(FUSION_COLS, rows)],
        [
            f"<section id='fusion'><h2>Fusing encoders</h2><p>{e(sentence)}</p><p class='notes'>{e(FUSION_NOTE)}</p>"
            + html_table("fusion-table", FUSION_COLS, rows, [r[0] for r in rows])
            + "</section>"
        ],
    )


def tasks(c: Ctx) -> Section:
    """Zero-shot, kNN and probe tables, near-duplicates, the label audit and the maps (report/tasks.py)."""
    return Section(tasks_markdown(c.result), tasks_html(c.result))


def index_setting(c: Ctx) -> Section:
    rows = index_rows(c.result)
    if not rows:
        return Section()
    sentence = ((c.result.get("quantization") or {}).get("recommended") or {}).get("sentence", "")
    return Section(
        ["", "<a id='quantization'></a>", "", "## What the index setting costs", "", sentence, "", INDEX_NOTE, "", *md_table(INDEX_COLS, rows)],
        [
            f"<section id='quantization'><h2>What the index setting costs</h2><p>{e(sentence)}</p>"
            f"<p class='notes'>{e(INDEX_NOTE)}</p>" + html_table("index-table", INDEX_COLS, rows, [r[0] for r in rows]) + "</section>"
        ],
    )


def per_label(c: Ctx) -> Section:
    cols, rows = label_rows(c.result)
    if not rows:
        return Section()
    title = "recall@1 per label, worst or most disputed first"
    shown, rest = rows[:LABEL_ROWS_SHOWN], rows[LABEL_ROWS_SHOWN:]
    md = ["", f"## {title}", "", *md_table(cols, shown)]
    html = [f"<h2>{e(title)}</h2>", html_table("labels", cols, shown)]
    if rest:
        more = f"{len(rest)} more labels"
        md += ["", *md_fold(more, md_table(cols, rest))]
        html.append(html_fold(more, html_table("labels-rest", cols, rest), "labels-more"))
    return Section(md, html)


def grid(c: Ctx) -> Section:
    return Section(["", *grid_md(c.rows)], grid_html(c.result, c.rows))


def notes(c: Ctx) -> Section:
    text = json.dumps(settings(c.result), indent=2, default=str)
    return Section(
        ["", NOTES, "", "## Settings (to reproduce)", "", "```json", text, "```", ""],
        [f"<p class='notes'>{e(NOTES)}</p>", f"<h2>Settings (to reproduce)</h2><pre id='settings'>{e(text)}</pre>"],
    )


# The report, top-down. Sections added by other work slot in here, one line each.
SECTIONS: list[Callable[[Ctx], Section]] = [
    header,
    recommendation,
    summary,
    runtimes,
    not_run_section,
    charts,
    significance,
    fusion,
    index_setting,
    tasks,
    per_label,
    grid,
    notes,
]

STYLE = (
    "body{font-family:sans-serif;margin:16px;color:#222;max-width:1400px}table{border-collapse:collapse;margin:8px 0}"
    "td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px;vertical-align:top}th{background:#f3f3f3}"
    ".random{color:#b00;font-weight:bold}.warn{background:#fee;border:1px solid #c66;padding:6px 10px;margin:6px 0}"
    "#recommendation{background:#eef6ee;border:1px solid #7a7;padding:4px 14px;margin:10px 0}"
    "#recommendation li{margin:4px 0;font-size:15px}details{margin:6px 0}summary{cursor:pointer;color:#036}"
    "figure{display:inline-block;margin:1px;width:%dpx;text-align:center}"
    "figure img{width:%dpx;height:%dpx;object-fit:contain;background:#eee;border:3px solid #ddd}"
    "figure.rel img{border-color:#1e963c}figure.irr img{border-color:#c82828}figcaption{font-size:11px}"
    "td.cell{white-space:nowrap}td.winner{font-weight:bold}pre{font-size:11px;background:#f7f7f7;padding:8px;overflow:auto}"
    "img.plot{max-width:100%%;border:1px solid #ddd}.notes{font-size:12px;color:#444}"
)


def write_markdown(result: dict, rows: list[dict], out: Path, files: dict) -> Path:
    ctx = Ctx(result, rows, out, files)
    lines = [line for fn in SECTIONS for line in fn(ctx).md]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_html(result: dict, rows: list[dict], out: Path, files: dict) -> Path:
    ctx = Ctx(result, rows, out, files)
    head = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(result['title'])}</title>",
        "<style>" + STYLE % (CELL_THUMB, CELL_THUMB - 6, CELL_THUMB - 6) + "</style></head><body>",
    ]
    parts = head + [part for fn in SECTIONS for part in fn(ctx).html] + ["</body></html>"]
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
