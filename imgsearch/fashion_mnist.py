"""Fashion-MNIST (Debian package ``dataset-fashion-mnist``) exported as a labelled image folder.

The package installs the original IDX files under /usr/share/datasets/fashion-mnist; this
writes ``OUT/<class>/fmnist-<split>-<index>.png`` (28×28 greyscale, as published), so
`app.py compare --data OUT` has a second labelled set whose classes are not near-copies of
each other. ``--per-class`` keeps the first N images of each class (in file order).
"""

import gzip
import struct
from pathlib import Path
from typing import Optional

import numpy as np

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt-top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"), "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a uint8 array of its declared shape."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def export(out: Path, split: str = "test", per_class: Optional[int] = 100, source: Path = DEFAULT_DIR) -> dict:
    from PIL import Image

    if split not in FILES:
        raise ValueError(f"split must be one of {', '.join(FILES)}")
    images_file, labels_file = (Path(source) / name for name in FILES[split])
    if not images_file.is_file():
        raise FileNotFoundError(f"Fashion-MNIST not found at {source} (install the Debian package: apt-get install dataset-fashion-mnist)")
    images, labels = read_idx(images_file), read_idx(labels_file)
    if len(images) != len(labels):
        raise ValueError(f"{images_file.name} has {len(images)} images but {labels_file.name} {len(labels)} labels")
    counts = {c: 0 for c in CLASSES}
    out = Path(out)
    for i, (img, lab) in enumerate(zip(images, labels)):
        name = CLASSES[int(lab)]
        if per_class is not None and counts[name] >= per_class:
            continue
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, "L").save(folder / f"fmnist-{split}-{i:05d}.png")
        counts[name] += 1
    return {"out_dir": str(out), "split": split, "images": sum(counts.values()), "per_class": counts}
