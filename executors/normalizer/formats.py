"""Image formats beyond Pillow's own: HEIC/HEIF (what phones save photos as) through
pillow-heif. AVIF is Pillow's own (11.3+)."""

import logging

logger = logging.getLogger(__name__)

_state: dict = {}


def register_formats() -> bool:
    """Let Pillow open HEIC/HEIF files; once per process. False when pillow-heif is missing
    (such files then fail to decode with the reason ``missing_decoder`` gives)."""
    if "heif" not in _state:
        try:
            import pillow_heif
        except ImportError:
            _state["heif"] = False
        else:
            # Only the primary image: no thumbnails, depth maps or auxiliary images decoded.
            pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
            _state["heif"] = True
    return _state["heif"]


def missing_decoder(mime: str | None) -> str | None:
    """Why a file of this kind cannot be decoded here, or None when its decoder is present."""
    if mime in ("image/heic", "image/heif") and not register_formats():
        return "HEIC/HEIF needs the pillow-heif package (pip install pillow-heif), not installed here"
    return None
