"""The plain one-process script a user could write instead of the flow: the baseline that
`app.py index` is timed against (``python -m imgsearch.bench.script FOLDER``).

Decode with Pillow (libjpeg's reduced-size decoding), resize the shorter side to 256,
centre-crop 224, scale to [-1, 1], EfficientNet-Lite0 forward in torch, mean-pool: the
same vectors as the encoder, in about thirty lines, nothing stored.
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from executors.encoders.efficientnet import load_lite


def load(path: Path) -> np.ndarray:
    img: Image.Image = Image.open(path)  # then the converted and resized copies
    img.draft("RGB", (256, 256))
    img = img.convert("RGB")
    w, h = img.size
    scale = 256 / min(w, h)
    img = img.resize((max(256, round(w * scale)), max(256, round(h * scale))), Image.Resampling.BICUBIC)
    w, h = img.size
    left, top = (w - 224) // 2, (h - 224) // 2
    return np.asarray(img.crop((left, top, left + 224, top + 224)))


def main(folder: str, batch_size: int = 32) -> None:
    started = time.perf_counter()
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    net = load_lite("efficientnet-lite0").eval()
    vectors = []
    with torch.inference_mode():
        for s in range(0, len(files), batch_size):
            batch = np.stack([load(p) for p in files[s : s + batch_size]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            vectors.append(torch.nn.functional.normalize(net.extract_features(x).mean(dim=(-2, -1)), dim=-1))
    n = sum(len(v) for v in vectors)
    print(f"{n} images in {time.perf_counter() - started:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
