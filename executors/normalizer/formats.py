"""Image formats beyond Pillow's built-in ones: HEIC/HEIF (what phones save photos as) through
pillow-heif, and camera RAW files through LibRaw (rawpy). AVIF is Pillow's own from 11.3,
where its wheel bundles libavif."""

import functools
import io
import logging
from typing import Optional

from PIL import Image

logger = logging.getLogger(__name__)


@functools.cache
def register_formats() -> bool:
    """Let Pillow open HEIC/HEIF files, once per process. False when pillow-heif is missing:
    such files then fail to decode with the reason ``missing_decoder`` gives."""
    try:
        import pillow_heif
    except ImportError:
        logger.warning("pillow-heif is not installed: HEIC/HEIF photos will be skipped")
        return False
    # Only the primary image: no thumbnails, depth maps or auxiliary images decoded.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    return True


# LibRaw's ``flip`` (dcraw's) as the EXIF orientation that means the same turn.
_FLIP_TO_EXIF = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}


class RawError(ValueError):
    """A camera RAW file that cannot be used; the message is the reason."""


class RawDecoderMissing(RawError):
    """rawpy is not installed: no camera RAW can be read here."""


def camera_raw(data: bytes, min_side: int, max_pixels: int) -> tuple[Image.Image, int]:
    """A camera RAW file as (image, EXIF orientation to apply to it).

    The image is the camera's own embedded preview (a full-size JPEG on most cameras since
    about 2008; decoding it costs what a JPEG costs), used when its shorter side reaches
    ``min_side``; else LibRaw develops the sensor data at half size (camera white balance),
    seconds per photo, already upright. Raises RawError with the reason.
    """
    if not _has_rawpy():
        raise RawDecoderMissing(missing_decoder("image/x-raw"))
    import rawpy

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            try:
                thumb = raw.extract_thumb()
            except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
                thumb = None
            width, height = raw.sizes.width // 2, raw.sizes.height // 2
            if thumb is not None:
                preview = thumb.data  # a JPEG's bytes (rawpy.ThumbFormat.JPEG), else a bitmap's pixels
                img = Image.open(io.BytesIO(preview)) if isinstance(preview, bytes) else Image.fromarray(preview)
                # Developing pays only where the preview is small and the sensor is not.
                if min(img.size) >= min(min_side, width, height):
                    return img, _FLIP_TO_EXIF.get(raw.sizes.flip, 1)
            if width * height > max_pixels:
                raise RawError(f"decompression bomb refused: {width}×{height} pixels at half size")
            return Image.fromarray(raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)), 1
    except RawError:
        raise
    except Exception as exc:  # LibRaw's errors, or a preview Pillow cannot read
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RawError(f"camera RAW file that LibRaw cannot read ({type(exc).__name__}: {detail})") from None


def is_camera_raw_tiff(img: Image.Image) -> bool:
    """Whether a file Pillow opened as a TIFF is a camera RAW (DNG, NEF, ARW, PEF…): Pillow would
    show its first directory, often a 160×120 thumbnail, instead of the photo."""
    tags = getattr(img, "tag_v2", None) or {}
    # DNGVersion; or a reduced-resolution first image with sub-images (the raw data among them).
    return 50706 in tags or (tags.get(254) == 1 and 330 in tags)


def missing_decoder(mime: Optional[str]) -> Optional[str]:
    """Why a file of this kind cannot be decoded here, or None when its decoder is present."""
    if mime == "image/x-raw" and not _has_rawpy():
        return "camera RAW needs the rawpy package (pip install rawpy), not installed here"
    if mime in ("image/heic", "image/heif") and not register_formats():
        return "HEIC/HEIF needs the pillow-heif package (pip install pillow-heif), not installed here"
    if mime == "image/avif":
        from PIL import features

        if not features.check("avif"):
            return "AVIF needs Pillow 11.3 or later built with libavif, not installed here"
    return None


@functools.cache
def _has_rawpy() -> bool:
    try:
        import rawpy  # noqa: F401
    except ImportError:
        return False
    return True
