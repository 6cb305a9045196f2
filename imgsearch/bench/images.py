"""The images a bench run measures on: a sample of a real folder, or synthetic ones.

Every measurement of one run (bare model, end to end) uses the same files, so their
ratio compares like with like. Synthetic images are JPEGs with smooth random content
(upsampled noise plus a few shapes), about the size and entropy of small memes, written
once per (count, size) and reused.
"""

import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from executors.loader.executor import walk_files
from executors.loader.filetypes import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)

PER_FOLDER = 1000  # synthetic images per sub-folder (label), so no folder gets huge


def sample_folder(data: Path, limit: int, out: Path) -> Path:
    """Hard-link (or copy) the first ``limit`` images of ``data`` into ``out``, labels kept."""
    data = data.resolve()
    if out.exists():
        shutil.rmtree(out)
    n = 0
    for path in walk_files(data):
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        target = out / path.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        n += 1
        if n >= limit:
            break
    if n == 0:
        raise ValueError(f"no images found under {data}")
    return out


def _write_chunk(args: tuple[Path, int, int, int, int]) -> None:
    from PIL import Image, ImageDraw

    root, start, stop, width, height = args
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((width, height), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            x0, y0 = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
            x1, y1 = x0 + int(rng.integers(8, width // 2)), y0 + int(rng.integers(8, height // 2))
            draw.ellipse((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        folder = root / f"s{i // PER_FOLDER:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:07d}.jpg", quality=85)


def synthetic_folder(root: Path, count: int, width: int = 320, height: int = 240, workers: Optional[int] = None) -> Path:
    """``count`` synthetic JPEGs under ``root/<count>-<w>x<h>`` (made once, then reused)."""
    out = Path(root) / f"{count}-{width}x{height}"
    done = out / ".complete"
    if done.is_file():
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    step = 500
    chunks = [(out, s, min(s + step, count), width, height) for s in range(0, count, step)]
    logger.info("writing %d synthetic %dx%d images to %s", count, width, height, out)
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(_write_chunk, chunks))
    done.write_text(f"{count}\n")
    return out


def image_files(folder: Path) -> list[Path]:
    return [p for p in walk_files(Path(folder).resolve()) if p.suffix.lower() in IMAGE_EXTENSIONS]
