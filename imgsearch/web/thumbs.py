"""Thumbnails of indexed images: decoded like the normalizer does, resized, cached on disk.

Keyed by content hash and size, so a cached file never goes stale (a changed file has a
new hash) and the browser may cache it forever. The source file is checked against its
indexed hash before anything is made from it: the page shows what was indexed, or nothing.
"""

import hashlib
import io
import logging
import os
import tempfile
from pathlib import Path

import fsspec
from PIL import Image

from executors.docs import MAX_IMAGE_BYTES
from executors.loader.read_file import FileUnreadable, read_capped
from executors.normalizer.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from executors.urls import is_url

logger = logging.getLogger(__name__)

SIZES = (128, 256, 512, 1024, 2048)  # a few fixed sizes: bounded cache, no per-pixel variants
JPEG_QUALITY = 82
# What browsers show natively; anything else (TIFF, HEIC...) is sent as the largest rendition.
BROWSER_MIMES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/avif"}


class ThumbError(Exception):
    """No thumbnail can be made; the message says why (shown as the HTTP error)."""


def snap_size(size: int) -> int:
    """The smallest fixed size at least `size` (the largest when `size` is bigger)."""
    return next((s for s in SIZES if s >= size), SIZES[-1])


def read_verified(path: str, content_hash: str, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The file's bytes, if they are still the bytes that were indexed. Read as the loader reads
    a file (read_capped: a regular file only, never past ``max_bytes``), so a FIFO or a device
    put in an indexed file's place can neither hang a thread nor fill memory."""
    try:
        if is_url(path):  # an object by URL (s3://...): at most max_bytes + 1 of it
            with fsspec.open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ThumbError(f"{path} is larger than {max_bytes} bytes")
        else:
            data, _ = read_capped(path, max_bytes)
    except FileUnreadable as exc:
        raise ThumbError(f"cannot read {path} on this machine: {exc}") from None
    except (OSError, ValueError) as exc:
        raise ThumbError(f"cannot read {path} on this machine: {getattr(exc, 'strerror', None) or exc}") from None
    if hashlib.sha256(data).hexdigest() != content_hash:
        raise ThumbError(f"{path} has changed since it was indexed")
    return data


class ThumbCache:
    def __init__(self, folder: Path, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.folder = Path(folder)
        self.max_pixels = max_pixels

    def path_for(self, content_hash: str, size: int) -> Path:
        return self.folder / content_hash[:2] / f"{content_hash}-{size}.jpg"

    def get(self, content_hash: str, source: str, size: int) -> Path:
        """The cached JPEG of `source` with its longer side at most `size` (made on a miss)."""
        size = snap_size(size)
        out = self.path_for(content_hash, size)
        if out.is_file():
            return out
        data = read_verified(source, content_hash)
        try:
            # The normalizer's decoder: EXIF orientation, any mode to RGB, first frame, bomb guard,
            # and libjpeg's reduced-scale decoding, so a 4000×3000 photo is never decoded whole.
            pixels, _, _ = decode_image(data, max_pixels=self.max_pixels, max_side=size)
        except ImageDecodeError as exc:
            raise ThumbError(str(exc)) from None
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a concurrent request never reads half a file.
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, out)
        logger.debug("thumbnail %s (%d px) from %s", out.name, size, source)
        return out
