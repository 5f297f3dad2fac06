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
