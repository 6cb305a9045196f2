"""What the attacker's suite shares: a real flow with a token, a private file beside its data.

Not a conftest.py (a second module named conftest would shadow tests/conftest.py for the test
files that `from conftest import ...`); the test modules import these.

The flow is flows/index.yml as `app.py` starts it (EfficientNet-Lite0, its packaged weights),
with IMGSEARCH_TOKEN set on the server side; the data folder holds real photos and one file
with a non-Latin-1 name, and a private PNG lies outside it: no request without the token may
ever bring its bytes back, and none with the token may index it.
"""

import contextlib
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

TOKEN = "attack-suite-token-0123456789"
ENCODER = "efficientnet-lite0"


@dataclass
class Target:
    host: str
    collection: str
    info: dict
    data: Path  # the indexed folder
    secret: Path  # a private image outside it
    secret_bytes: bytes
    store: Path


def png(width: int, height: int, mode: str = "RGB", seed: int = 0) -> bytes:
    """A real PNG of width×height (random pixels: no two alike)."""
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (height, width), dtype=np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def make_data(root: Path, photo_dir: Path) -> tuple[Path, Path]:
    """(data folder, private file): the photos plus 写真.jpg, and a PNG beside the folder."""
    data = root / "data"
    shutil.copytree(photo_dir, data)
    first = sorted(data.glob("*/*.jpg"))[0]
    # Same picture, other bytes (JPEG readers stop at the end marker): its own hash and entry.
    (first.parent / "写真.jpg").write_bytes(first.read_bytes() + b"\0unicode-name")
    secret = root / "private" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(png(32, 32, seed=7))
    return data, secret


@contextlib.contextmanager
def secured_flow(root: Path, photo_dir: Path) -> Iterator[Target]:
    """A local flow whose executors hold TOKEN, its data indexed with the token."""
    import pytest

    from imgsearch.flow import Gateway, local_flow
    from imgsearch.indexing import encoder_info, run_index

    data, secret = make_data(root, photo_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGSEARCH_TOKEN", TOKEN)  # the executors inherit it; clients are given theirs
        for name in ("IMGSEARCH_TOKEN_FOR_SEARCH", "IMGSEARCH_PATHS_FOR_ALL", "IMGSEARCH_MAX_REQUEST_MB"):
            mp.delenv(name, raising=False)
        with local_flow(ENCODER, store=str(root / "store")) as host:
            good = Gateway(host, token=TOKEN)
            info = encoder_info(good)
            summary = run_index(good, data, info, batch_size=8, progress=False)
            assert summary.indexed == summary.count > 0, summary
            yield Target(host, summary.collection, info, data, secret, secret.read_bytes(), root / "store")


def peaks(gateway) -> dict[str, float]:
    """Each stage's peak resident memory so far (MB), from /timings."""
    return {name: float(v.get("peak_rss_mb") or 0.0) for name, v in gateway.call_each("/timings").items()}


def leaked(blob: bytes, *texts: object) -> bool:
    """Whether ``blob`` (a private file's bytes), or a telling piece of it, shows in any answer."""
    probe = blob[16:48]
    for t in texts:
        if isinstance(t, (bytes, bytearray)) and (blob in t or probe in t):
            return True
        if isinstance(t, str) and (probe.hex() in t or repr(probe)[2:-1] in t):
            return True
    return False


def answers(docs) -> list:
    """Everything a response carries that could hold a file's content or path."""
    out: list = []
    for d in docs:
        out += [d.blob or b"", d.error or "", str(d.matches or ""), str(d.paths or "")]
        if d.tensor is not None:
            out.append(np.asarray(d.tensor).tobytes())
    return out


def env_without_token() -> dict:
    return {k: v for k, v in os.environ.items() if k != "IMGSEARCH_TOKEN"}
