"""The hostile-file corpus itself must be right before other tests can lean on it."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from PIL import Image, ImageFile, ImageOps

try:  # works whether or not tests/ is a package
    from tests.corpus import BOMBS, DUPLICATES, EXIF_ROTATED, EXIF_SIZE, make_corpus
except ImportError:
    from corpus import BOMBS, DUPLICATES, EXIF_ROTATED, EXIF_SIZE, make_corpus

# Where the stored top-left corner lands on screen for each EXIF orientation (from the
# EXIF spec, not from Pillow, so this checks Pillow's reading of our tag independently).
EXPECTED_MARKER_CORNER = {2: "tr", 3: "br", 4: "bl", 5: "tl", 6: "tr", 7: "br", 8: "bl"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], float]:
    root = tmp_path_factory.mktemp("corpus")
    start = time.perf_counter()
    cases = make_corpus(root)
    return root, cases, time.perf_counter() - start


@pytest.fixture(autouse=True)
def _strict_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another test or module may have relaxed these globals; the corpus is defined
    # against Pillow's defaults.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89478485)


def _open_loaded(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return ImageOps.exif_transpose(im)


def test_corpus_shape(corpus: tuple[Path, dict[str, str], float]) -> None:
    root, cases, elapsed = corpus
    assert len(cases) >= 20
    assert set(cases.values()) == {"ok", "skip"}
    for rel in cases:
        assert (root / rel).is_file(), rel
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert on_disk == set(cases), "make_corpus wrote files it did not report (or vice versa)"
    total = sum((root / rel).stat().st_size for rel in cases)
    assert total < 2_000_000, total
    assert elapsed < 1.0, elapsed


def test_ok_files_decode(corpus: tuple[Path, dict[str, str], float]) -> None:
    root, cases, _ = corpus
    for rel, outcome in cases.items():
        if outcome == "ok":
            img = _open_loaded(root / rel)
            assert img.width >= 1 and img.height >= 1, rel


def test_ok_files_are_distinct_except_duplicates(corpus: tuple[Path, dict[str, str], float]) -> None:
    root, cases, _ = corpus
    digests: dict[str, list[str]] = {}
    for rel, outcome in cases.items():
        if outcome == "ok":
            digests.setdefault(hashlib.sha256((root / rel).read_bytes()).hexdigest(), []).append(rel)
    shared = [sorted(rels) for rels in digests.values() if len(rels) > 1]
    assert shared == [sorted(DUPLICATES)]


def test_plain_photos_differ(corpus: tuple[Path, dict[str, str], float]) -> None:
    root, _, _ = corpus
    imgs = [_open_loaded(root / f"photo_{c}.jpg").convert("RGB").tobytes() for c in "abc"]
    assert len(set(imgs)) == 3


@pytest.mark.parametrize("rel,orientation", sorted(EXIF_ROTATED.items()))
def test_exif_rotation(corpus: tuple[Path, dict[str, str], float], rel: str, orientation: int) -> None:
    root, cases, _ = corpus
    assert cases[rel] == "ok"
    with Image.open(root / rel) as im:
        assert im.getexif().get(0x0112) == orientation
        assert im.size == EXIF_SIZE
        shown = ImageOps.exif_transpose(im).convert("RGB")
    w, h = EXIF_SIZE
    assert shown.size == ((h, w) if orientation >= 5 else (w, h))
    x = 2 if EXPECTED_MARKER_CORNER[orientation][1] == "l" else shown.width - 3
    y = 2 if EXPECTED_MARKER_CORNER[orientation][0] == "t" else shown.height - 3
    r, g, b = shown.getpixel((x, y))
    assert r > 180 and g < 90 and b < 90, (orientation, (x, y), (r, g, b))


def test_skip_files_fail(corpus: tuple[Path, dict[str, str], float]) -> None:
    root, cases, _ = corpus
    for rel, outcome in cases.items():
        if outcome != "skip" or rel in BOMBS:
            continue
        with pytest.raises((OSError, SyntaxError, ValueError)):
            with Image.open(root / rel) as im:
                im.load()


@pytest.mark.parametrize("rel", BOMBS)
def test_bombs_are_refused(corpus: tuple[Path, dict[str, str], float], rel: str) -> None:
    root, cases, _ = corpus
    assert cases[rel] == "skip"
    assert (root / rel).stat().st_size < 100_000  # small on disk, huge when decoded
    with pytest.raises(Image.DecompressionBombError):
        Image.open(root / rel)
