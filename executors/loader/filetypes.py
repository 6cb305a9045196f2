"""Recognise image files by their first bytes, not by their names."""

import os
from typing import Optional

# The type each image extension names. Files are still told by content (sniff_mime); this
# lets the indexer leave out of storage a MIME type that the file's name already says.
EXTENSION_MIME = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".dib": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".avif": "image/avif",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".hif": "image/heif",
    # Camera RAW files (decoded from their embedded preview through LibRaw: formats.camera_raw).
    # Most start like a TIFF; a name is what tells them apart, and the content decides.
    **dict.fromkeys(
        (
            ".dng",
            ".nef",
            ".nrw",
            ".arw",
            ".srf",
            ".sr2",
            ".cr2",
            ".cr3",
            ".crw",
            ".raf",
            ".orf",
            ".rw2",
            ".rwl",
            ".pef",
            ".srw",
            ".x3f",
            ".3fr",
            ".iiq",
            ".erf",
            ".kdc",
            ".dcr",
            ".mrw",
            ".mef",
            ".mos",
        ),
        "image/x-raw",
    ),
}
IMAGE_EXTENSIONS = frozenset(EXTENSION_MIME)
SNIFF_BYTES = 16
# ISO base media files (HEIF, AVIF) name their kind in the major brand of the leading
# ``ftyp`` box: bytes 8–12. HEIC is what phones save photos as.
_HEIF_BRANDS = {
    **dict.fromkeys((b"avif", b"avis"), "image/avif"),
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"), "image/heic"),
    **dict.fromkeys((b"mif1", b"msf1", b"mif2"), "image/heif"),  # the generic brands: HEVC or AV1 inside
}


# Camera RAW files whose first bytes are their own (the rest start like a TIFF: DNG, NEF, ARW...).
_RAW_SIGNATURES = (
    (0, b"FUJIFILMCCD-RAW"),
    (0, b"IIRO"),
    (0, b"IIRS"),
    (0, b"MMOR"),
    (0, b"IIU\x00"),  # RAF, ORF, RW2
    (0, b"II\x1a\x00\x00\x00HEAPCCDR"),
    (0, b"FOVb"),
    (4, b"ftypcrx "),  # CRW, X3F, CR3
)


def sniff_mime(head: bytes) -> Optional[str]:
    """The image MIME type that these leading bytes announce, or None."""
    if any(head[at : at + len(sig)] == sig for at, sig in _RAW_SIGNATURES):
        return "image/x-raw"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM":
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/x-raw" if head[8:10] == b"CR" else "image/tiff"  # CR2: a TIFF marked by Canon
    if head[4:8] == b"ftyp":
        return _HEIF_BRANDS.get(head[8:12])
    return None


def image_mime(blob: bytes) -> tuple[Optional[str], Optional[str]]:
    """(MIME type, None) for bytes that start like an image, else (None, the reason)."""
    mime = sniff_mime(blob[:SNIFF_BYTES])
    return (mime, None) if mime else (None, describe_non_image(blob[:SNIFF_BYTES]))


def mime_by_name(path: str) -> Optional[str]:
    """The MIME type a file's extension names; None for other extensions."""
    return EXTENSION_MIME.get(os.path.splitext(path)[1].lower())


def describe_non_image(head: bytes) -> str:
    """A short human reason why bytes that should be an image are not one."""
    if not head:
        return "empty file (0 bytes)"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<svg")):
        return "not an image: the content is HTML/XML"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "not an image: the content is plain text"
    return "not an image: unrecognised content (no JPEG/PNG/GIF/WebP/BMP/TIFF/AVIF/HEIC/camera RAW signature)"
