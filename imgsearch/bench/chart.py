"""The bench chart: one panel of horizontal bars per figure (PIL, like the compare report)."""

from pathlib import Path
from typing import Optional

from PIL import Image, ImageDraw

from imgsearch.grid import _font
from imgsearch.report.common import PALETTE


def bar_panels(panels: list[tuple[str, list[tuple[str, Optional[float], str]]]], out: Path, cols: int = 2) -> Path:
    """``panels``: (title, [(label, value, value text)]); a value of None is drawn as n/a."""
    bar_h, pad, label_w, pw = 18, 14, 190, 470
    ph = 28 + max(len(bars) for _, bars in panels) * (bar_h + 4) + pad
    rows = (len(panels) + cols - 1) // cols
    canvas = Image.new("RGB", (cols * (pw + pad) + pad, rows * (ph + pad) + pad), "white")
    d = ImageDraw.Draw(canvas)
    for n, (title, bars) in enumerate(panels):
        x0, y0 = pad + (n % cols) * (pw + pad), pad + (n // cols) * (ph + pad)
        d.text((x0, y0), title, fill=(0, 0, 0), font=_font(14))
        top = max([abs(v) for _, v, _ in bars if v is not None] or [1]) or 1
        for i, (label, value, text) in enumerate(bars):
            y = y0 + 24 + i * (bar_h + 4)
            d.text((x0, y + 2), label[:28], fill=(0, 0, 0), font=_font(11))
            if value is None:
                d.text((x0 + label_w, y + 2), "n/a", fill=(128, 128, 128), font=_font(11))
                continue
            w = max(1, (pw - label_w - 80) * abs(value) / top)
            d.rectangle([x0 + label_w, y, x0 + label_w + w, y + bar_h], fill=PALETTE[i % len(PALETTE)])
            d.text((x0 + label_w + w + 4, y + 2), text, fill=(0, 0, 0), font=_font(11))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
