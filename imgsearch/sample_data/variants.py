"""Re-shared meme variants: captions, crops, rescaling and JPEG re-compression of a template."""

from __future__ import annotations

import functools
import io
import logging
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

log = logging.getLogger(__name__)

FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")

CAPTIONS: tuple[str, ...] = (
    "one does not simply",
    "such wow",
    "much search",
    "very similar",
    "not sure if",
    "shut up and take my money",
    "i have no idea what i'm doing",
    "this is fine",
    "y u no",
    "brace yourselves",
    "it's over 9000",
    "all the things",
    "what if i told you",
    "challenge accepted",
    "nailed it",
    "me in the morning",
    "when the code works",
    "on the first try",
    "deploy on friday",
    "works on my machine",
    "nobody:",
    "trust me",
    "i'm in danger",
    "not again",
    "so much win",
    "task failed successfully",
    "that escalated quickly",
    "ain't nobody got time",
    "is this a pigeon?",
    "how about no",
    "me explaining",
    "my last braincell",
    "you get a meme",
    "everyone gets a meme",
    "it's a trap",
    "winter is coming",
    "hold my coffee",
    "but why",
    "wait for it",
    "best day ever",
    "error 404 humor",
    "big if true",
)


def _load_rgb(data: bytes) -> Image.Image:
    """Decode to RGB: first frame of animations, transparency flattened onto white."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.seek(0)
        im = ImageOps.exif_transpose(opened)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            # convert("RGB") would expose whatever colour hides under transparent pixels.
            rgba = im.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(canvas, rgba).convert("RGB")
        return im.convert("RGB")


@functools.lru_cache(maxsize=256)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if FONT_PATH.is_file():
        return ImageFont.truetype(str(FONT_PATH), size)
    return ImageFont.load_default(size=size)


def _text_width(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str, stroke: int) -> int:
    left, _, right, _ = font.getbbox(text, stroke_width=stroke)
    return int(right - left)


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, stroke: int, max_width: float) -> list[str] | None:
    """Greedy word wrap; None if a single word is wider than the line."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if _text_width(font, trial, stroke) <= max_width:
            current = trial
            continue
        if not current:
            return None
        lines.append(current)
        current = word
        if _text_width(font, current, stroke) > max_width:
            return None
    if current:
        lines.append(current)
    return lines


def _fit_caption(text: str, width: int, height: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, int, list[str], int]:
    """Largest font whose wrapped caption fits the width and a quarter of the height."""
    max_width = width * 0.94
    max_height = height * 0.24
    size = max(8, min(200, height // 7))
    while True:
        font = _font(size)
        stroke = max(1, round(size / 12))
        ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (size, size // 4)
        line_height = ascent + descent + 2 * stroke
        lines = _wrap(text, font, stroke, max_width)
        if size <= 8 or (lines is not None and len(lines) * line_height <= max_height):
            if lines is None:  # even the smallest font is too wide: let it overflow
                lines = [text]
            return font, stroke, lines, line_height
        size = max(8, int(size * 0.9))


def _draw_caption(img: Image.Image, top: str, bottom: str) -> None:
    """Classic meme captions: white, black outline, uppercase, centred top and bottom."""
    draw = ImageDraw.Draw(img)
    width, height = img.size
    margin = max(2, height // 40)
    for text, at_top in ((top, True), (bottom, False)):
        font, stroke, lines, line_height = _fit_caption(text.upper(), width, height)
        y = margin if at_top else height - margin - len(lines) * line_height
        for line in lines:
            draw.text(
                (width / 2, y + stroke),
                line,
                font=font,
                anchor="ma",
                fill=(255, 255, 255),
                stroke_width=stroke,
                stroke_fill=(0, 0, 0),
            )
            y += line_height


def _random_crop(img: Image.Image, rng: random.Random, keep_lo: float, keep_hi: float) -> Image.Image:
    width, height = img.size
    cw = max(1, round(width * rng.uniform(keep_lo, keep_hi)))
    ch = max(1, round(height * rng.uniform(keep_lo, keep_hi)))
    x = rng.randint(0, width - cw)
    y = rng.randint(0, height - ch)
    return img.crop((x, y, x + cw, y + ch))


def _random_scale(img: Image.Image, rng: random.Random) -> Image.Image:
    scale = rng.uniform(0.5, 1.0)
    size = (max(16, round(img.width * scale)), max(16, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def _encode_jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_variant(img: Image.Image, rng: random.Random, hard: bool = False) -> bytes:
    """One re-shared-meme variant of ``img`` as JPEG bytes; all randomness from ``rng``."""
    # The order of rng draws is part of the dataset's identity: do not reorder.
    top, bottom = rng.sample(CAPTIONS, 2)
    if hard:
        out = _random_crop(img, rng, 0.5, 0.8)
    else:
        out = _random_crop(img, rng, 0.8, 1.0)
    out = _random_scale(out, rng)
    # Caption after the geometry so the text is never cropped away or resampled blurry.
    _draw_caption(out, top, bottom)
    if hard:
        angle = rng.uniform(-25.0, 25.0)
        fill = tuple(rng.randint(0, 255) for _ in range(3))
        out = out.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
        if rng.random() < 0.5:
            out = out.convert("L").convert("RGB")
        quality = rng.randint(15, 40)
    else:
        quality = rng.randint(40, 90)
    return _encode_jpeg(out, quality)
