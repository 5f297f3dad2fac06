"""Image sizes read from the encoded bytes' header, in pure TensorFlow, without decoding.

A 1 MB PNG can claim 20000 x 20000 pixels: decoding it takes 1.2 GB (3 channels) before anything
can look at the result. `image_header_size` reads the size the way the decoders will, from the
first bytes of the file, so that a caller can refuse an image above a pixel limit before
decoding it (`check_image_size`). It is made of graph ops only, so it works eagerly, inside
`tf.data` and inside a SavedModel's `tf.function` (serving checks request images with it).

Formats (those `tf.io.decode_image` reads, except JPEG XL):

  * JPEG: `tf.image.extract_jpeg_shape` (libjpeg's header reader; an invalid JPEG header raises
    its `InvalidArgumentError`);
  * PNG: the IHDR chunk, which the format requires to come first (bytes 16-24, big-endian);
  * GIF: the logical screen size (bytes 6-10, little-endian). TF decodes every frame of an
    animated GIF, even with `expand_animations=False`: the limit here is per frame, the frame
    count is not read;
  * BMP: the DIB header (BITMAPCOREHEADER's 16-bit or BITMAPINFOHEADER's and later 32-bit size;
    a negative height, a top-down bitmap, counts by its absolute value);
  * WebP: the `VP8 `, `VP8L` or `VP8X` chunk header.

Sizes are int64 (a PNG header can claim up to 2^32 - 1 pixels a side); the pixel count is
compared in float64, which is exact far beyond any sensible limit.

EXIF orientation (phone photos). A camera often stores a portrait photo as a landscape bitmap
and an EXIF tag (0x0112, values 1-8) saying how to turn it upright. Every size and pixel this
package reads is the upright image's: `exif_orientation` reads the tag of a JPEG (any other
format, a JPEG without EXIF and a malformed EXIF: 1, never an error), `image_header` reports
the upright size, `orientation_matrix` maps stored pixels to upright pixels (what
`geometry.decode_crop` composes with a crop) and `orient_image` / `decode_upright` turn decoded
pixels upright. The eight transforms are defined once, in `_ORIENTATIONS`.

`decode_window` decodes only a window of an image (what a crop reads, `geometry.decode_crop`):
a JPEG through libjpeg-turbo's cropped decoding (`decode_jpeg_window`), optionally downscaled 2,
4 or 8 times in the DCT domain; the other formats in full, then sliced.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from stacked_hourglass.config import DataConfig

# The default pixel limit (height x width), the one `DataConfig.max_pixels` declares.
DEFAULT_MAX_PIXELS = DataConfig.max_pixels

FORMATS = "JPEG, PNG, GIF, BMP or WebP"

_HEAD = 32  # bytes looked at; every header field read here lies within them
_UNKNOWN, _JPEG, _PNG, _GIF, _BMP, _WEBP = range(6)
_NAMES = ("unknown", "JPEG", "PNG", "GIF", "BMP", "WebP")

_EXIF_PREFIX = 1 << 17  # bytes of a JPEG searched for its EXIF (an APP1 segment is < 64 KiB)
_EXIF_SEGMENTS = 4  # APPn segments walked (EXIF's APP1 comes first, or after APP0 "JFIF")
_EXIF_ENTRIES = 64  # IFD0 entries looked at (sorted by tag: 0x0112 is among the first)
_EXIF_MAGIC4 = int.from_bytes(b"Exif", "big")  # then two zero bytes
_ORIENTATION_TAG = 0x0112
_PAD22 = b"\x00" * 22
_APPN_MARKERS = [bytes([0xFF, m]) for m in [*range(0xE0, 0xF0), 0xFE]]  # APP0-15, COM
_SHORT = 3  # the TIFF type of the orientation tag's value
# EXIF orientation (index) → how its stored pixels turn upright: (transpose, mirror
# left-right, mirror top-bottom), applied in that order. The one table of the 8 transforms.
_ORIENTATIONS = (
    (False, False, False),  # 0: not a valid value; as 1
    (False, False, False),  # 1: upright
    (False, True, False),  # 2: mirrored left-right
    (False, True, True),  # 3: rotated 180 degrees
    (False, False, True),  # 4: mirrored top-bottom
    (True, False, False),  # 5: transposed (mirrored about the main diagonal)
    (True, True, False),  # 6: stored a quarter turn anticlockwise: turned 90 degrees clockwise
    (True, True, True),  # 7: transverse (mirrored about the anti-diagonal)
    (True, False, True),  # 8: stored a quarter turn clockwise: turned 90 degrees anticlockwise
)


def _head(encoded):
    """The first `_HEAD` bytes as int64 [_HEAD], zero-padded when the data is shorter."""
    head = tf.strings.substr(encoded, 0, _HEAD)
    head = tf.strings.substr(tf.strings.join([head, tf.constant(b"\x00" * _HEAD)]), 0, _HEAD)
    return tf.cast(tf.reshape(tf.io.decode_raw(head, tf.uint8), [_HEAD]), tf.int64)


def _is(head, magic: bytes, offset: int = 0):
    return tf.reduce_all(tf.equal(head[offset : offset + len(magic)], list(magic)))


def _little(head, start: int, count: int):
    return tf.add_n([head[start + i] * (1 << (8 * i)) for i in range(count)])


def _big(head, start: int, count: int):
    return tf.add_n([head[start + i] * (1 << (8 * (count - 1 - i))) for i in range(count)])


def _signed32(value):
    return tf.where(value >= 1 << 31, value - (1 << 32), value)


def _field_weights(layout, little: bool) -> np.ndarray:
    """float64 [record bytes, fields]: a record's bytes times it are its unsigned fields.

    Args:
        layout: (offset, size) of each field in the record.
        little: little-endian fields, else big-endian.
    """
    weights = np.zeros((max(o + n for o, n in layout), len(layout)))
    for field, (offset, size) in enumerate(layout):
        for i in range(size):
            weights[offset + i, field] = 256.0 ** (i if little else size - 1 - i)
    return weights


def _read_fields(data, pos, layout, little):
    """The fields (`_field_weights`) of the records at int64 positions `pos` [N] of `data`
    (uint8 [n + 1], its last byte a zero pad; a byte past the end reads the pad).

    Returns:
        float64 [N, fields] (exact: fields are at most 4 bytes).
    """
    width = max(o + n for o, n in layout)
    index = tf.minimum(pos[:, None] + tf.range(width, dtype=tf.int64), tf.size(data, tf.int64) - 1)
    raw = tf.cast(tf.gather(data, index), tf.float64)
    if isinstance(little, bool):
        weights = tf.constant(_field_weights(layout, little))
    else:
        weights = tf.where(little, _field_weights(layout, True), _field_weights(layout, False))
    return tf.linalg.matmul(raw, weights)


def _exif_segment(data, length):
    """(found, TIFF header position, segment end) of a JPEG's APP1 "Exif\\0\\0" segment.

    Walks the APPn and COM segments after SOI (FF xx, then a big-endian length that counts
    itself), at most `_EXIF_SEGMENTS`: the EXIF segment comes first (the EXIF standard) or
    after a JFIF APP0; the frame's tables and the scan follow the APPn segments.
    """
    pos, positions = tf.constant(2, tf.int64), []
    for _ in range(_EXIF_SEGMENTS):
        positions.append(pos)
        size = _read_fields(data, pos[None] + 2, ((0, 2),), False)[0, 0]
        pos = pos + 2 + tf.cast(size, tf.int64)
    positions = tf.stack(positions)
    # Per segment: marker, length, the 6 bytes that say "Exif\0\0" (read as one 6-byte field).
    fields = _read_fields(data, positions, ((0, 2), (2, 2), (4, 4), (8, 2)), False)
    marker, size, magic4, magic2 = tf.unstack(tf.cast(fields, tf.int64), axis=1)
    appn = ((marker >= 0xFFE0) & (marker <= 0xFFEF)) | tf.equal(marker, 0xFFFE)
    usable = appn & (size >= 2) & (positions + 4 <= length)
    walked = tf.cast(tf.math.cumprod(tf.cast(usable, tf.int32)), tf.bool)  # stop at the first other
    soi = tf.equal(_read_fields(data, tf.zeros([1], tf.int64), ((0, 2),), False)[0, 0], 0xFFD8)
    hit = soi & walked & tf.equal(marker, 0xFFE1) & tf.equal(magic4, _EXIF_MAGIC4)
    hit = hit & tf.equal(magic2, 0) & (positions + 10 <= length)
    first = tf.argmax(tf.cast(hit, tf.int32), output_type=tf.int32)
    end = tf.minimum(positions[first] + 2 + size[first], length)
    return tf.reduce_any(hit), positions[first] + 10, end


def _parse_orientation(encoded):
    """`exif_orientation` in graph ops (see there)."""
    raw = tf.io.decode_raw(tf.strings.substr(encoded, 0, _EXIF_PREFIX), tf.uint8)
    data = tf.concat([tf.reshape(raw, [-1]), tf.zeros([1], tf.uint8)], 0)
    length = tf.size(data, tf.int64) - 1
    found, tiff, end = _exif_segment(data, length)
    # TIFF header: byte order "II" (little-endian) or "MM", 42, the offset of IFD0 from it.
    order = _read_fields(data, tiff[None], ((0, 2),), False)[0, 0]
    little = tf.equal(order, 0x4949)
    magic, offset = tf.unstack(_read_fields(data, tiff[None], ((2, 2), (4, 4)), little)[0])
    ifd = tiff + tf.cast(offset, tf.int64)
    ok = found & (little | tf.equal(order, 0x4D4D)) & tf.equal(magic, 42.0)
    ok = ok & (ifd >= tiff + 8) & (ifd + 2 <= end)
    # IFD0: a 2-byte entry count, then 12-byte entries (tag, type, count, value or offset; a
    # SHORT value sits in the value field's first two bytes).
    count = tf.cast(_read_fields(data, ifd[None], ((0, 2),), little)[0, 0], tf.int64)
    index = tf.range(_EXIF_ENTRIES, dtype=tf.int64)
    entry = ifd + 2 + 12 * index
    entries = _read_fields(data, entry, ((0, 2), (2, 2), (4, 4), (8, 2)), little)
    tag, kind, values, value = tf.unstack(tf.cast(entries, tf.int64), axis=1)
    match = ok & (index < count) & (entry + 12 <= end) & tf.equal(tag, _ORIENTATION_TAG)
    first = tf.argmax(tf.cast(match, tf.int32), output_type=tf.int32)
    valid = tf.reduce_any(match) & tf.equal(kind[first], _SHORT) & tf.equal(values[first], 1)
    valid = valid & (value[first] >= 1) & (value[first] <= 8)
    return tf.where(valid, tf.cast(value[first], tf.int32), 1)


def _orientation_graph(encoded):
    """`exif_orientation` in graph ops: the parse, skipped where `_without_exif`."""
    return tf.cond(
        _without_exif(encoded), lambda: tf.constant(1), lambda: _parse_orientation(encoded)
    )


# Traced once per process: eager callers (the converters, the host path) run its ~90 small ops
# as one graph, and graphs (every pipeline, every export) call it rather than trace it again.
_orientation_function = tf.function(
    _orientation_graph, input_signature=[tf.TensorSpec([], tf.string)], autograph=False
)


def exif_orientation(encoded):
    """The EXIF orientation (1-8) of encoded image bytes: int32 scalar.

    The tag 0x0112 of a JPEG's APP1 "Exif" segment, read in graph ops from its first
    `_EXIF_PREFIX` bytes: the marker segments after SOI are walked to the EXIF segment, then
    the TIFF header (byte order, 42, the offset of IFD0), then IFD0's 12-byte entries for the
    tag, a SHORT with count 1 and a value 1-8. Anything else gives 1 (upright) and never an
    error nor a read past the bytes: another format, a JPEG without EXIF or without the tag,
    a truncated segment, offsets outside it, another type or value. Works eagerly, in
    `tf.data` and in a SavedModel graph.

    Args:
        encoded: string scalar tensor (or bytes).

    Returns:
        int32 []: 1 upright, 2 mirrored left-right, 3 rotated 180 degrees, 4 mirrored
        top-bottom, 5 transposed, 6 to be turned 90 degrees clockwise, 7 transverse, 8 to be
        turned 90 degrees anticlockwise (`orient_image`, `orientation_matrix`).
    """
    return _orientation_function(tf.convert_to_tensor(encoded, tf.string))


def _without_exif(encoded):
    """bool []: a few string ops show that the bytes hold no EXIF segment the walk would find:
    not a JPEG, or the JPEG libjpeg writes without EXIF (SOI, a 16-byte JFIF APP0, then a
    marker other than APPn/COM). Skips the parse for most non-phone pictures."""
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(encoded, 0, 22), _PAD22]), 0, 22)
    jpeg = tf.equal(tf.strings.substr(head, 0, 2), b"\xff\xd8")
    jfif = tf.equal(tf.strings.substr(head, 2, 9), b"\xff\xe0\x00\x10JFIF\x00")
    after = tf.reduce_any(tf.equal(tf.strings.substr(head, 20, 2), _APPN_MARKERS))
    return tf.logical_not(jpeg) | (jfif & tf.logical_not(after))


def _orientation_flags(orientation):
    """(transpose, mirror left-right, mirror top-bottom) bool scalars of an orientation."""
    index = tf.cast(orientation, tf.int32)
    index = tf.where((index >= 1) & (index < len(_ORIENTATIONS)), index, 0)  # other: upright
    return tf.unstack(tf.gather(tf.constant(_ORIENTATIONS), index))


def upright_size(height, width, orientation):
    """(height, width) of the upright image: swapped for orientations 5-8 (a quarter turn)."""
    transpose = _orientation_flags(orientation)[0]
    return tf.where(transpose, width, height), tf.where(transpose, height, width)


def orientation_matrix(orientation, height, width):
    """The affine map of stored pixels to upright pixels: float32 [3, 3].

    Pixel centres at integers: mirroring an axis of n pixels maps x to n - 1 - x, transposing
    maps (x, y) to (y, x); `_ORIENTATIONS` gives which, in that order.

    Args:
        orientation: int scalar, the EXIF orientation (`exif_orientation`).
        height, width: the stored image's size (int scalars).
    """
    transpose, mirror_x, mirror_y = _orientation_flags(orientation)
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    up_h, up_w = upright_size(h, w, orientation)
    t = tf.cast(transpose, tf.float32)
    sx, sy = tf.where(mirror_x, -1.0, 1.0), tf.where(mirror_y, -1.0, 1.0)
    tx, ty = tf.where(mirror_x, up_w - 1.0, 0.0), tf.where(mirror_y, up_h - 1.0, 0.0)
    zero, one = tf.constant(0.0), tf.constant(1.0)
    values = [sx * (1 - t), sx * t, tx, sy * t, sy * (1 - t), ty, zero, zero, one]
    return tf.reshape(tf.stack(values), [3, 3])


def orient_image(image, orientation):
    """The stored pixels turned upright (`_ORIENTATIONS`): [H, W, C] → [H', W', C], any dtype;
    pixel p goes to `orientation_matrix(orientation, H, W)` p."""
    image = tf.convert_to_tensor(image)
    transpose, mirror_x, mirror_y = _orientation_flags(orientation)
    image = tf.cond(transpose, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    image = tf.cond(mirror_x, lambda: tf.reverse(image, [1]), lambda: image)
    return tf.cond(mirror_y, lambda: tf.reverse(image, [0]), lambda: image)


def decode_upright(encoded):
    """Encoded image bytes → the upright image, uint8 [H, W, 3] (`tf.io.decode_image`, first
    frame of a GIF, then `orient_image` by the EXIF orientation). For pixels shown to users
    or cropped on the host; crops of encoded bytes go through `geometry.decode_crop`."""
    encoded = tf.convert_to_tensor(encoded, tf.string)
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return orient_image(image, exif_orientation(encoded))


def _format(head):
    """Format id (`_JPEG` ...; `_UNKNOWN`) from the magic bytes."""
    kinds = [
        (_JPEG, _is(head, b"\xff\xd8\xff")),
        (_PNG, _is(head, b"\x89PNG\r\n\x1a\n")),
        (_GIF, _is(head, b"GIF87a") | _is(head, b"GIF89a")),
        (_BMP, _is(head, b"BM")),
        (_WEBP, _is(head, b"RIFF") & _is(head, b"WEBP", 8)),
    ]
    kind = tf.constant(_UNKNOWN, tf.int32)
    for value, match in reversed(kinds):
        kind = tf.where(match, value, kind)
    return kind


def _other_sizes(head):
    """{format: (height, width, header length needed, header valid)} of the non-JPEG formats."""
    png = (
        _big(head, 20, 4),
        _big(head, 16, 4),
        24,
        _is(head, b"IHDR", 12),
    )
    gif = (_little(head, 8, 2), _little(head, 6, 2), 10, tf.constant(True))
    dib = _little(head, 14, 4)
    core = tf.equal(dib, 12)  # BITMAPCOREHEADER: 16-bit sizes
    bmp = (
        tf.where(core, _little(head, 20, 2), tf.abs(_signed32(_little(head, 22, 4)))),
        tf.where(core, _little(head, 18, 2), tf.abs(_signed32(_little(head, 18, 4)))),
        tf.where(core, 22, 26),
        core | (dib >= 40),
    )
    lossy, lossless, extended = (
        _is(head, b"VP8 ", 12),
        _is(head, b"VP8L", 12),
        _is(head, b"VP8X", 12),
    )
    bits = _little(head, 21, 4)  # VP8L: 14 bits width - 1, 14 bits height - 1
    webp = (
        tf.where(
            lossy,
            _little(head, 28, 2) % (1 << 14),
            tf.where(lossless, (bits // (1 << 14)) % (1 << 14) + 1, _little(head, 27, 3) + 1),
        ),
        tf.where(
            lossy,
            _little(head, 26, 2) % (1 << 14),
            tf.where(lossless, bits % (1 << 14) + 1, _little(head, 24, 3) + 1),
        ),
        tf.where(lossless, 25, 30),
        (lossy & _is(head, b"\x9d\x01\x2a", 23)) | (lossless & tf.equal(head[20], 0x2F)) | extended,
    )
    return {_PNG: png, _GIF: gif, _BMP: bmp, _WEBP: webp}


def _jpeg_upright_shape(encoded):
    """int64 [2] (height, width) of a JPEG turned upright (its EXIF orientation)."""
    height, width = tf.unstack(tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64))
    return tf.stack(upright_size(height, width, exif_orientation(encoded)))


def image_header(encoded):
    """(height, width, problem) of encoded image bytes, from the header only: the upright
    image's size (a JPEG's EXIF orientation 5-8 swaps the stored height and width).

    Args:
        encoded: a string scalar tensor (or bytes).

    Returns:
        (height int64 [], width int64 [], problem string []): `problem` is "" when the header was
        read, otherwise why not (not an image of a known format, a truncated or invalid header,
        an empty size), and the sizes are then 0. Only an invalid JPEG header raises (the
        `InvalidArgumentError` of `tf.image.extract_jpeg_shape`).
    """
    encoded = tf.convert_to_tensor(encoded, tf.string)
    length = tf.cast(tf.strings.length(encoded), tf.int64)
    head = _head(encoded)
    kind = _format(head)
    zero = tf.constant(0, tf.int64)
    jpeg = tf.cond(
        tf.equal(kind, _JPEG),
        lambda: _jpeg_upright_shape(encoded),
        lambda: tf.zeros([2], tf.int64),
    )
    height, width = jpeg[0], jpeg[1]
    needed, valid = tf.constant(3, tf.int64), tf.equal(kind, _JPEG)
    for value, (h, w, n, ok) in _other_sizes(head).items():
        mine = tf.equal(kind, value)
        height, width = tf.where(mine, h, height), tf.where(mine, w, width)
        needed = tf.where(mine, tf.cast(n, tf.int64), needed)
        valid = tf.where(mine, ok, valid)
    name = tf.gather(tf.constant(_NAMES), kind)
    problem = tf.where(
        tf.equal(kind, _UNKNOWN),
        tf.strings.format("is not a {} image ({} bytes)", (tf.constant(FORMATS), length)),
        tf.where(
            length < needed,
            tf.strings.format("has a truncated {} header ({} bytes)", (name, length)),
            tf.where(
                tf.logical_not(valid),
                tf.strings.format("has an invalid {} header", name),
                tf.where(
                    (height < 1) | (width < 1),
                    tf.strings.format(
                        "has an empty {} size {}x{} (width x height)", (name, width, height)
                    ),
                    tf.constant(""),
                ),
            ),
        ),
    )
    problem = tf.strings.regex_replace(problem, '"', "")  # tf.strings.format quotes strings
    ok = tf.equal(problem, "")
    return tf.where(ok, height, zero), tf.where(ok, width, zero), problem


def image_header_size(encoded):
    """(height, width) int64 scalars of encoded image bytes, read from the header only.

    Works eagerly, in `tf.data` and in a SavedModel graph. Raises `InvalidArgumentError` when the
    bytes are not a JPEG, PNG, GIF, BMP or WebP image or their header is truncated or invalid
    (the message says which). See the module docstring for what is read per format.
    """
    height, width, problem = image_header(encoded)
    check = tf.debugging.Assert(tf.equal(problem, ""), [tf.strings.join(["image ", problem])])
    with tf.control_dependencies([check]):
        return tf.identity(height), tf.identity(width)


def pixel_limit_problem(height, width, max_pixels: int):
    """ "" when height x width <= max_pixels (or max_pixels <= 0: no limit), else why not."""
    if max_pixels <= 0:
        return tf.constant("")
    height = tf.cast(height, tf.int64)
    width = tf.cast(width, tf.int64)
    pixels = tf.cast(height, tf.float64) * tf.cast(width, tf.float64)
    return tf.where(
        pixels > float(max_pixels),
        tf.strings.format(
            "is {}x{} (width x height) = {} pixels, above the limit max_pixels = {} (a "
            "decompression bomb?)",
            (width, height, tf.cast(tf.minimum(pixels, 2.0**62), tf.int64), max_pixels),
        ),
        tf.constant(""),
    )


def check_image_size(encoded, max_pixels: int = DEFAULT_MAX_PIXELS):
    """`image_header_size`, and an `InvalidArgumentError` naming the limit when the image has
    more than `max_pixels` pixels (`max_pixels` <= 0: no limit). Call it before decoding.

    Returns:
        (height, width) int64 scalars.
    """
    height, width = image_header_size(encoded)
    problem = pixel_limit_problem(height, width, max_pixels)
    check = tf.debugging.Assert(tf.equal(problem, ""), [tf.strings.join(["image ", problem])])
    with tf.control_dependencies([check]):
        return tf.identity(height), tf.identity(width)


# The downscaling factors libjpeg applies in the DCT domain while decoding (`ratio` of TF's JPEG
# decoders): a scaled inverse DCT of each 8x8 block's low frequencies.
JPEG_RATIOS = (1, 2, 4, 8)


def is_jpeg(encoded):
    """bool scalar: the bytes start with a JPEG's magic bytes (FF D8 FF)."""
    return tf.equal(tf.strings.substr(encoded, 0, 3), b"\xff\xd8\xff")


def decode_jpeg_window(encoded, window, ratio=1):
    """Decodes the pixels of `window` only of a JPEG, at 1/`ratio`: uint8 [h, w, 3].

    `tf.io.decode_and_crop_jpeg`: libjpeg-turbo skips the rows below the window, and the
    inverse DCT and colour conversion outside it (the entropy decoding of the rows above it and
    of all columns cannot be skipped), and with `ratio` r decodes at 1/r in the DCT domain:
    pixel (i, j) is then close to the mean of the full-size block rows r*i..r*i+r-1, columns
    r*j..r*j+r-1 (a low-pass filter: within a few levels of 255 of that mean on smooth
    content), its centre at (r*j + (r-1)/2, r*i + (r-1)/2) in full-size pixels.

    The window holds the same pixels as the same window sliced from the whole image decoded at
    that ratio, except its first and last columns in a JPEG with subsampled chroma (4:2:0,
    4:2:2): libjpeg-turbo upsamples the chroma there as at an image edge (edge sample repeated
    instead of interpolated with its neighbour outside the window), which moves them by up to
    ~20 levels on noisy colour. A caller that needs exact pixels widens the window by a column
    each side (`geometry.decode_crop`'s margin is wider still). Rows are exact
    (`tests/data/test_images.py`: 4:2:0, 4:4:4, progressive and greyscale JPEGs, windows at and
    off MCU boundaries).

    Args:
        encoded: string scalar, JPEG bytes.
        window: int32 [4] (y0, x0, h, w), h, w >= 1, inside the image decoded at 1/`ratio`
            (ceil(H / ratio) x ceil(W / ratio) pixels for a JPEG of H x W); TF's decoder raises
            `InvalidArgumentError` otherwise.
        ratio: int32 scalar, one of `JPEG_RATIOS` (a tensor: it may differ per image).

    Returns:
        uint8 [h, w, 3].
    """
    encoded = tf.convert_to_tensor(encoded, tf.string)
    window = tf.cast(window, tf.int32)
    ratio = tf.cast(ratio, tf.int32)
    # `ratio` is an attribute of the op, not an input: one branch per value.
    branches = [
        lambda r=r: tf.io.decode_and_crop_jpeg(encoded, window, channels=3, ratio=r)
        for r in JPEG_RATIOS
    ]
    known = tf.equal(ratio, JPEG_RATIOS)
    check = tf.debugging.Assert(
        tf.reduce_any(known),
        [tf.strings.format("decode_jpeg_window: ratio must be 1, 2, 4 or 8, got {}", ratio)],
    )
    with tf.control_dependencies([check]):
        index = tf.argmax(tf.cast(known, tf.int32), output_type=tf.int32)
    return tf.ensure_shape(tf.switch_case(index, branches), [None, None, 3])


def decode_window(encoded, window, ratio=1):
    """Decodes the pixels of `window` only: uint8 [h, w, 3].

    JPEG: `decode_jpeg_window` (what it skips, the DCT-domain `ratio`, which pixels are exact).
    Other formats (PNG, GIF, BMP, WebP): `tf.io.decode_image` (first frame of a GIF), then the
    window is sliced; `ratio` must be 1. Works eagerly, in `tf.data` and in a SavedModel graph.

    Args:
        encoded: string scalar, image bytes.
        window: int32 [4] (y0, x0, h, w), h, w >= 1, inside the image (decoded at 1/`ratio`).
        ratio: int32 scalar, one of `JPEG_RATIOS`; JPEG only.

    Returns:
        uint8 [h, w, 3].
    """
    encoded = tf.convert_to_tensor(encoded, tf.string)
    window = tf.cast(window, tf.int32)
    ratio = tf.cast(ratio, tf.int32)

    def other():
        check = tf.debugging.Assert(
            tf.equal(ratio, 1),
            [tf.strings.format("decode_window: ratio {} is for JPEG images only", ratio)],
        )
        with tf.control_dependencies([check]):
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        y0, x0, h, w = tf.unstack(window)
        return tf.slice(image, tf.stack([y0, x0, 0]), tf.stack([h, w, 3]))

    region = tf.cond(is_jpeg(encoded), lambda: decode_jpeg_window(encoded, window, ratio), other)
    return tf.ensure_shape(region, [None, None, 3])


def decode_check(encoded):
    """Decodes an image completely and returns its height; raises the decoder's error (a
    truncated or corrupt file). JPEGs are decoded at 1/8 scale: the entropy-coded data is still
    read to its end, so truncation is caught, at about 60% of a full decode's cost.

    Args:
        encoded: string scalar, the file's bytes (eager or in a graph).

    Returns:
        int64 scalar, the decoded height.
    """
    return tf.cond(
        is_jpeg(encoded),
        lambda: tf.shape(tf.io.decode_jpeg(encoded, ratio=8), tf.int64)[0],
        lambda: tf.shape(tf.io.decode_image(encoded, expand_animations=False), tf.int64)[0],
    )
