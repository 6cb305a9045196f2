"""Decode any image file into one predictable shape: uint8 RGB pixels, upright.

Everything here is the same for every model; model-specific resizing and normalisation
happen in the encoder, from the model's own processor config.
"""

import io
import logging
from typing import Optional

import numpy as np
import torch
from PIL import Image, ImageOps

from executors.limits import check_pixels
from executors.loader.filetypes import SNIFF_BYTES, sniff_mime
from executors.normalizer.formats import RawDecoderMissing, RawError, camera_raw, is_camera_raw_tiff, missing_decoder, register_formats

logger = logging.getLogger(__name__)
register_formats()

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own bomb threshold (about 0.25 GB of RGBA)
_EXIF_ORIENTATION = 0x0112
SIDEWAYS = (5, 6, 7, 8)  # EXIF orientations stored rotated by a quarter turn
# 16-bit level -> 8-bit level, rounded as level / 65535 * 255 + 0.5 would be.
_LEVELS_16_TO_8 = ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


class ImageDecodeError(ValueError):
    """The bytes are not a usable image; the message is the reason shown to the user."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB: transparency composited on white, high bit depths scaled."""
    if img.mode.startswith("I;16"):
        # A table from every 16-bit level to its 8-bit one: one uint8 result, no wider copy
        # (a float64 one cost 8 bytes per pixel: +258 MB for a 17 KiB 3000² PNG).
        return Image.fromarray(_LEVELS_16_TO_8[np.asarray(img)], "L").convert("RGB")
    if img.mode in ("I", "F"):
        arr = np.asarray(img)  # 4 bytes per pixel already; scaled in float32, in place
        top = max(float(arr.max()), 1.0)
        scaled = arr.astype(np.float32)
        scaled *= 255.0 / top
        scaled += 0.5
        np.clip(scaled, 0, 255, out=scaled)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    if img.mode != "RGB":
        return img.convert("RGB")  # L, 1, CMYK (Pillow undoes Adobe's inversion), YCbCr, LAB...
    return img


def fit_size(width: int, height: int, rule: dict) -> tuple[int, int]:
    """(width, height) after a model's resize rule, computed as transformers does."""
    if rule.get("shortest_edge"):
        edge = int(rule["shortest_edge"])
        if width <= height:
            return edge, int(edge * height / width)
        return int(edge * width / height), edge
    return int(rule["width"]), int(rule["height"])


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = 256) -> Image.Image:
    """The image with only its header read, refused (ImageDecodeError) when empty,
    unreadable or a decompression bomb by its header's size. A camera RAW file gives its
    embedded preview when that has ``min_side`` pixels on its shorter side (formats.camera_raw),
    marked ``info["camera_raw"]``."""
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    mime = sniff_mime(data[:SNIFF_BYTES])
    try:
        if mime == "image/x-raw":
            img = _camera_raw(data, min_side, max_pixels)
        else:
            img = Image.open(io.BytesIO(data))
            if img.format == "TIFF" and is_camera_raw_tiff(img):
                try:
                    img = _camera_raw(data, min_side, max_pixels)
                except RawDecoderMissing:
                    raise
                except RawError as exc:  # a TIFF after all, or a RAW LibRaw cannot read: what Pillow sees
                    logger.info("decoding a TIFF-like file as Pillow reads it: %s", exc)
    except RawError as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"decompression bomb refused: {exc}") from None
    except Exception as exc:  # Pillow raises many types for garbage input
        reason = missing_decoder(mime)
        raise ImageDecodeError(f"cannot decode image: {reason or exc}") from None
    width, height = img.size
    if width * height > max_pixels:
        # Checked before any pixel is decoded, so a 30000×30000 header costs nothing.
        raise ImageDecodeError(f"decompression bomb refused: {width}×{height} = {width * height} pixels exceeds the limit of {max_pixels}")
    if width < 1 or height < 1:
        raise ImageDecodeError(f"invalid image size {width}×{height}")
    return img


def _camera_raw(data: bytes, min_side: int, max_pixels: int) -> Image.Image:
    img, orientation = camera_raw(data, min_side, max_pixels)
    if orientation != 1 and exif_orientation(img) == 1:
        # The camera's orientation, kept where decode_image (and exif_transpose) read any photo's.
        img.getexif()[_EXIF_ORIENTATION] = orientation
    img.info["camera_raw"] = True
    return img


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1–8; 1 = stored upright), read from the header alone."""
    try:
        value = int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block: treat the image as stored upright
        return 1
    return value if 1 <= value <= 8 else 1


def device_jpeg(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Optional[tuple[int, int]]:
    """For an encoder that decodes JPEGs on its device (nvJPEG): the upright (width, height)
    of a plain JPEG (YCbCr or greyscale) whose bytes can go on undecoded, or None for any
    other image (decoded here as usual). Raises ImageDecodeError as decode_image does for
    empty, unreadable and bomb-sized files, from the header alone."""
    img = open_image(data, max_pixels)
    # CMYK/YCCK JPEGs stay here: Pillow undoes Adobe's inverted CMYK, nvJPEG's RGB output does not.
    # So does a camera RAW's JPEG preview: the bytes that would go on are the RAW file's.
    if img.format != "JPEG" or img.mode not in ("RGB", "L") or img.info.get("camera_raw"):
        return None
    width, height = img.size
    return (height, width) if exif_orientation(img) in SIDEWAYS else (width, height)


def decode_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: Optional[int] = None,
    resize: Optional[int] = None,
    fit: Optional[dict] = None,
) -> tuple[np.ndarray, int, int]:
    """Decode ``data`` to (uint8 RGB array, original width, original height).

    The width and height are those of the upright original. ``max_side`` caps the longer
    side of the returned pixels (keeping the aspect ratio); ``resize`` forces a square
    ``resize``×``resize`` image instead, as the original meme study did (96×96). ``fit``
    applies the encoder's own first resize (``{"shortest_edge"|"height"/"width",
    "resample"}``, see ImagePreprocessor.resize_rule) so that only model-sized pixels
    leave this stage and the encoder's resize becomes a no-op.
    Raises ImageDecodeError with a readable reason for anything unusable.
    """
    target: Optional[int]  # None: no size asked for (decoded at full size)
    if fit and not resize:
        target = int(fit.get("shortest_edge") or max(fit["width"], fit["height"]))
    else:
        target = resize or max_side
    img = open_image(data, max_pixels, min_side=min(target or 256, 1024))
    width, height = img.size
    if fit and not resize:  # from the header, before any pixel is decoded
        too_many = check_pixels(*fit_size(width, height, fit), f"resized for the model from {width}×{height}, the image")
        if too_many:  # a 1×10 strip at shortest_edge 4096 would be 4096×40960 pixels (480 MiB)
            raise ImageDecodeError(too_many)
    try:
        if getattr(img, "is_animated", False):
            img.seek(0)  # first frame of GIF/WebP/APNG animations
        if target and img.format == "JPEG":
            # Let libjpeg decode at a reduced scale (≥ target) instead of full size.
            img.draft("RGB", (target, target))
        img.load()
        orientation = exif_orientation(img)
        if orientation in SIDEWAYS:
            width, height = height, width  # stored sideways; report the upright size
        if orientation != 1:  # exif_transpose would copy an upright image for nothing
            img = ImageOps.exif_transpose(img)
        img = _to_rgb(img)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"decompression bomb refused: {exc}") from None
    except Exception as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from None
    if resize:
        return resized(img, (resize, resize), Image.Resampling.BICUBIC), width, height
    if fit:
        size = fit_size(*img.size, fit)
        if size != img.size:
            return resized(img, size, Image.Resampling(int(fit.get("resample", Image.Resampling.BICUBIC)))), width, height
    elif max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8), width, height


# Pillow's filters that torch's antialiased uint8 kernels reproduce: bicubic to the level
# almost everywhere; bilinear rounds a quarter of the pixels differently, so stays Pillow's.
_TORCH_FILTERS = {Image.Resampling.BICUBIC: "bicubic"}


def resized(img: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """An RGB image resized to ``size`` (width, height) as Pillow's ``resize`` does.

    Bicubic (most models' filter) runs through torch's antialiased uint8 kernel: Pillow's
    algorithm, pixels within 2 levels of its (fewer than 1% differ), several times faster
    (the resize was most of this stage's CPU; docs/performance.md). Other filters are
    Pillow's own.
    """
    mode = _TORCH_FILTERS.get(resample)
    if mode is None or img.mode != "RGB":
        return np.asarray(img.resize(size, resample), dtype=np.uint8)
    # Batched before the permute, the tensor is channels-last in torch's sense, so the result
    # stays channels-last too and the final .contiguous() copies nothing (half the time of
    # permuting first, where torch returned a channels-first result to transpose back).
    nchw = torch.from_numpy(np.array(img, dtype=np.uint8)).unsqueeze(0).permute(0, 3, 1, 2)
    out = torch.nn.functional.interpolate(nchw, size=(size[1], size[0]), mode=mode, antialias=True)
    return out[0].permute(1, 2, 0).contiguous().numpy()
