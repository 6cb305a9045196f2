"""The report's text: report.md and report.html (self-contained), from the same rows."""

import base64
import html
import json
from pathlib import Path
from typing import Optional

from imgsearch.grid import _data_uri
from imgsearch.report.common import (
    CELL_THUMB,
    RANDOM_NOTE,
    as_int,
    ci_text,
    fmt,
    label,
    runtime_text,
    thumb,
)
from imgsearch.report.runtimes import runtime_rows
from imgsearch.report.selection import ok_runs, winner_counts
from imgsearch.report.tasks import tasks_html, tasks_markdown

QUALITY = ("recall@1", "recall@5", "recall@10", "mAP@10")
RUNTIMES_TITLE = "One encoder, several runtimes: speed against quality"


def _q(q: dict, key: str) -> str:
    """A quality number with its 95% interval."""
    return fmt(q.get(key)) + ci_text((q.get("ci") or {}).get(key))


def _headline_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    cols = ["encoder", "model", "weights", "runtime", "wall s (with start-up)", "flow start s", "model load s", "encode img/s",
            "vectors", "disk MB", "bytes/vector", "dim", "peak RSS MB", "R@1 [95% CI]", "R@5", "R@10", "mAP@10 [95% CI]",
            "text R@1", "text R@5", "text mAP@10", "AUC [95% CI]", "separation", "break gap", "threshold (P / R)", "wins"]
    wins = winner_counts(result)
    rows = []
    for r in ok_runs(result):
        q = r.get("quality") or {}
        tq = r.get("text_quality") or {}
        lab = q.get("labelled")
        thr = q.get("threshold")
        no = "no labels"
        rows.append([
            r["encoder"] + (" (reused)" if r.get("resumed") else ""), r.get("model", ""),
            "RANDOM (tiny test model)" if r.get("random_weights") else r.get("checkpoint_note", ""), runtime_text(r),
            fmt(r.get("wall_seconds"), 1), fmt(r.get("flow_start_seconds"), 1), fmt(r.get("load_seconds"), 2),
            fmt(r.get("images_per_second"), 1), fmt(as_int(r.get("count"))), fmt(r.get("disk_mb"), 2),
            fmt(r.get("bytes_per_vector"), 0), fmt(as_int(r.get("dim"))), fmt(r.get("peak_rss_mb"), 0),
            *([_q(q, k) for k in QUALITY] if lab else [no] * 4),
            *([_q(tq, k) for k in ("recall@1", "recall@5", "mAP@10")] if tq.get("labelled") else
              ["no labels" if "text_quality" in r else "image-only"] * 3),
            *([_q(q, "auc"), _q(q, "separation"), _q(q, "break_gap"),
               f"{thr['threshold']:.3f} ({thr['precision']:.2f} / {thr['recall']:.2f})" if thr else "–"] if lab else [no] * 4),
            fmt(wins.get(r["encoder"]), 1) if lab else "–",
        ])
    return cols, rows


def _verdicts(result: dict) -> tuple[str, list[str]]:
    sig = result.get("significance") or {}
    return (sig.get("winner") or {}).get("sentence", ""), [p["verdict"] for p in sig.get("pairs", [])]


def _label_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """recall@1 per label: the most disagreeing labels first, then the rest (at most 40 rows)."""
    labels = result.get("labels") or {}
    table = labels.get("recall@1") or {}
    if not table:
        return [], []
    encs = [r["encoder"] for r in ok_runs(result) if r["encoder"] in next(iter(table.values()), {})]
    first = [x["label"] for x in labels.get("most_disagreeing", [])]
    order = first + [lab for lab in sorted(table) if lab not in first]
    return (["label", *encs, "disagree"],
            [[lab, *[fmt(table[lab].get(e)) for e in encs], "top 10" if lab in first else ""] for lab in order[:40]])


def _run_line(result: dict) -> str:
    t = result.get("timing") or {}
    q = result["queries"]
    return (f"{q['count']} queries ({q['source']}) · indexing {t.get('indexing_seconds')} s, evaluation "
            f"{t.get('evaluation_seconds')} s, report {t.get('report_seconds')} s"
            + (f" · reused: {', '.join(t['reused'])}" if t.get("reused") else "")
            + f" · client peak RSS {result.get('client_peak_rss_mb')} MB · run took {result['seconds']} s")


def _not_run(result: dict) -> list[tuple[str, str, str]]:
    return [(r["encoder"], r["status"], r.get("reason", "")) for r in result["encoders"] if r.get("status") != "ok"]


def _settings(result: dict) -> dict:
    per = {}
    for r in ok_runs(result):
        info = dict(r.get("info") or {})
        per[r["encoder"]] = {**info, "random_weights": bool(r.get("random_weights")), "checkpoint_note": r.get("checkpoint_note")}
    return {"run": result["settings"], "environment": result["environment"], "encoders": per}


def write_markdown(result: dict, rows: list[dict], out: Path, files: dict) -> Path:
    cols, table = _headline_rows(result)
    lines = [f"# {result['title']}", "",
             f"{result['created']} · {result['data']['images']} images, {result['data']['labels']} labels in `{result['data']['folder']}` · "
             + _run_line(result), ""]
    for r in ok_runs(result):
        if r.get("random_weights"):
            lines.append(f"> **{r['encoder']}: {RANDOM_NOTE}** (`{r.get('model')}`)")
    if not result["data"]["labelled"]:
        lines.append("> **no labels**: images sit directly in the folder, so quality and score separation cannot be measured; timings, sizes and grids still are.")
    lines += ["", "## Headline numbers", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table]
    rcols, rrows = runtime_rows(result)
    if rrows:
        lines += ["", f"## {RUNTIMES_TITLE}", "", "| " + " | ".join(rcols) + " |", "|" + "---|" * len(rcols)]
        lines += ["| " + " | ".join(row) + " |" for row in rrows]
    if _not_run(result):
        lines += ["", "## Not run", ""] + [f"- **{e}** {s}: {why}" for e, s, why in _not_run(result)]
    best, verdicts = _verdicts(result)
    if best:
        lines += ["", "## Is the difference real?", "", f"**{best}**", ""] + [f"- {v}" for v in verdicts]
    lcols, lrows = _label_rows(result)
    if lrows:
        lines += ["", "## recall@1 per label", "", "| " + " | ".join(lcols) + " |", "|" + "---|" * len(lcols)]
        lines += ["| " + " | ".join(row) + " |" for row in lrows]
    lines += ["", "Recall@k is the share of queries with a same-label image among the first k (the query itself excluded); "
              "mAP@10 averages AP@10 over queries; AUC is the chance a same-label result outscores an other-label one; "
              "break gap is the mean score drop at the first other-label result after a leading run of same-label ones; "
              "the threshold maximises F1 of \"score ≥ t means same label\" over all scored pairs. "
              "Wall time covers flow start-up, model load and indexing; encode img/s covers the /index requests alone. "
              "Brackets: 95% intervals by bootstrap over the queries; verdicts: paired randomisation test on per-query AP@10. "
              "Runtime: what the encoder reported running on (ONNX Runtime's execution provider, or torch's device); "
              "an encoder on several runtimes (ENCODER@RUNTIME) is set against its torch entry, else its onnx one.", ""]
    for key, title in (("headline", "Headline numbers, charted"), ("scores", "Score distributions"), ("grid", "Result grid")):
        if files.get(key):
            lines += [f"## {title}", "", f"![{title}]({files[key]})", ""]
    if rows:
        lines += ["## Grid (text form)", "", "| query | " + " | ".join(rows[0]["cells"]) + " | winner | why shown |", "|" + "---|" * (len(rows[0]["cells"]) + 3)]
        for row in rows:
            cells = [", ".join(f"{Path(m['path']).name} ({m['score']:.3f}{'' if m.get('relevant') is None else (' ✓' if m['relevant'] else ' ✗')})" for m in row["cells"].get(e, []))
                     for e in rows[0]["cells"]]
            lines.append(f"| {Path(row['query']).name} [{row.get('label') or ''}] | " + " | ".join(cells)
                         + f" | {'tie' if row.get('tie') else ', '.join(row.get('winner') or []) or '–'} | {row.get('why', '')} |")
    lines += tasks_markdown(result)  # issue 25: per-task tables, near-duplicates, label audit
    lines += ["", "## Settings (to reproduce)", "", "```json", json.dumps(_settings(result), indent=2, default=str), "```", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _img_file_uri(path: Optional[Path]) -> Optional[str]:
    if not path:
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def write_html(result: dict, rows: list[dict], out: Path, files: dict) -> Path:
    e = html.escape
    cols, table = _headline_rows(result)
    recs = ok_runs(result)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(result['title'])}</title>",
        "<style>body{font-family:sans-serif;margin:16px;color:#222}table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px;vertical-align:top}th{background:#f3f3f3}"
        ".random{color:#b00;font-weight:bold}.warn{background:#fee;border:1px solid #c66;padding:6px 10px;margin:6px 0}"
        "figure{display:inline-block;margin:1px;width:%dpx;text-align:center}figure img{width:%dpx;height:%dpx;object-fit:contain;background:#eee;border:3px solid #ddd}"
        "figure.rel img{border-color:#1e963c}figure.irr img{border-color:#c82828}figcaption{font-size:11px}"
        "td.cell{white-space:nowrap}td.winner{font-weight:bold}pre{font-size:11px;background:#f7f7f7;padding:8px;overflow:auto}"
        "img.plot{max-width:100%%;border:1px solid #ddd}</style></head><body>" % (CELL_THUMB, CELL_THUMB - 6, CELL_THUMB - 6),
        f"<h1>{e(result['title'])}</h1>",
        f"<p>{e(result['created'])} · {result['data']['images']} images, {result['data']['labels']} labels in <code>{e(result['data']['folder'])}</code> · "
        f"{e(_run_line(result))}</p>",
    ]
    for r in recs:
        if r.get("random_weights"):
            parts.append(f"<div class='warn random' data-random='{e(r['encoder'])}'>{e(r['encoder'])}: {e(RANDOM_NOTE)} ({e(str(r.get('model')))})</div>")
    if not result["data"]["labelled"]:
        parts.append("<div class='warn'>no labels: images sit directly in the folder, so quality and score separation cannot be measured; timings, sizes and grids still are.</div>")
    parts.append("<h2>Headline numbers</h2><table id='headline'><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
    for r, row in zip(recs, table):
        cls = " class='random'" if r.get("random_weights") else ""
        parts.append(f"<tr data-encoder='{e(r['encoder'])}'{cls}>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    rcols, rrows = runtime_rows(result)
    if rrows:
        parts.append(f"<h2>{e(RUNTIMES_TITLE)}</h2><table id='runtimes'><tr>" + "".join(f"<th>{e(c)}</th>" for c in rcols) + "</tr>"
                     + "".join(f"<tr data-encoder='{e(row[0])}'>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rrows)
                     + "</table>")
    if _not_run(result):
        parts.append("<h2>Not run</h2><ul id='not-run'>" + "".join(
            f"<li data-encoder='{e(n)}'><b>{e(n)}</b> {e(s)}: {e(why)}</li>" for n, s, why in _not_run(result)) + "</ul>")
    best, verdicts = _verdicts(result)
    if best:
        parts.append(f"<h2>Is the difference real?</h2><p id='winner'><b>{e(best)}</b></p><ul id='verdicts'>"
                     + "".join(f"<li>{e(v)}</li>" for v in verdicts) + "</ul>")
    lcols, lrows = _label_rows(result)
    if lrows:
        parts.append("<h2>recall@1 per label</h2><table id='labels'><tr>" + "".join(f"<th>{e(c)}</th>" for c in lcols) + "</tr>"
                     + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in lrows) + "</table>")
    for key, title in (("headline", "Headline numbers, charted"), ("scores", "Score distributions: same label vs other labels")):
        if files.get(key):
            parts.append(f"<h2>{e(title)}</h2><img class='plot' id='plot-{key}' alt='{e(title)}' src='{_img_file_uri(out / files[key])}'>")
    if rows:
        parts.append("<h2>Result grid</h2><p>One row per query image, one column per encoder: the top "
                     f"{result['grid']['k']} results with scores; green frame = same label, red = other label. "
                     "Winner: the best AP@10 for that query.</p><table id='grid'><tr><th>query</th>"
                     + "".join(f"<th{' class=random' if r.get('random_weights') else ''}>{e(label(r))}</th>" for r in recs)
                     + "<th>winner</th><th>why shown</th></tr>")
        for row in rows:
            parts.append(f"<tr class='grid-row' data-query='{e(row['query'])}'>"
                         f"<td class='query'><figure><img src='{_data_uri(thumb(row['query'], CELL_THUMB))}' alt='query'>"
                         f"<figcaption>{e(str(row.get('label') or ''))}<br>{e(Path(row['query']).name)}</figcaption></figure></td>")
            for r in recs:
                parts.append(f"<td class='cell' data-encoder='{e(r['encoder'])}'>")
                for n, m in enumerate(row["cells"].get(r["encoder"], []), 1):
                    cls = "" if m.get("relevant") is None or row.get("label") is None else (" rel" if m["relevant"] else " irr")
                    parts.append(f"<figure class='match{cls}' data-rank='{n}' data-path='{e(m['path'] or '')}' data-score='{m['score']:.6f}'>"
                                 f"<img src='{_data_uri(thumb(m['path'], CELL_THUMB))}' alt='{e(Path(m['path'] or '?').name)}'>"
                                 f"<figcaption>{m['score']:.3f}</figcaption></figure>")
                parts.append("</td>")
            wtext = "tie" if row.get("tie") else ", ".join(row.get("winner") or []) or "–"
            parts.append(f"<td class='winner' data-winner='{e(wtext)}'>{e(wtext)}</td><td>{e(row.get('why', ''))}</td></tr>")
        parts.append("</table>")
    parts.extend(tasks_html(result))  # issue 25: per-task tables, near-duplicate and audit grids, maps
    parts.append("<h2>Settings (to reproduce)</h2><pre id='settings'>" + e(json.dumps(_settings(result), indent=2, default=str)) + "</pre>")
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


