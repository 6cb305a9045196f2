"""The compare report: report.json (everything), report.md, report.html (self-contained), PNGs.

Plots are drawn with PIL (no plotting library needed): ``scores.png`` (relevant vs
irrelevant score distributions per encoder, with the suggested threshold) and
``headline.png`` (bar charts of the headline numbers). ``grid.png`` and the HTML grid show
one row per query image, one column per encoder (top-k thumbnails with scores, relevant
results framed green, irrelevant red) and a "winner" column by the query's AP@10.
"""

import html
import json
from functools import lru_cache
from pathlib import Path
from typing import Optional

from PIL import Image, ImageDraw

from imgsearch.grid import _data_uri, _font, thumbnail

GREEN, RED, GREY = (30, 150, 60), (200, 40, 40), (150, 150, 150)
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
CELL_THUMB = 72
RANDOM_NOTE = "TINY RANDOM MODEL: weights are random, its numbers say nothing about the real encoder"


@lru_cache(maxsize=4096)
def _thumb(path: Optional[str], size: int) -> Image.Image:
    return thumbnail(path, size)


def _ok(result: dict) -> list[dict]:
    return [r for r in result["encoders"] if r.get("status") == "ok"]


def _label(rec: dict) -> str:
    return rec["encoder"] + (" (random)" if rec.get("random_weights") else "")


def _int(v):
    return None if v is None else int(v)


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


# --------------------------------------------------------------------------- grid rows


def grid_rows(result: dict) -> list[dict]:
    """The queries shown in the grid (evenly spread over the query list) with every encoder's top-k."""
    ok = _ok(result)
    if not ok:
        return []
    k, n_rows = result["grid"]["k"], result["grid"]["rows"]
    by_enc = {r["encoder"]: {q["query"]: q for q in r.get("per_query", []) if "matches" in q} for r in ok}
    order = [q["query"] for q in ok[0].get("per_query", []) if "matches" in q]
    if n_rows <= 0 or not order:
        return []
    step = max(1, len(order) / n_rows)
    picked = [order[int(i * step)] for i in range(min(n_rows, len(order)))]
    rows = []
    for path in picked:
        cells, aps = {}, {}
        label = None
        for r in ok:
            q = by_enc[r["encoder"]].get(path)
            if q is None:
                continue
            label = q.get("label")
            cells[r["encoder"]] = q["matches"][:k]
            if q.get("ap") is not None:
                aps[r["encoder"]] = q["ap"]
        best = max(aps.values()) if aps else None
        winners = [e for e, a in aps.items() if best is not None and abs(a - best) < 1e-9]
        tie = len(aps) > 1 and len(winners) == len(aps)
        rows.append({"query": path, "label": label, "cells": cells, "ap": aps,
                     "winner": [] if tie else winners, "tie": tie})
    return rows


def winner_counts(result: dict) -> dict[str, float]:
    """Over every query (not only the grid's): wins by AP@10, a tie split evenly."""
    ok = _ok(result)
    per = {r["encoder"]: {q["query"]: q.get("ap") for q in r.get("per_query", []) if q.get("ap") is not None} for r in ok}
    counts = {r["encoder"]: 0.0 for r in ok}
    queries = set().union(*[set(v) for v in per.values()]) if per else set()
    for q in queries:
        aps = {e: v[q] for e, v in per.items() if q in v}
        best = max(aps.values())
        winners = [e for e, a in aps.items() if abs(a - best) < 1e-9]
        for e in winners:
            counts[e] += 1 / len(winners)
    return {e: round(c, 2) for e, c in counts.items()}


# --------------------------------------------------------------------------- plots


def plot_scores(result: dict, out: Path) -> Optional[Path]:
    recs = [r for r in _ok(result) if (r.get("quality") or {}).get("labelled")]
    if not recs:
        return None
    W, H, pad, left = 900, 150, 12, 170
    canvas = Image.new("RGB", (W, pad + len(recs) * (H + pad) + 40), "white")
    d = ImageDraw.Draw(canvas)
    bins = len(recs[0]["quality"]["histogram_relevant"])
    lo_bin = min(next((i for i, c in enumerate(r["quality"]["histogram_relevant"][j] + r["quality"]["histogram_irrelevant"][j] for j in range(bins)) if c), 0) for r in recs)
    hi_bin = max(max((i for i in range(bins) if r["quality"]["histogram_relevant"][i] + r["quality"]["histogram_irrelevant"][i]), default=bins - 1) for r in recs)
    lo_bin, hi_bin = max(0, lo_bin - 1), min(bins - 1, hi_bin + 1)
    lo, hi = -1 + 2 * lo_bin / bins, -1 + 2 * (hi_bin + 1) / bins
    plot_w = W - left - pad

    def x_of(score: float) -> float:
        return left + (score - lo) / (hi - lo) * plot_w

    y = pad
    for r in recs:
        q = r["quality"]
        d.text((pad, y + 4), _label(r), fill=(0, 0, 0), font=_font(14))
        d.text((pad, y + 24), f"AUC {_fmt(q['auc'])}", fill=(60, 60, 60), font=_font(12))
        d.text((pad, y + 40), f"gap {_fmt(q['break_gap'])}", fill=(60, 60, 60), font=_font(12))
        if q.get("threshold"):
            d.text((pad, y + 56), f"t={q['threshold']['threshold']:.3f}", fill=(60, 60, 60), font=_font(12))
        d.rectangle([left, y, W - pad, y + H], outline=GREY)
        for hist, color, inset in ((q["histogram_irrelevant"], RED, 0), (q["histogram_relevant"], GREEN, 3)):
            peak = max(hist) or 1
            for i in range(lo_bin, hi_bin + 1):
                if hist[i]:
                    x0, x1 = x_of(-1 + 2 * i / bins), x_of(-1 + 2 * (i + 1) / bins)
                    h = (H - 4) * hist[i] / peak
                    d.rectangle([x0 + 1 + inset, y + H - h, x1 - 1 - inset, y + H], fill=color if inset else None, outline=color)
        if q.get("threshold"):
            tx = x_of(q["threshold"]["threshold"])
            d.line([tx, y, tx, y + H], fill=(0, 0, 0), width=2)
        y += H + pad
    for i in range(6):
        s = lo + (hi - lo) * i / 5
        d.line([x_of(s), y - pad, x_of(s), y - pad + 5], fill=(0, 0, 0))
        d.text((x_of(s) - 14, y - pad + 6), f"{s:.2f}", fill=(0, 0, 0), font=_font(11))
    d.text((left, y + 14), "cosine score · green: same label (relevant) · red outline: other labels · each scaled to its own peak · black: suggested threshold",
           fill=(60, 60, 60), font=_font(11))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


HEADLINE = [
    ("images_per_second", "encoding images/s", False),
    ("wall_seconds", "wall time to index, s", False),
    ("disk_mb", "index on disk, MB", False),
    ("peak_rss_mb", "encoder peak memory, MB", False),
    ("recall@1", "recall@1 (image→image)", True),
    ("mAP@10", "mAP@10 (image→image)", True),
    ("auc", "ROC AUC same vs other label", True),
    ("break_gap", "score gap at relevance break", True),
]


def _value(rec: dict, key: str, quality: bool):
    return (rec.get("quality") or {}).get(key) if quality else rec.get(key)


def plot_headline(result: dict, out: Path) -> Optional[Path]:
    recs = _ok(result)
    if not recs:
        return None
    panels = [(k, t, q) for k, t, q in HEADLINE if any(_value(r, k, q) is not None for r in recs)]
    cols, bar_h, pad, label_w = 2, 18, 14, 150
    pw = 440
    ph = 28 + len(recs) * (bar_h + 4) + pad
    rows = (len(panels) + cols - 1) // cols
    canvas = Image.new("RGB", (cols * (pw + pad) + pad, rows * (ph + pad) + pad), "white")
    d = ImageDraw.Draw(canvas)
    for n, (key, title, quality) in enumerate(panels):
        x0, y0 = pad + (n % cols) * (pw + pad), pad + (n // cols) * (ph + pad)
        d.text((x0, y0), title, fill=(0, 0, 0), font=_font(14))
        vals = [_value(r, key, quality) for r in recs]
        top = max([abs(v) for v in vals if v is not None] or [1]) or 1
        for i, (r, v) in enumerate(zip(recs, vals)):
            y = y0 + 24 + i * (bar_h + 4)
            d.text((x0, y + 2), _label(r)[:22], fill=(0, 0, 0), font=_font(11))
            if v is None:
                d.text((x0 + label_w, y + 2), "n/a", fill=GREY, font=_font(11))
                continue
            w = max(1, (pw - label_w - 60) * abs(v) / top)
            d.rectangle([x0 + label_w, y, x0 + label_w + w, y + bar_h], fill=PALETTE[i % len(PALETTE)])
            d.text((x0 + label_w + w + 4, y + 2), f"{v:.3g}", fill=(0, 0, 0), font=_font(11))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def render_grid_png(result: dict, rows: list[dict], out: Path) -> Optional[Path]:
    recs = _ok(result)
    if not rows or not recs:
        return None
    k, t, pad, cap, head = result["grid"]["k"], CELL_THUMB, 6, 16, 24
    qw = t + 2 * pad
    cw = k * (t + 2) + 2 * pad
    W = qw + len(recs) * cw + 140
    H = head + len(rows) * (t + cap + 2 * pad)
    canvas = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(canvas)
    d.text((pad, 4), "query", fill=(0, 0, 0), font=_font(13))
    for j, r in enumerate(recs):
        d.text((qw + j * cw + pad, 4), _label(r), fill=RED if r.get("random_weights") else (0, 0, 0), font=_font(13))
    d.text((qw + len(recs) * cw + pad, 4), "winner (AP@10)", fill=(0, 0, 0), font=_font(13))
    for i, row in enumerate(rows):
        y = head + i * (t + cap + 2 * pad)
        canvas.paste(_thumb(row["query"], t), (pad, y))
        d.text((pad, y + t + 1), str(row.get("label") or "")[:12], fill=(0, 0, 160), font=_font(10))
        for j, r in enumerate(recs):
            x = qw + j * cw + pad
            for n, m in enumerate(row["cells"].get(r["encoder"], [])):
                xx = x + n * (t + 2)
                canvas.paste(_thumb(m["path"], t - 4), (xx + 2, y + 2))
                if m.get("relevant") is not None and row.get("label") is not None:
                    d.rectangle([xx, y, xx + t - 1, y + t - 1], outline=GREEN if m["relevant"] else RED, width=2)
                d.text((xx + 2, y + t + 1), f"{m['score']:.3f}", fill=(0, 0, 0), font=_font(10))
        wtext = "tie" if row.get("tie") else ", ".join(row.get("winner") or []) or "–"
        d.text((qw + len(recs) * cw + pad, y + t // 2), wtext[:20], fill=(0, 0, 0), font=_font(12))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


# --------------------------------------------------------------------------- tables


def _headline_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    cols = ["encoder", "model", "weights", "wall s (with start-up)", "flow start s", "model load s", "encode img/s",
            "indexed", "disk MB", "bytes/vector", "dim", "peak RSS MB", "R@1", "R@5", "R@10", "mAP@10",
            "text R@1", "text R@5", "text mAP@10", "AUC", "separation", "break gap", "threshold (P / R)", "wins"]
    wins = winner_counts(result)
    rows = []
    for r in _ok(result):
        q = r.get("quality") or {}
        tq = r.get("text_quality") or {}
        lab = q.get("labelled")
        thr = q.get("threshold")
        no = "no labels"
        rows.append([
            r["encoder"], r.get("model", ""),
            "RANDOM (tiny test model)" if r.get("random_weights") else r.get("checkpoint_note", ""),
            _fmt(r.get("wall_seconds"), 1), _fmt(r.get("flow_start_seconds"), 1), _fmt(r.get("load_seconds"), 2),
            _fmt(r.get("images_per_second"), 1), _fmt(_int(r.get("indexed"))), _fmt(r.get("disk_mb"), 2),
            _fmt(r.get("bytes_per_vector"), 0), _fmt(_int(r.get("dim"))), _fmt(r.get("peak_rss_mb"), 0),
            *([_fmt(q.get(k)) for k in ("recall@1", "recall@5", "recall@10", "mAP@10")] if lab else [no] * 4),
            *([_fmt(tq.get(k)) for k in ("recall@1", "recall@5", "mAP@10")] if tq.get("labelled") else
              ["no labels" if "text_quality" in r else "image-only"] * 3),
            *([_fmt(q.get("auc")), _fmt(q.get("separation")), _fmt(q.get("break_gap")),
               f"{thr['threshold']:.3f} ({thr['precision']:.2f} / {thr['recall']:.2f})" if thr else "–"] if lab else [no] * 4),
            _fmt(wins.get(r["encoder"]), 1) if lab else "–",
        ])
    return cols, rows


def _not_run(result: dict) -> list[tuple[str, str, str]]:
    return [(r["encoder"], r["status"], r.get("reason", "")) for r in result["encoders"] if r.get("status") != "ok"]


def _settings(result: dict) -> dict:
    per = {}
    for r in _ok(result):
        info = dict(r.get("info") or {})
        per[r["encoder"]] = {**info, "random_weights": bool(r.get("random_weights")), "checkpoint_note": r.get("checkpoint_note")}
    return {"run": result["settings"], "environment": result["environment"], "encoders": per}


def write_markdown(result: dict, rows: list[dict], out: Path, files: dict) -> Path:
    cols, table = _headline_rows(result)
    lines = [f"# {result['title']}", "",
             f"{result['created']} · {result['data']['images']} images, {result['data']['labels']} labels in `{result['data']['folder']}` · "
             f"{result['queries']['count']} queries ({result['queries']['source']}) · run took {result['seconds']} s", ""]
    for r in _ok(result):
        if r.get("random_weights"):
            lines.append(f"> **{r['encoder']}: {RANDOM_NOTE}** (`{r.get('model')}`)")
    if not result["data"]["labelled"]:
        lines.append("> **no labels**: images sit directly in the folder, so quality and score separation cannot be measured; timings, sizes and grids still are.")
    lines += ["", "## Headline numbers", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table]
    if _not_run(result):
        lines += ["", "## Not run", ""] + [f"- **{e}** {s}: {why}" for e, s, why in _not_run(result)]
    lines += ["", "Recall@k is the share of queries with a same-label image among the first k (the query itself excluded); "
              "mAP@10 averages AP@10 over queries; AUC is the chance a same-label result outscores an other-label one; "
              "break gap is the mean score drop at the first other-label result after a leading run of same-label ones; "
              "the threshold maximises F1 of \"score ≥ t means same label\" over all scored pairs. "
              "Wall time covers flow start-up, model load and indexing; encode img/s covers the /index requests alone.", ""]
    for key, title in (("headline", "Headline numbers, charted"), ("scores", "Score distributions"), ("grid", "Result grid")):
        if files.get(key):
            lines += [f"## {title}", "", f"![{title}]({files[key]})", ""]
    if rows:
        lines += ["## Grid (text form)", "", "| query | " + " | ".join(rows[0]["cells"]) + " | winner |", "|" + "---|" * (len(rows[0]["cells"]) + 2)]
        for row in rows:
            cells = [", ".join(f"{Path(m['path']).name} ({m['score']:.3f}{'' if m.get('relevant') is None else (' ✓' if m['relevant'] else ' ✗')})" for m in row["cells"].get(e, []))
                     for e in rows[0]["cells"]]
            lines.append(f"| {Path(row['query']).name} [{row.get('label') or ''}] | " + " | ".join(cells)
                         + f" | {'tie' if row.get('tie') else ', '.join(row.get('winner') or []) or '–'} |")
    lines += ["", "## Settings (to reproduce)", "", "```json", json.dumps(_settings(result), indent=2, default=str), "```", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _img_file_uri(path: Optional[Path]) -> Optional[str]:
    if not path:
        return None
    import base64

    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def write_html(result: dict, rows: list[dict], out: Path, files: dict) -> Path:
    e = html.escape
    cols, table = _headline_rows(result)
    recs = _ok(result)
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
        f"{result['queries']['count']} queries ({e(result['queries']['source'])}) · run took {result['seconds']} s</p>",
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
    if _not_run(result):
        parts.append("<h2>Not run</h2><ul id='not-run'>" + "".join(
            f"<li data-encoder='{e(n)}'><b>{e(n)}</b> {e(s)}: {e(why)}</li>" for n, s, why in _not_run(result)) + "</ul>")
    for key, title in (("headline", "Headline numbers, charted"), ("scores", "Score distributions: same label vs other labels")):
        if files.get(key):
            parts.append(f"<h2>{e(title)}</h2><img class='plot' id='plot-{key}' alt='{e(title)}' src='{_img_file_uri(out / files[key])}'>")
    if rows:
        parts.append("<h2>Result grid</h2><p>One row per query image, one column per encoder: the top "
                     f"{result['grid']['k']} results with scores; green frame = same label, red = other label. "
                     "Winner: the best AP@10 for that query.</p><table id='grid'><tr><th>query</th>"
                     + "".join(f"<th{' class=random' if r.get('random_weights') else ''}>{e(_label(r))}</th>" for r in recs)
                     + "<th>winner</th></tr>")
        for row in rows:
            parts.append(f"<tr class='grid-row' data-query='{e(row['query'])}'>"
                         f"<td class='query'><figure><img src='{_data_uri(_thumb(row['query'], CELL_THUMB))}' alt='query'>"
                         f"<figcaption>{e(str(row.get('label') or ''))}<br>{e(Path(row['query']).name)}</figcaption></figure></td>")
            for r in recs:
                parts.append(f"<td class='cell' data-encoder='{e(r['encoder'])}'>")
                for n, m in enumerate(row["cells"].get(r["encoder"], []), 1):
                    cls = "" if m.get("relevant") is None or row.get("label") is None else (" rel" if m["relevant"] else " irr")
                    parts.append(f"<figure class='match{cls}' data-rank='{n}' data-path='{e(m['path'] or '')}' data-score='{m['score']:.6f}'>"
                                 f"<img src='{_data_uri(_thumb(m['path'], CELL_THUMB))}' alt='{e(Path(m['path'] or '?').name)}'>"
                                 f"<figcaption>{m['score']:.3f}</figcaption></figure>")
                parts.append("</td>")
            wtext = "tie" if row.get("tie") else ", ".join(row.get("winner") or []) or "–"
            parts.append(f"<td class='winner' data-winner='{e(wtext)}'>{e(wtext)}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Settings (to reproduce)</h2><pre id='settings'>" + e(json.dumps(_settings(result), indent=2, default=str)) + "</pre>")
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def write_report(result: dict, out: Path) -> dict:
    """Write every report file into ``out``; returns {kind: file name}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = grid_rows(result)
    files = {}
    for key, fn in (("scores", lambda p: plot_scores(result, p)), ("headline", lambda p: plot_headline(result, p)),
                    ("grid", lambda p: render_grid_png(result, rows, p))):
        if fn(out / f"{key}.png") is not None:
            files[key] = f"{key}.png"
    result["grid"]["shown"] = rows
    result["wins"] = winner_counts(result)
    result["files"] = {**files, "markdown": "report.md", "html": "report.html", "json": "report.json"}
    write_markdown(result, rows, out, files)
    write_html(result, rows, out, files)
    (out / "report.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return result["files"]
