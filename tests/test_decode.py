"""The normalizer's decoding on real odd files: every good one upright RGB, every bad one a reason."""

import io
import subprocess
import sys

import numpy as np
import pytest
from corpus import AVIF, BOMBS, DNG, EXIF_ROTATED, EXIF_SIZE, HEIC, OK, make_corpus, make_dng, make_photo
from PIL import Image

from executors.loader.filetypes import SNIFF_BYTES, image_mime, mime_by_name, sniff_mime
from executors.normalizer.decode import ImageDecodeError, decode_image, device_jpeg


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root)


def test_every_good_file_decodes_to_rgb_and_every_bad_one_gives_a_reason(corpus):
    root, cases = corpus
    for rel, expected in cases.items():
        data = (root / rel).read_bytes()
        if expected == OK:
            pixels, w, h = decode_image(data)
            assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3, rel
            assert (pixels.shape[1], pixels.shape[0]) == (w, h), rel
        else:
            with pytest.raises(ImageDecodeError) as err:
                decode_image(data)
            assert str(err.value), rel


def test_bombs_are_refused_as_bombs(corpus):
    root, _ = corpus
    for rel in BOMBS:
        with pytest.raises(ImageDecodeError, match="decompression bomb"):
            decode_image((root / rel).read_bytes())


def test_exif_orientation_is_applied(corpus):
    root, _ = corpus
    for rel, orientation in EXIF_ROTATED.items():
        pixels, w, h = decode_image((root / rel).read_bytes())
        expected = EXIF_SIZE if orientation < 5 else EXIF_SIZE[::-1]
        assert (w, h) == expected, (rel, (w, h))
        assert pixels.shape[:2] == (expected[1], expected[0])


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    pixels, _, _ = decode_image(_png(rgba))
    assert (pixels == 255).all()


def test_16_bit_greyscale_is_scaled_not_clipped():
    arr = np.full((4, 4), 32768, np.uint16)  # mid grey in 16 bits
    img = Image.fromarray(arr)  # Pillow picks mode I;16 for uint16
    assert img.mode == "I;16"
    pixels, _, _ = decode_image(_png(img))
    assert 120 <= int(pixels.mean()) <= 135


def test_cmyk_jpeg_keeps_its_colour():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).convert("CMYK").save(buf, "JPEG", quality=95)
    pixels, _, _ = decode_image(buf.getvalue())
    r, g, b = pixels.reshape(-1, 3).mean(axis=0)
    assert r > 150 and g < 90 and b < 90


def test_size_cap_and_fixed_resize_keep_the_original_size_in_the_report():
    buf = io.BytesIO()
    Image.new("RGB", (400, 200), (10, 20, 30)).save(buf, "PNG")
    capped, w, h = decode_image(buf.getvalue(), max_side=100)
    assert capped.shape == (50, 100, 3) and (w, h) == (400, 200)
    square, w, h = decode_image(buf.getvalue(), resize=96)
    assert square.shape == (96, 96, 3) and (w, h) == (400, 200)


def test_pixel_limit_is_checked_from_the_header():
    buf = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buf, "PNG")
    with pytest.raises(ImageDecodeError, match="exceeds the limit"):
        decode_image(buf.getvalue(), max_pixels=5000)


def test_first_frame_of_an_animation():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    pixels, _, _ = decode_image(buf.getvalue())
    assert pixels[..., 0].mean() > 200 and pixels[..., 1].mean() < 50


def _red_corner(pixels: np.ndarray) -> tuple[str, str]:
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    ys, xs = np.nonzero(red)
    return ("t" if ys.mean() < pixels.shape[0] / 2 else "b"), ("l" if xs.mean() < pixels.shape[1] / 2 else "r")


@pytest.mark.parametrize("rel,mime", [(HEIC, "image/heic"), (AVIF, "image/avif")])
def test_phone_and_web_photo_formats_are_recognised_and_decode_to_their_pixels(corpus, rel, mime):
    """HEIC (phones' photos, through pillow-heif) and AVIF (Pillow's own): told by content
    and by name, and decoded close to the photo that was saved (both are lossy)."""
    root, cases = corpus
    data = (root / rel).read_bytes()
    assert cases[rel] == OK
    assert sniff_mime(data[:SNIFF_BYTES]) == mime and image_mime(data) == (mime, None)
    assert mime_by_name(rel) == mime
    pixels, w, h = decode_image(data)
    assert (w, h) == (64, 48) and pixels.shape == (48, 64, 3)
    seed = 42 if rel == HEIC else 43
    original = np.asarray(make_photo(None, (64, 48), seed=seed), dtype=np.int16)
    assert np.abs(pixels.astype(np.int16) - original).mean() < 12


def test_iso_media_that_is_not_a_photo_is_not_taken_for_one():
    video = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    assert sniff_mime(video[:SNIFF_BYTES]) is None
    assert image_mime(video)[1].startswith("not an image")
    assert sniff_mime(b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00") == "image/heif"  # the generic brand


def test_avif_exif_orientation_is_applied():
    img = Image.new("RGB", (96, 64), (128, 128, 128))
    img.paste((255, 0, 0), (0, 0, 24, 16))  # marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated a quarter turn clockwise: the marker lands top-right
    buf = io.BytesIO()
    img.save(buf, "AVIF", quality=95, speed=8, exif=exif)
    pixels, w, h = decode_image(buf.getvalue())
    assert (w, h) == (64, 96) and pixels.shape == (96, 64, 3)
    assert _red_corner(pixels) == ("t", "r")


def test_without_pillow_heif_a_heic_gets_a_reason_that_names_the_package(corpus):
    """In a process where pillow-heif cannot be imported, a HEIC file is refused with the
    package to install, not Pillow's "cannot identify image file"."""
    root, _ = corpus
    code = (
        "import sys; sys.modules['pillow_heif'] = None\n"  # import fails, as when not installed
        "from executors.normalizer.decode import ImageDecodeError, decode_image\n"
        f"data = open({str(root / HEIC)!r}, 'rb').read()\n"
        "try:\n    decode_image(data)\nexcept ImageDecodeError as exc:\n    print('REASON', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "REASON cannot decode image: HEIC/HEIF needs the pillow-heif package" in out.stdout, out.stderr[-2000:]


def test_a_camera_raw_decodes_to_its_photo_not_its_thumbnail(corpus):
    """A DNG starts like a TIFF whose first image is a 160×120 thumbnail (all Pillow shows);
    the photo is the camera's JPEG preview, which LibRaw finds."""
    root, cases = corpus
    data = (root / DNG).read_bytes()
    assert cases[DNG] == OK and mime_by_name(DNG) == "image/x-raw"
    assert Image.open(io.BytesIO(data)).size == (160, 120)
    pixels, w, h = decode_image(data)
    assert (w, h) == (320, 256) and pixels.shape == (256, 320, 3)
    original = np.asarray(make_photo(None, (320, 256), seed=44), dtype=np.int16)
    assert np.abs(pixels.astype(np.int16) - original).mean() < 8
    assert device_jpeg(data) is None  # its JPEG is inside: the bytes that would go to nvJPEG are the DNG's


def test_a_camera_raw_is_turned_upright_by_its_orientation():
    img = Image.new("RGB", (384, 288), (128, 128, 128))
    img.paste((255, 0, 0), (0, 0, 96, 72))  # marker in the stored top-left corner
    pixels, w, h = decode_image(make_dng(img, orientation=6))  # a quarter turn clockwise: top-right
    assert (w, h) == (288, 384) and pixels.shape == (384, 288, 3)
    assert _red_corner(pixels) == ("t", "r")


def test_a_camera_raw_with_a_small_preview_is_developed_from_its_sensor_data():
    pixels, w, h = decode_image(make_dng(make_photo(None, (800, 600), seed=3), preview=(200, 150)), max_side=512)
    assert (w, h) == (400, 300) and pixels.shape == (300, 400, 3)  # LibRaw's half size, not the 200×150 preview


@pytest.mark.parametrize(
    "head",
    [
        b"FUJIFILMCCD-RAW 0201",
        b"IIRO\x08\x00\x00\x00",
        b"IIU\x00\x08\x00\x00\x00",
        b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01",
        b"II*\x00\x10\x00\x00\x00CR\x02\x00",
    ],
)
def test_camera_raw_signatures(head):
    assert sniff_mime(head[:SNIFF_BYTES]) == "image/x-raw"
    with pytest.raises(ImageDecodeError, match="camera RAW file that LibRaw cannot read"):
        decode_image(head + bytes(range(256)) * 4)


def test_without_rawpy_a_camera_raw_gets_a_reason_that_names_the_package(corpus):
    root, _ = corpus
    code = (
        "import sys; sys.modules['rawpy'] = None\n"
        "from executors.normalizer.decode import ImageDecodeError, decode_image\n"
        f"data = open({str(root / DNG)!r}, 'rb').read()\n"
        "try:\n    decode_image(data)\nexcept ImageDecodeError as exc:\n    print('REASON', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "REASON cannot decode image: camera RAW needs the rawpy package" in out.stdout, out.stderr[-2000:]


def test_a_tiff_with_raw_like_tags_that_libraw_cannot_read_decodes_as_before():
    """The tags that mark a RAW (a reduced first image with sub-images) on a TIFF LibRaw refuses:
    the image Pillow reads, never a skip it did not get before."""
    img = Image.new("RGB", (40, 30), (10, 200, 30))
    buf = io.BytesIO()
    img.save(buf, "TIFF", tiffinfo={254: 1, 330: 8})
    pixels, w, h = decode_image(buf.getvalue())
    assert (w, h) == (40, 30) and tuple(pixels[0, 0]) == (10, 200, 30)
