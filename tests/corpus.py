"""Generate a small corpus of odd and hostile image files for loader/indexer tests.

``make_corpus(root)`` writes every case under ``root`` and returns
``{relative posix path: "ok" | "skip"}``:

* "ok"   -- a real image, however unusual; the pipeline must index it.
* "skip" -- not a decodable image (or a decompression bomb); the pipeline must report
  it as skipped with a reason and carry on, never crash or hang.

Everything is tiny and deterministic: the whole corpus is well under 2 MB and takes a
fraction of a second to build. Names are stable so tests can refer to the constants
below (EXIF_ROTATED, DUPLICATES, BOMBS, ...).
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from executors.normalizer.formats import register_formats

register_formats()  # writes HEIC below, as the pipeline reads it

OK = "ok"
SKIP = "skip"

# Orientation tag value -> file. Pillow's exif_transpose undoes them; 5..8 swap width
# and height, so a pipeline that ignores EXIF gets the wrong shape as well as the
# wrong pixels.
EXIF_ROTATED: dict[str, int] = {f"exif/orientation_{o}.jpg": o for o in range(2, 9)}
EXIF_SIZE = (48, 32)  # stored (width, height); deliberately not square

# Byte-identical files under different names: both are "ok", but the index must store
# the image once (same content hash) and keep both paths, not two entries.
DUPLICATES: tuple[str, str] = ("dups/original.jpg", "dups/copies/same bytes copy.jpg")

# Pillow raises DecompressionBombError when opening these (> 2 * MAX_IMAGE_PIXELS).
BOMBS: tuple[str, ...] = ("bomb_20000x20000_1bit.png", "huge_ihdr_30000x30000.png")

NESTED = "nested/l1/l2/l3/l4/l5/l6/l7/l8/deep.jpg"  # 8 folder levels below nested/

# make_corpus(root, special=True) adds entries that are not plain files (tests/test_corpus.py
# checks the plain ones). UNREADABLE is a good JPEG with mode 000: root reads it anyway, so
# it is "skip" only for a reader without CAP_DAC_OVERRIDE (tests/faults run the loader as
# the pod's non-root user, as on Kubernetes).
UNREADABLE = "unreadable.jpg"
SYMLINK_LOOP = ("loop_a.jpg", "loop_b.jpg")  # each links to the other
DANGLING = "dangling.png"  # links to a file that does not exist
FIFO = "fifo.jpg"  # a named pipe: opening it would block forever
DIR_LOOP = "nested/l1/back_up"  # a folder link to its own ancestor: walked once, never forever
UNICODE_NAME = "ünïcødé name ✓.png"
PNG_AS_JPG = "png_with_jpg_extension.jpg"
JPEG_NO_EXT = "jpeg_without_extension"
HEIC, AVIF = "phone/photo.heic", "web/photo.avif"
DNG = "camera/photo.dng"  # a camera RAW: its 160×120 first image is a thumbnail, the photo is its JPEG preview


def make_photo(path: Path | None, size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    """A synthetic photo-like RGB image (gradient, blocks, noise), distinct per seed.

    Saved to ``path`` (format from the suffix) when a path is given; returned either way.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0, 255, 3)
    slope = rng.uniform(-2.0, 2.0, (3, 2))
    arr = np.empty((h, w, 3), np.float32)
    for c in range(3):
        arr[..., c] = base[c] + slope[c, 0] * xx * 64 / max(w, 1) + slope[c, 1] * yy * 64 / max(h, 1)
    # A few solid blocks give structure that a perceptual encoder can tell apart.
    for _ in range(3):
        x0, y0 = rng.integers(0, max(w, 1)), rng.integers(0, max(h, 1))
        x1, y1 = x0 + rng.integers(1, max(w // 2, 2)), y0 + rng.integers(1, max(h // 2, 2))
        arr[y0:y1, x0:x1] = rng.uniform(0, 255, 3)
    arr += rng.normal(0, 6, arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path)
    return img


def make_exif_rotated(path: Path, orientation: int) -> None:
    """Write a JPEG whose EXIF Orientation tag (0x0112) is ``orientation`` (1..8).

    The stored pixels are EXIF_SIZE with a marker in the top-left corner, so a test can
    check both the transposed size and where the marker ends up.
    """
    if not 1 <= orientation <= 8:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation}")
    img = make_photo(None, EXIF_SIZE, seed=100 + orientation)
    img.paste((255, 0, 0), (0, 0, 12, 8))  # red corner marker
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=90, exif=exif)


def _jpeg_bytes(img: Image.Image, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **params)
    return buf.getvalue()


def _encoded(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def make_dng(photo: Image.Image, orientation: int = 1, thumb: tuple[int, int] = (160, 120), preview: tuple[int, int] | None = None) -> bytes:
    """A camera RAW file as cameras write DNGs: a small RGB thumbnail first (what Pillow
    shows of it), then two sub-images: the sensor's CFA data (16-bit, random here, the size
    of ``photo``) and the camera's JPEG preview of ``photo`` (full size, or ``preview``).
    ``orientation``: the EXIF tag (the preview is stored as the sensor saw it)."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")

    def put(blob: bytes) -> int:
        out.extend(b"\x00" * (len(out) % 2))  # TIFF offsets are even
        out.extend(blob)
        return len(out) - len(blob)

    def ifd(entries: list[tuple[int, int, list | bytes]]) -> int:
        fmt = {1: "B", 2: "s", 3: "H", 4: "I"}
        packed = []
        for tag, kind, values in sorted(entries):
            blob = values + b"\x00" if kind == 2 else struct.pack(f"<{len(values)}{fmt[kind]}", *values)
            count = len(blob) if kind in (1, 2) else len(values)
            packed.append((tag, kind, count, blob if len(blob) <= 4 else struct.pack("<I", put(blob))))
        at = put(struct.pack("<H", len(packed)) + b"".join(struct.pack("<HHI", t, k, c) + v.ljust(4, b"\x00") for t, k, c, v in packed) + b"\x00" * 4)
        return at

    def image(width: int, height: int, pixels: bytes, subfile: int, extra: list) -> int:
        offset = put(pixels)
        return ifd(
            [
                (254, 4, [subfile]),
                (256, 4, [width]),
                (257, 4, [height]),
                (273, 4, [offset]),
                (278, 4, [height]),
                (279, 4, [len(pixels)]),
                (284, 3, [1]),
                *extra,
            ]
        )

    w, h = photo.size
    rgb = [(258, 3, [8, 8, 8]), (277, 3, [3])]
    sensor = np.random.default_rng(0).integers(0, 4096, (h, w)).astype("<u2").tobytes()
    raw = image(
        w,
        h,
        sensor,
        0,
        [(258, 3, [16]), (259, 3, [1]), (262, 3, [32803]), (277, 3, [1]), (33421, 3, [2, 2]), (33422, 1, [0, 1, 1, 2]), (50717, 4, [4095])],
    )
    shown = photo.resize(preview) if preview else photo
    preview_at = image(*shown.size, _jpeg_bytes(shown, quality=92), 1, [*rgb, (259, 3, [7]), (262, 3, [6])])
    small = photo.resize(thumb)
    first = image(
        *thumb,
        small.tobytes(),
        1,
        [
            *rgb,
            (259, 3, [1]),
            (262, 3, [2]),
            (271, 2, b"Corpus"),
            (272, 2, b"DNG"),
            (274, 3, [orientation]),
            (330, 4, [raw, preview_at]),
            (50706, 1, [1, 4, 0, 0]),
            (50708, 2, b"Corpus DNG"),
        ],
    )
    out[4:8] = struct.pack("<I", first)
    return bytes(out)


def _png_bytes(img: Image.Image, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **params)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_file(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


@functools.lru_cache(maxsize=1)
def _bomb_png() -> bytes:
    """A complete, valid 20000x20000 1-bit black PNG: 400 Mpx in ~48 KB.

    Built row-block by row-block rather than with Pillow, which would need the 50 MB
    raw image in memory (and refuses to create it past the bomb limit anyway).
    Cached because compressing 50 MB of zeros is the slowest step of the corpus.
    """
    width = height = 20000
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    block = row * 100
    parts = [comp.compress(block) for _ in range(height // 100)]
    parts.append(comp.flush())
    return _png_file(width, height, 1, 0, b"".join(parts))


def _huge_ihdr_png() -> bytes:
    """IHDR claims 30000x30000 RGB (2.7 GB decoded) but holds a single tiny row."""
    idat = zlib.compress(b"\x00" + b"\x00" * 30)
    return _png_file(30000, 30000, 8, 2, idat)


def _cmyk_without_adobe_marker(data: bytes) -> bytes:
    """Drop the APP14 "Adobe" segment from a JPEG.

    Pillow always writes CMYK inverted with an Adobe marker and always reads CMYK with
    Adobe polarity; without the marker other decoders disagree on the polarity, which
    is exactly the kind of file that shows up from print workflows.
    """
    pos = data.find(b"\xff\xee")
    if pos < 0:
        return data
    (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
    return data[:pos] + data[pos + 2 + length :]


def _animated(fmt: str, size: tuple[int, int] = (32, 24)) -> bytes:
    frames = [make_photo(None, size, seed=200 + i) for i in range(3)]
    buf = io.BytesIO()
    params: dict[str, object] = {"save_all": True, "append_images": frames[1:], "duration": 100, "loop": 0}
    if fmt == "WEBP":
        params["lossless"] = True
    frames[0].save(buf, fmt, **params)
    return buf.getvalue()


def make_corpus(root: Path, special: bool = False) -> dict[str, str]:
    """Write all cases under ``root``; return {relative posix path: "ok" | "skip"}.

    ``special`` adds the unreadable file, symlink loops, a dangling link and a FIFO.
    """
    root = Path(root)
    cases: dict[str, str] = {}

    def put(rel: str, data: bytes, outcome: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        cases[rel] = outcome

    # --- ok: ordinary images that must differ from each other ---------------------
    for i, name in enumerate(("photo_a.jpg", "photo_b.jpg", "photo_c.jpg")):
        put(name, _jpeg_bytes(make_photo(None, (64, 48), seed=i), quality=90), OK)
    put("UPPER CASE.JPEG", _jpeg_bytes(make_photo(None, (40, 40), seed=10)), OK)
    put("progressive.jpg", _jpeg_bytes(make_photo(None, (64, 48), seed=11), progressive=True), OK)

    # --- ok: unusual modes -----------------------------------------------------------
    cmyk = make_photo(None, (40, 30), seed=20).convert("CMYK")
    cmyk_adobe = _jpeg_bytes(cmyk, quality=90)  # Pillow's own output: Adobe-inverted CMYK
    put("cmyk_adobe_inverted.jpg", cmyk_adobe, OK)
    put("cmyk_no_adobe_marker.jpg", _cmyk_without_adobe_marker(cmyk_adobe), OK)

    ramp = (np.add.outer(np.arange(32), np.arange(48)) * 700).astype(np.uint16)
    grey16 = Image.fromarray(ramp)  # mode "I;16"
    assert grey16.mode == "I;16", grey16.mode
    put("grey16.png", _png_bytes(grey16), OK)

    pal = make_photo(None, (32, 32), seed=30).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    put("palette_transparent.png", _png_bytes(pal, transparency=0), OK)

    grey = make_photo(None, (40, 30), seed=31).convert("L")
    put("la.png", _png_bytes(Image.merge("LA", (grey, grey.point(lambda v: 255 - v)))), OK)
    rgba = make_photo(None, (40, 30), seed=32).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    put("rgba.png", _png_bytes(rgba), OK)
    put("greyscale.jpg", _jpeg_bytes(grey, quality=90), OK)

    put("animated.gif", _animated("GIF"), OK)
    put("animated.webp", _animated("WEBP"), OK)

    buf = io.BytesIO()
    make_photo(None, (33, 21), seed=40).save(buf, "BMP")  # odd width exercises row padding
    put("photo.bmp", buf.getvalue(), OK)
    buf = io.BytesIO()
    make_photo(None, (40, 30), seed=41).save(buf, "TIFF")
    put("photo.tiff", buf.getvalue(), OK)

    put("one_pixel.png", _png_bytes(Image.new("RGB", (1, 1), (12, 34, 56))), OK)

    # --- ok: what phones save photos as (HEIC) and the web's AVIF ---------------------------
    put(HEIC, _encoded(make_photo(None, (64, 48), seed=42), "HEIF", quality=90), OK)
    put(AVIF, _encoded(make_photo(None, (64, 48), seed=43), "AVIF", quality=90, speed=8), OK)

    # --- ok: a camera RAW (DNG); the photo is its preview, not the thumbnail Pillow shows --
    put(DNG, make_dng(make_photo(None, (320, 256), seed=44)), OK)

    # --- ok: EXIF orientation 2..8 ------------------------------------------------------
    for rel, orientation in EXIF_ROTATED.items():
        make_exif_rotated(root / rel, orientation)
        cases[rel] = OK

    # --- ok: awkward names and places ---------------------------------------------------
    put(UNICODE_NAME, _png_bytes(make_photo(None, (32, 32), seed=50)), OK)
    put(PNG_AS_JPG, _png_bytes(make_photo(None, (32, 32), seed=51)), OK)
    put(JPEG_NO_EXT, _jpeg_bytes(make_photo(None, (32, 32), seed=52)), OK)
    put(NESTED, _jpeg_bytes(make_photo(None, (32, 32), seed=53)), OK)
    dup = _jpeg_bytes(make_photo(None, (48, 48), seed=54), quality=90)
    for rel in DUPLICATES:  # index once, keep both paths (see DUPLICATES)
        put(rel, dup, OK)

    # --- skip: not images, broken images, bombs ------------------------------------------
    put("empty.jpg", b"", SKIP)
    put("random_bytes.jpg", np.random.default_rng(60).integers(0, 256, 4096, dtype=np.uint8).tobytes(), SKIP)
    put("page.png", b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n", SKIP)
    put("notes.jpg", "just some text, not a picture\n".encode(), SKIP)
    # Noise does not compress, so half the file cuts deep into the scan data.
    full_jpeg = _jpeg_bytes(Image.fromarray(np.random.default_rng(61).integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB"), quality=90)
    put("truncated.jpg", full_jpeg[: len(full_jpeg) // 2], SKIP)
    full_png = _png_bytes(Image.fromarray(np.random.default_rng(62).integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB"))
    put("truncated.png", full_png[: len(full_png) // 2], SKIP)
    heic = (root / HEIC).read_bytes()
    put("truncated.heic", heic[: len(heic) // 2], SKIP)
    put("camera/garbled.orf", b"IIRO\x08\x00\x00\x00" + bytes(range(256)) * 4, SKIP)  # an ORF's header, no photo
    # A video's header (ISO base media, like HEIC) under a photo's name.
    put("video_named.heic", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64), SKIP)
    put(BOMBS[0], _bomb_png(), SKIP)
    put(BOMBS[1], _huge_ihdr_png(), SKIP)

    if special:
        put(UNREADABLE, _jpeg_bytes(make_photo(None, (32, 32), seed=70)), SKIP)
        (root / UNREADABLE).chmod(0)
        a, b = SYMLINK_LOOP
        (root / a).symlink_to(b)
        (root / b).symlink_to(a)
        (root / DANGLING).symlink_to("no_such_file.png")
        os.mkfifo(root / FIFO)
        (root / DIR_LOOP).symlink_to("..", target_is_directory=True)
        cases.update({a: SKIP, b: SKIP, DANGLING: SKIP, FIFO: SKIP})
    return cases


if __name__ == "__main__":  # handy for eyeballing: python tests/corpus.py /tmp/corpus
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "corpus")
    for rel, outcome in sorted(make_corpus(out).items()):
        print(f"{outcome:4}  {rel}")
