"""The report's pictures, drawn with PIL (no plotting library needed).

``scores.png``: relevant vs irrelevant score distributions per encoder, with the suggested
threshold; ``headline.png``: bar charts of the headline numbers, quality bars with their
95% intervals as error bars; ``grid.png``: one row per query, one column per encoder.
"""

from pathlib import Path
from typing import Optional

from PIL import Image, ImageDraw

from imgsearch.grid import _font
from imgsearch.report.common import (
    CELL_THUMB,
    GREEN,
    GREY,
    PALETTE,
    RED,
    fmt,
    label,
    thumb,
)
from imgsearch.report.selection import ok_runs


def plot_scores(result: dict, out: Path) -> Optional[Path]:
    recs = [r for r in ok_runs(result) if (r.get("quality") or {}).get("labelled")]
    if not recs:
        return None
    W, H, pad, left = 960, 150, 12, 240  # left: room for an ENCODER@RUNTIME name
    canvas = Image.new("RGB", (W, pad + len(recs) * (H + pad) + 40), "white")
    d = ImageDraw.Draw(canvas)
    bins = len(recs[0]["quality"]["histogram_relevant"])
    lo_bin = min(
        next((i for i, c in enumerate(r["quality"]["histogram_relevant"][j] + r["quality"]["histogram_irrelevant"][j] for j in range(bins)) if c), 0)
        for r in recs
    )
    hi_bin = max(
        max((i for i in range(bins) if r["quality"]["histogram_relevant"][i] + r["quality"]["histogram_irrelevant"][i]), default=bins - 1)
        for r in recs
    )
    lo_bin, hi_bin = max(0, lo_bin - 1), min(bins - 1, hi_bin + 1)
    lo, hi = -1 + 2 * lo_bin / bins, -1 + 2 * (hi_bin + 1) / bins
    plot_w = W - left - pad

    def x_of(score: float) -> float:
        return left + (score - lo) / (hi - lo) * plot_w

    y = pad
    for r in recs:
        q = r["quality"]
        d.text((pad, y + 4), label(r), fill=(0, 0, 0), font=_font(14))
        d.text((pad, y + 24), f"AUC {fmt(q['auc'])}", fill=(60, 60, 60), font=_font(12))
        d.text((pad, y + 40), f"gap {fmt(q['break_gap'])}", fill=(60, 60, 60), font=_font(12))
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
    d.text(
        (left, y + 14),
        "cosine score · green: same label (relevant) · red outline: other labels · each scaled to its own peak · black: suggested threshold",
        fill=(60, 60, 60),
        font=_font(11),
    )
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


def _ci(rec: dict, key: str, quality: bool) -> Optional[list]:
    return ((rec.get("quality") or {}).get("ci") or {}).get(key) if quality else None


def plot_headline(result: dict, out: Path) -> Optional[Path]:
    recs = ok_runs(result)
    if not recs:
        return None
    panels = [(k, t, q) for k, t, q in HEADLINE if any(_value(r, k, q) is not None for r in recs)]
    cols, bar_h, pad, label_w = 2, 18, 14, 200  # label_w: room for an ENCODER@RUNTIME name
    pw = 490
    ph = 28 + len(recs) * (bar_h + 4) + pad
    rows = (len(panels) + cols - 1) // cols
    canvas = Image.new("RGB", (cols * (pw + pad) + pad, rows * (ph + pad) + pad), "white")
    d = ImageDraw.Draw(canvas)
    for n, (key, title, quality) in enumerate(panels):
        x0, y0 = pad + (n % cols) * (pw + pad), pad + (n // cols) * (ph + pad)
        d.text((x0, y0), title + (" · 95% CI" if quality else ""), fill=(0, 0, 0), font=_font(14))
        vals = [_value(r, key, quality) for r in recs]
        cis = [_ci(r, key, quality) for r in recs]
        top = max([abs(v) for v in vals if v is not None] + [abs(c[1]) for c in cis if c] or [1]) or 1
        scale = (pw - label_w - 70) / top
        for i, (r, v, ci) in enumerate(zip(recs, vals, cis)):
            y = y0 + 24 + i * (bar_h + 4)
            d.text((x0, y + 2), label(r)[:32], fill=(0, 0, 0), font=_font(11))
            if v is None:
                d.text((x0 + label_w, y + 2), "n/a", fill=GREY, font=_font(11))
                continue
            w = max(1, scale * abs(v))
            d.rectangle([x0 + label_w, y, x0 + label_w + w, y + bar_h], fill=PALETTE[i % len(PALETTE)])
            end = w
            if ci:  # the error bar: the interval's ends, joined, with caps
                lo, hi = x0 + label_w + scale * max(0.0, ci[0]), x0 + label_w + scale * max(0.0, ci[1])
                mid = y + bar_h // 2
                d.line([lo, mid, hi, mid], fill=(0, 0, 0), width=2)
                d.line([lo, y + 3, lo, y + bar_h - 3], fill=(0, 0, 0), width=2)
                d.line([hi, y + 3, hi, y + bar_h - 3], fill=(0, 0, 0), width=2)
                end = max(end, hi - x0 - label_w)
            d.text((x0 + label_w + end + 4, y + 2), f"{v:.3g}", fill=(0, 0, 0), font=_font(11))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def render_grid_png(result: dict, rows: list[dict], out: Path) -> Optional[Path]:
    recs = ok_runs(result)
    if not rows or not recs:
        return None
    k, t, pad, cap, head = result["grid"]["k"], CELL_THUMB, 6, 16, 24
    qw = t + 2 * pad
    cw = k * (t + 2) + 2 * pad
    W = qw + len(recs) * cw + 210  # the winner column: room for an ENCODER@RUNTIME name
    H = head + len(rows) * (t + cap + 2 * pad)
    canvas = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(canvas)
    d.text((pad, 4), "query", fill=(0, 0, 0), font=_font(13))
    for j, r in enumerate(recs):
        d.text((qw + j * cw + pad, 4), label(r), fill=RED if r.get("random_weights") else (0, 0, 0), font=_font(13))
    d.text((qw + len(recs) * cw + pad, 4), "winner (AP@10)", fill=(0, 0, 0), font=_font(13))
    for i, row in enumerate(rows):
        y = head + i * (t + cap + 2 * pad)
        canvas.paste(thumb(row["query"], t), (pad, y))
        d.text((pad, y + t + 1), str(row.get("label") or "")[:12], fill=(0, 0, 160), font=_font(10))
        for j, r in enumerate(recs):
            x = qw + j * cw + pad
            for n, m in enumerate(row["cells"].get(r["encoder"], [])):
                xx = x + n * (t + 2)
                canvas.paste(thumb(m["path"], t - 4), (xx + 2, y + 2))
                if m.get("relevant") is not None and row.get("label") is not None:
                    d.rectangle([xx, y, xx + t - 1, y + t - 1], outline=GREEN if m["relevant"] else RED, width=2)
                d.text((xx + 2, y + t + 1), f"{m['score']:.3f}", fill=(0, 0, 0), font=_font(10))
        wtext = "tie" if row.get("tie") else "\n".join(w[:30] for w in (row.get("winner") or [])[:4]) or "–"  # one a line
        d.multiline_text((qw + len(recs) * cw + pad, y + 4), wtext, fill=(0, 0, 0), font=_font(12))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
