"""Image formats beyond Pillow's built-in ones: HEIC/HEIF (what phones save photos as) through
pillow-heif. AVIF is Pillow's own from 11.3, where its wheel bundles libavif."""

import functools
import logging
from typing import Optional

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


def missing_decoder(mime: Optional[str]) -> Optional[str]:
    """Why a file of this kind cannot be decoded here, or None when its decoder is present."""
    if mime in ("image/heic", "image/heif") and not register_formats():
        return "HEIC/HEIF needs the pillow-heif package (pip install pillow-heif), not installed here"
    if mime == "image/avif":
        from PIL import features

        if not features.check("avif"):
            return "AVIF needs Pillow 11.3 or later built with libavif, not installed here"
    return None
