"""``tradeoff.png``: quality (mAP@10) against milliseconds per image on a log axis, one point
per entry (encoder, encoder@runtime, fused row), the Pareto front drawn as a step line."""

import math
from pathlib import Path
from typing import Optional

from PIL import Image, ImageDraw

from imgsearch.grid import _font
from imgsearch.report.common import GREY, PALETTE

W, H, LEFT, RIGHT, TOP, BOTTOM = 900, 460, 70, 30, 30, 60


def _points(result: dict) -> list[tuple[str, float, float, bool]]:
    rows = (result.get("cost") or {}).get("rows") or {}
    return [
        (name, float(r["ms_per_image"]), float(r["quality"]), bool(r.get("pareto")))
        for name, r in rows.items()
        if r.get("ms_per_image") and r.get("quality") is not None
    ]


def plot_tradeoff(result: dict, out: Path) -> Optional[Path]:
    pts = _points(result)
    if len(pts) < 2:
        return None
    lo_ms, hi_ms = min(p[1] for p in pts), max(p[1] for p in pts)
    x_lo, x_hi = math.floor(math.log10(lo_ms) - 0.1), math.ceil(math.log10(hi_ms) + 0.1)
    q_lo, q_hi = min(p[2] for p in pts), max(p[2] for p in pts)
    pad = max(0.02, (q_hi - q_lo) * 0.15)
    y_lo, y_hi = max(0.0, q_lo - pad), min(1.0, q_hi + pad)

    def xy(ms: float, q: float) -> tuple[float, float]:
        x = LEFT + (math.log10(ms) - x_lo) / (x_hi - x_lo) * (W - LEFT - RIGHT)
        y = H - BOTTOM - (q - y_lo) / max(1e-9, y_hi - y_lo) * (H - TOP - BOTTOM)
        return x, y

    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([LEFT, TOP, W - RIGHT, H - BOTTOM], outline=GREY)
    for e in range(x_lo, x_hi + 1):  # decades, and 2× / 5× minor ticks
        for m in (1, 2, 5):
            ms = m * 10.0**e
            if 10.0**x_lo <= ms <= 10.0**x_hi:
                x = xy(ms, y_lo)[0]
                d.line([x, TOP, x, H - BOTTOM], fill=(225, 225, 225) if m > 1 else (200, 200, 200))
                d.text((x - 12, H - BOTTOM + 6), f"{ms:g}", fill=(60, 60, 60), font=_font(11))
    for i in range(5):
        q = y_lo + (y_hi - y_lo) * i / 4
        y = xy(10.0**x_lo, q)[1]
        d.text((8, y - 7), f"{q:.3f}", fill=(60, 60, 60), font=_font(11))
    d.text((W // 2 - 160, H - 26), "ms per image (bare model, log scale)  — cheaper to the left", fill=(0, 0, 0), font=_font(12))
    d.text((LEFT, 8), "mAP@10 against cost: the line joins the Pareto-optimal entries", fill=(0, 0, 0), font=_font(13))
    front = sorted((p for p in pts if p[3]), key=lambda p: p[1])
    for a, b in zip(front, front[1:]):  # a step: quality holds until the next front point
        (x0, y0), (x1, y1) = xy(a[1], a[2]), xy(b[1], b[2])
        d.line([x0, y0, x1, y0, x1, y1], fill=(30, 150, 60), width=2)
    placed: list[tuple[float, float, float, float]] = []
    for i, (name, ms, q, on_front) in enumerate(pts):
        x, y = xy(ms, q)
        color = PALETTE[i % len(PALETTE)]
        r = 6 if on_front else 4
        d.ellipse([x - r, y - r, x + r, y + r], fill=color if on_front else "white", outline=color, width=2)
        w = d.textlength(name, font=_font(12))
        lx = x + 8 if x + 8 + w < W - 4 else x - 8 - w  # past the right edge: to the point's left
        ly = y - 8
        while any(lx < b[2] and b[0] < lx + w and ly < b[3] and b[1] < ly + 14 for b in placed):
            ly += 14  # close points: their names stacked, not overprinted
        placed.append((lx, ly, lx + w, ly + 14))
        d.text((lx, ly), name, fill=color, font=_font(12))
    img.save(out)
    return out
