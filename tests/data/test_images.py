"""Image sizes from headers (data/images.py): every format decode_image reads (but JPEG XL),
without decoding, eagerly, in tf.data and in a SavedModel."""

import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.config import DataConfig
from stacked_hourglass.data import images


def _png(width, height) -> bytes:
    """A PNG signature + IHDR + IEND claiming width x height, without pixel data."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _pillow(fmt, height=10, width=20, **options) -> bytes:
    pil = pytest.importorskip("PIL.Image")
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)
    out = io.BytesIO()
    pil.fromarray(pixels).save(out, fmt, **options)
    return out.getvalue()


def _size(data):
    height, width, problem = images.image_header(data)
    return int(height), int(width), problem.numpy().decode()


@pytest.mark.parametrize(
    "fmt,options",
    [
        ("JPEG", {}),
        ("PNG", {}),
        ("GIF", {}),
        ("BMP", {}),
        ("WEBP", {"lossless": True}),  # VP8L
        ("WEBP", {"quality": 80}),  # VP8
        ("WEBP", {"lossless": True, "exif": b"Exif\x00\x00x"}),  # VP8X
    ],
)
def test_header_size_matches_the_decoder(fmt, options):
    data = _pillow(fmt, 13, 27, **options)
    assert _size(data) == (13, 27, "")
    assert tf.io.decode_image(data, expand_animations=False).shape[:2] == (13, 27)
    assert [int(v) for v in images.image_header_size(data)] == [13, 27]


def test_bmp_core_header_and_top_down_bitmaps():
    core = b"BM" + b"\x00" * 12 + struct.pack("<IHH", 12, 640, 480)
    top_down = b"BM" + b"\x00" * 12 + struct.pack("<Iii", 40, 320, -200)
    assert _size(core + b"\x00" * 8) == (480, 640, "")
    assert _size(top_down + b"\x00" * 8) == (200, 320, "")


@pytest.mark.parametrize(
    "data,problem",
    [
        (b"", "is not a JPEG, PNG, GIF, BMP or WebP image (0 bytes)"),
        (b"%PDF-1.4 ...", "is not a JPEG, PNG, GIF, BMP or WebP image (12 bytes)"),
        (_png(10, 10)[:20], "has a truncated PNG header (20 bytes)"),
        (b"GIF89a\x01", "has a truncated GIF header (7 bytes)"),
        (_png(0, 10), "has an empty PNG size 0x10 (width x height)"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "has an invalid PNG header"),
        (b"BM" + b"\x00" * 30, "has an invalid BMP header"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8Z" + b"\x00" * 20, "has an invalid WebP header"),
    ],
)
def test_what_is_not_an_image_header(data, problem):
    assert _size(data) == (0, 0, problem)
    with pytest.raises(tf.errors.InvalidArgumentError, match="image " + problem[:20]):
        images.image_header_size(data)


def test_an_invalid_jpeg_header_raises():
    with pytest.raises(tf.errors.InvalidArgumentError, match="Invalid JPEG data"):
        images.image_header(b"\xff\xd8\xff\xe0 this is no jpeg")


def test_pixel_limit_reads_no_pixels():
    bomb = _png(20000, 20000)  # 57 bytes that would decode to 1.2 GB
    assert images.DEFAULT_MAX_PIXELS == DataConfig().max_pixels == 50_000_000
    assert _size(bomb) == (20000, 20000, "")
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        images.check_image_size(bomb)
    assert (
        "image is 20000x20000 (width x height) = 400000000 pixels, above the limit max_pixels "
        "= 50000000" in error.value.message
    )
    assert [int(v) for v in images.check_image_size(bomb, 0)] == [20000, 20000]  # 0: no limit
    huge = _png(2**32 - 1, 2**32 - 1)  # the product does not fit in int64
    assert "above the limit" in images.pixel_limit_problem(*_size(huge)[:2], 1).numpy().decode()


def test_in_tf_data_and_in_a_saved_model(tmp_path):
    jpeg = tf.io.encode_jpeg(tf.zeros([30, 40, 3], tf.uint8)).numpy()
    ds = tf.data.Dataset.from_tensor_slices([jpeg, _png(7, 9)]).map(images.check_image_size)
    assert [(int(h), int(w)) for h, w in ds] == [(30, 40), (9, 7)]

    class Sizes(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def sizes(self, data):
            return tf.map_fn(
                lambda d: tf.stack(images.check_image_size(d, 1_000_000)),
                data,
                fn_output_signature=tf.TensorSpec([2], tf.int64),
            )

    tf.saved_model.save(Sizes(), str(tmp_path / "sizes"))
    loaded = tf.saved_model.load(str(tmp_path / "sizes"))
    np.testing.assert_array_equal(loaded.sizes(tf.constant([jpeg, _png(7, 9)])), [[30, 40], [9, 7]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="above the limit max_pixels"):
        loaded.sizes(tf.constant([jpeg, _png(2000, 2000)]))


# --- decode_window: only the pixels a crop reads ------------------------------------------------


def _noisy_image(height=203, width=301, seed=0):
    """uint8 [H, W, 3]: smooth colours plus noise (chroma detail at every frequency)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (height // 6 + 1, width // 6 + 1, 3)).astype(np.float32)
    smooth = tf.image.resize(coarse[None], (height, width))[0].numpy()
    return np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)


# (y0, x0, h, w): the whole image, off and on MCU boundaries (16 px at 4:2:0), a corner pixel.
_WINDOWS = [(0, 0, None, None), (1, 3, 5, 7), (7, 9, 17, 16), (8, 16, 9, 17), (-1, -1, 1, 1)]


@pytest.mark.parametrize("ratio", images.JPEG_RATIOS)
@pytest.mark.parametrize(
    "options, exact_edges",
    [
        ({}, False),  # 4:2:0
        ({"progressive": True}, False),
        ({"chroma_downsampling": False}, True),  # 4:4:4
        ({"format": "grayscale"}, True),
    ],
)
def test_decode_window_is_the_window_of_the_whole_decode(ratio, options, exact_edges):
    """decode_and_crop_jpeg gives the pixels of the whole decode at the same ratio, exactly,
    except the window's first and last columns with subsampled chroma (documented in
    decode_window; decode_crop never reads them)."""
    image = _noisy_image()
    if options.get("format") == "grayscale":
        image = image[..., :1]
    data = tf.io.encode_jpeg(image, quality=90, **options)
    whole = tf.io.decode_jpeg(data, channels=3, ratio=ratio).numpy().astype(int)
    height, width = whole.shape[:2]
    assert (height, width) == (-(-203 // ratio), -(-301 // ratio))  # ceil(H / r) x ceil(W / r)
    for y0, x0, h, w in _WINDOWS:
        y0, x0 = y0 % height, x0 % width
        h, w = min(h or height, height - y0), min(w or width, width - x0)
        window = images.decode_window(data, [y0, x0, h, w], ratio).numpy().astype(int)
        expected = whole[y0 : y0 + h, x0 : x0 + w]
        assert window.shape == expected.shape
        inner = slice(None) if exact_edges or w <= 2 else slice(1, -1)
        np.testing.assert_array_equal(window[:, inner], expected[:, inner])
        # The edge columns: chroma upsampled as at an image edge, a few levels on this image.
        assert np.abs(window - expected).max() <= 40


def test_decode_window_at_a_ratio_averages_blocks():
    """At 1/r, libjpeg's scaled inverse DCT is close to the mean of each r x r block."""
    yy, xx = np.mgrid[0:720, 0:1280]
    smooth = 128 + 60 * np.sin(xx / 37.0)[..., None] + 60 * np.cos(yy / 23.0)[..., None]
    data = tf.io.encode_jpeg(np.repeat(smooth, 3, -1).astype(np.uint8), quality=95)
    full = tf.io.decode_jpeg(data).numpy().astype(float)
    for r in (2, 4, 8):
        window = images.decode_window(data, [0, 0, 720 // r, 1280 // r], r).numpy()
        means = full.reshape(720 // r, r, 1280 // r, r, 3).mean(axis=(1, 3))
        assert np.abs(window - means).max() <= 3.0


def test_decode_window_of_other_formats_slices_the_whole_decode():
    image = _noisy_image(40, 50)
    for data in (tf.io.encode_png(image), _pillow("BMP", 40, 50), _pillow("GIF", 40, 50)):
        whole = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        window = images.decode_window(data, [3, 5, 20, 30]).numpy()
        np.testing.assert_array_equal(window, whole[3:23, 5:35])
    assert images.is_jpeg(tf.io.encode_jpeg(image)) and not images.is_jpeg(tf.io.encode_png(image))
    with pytest.raises(tf.errors.InvalidArgumentError, match="ratio 2 is for JPEG images only"):
        images.decode_window(tf.io.encode_png(image), [0, 0, 4, 4], 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="ratio must be 1, 2, 4 or 8, got 3"):
        images.decode_window(tf.io.encode_jpeg(image), [0, 0, 4, 4], 3)
