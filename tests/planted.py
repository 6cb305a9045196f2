"""A generated image set with planted problems: cross-label near-duplicates and mislabels.

Eight labels, one real photo each (scikit-image's), twelve views of it per label (crops, flips,
small rotations). Then ``mislabels`` images are new views of one label's photo filed under another
label, and ``copies`` are JPEG re-saves (quality 95) of indexed images filed under
another label. Returns the ground truth as paths.
"""

from pathlib import Path

import numpy as np
from PIL import Image


def _sources() -> dict[str, np.ndarray]:
    import skimage.data as d

    def rgb(a):
        return np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]

    return {
        "coffee": d.coffee(),
        "cat": d.chelsea(),
        "astronaut": d.astronaut(),
        "rocket": d.rocket(),
        "motorcycle": d.stereo_motorcycle()[0],
        "bricks": rgb(d.brick()),
        "coins": rgb(d.coins()),
        "camera": rgb(d.camera()),
    }


def _view(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    s = rng.uniform(0.55, 0.9)
    cw, ch = int(w * s), int(h * s)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = img.crop((x, y, x + cw, y + ch)).rotate(float(rng.uniform(-8, 8)))
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out.resize((256, int(256 * ch / cw)))


def make_planted(root: Path, per_label: int = 12, mislabels: int = 8, copies: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sources = {k: Image.fromarray(v).convert("RGB") for k, v in _sources().items()}
    labels = list(sources)
    files: dict[str, list[Path]] = {}
    for lab, img in sources.items():
        (root / lab).mkdir(parents=True, exist_ok=True)
        files[lab] = []
        for i in range(per_label):
            p = root / lab / f"{lab}-{i:02d}.jpg"
            _view(img, rng).save(p, quality=90)
            files[lab].append(p)
    truth: dict = {"mislabels": [], "copies": []}
    for i in range(mislabels):
        src = labels[i % len(labels)]
        dst = labels[(i + 3) % len(labels)]
        p = root / dst / f"stray-{src}-{i:02d}.jpg"
        _view(sources[src], rng).save(p, quality=90)
        truth["mislabels"].append({"path": str(p), "label": dst, "true": src})
    for i in range(copies):
        src = labels[(i + 1) % len(labels)]
        dst = labels[(i + 5) % len(labels)]
        orig = files[src][i % per_label]
        p = root / dst / f"copy-of-{orig.stem}.jpg"
        with Image.open(orig) as im:
            im.save(p, quality=95)  # a re-saved copy: other bytes, the same picture
        truth["copies"].append({"a": str(orig), "b": str(p)})
    return truth
