"""EXIF orientation (data/images.py): the tag parsed in graph ops, the upright size, the 8
transforms, and crops of a phone's stored bytes equal to crops of the upright picture."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.data import geometry, images
from stacked_hourglass.data.records import items

ORIENTATIONS = range(1, 9)
HEIGHT, WIDTH = 48, 64  # the upright picture; multiples of 8 (lossless JPEG blocks)


@pytest.fixture(scope="module")
def upright(blocky_picture):
    return blocky_picture(HEIGHT, WIDTH, seed=3)


@pytest.fixture(scope="module")
def stored(upright, oriented_jpeg):
    """{orientation: JPEG bytes of the upright picture stored that way}."""
    return {v: oriented_jpeg(upright, v) for v in ORIENTATIONS}


def _tiff(orientation, order=b"II", *, kind=3, count=1, magic=42, offset=8, entries=None):
    """A TIFF block (EXIF's payload) whose IFD0 holds a maker tag, then 0x0112."""
    e = "<" if order == b"II" else ">"
    fields = [(0x010F, 2, 4, b"Cam\x00"), (0x0112, kind, count, struct.pack(e + "H", orientation))]
    n = len(fields) if entries is None else entries
    body = order + struct.pack(e + "HI", magic, offset) + struct.pack(e + "H", n)
    for tag, t, c, value in fields:
        body += struct.pack(e + "HHI", tag, t, c) + value.ljust(4, b"\x00")
    return body + b"\x00\x00\x00\x00"


def _app1(payload: bytes, length: int | None = None) -> bytes:
    """An APP1 segment holding "Exif\\0\\0" + payload (its length field `length` if given)."""
    body = b"Exif\x00\x00" + payload
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2 if length is None else length) + body


def _insert(jpeg: bytes, *segments: bytes) -> bytes:
    """The JPEG with `segments` right after its SOI."""
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


@pytest.fixture(scope="module")
def plain(upright):
    """The upright picture as a JPEG without EXIF."""
    return tf.io.encode_jpeg(upright, quality=100, chroma_downsampling=False).numpy()


def test_stored_pictures_turn_upright_like_pillow(upright, stored):
    """The test's stored pixels are right: Pillow's exif_transpose turns each upright."""
    from PIL import Image, ImageOps

    for v, data in stored.items():
        turned = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
        np.testing.assert_array_equal(turned, upright, err_msg=f"orientation {v}")


def test_the_tag_is_read_in_both_byte_orders(stored, plain):
    for v, data in stored.items():  # Pillow writes "MM" (big-endian)
        assert data[:64].find(b"MM\x00*") > 0
        assert int(images.exif_orientation(data)) == v
    graph = tf.function(images.exif_orientation, input_signature=[tf.TensorSpec([], tf.string)])
    for v in ORIENTATIONS:
        for order in (b"II", b"MM"):
            data = _insert(plain, _app1(_tiff(v, order)))
            assert int(images.exif_orientation(data)) == v, (v, order)
            assert int(graph(data)) == v
        # After a JFIF APP0 (as tools that re-save photos write it), also behind a comment:
        # not the plain JFIF layout whose parse is skipped.
        assert plain[2:4] == b"\xff\xe0" and plain[20:22] == b"\xff\xdb"
        after = plain[:20] + _app1(_tiff(v)) + plain[20:]
        assert int(images.exif_orientation(after)) == v
        comment = b"\xff\xfe\x00\x06hi\x00\x00"
        assert (
            int(images.exif_orientation(plain[:20] + comment + _app1(_tiff(v)) + plain[20:])) == v
        )
    ds = tf.data.Dataset.from_tensor_slices([stored[v] for v in ORIENTATIONS])
    assert list(ds.map(images.exif_orientation).as_numpy_iterator()) == list(ORIENTATIONS)


def test_upright_size_from_the_header(stored):
    for v, data in stored.items():
        expected = (HEIGHT, WIDTH)
        height, width, problem = images.image_header(data)
        assert (int(height), int(width), problem.numpy()) == (*expected, b""), v
        assert tuple(int(x) for x in images.image_header_size(data)) == expected
        assert items.image_size(data, "x.jpg") == expected
        stored_size = tf.image.extract_jpeg_shape(data).numpy()[:2]
        assert tuple(stored_size) == (expected if v < 5 else expected[::-1])


def test_orientation_matrices_by_hand():
    """A stored 2 x 3 (height x width) image: the matrix of each orientation, stored pixels to
    upright pixels, pixel centres at integers (mirroring n pixels: x → n - 1 - x)."""
    expected = {
        1: [[1, 0, 0], [0, 1, 0]],
        2: [[-1, 0, 2], [0, 1, 0]],  # x → 2 - x
        3: [[-1, 0, 2], [0, -1, 1]],
        4: [[1, 0, 0], [0, -1, 1]],  # y → 1 - y
        5: [[0, 1, 0], [1, 0, 0]],  # (x, y) → (y, x); upright 3 x 2
        6: [[0, -1, 1], [1, 0, 0]],  # clockwise: (x, y) → (1 - y, x)
        7: [[0, -1, 1], [-1, 0, 2]],
        8: [[0, 1, 0], [-1, 0, 2]],  # anticlockwise: (x, y) → (y, 2 - x)
    }
    for v, rows in expected.items():
        matrix = images.orientation_matrix(v, 2, 3).numpy()
        np.testing.assert_array_equal(matrix, np.array(rows + [[0, 0, 1]], np.float32), str(v))
    for v in (0, 9, -3):  # not tag values: upright
        np.testing.assert_array_equal(images.orientation_matrix(v, 2, 3), np.eye(3))


@pytest.mark.parametrize("v", ORIENTATIONS)
def test_orient_image_moves_each_pixel_where_the_matrix_says(v, upright, stored):
    """`orient_image` of the decoded stored pixels is the upright picture, and stored pixel p
    lands at `orientation_matrix` p: the two forms of one table agree."""
    pixels = tf.io.decode_jpeg(stored[v], channels=3).numpy()
    turned = images.orient_image(pixels, v).numpy()
    np.testing.assert_array_equal(turned, upright)
    np.testing.assert_array_equal(images.decode_upright(stored[v]), upright)
    h, w = pixels.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    points = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    moved = geometry.apply_affine(images.orientation_matrix(v, h, w), points).numpy()
    moved = moved.round().astype(int)
    np.testing.assert_array_equal(turned[moved[:, 1], moved[:, 0]], pixels[ys.ravel(), xs.ravel()])


CROPS = [  # (center, shrink, rotation, flip): zooming in, shrinking 2.5x (a 1/2 DCT decode)
    ([30.2, 20.7], 0.6, 0.0, False),
    ([22.0, 27.5], 0.8, 25.0, True),
    ([31.5, 23.5], 2.5, 0.0, False),
    ([40.0, 15.0], 2.5, -30.0, False),
]


@pytest.mark.parametrize("v", ORIENTATIONS)
def test_decode_crop_of_the_stored_bytes_is_the_upright_crop(v, upright, stored, plain):
    """Every crop reads the upright picture. The stored JPEGs hold the same pixels as the upright
    one (lossless blocks); a flip or quarter turn of the window and of the 8x8 DCT blocks is
    exact, so the crops differ only by the float32 rounding of the composed matrix: samples
    move by ~1e-5 px (coordinates under 100 px, a few roundings of 2^-24 relative), and the
    picture changes by at most 1.0 (0..1 range) per pixel, so a crop value by ~1e-5; 1e-4."""
    size = 32
    for center, shrink, rotation, flip in CROPS:
        matrix = geometry.crop_matrix(center, shrink * size / 200, size, rotation, flip)
        for antialias in (True, False):
            expected = geometry.decode_crop(plain, matrix, size, antialias=antialias).numpy()
            crop = geometry.decode_crop(stored[v], matrix, size, antialias=antialias).numpy()
            np.testing.assert_allclose(crop, expected, atol=1e-4, err_msg=str((center, antialias)))
    reference = geometry.crop_image(upright, matrix, size).numpy()
    np.testing.assert_allclose(geometry.decode_crop(stored[v], matrix, size), reference, atol=1e-4)


MALFORMED = {
    "no EXIF": lambda jpeg: jpeg,
    "wrong type (LONG)": lambda jpeg: _insert(jpeg, _app1(_tiff(6, kind=4))),
    "two values": lambda jpeg: _insert(jpeg, _app1(_tiff(6, count=2))),
    "value 0": lambda jpeg: _insert(jpeg, _app1(_tiff(0))),
    "value 9": lambda jpeg: _insert(jpeg, _app1(_tiff(9, b"MM"))),
    "byte order XX": lambda jpeg: _insert(jpeg, _app1(_tiff(6, b"XX"))),
    "magic 43": lambda jpeg: _insert(jpeg, _app1(_tiff(6, magic=43))),
    "IFD0 offset past the end": lambda jpeg: _insert(jpeg, _app1(_tiff(6, offset=0xFFFFFFF0))),
    "IFD0 offset inside the header": lambda jpeg: _insert(jpeg, _app1(_tiff(6, offset=2))),
    "entry count 1 (the tag is the second)": lambda jpeg: _insert(jpeg, _app1(_tiff(6, entries=1))),
    "segment ends before the tag": lambda jpeg: _insert(jpeg, _app1(_tiff(6), length=8 + 24)),
    "segment length 1": lambda jpeg: _insert(jpeg, _app1(_tiff(6), length=1)),
    "not Exif but Exig": lambda jpeg: _insert(jpeg, _app1(_tiff(6)).replace(b"Exif", b"Exig")),
    # The EXIF standard puts it right after SOI; the walk ends at the first table (DQT here).
    "EXIF after a quantisation table": lambda jpeg: _after_first_table(jpeg, _app1(_tiff(6))),
}


def _after_first_table(jpeg: bytes, segment: bytes) -> bytes:
    """The JPEG with `segment` after its first segment that follows APP0 (a DQT)."""
    assert jpeg[2:4] == b"\xff\xe0" and jpeg[20:22] == b"\xff\xdb"
    end = 22 + struct.unpack(">H", jpeg[22:24])[0]
    return jpeg[:end] + segment + jpeg[end:]


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_exif_is_upright_and_never_an_error(name, plain):
    data = MALFORMED[name](plain)
    assert int(images.exif_orientation(data)) == 1
    height, width, problem = images.image_header(data)
    assert (int(height), int(width), problem.numpy()) == (HEIGHT, WIDTH, b"")
    matrix = geometry.crop_matrix([32.0, 24.0], 0.3, 32)
    expected = geometry.decode_crop(plain, matrix, 32).numpy()
    np.testing.assert_array_equal(geometry.decode_crop(data, matrix, 32), expected)


def test_truncated_and_random_bytes_are_upright(stored):
    """Cut anywhere in its first 200 bytes, or with random bytes changed there, an EXIF JPEG's
    orientation is a tag value, without an error (reads never leave the bytes): 1 until the cut
    keeps the whole IFD0 entry of the tag."""
    data = stored[6]
    entry = data.find(b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06")  # big-endian, value 6
    assert entry > 0
    graph = tf.function(images.exif_orientation, input_signature=[tf.TensorSpec([], tf.string)])
    for end in range(0, 200):
        assert int(graph(data[:end])) == (6 if end >= entry + 12 else 1), end
    rng = np.random.default_rng(0)
    for _ in range(100):
        mutated = bytearray(data)
        for at in rng.integers(2, 120, 3):
            mutated[at] = int(rng.integers(0, 256))
        assert 1 <= int(graph(bytes(mutated))) <= 8


def test_other_formats_are_upright(upright):
    from PIL import Image

    for fmt in ("PNG", "GIF", "BMP", "WEBP"):
        out = io.BytesIO()
        Image.fromarray(upright).save(out, fmt)
        assert int(images.exif_orientation(out.getvalue())) == 1, fmt
    for data in (b"", b"\xff", b"\xff\xd8", b"\xff\xd8\xff\xe1\x00", b"not an image"):
        assert int(images.exif_orientation(data)) == 1
