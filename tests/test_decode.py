"""The normalizer's decoding on real odd files: every good one upright RGB, every bad one a reason."""

import io

import numpy as np
import pytest
from PIL import Image

from corpus import BOMBS, EXIF_ROTATED, EXIF_SIZE, OK, make_corpus
from executors.normalizer.decode import ImageDecodeError, decode_image


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
