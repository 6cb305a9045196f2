"""Result grids people can look at: the query, then the top-k thumbnails with scores."""

import base64
import html
import io
import logging
from pathlib import Path
from typing import Optional

from PIL import Image, ImageDraw, ImageFont

from executors.normalizer.decode import decode_image
from imgsearch.datasource import read_bytes

logger = logging.getLogger(__name__)

THUMB = 160
_FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(_FONT_PATH, size)
    except OSError:
        return ImageFont.load_default(size=size)


def thumbnail(path: Optional[str], size: int = THUMB) -> Image.Image:
    """A size×size thumbnail (letterboxed); a grey tile saying why if the file is unreadable."""
    tile = Image.new("RGB", (size, size), (235, 235, 235))
    try:
        # The normalizer's decoder: every format it indexes (HEIC, camera RAW...), upright, and
        # a JPEG decoded at a reduced scale.
        if path is None:  # a match without a path: the same tile as any unreadable file
            raise TypeError("no path to read")
        pixels, _, _ = decode_image(read_bytes(path), max_side=size)
        img = Image.fromarray(pixels)
        tile.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    except Exception as exc:  # the file may have moved since it was indexed
        ImageDraw.Draw(tile).text((6, size // 2 - 8), f"unavailable:\n{type(exc).__name__}", fill=(120, 0, 0), font=_font(12))
    return tile


def _text_tile(text: str, size: int = THUMB) -> Image.Image:
    tile = Image.new("RGB", (size, size), (250, 250, 220))
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) > 16 and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    ImageDraw.Draw(tile).multiline_text((8, 8), "text query:\n" + "\n".join(lines[:7]), fill=(0, 0, 0), font=_font(14))
    return tile


def render_png(query: dict, rows: list[tuple[str, list[dict]]], out: Path) -> Path:
    """One row per (title, matches): query tile first, then each match with score and label."""
    k = max((len(m) for _, m in rows), default=0)
    pad, caption = 8, 34
    title_h = 22
    width = pad + (THUMB + pad) * (k + 1)
    height = sum(title_h + THUMB + caption + pad for _ in rows) + pad
    canvas = Image.new("RGB", (width, max(height, THUMB + 2 * pad)), "white")
    draw = ImageDraw.Draw(canvas)
    qtile = thumbnail(query["image"]) if "image" in query else _text_tile(query["text"])
    y = pad
    for title, matches in rows:
        draw.text((pad, y), title, fill=(0, 0, 0), font=_font(14))
        y += title_h
        canvas.paste(qtile, (pad, y))
        draw.text((pad, y + THUMB + 2), "query", fill=(0, 0, 160), font=_font(12))
        for i, m in enumerate(matches):
            x = pad + (THUMB + pad) * (i + 1)
            canvas.paste(thumbnail(m.get("path")), (x, y))
            draw.text((x, y + THUMB + 2), f"#{i + 1}  {m['score']:.3f}", fill=(0, 0, 0), font=_font(12))
            draw.text((x, y + THUMB + 17), str(m.get("label") or Path(m.get("path") or "?").name)[:24], fill=(90, 90, 90), font=_font(11))
        y += THUMB + caption + pad
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def _data_uri(tile: Image.Image) -> str:
    buf = io.BytesIO()
    tile.save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def render_html(query: dict, rows: list[tuple[str, list[dict]]], out: Path, title: str = "Search results") -> Path:
    """A self-contained page (thumbnails inlined) with the same rows as the PNG."""
    qtile = thumbnail(query["image"]) if "image" in query else _text_tile(query["text"])
    qlabel = html.escape(query.get("image") or f"“{query.get('text')}”")
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:16px}figure{display:inline-block;margin:4px;"
        "width:%dpx;vertical-align:top}figcaption{font-size:12px;word-break:break-all}"
        "img{width:%dpx;height:%dpx;object-fit:contain;background:#eee}.q img{outline:3px solid #36c}"
        "h2{font-size:16px;margin:18px 0 4px}</style>" % (THUMB, THUMB, THUMB),
        f"<h1>{html.escape(title)}</h1>",
    ]
    for row_title, matches in rows:
        parts.append(f"<h2>{html.escape(row_title)}</h2><div class='row'>")
        parts.append(f"<figure class='q'><img src='{_data_uri(qtile)}' alt='query'><figcaption>query: {qlabel}</figcaption></figure>")
        for i, m in enumerate(matches):
            path = m.get("path") or ""
            parts.append(
                f"<figure class='match' data-path='{html.escape(path)}' data-score='{m['score']:.6f}'>"
                f"<img src='{_data_uri(thumbnail(path))}' alt='{html.escape(Path(path).name)}'>"
                f"<figcaption>#{i + 1} <b>{m['score']:.3f}</b> {html.escape(str(m.get('label') or ''))}<br>"
                f"{html.escape(Path(path).name)}</figcaption></figure>"
            )
        parts.append("</div>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
