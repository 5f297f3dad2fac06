"""Crop geometry and augmentation, in pure TensorFlow (heatmaps: see `codec`).

Coordinate convention (everywhere in this package): 0-based pixel coordinates, (x, y) order, with
integer values at pixel centres; the image spans [-0.5, W - 0.5] x [-0.5, H - 0.5].

* Original image: the source picture (any size).
* Crop (input) resolution: `input_size` x `input_size`, the network input. The person box
  (a square of side `200 * scale` around `center`) maps onto it, optionally rotated and rescaled.
* Heatmap resolution: `heatmap_size` = `input_size / 4`. A crop point p maps to
  `(p + 0.5) * heatmap_size / input_size - 0.5`: the two grids cover the same area.

All functions work eagerly and inside `tf.data`/`tf.function`; affine matrices are float32
[..., 3, 3] acting on column vectors (x, y, 1).

Cropping (`decode_crop`, used by training, evaluation and the SavedModel alike). A person crop
usually shrinks the picture (MPII: 2.7x at the median, 6.7x at the 95th percentile), and one
bilinear warp from full resolution then reads 4 of the s x s source pixels behind each crop
pixel: it aliases (fine texture turns into moire, thin limbs break up) and decodes pixels it
never reads. So the crop is made in three steps whose composite maps every source point to
exactly the crop point `matrix` gives (only the filtering differs from one warp):

1. decode only the window the crop reads (`crop_window`), a JPEG at 1/r in the DCT domain
   (r = 1, 2, 4 or 8, the largest not above the shrink s; `images.decode_jpeg_window`);
2. average that window down by the remaining factor s / r (area resampling, `tf.image.resize`
   "area", the way pose-hg-train's `image.scale` averages) so that
3. the one bilinear warp (crop + rotation + scale + flip) runs at a scale of about 1.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from stacked_hourglass.data import features, images
from stacked_hourglass.data.box_rule import BOX_MARGIN

_EPS = 1e-6


def box_to_center_scale(box):
    """Person box → square crop centre and scale: the one home of the box → crop rule.

    The rule of HRNet's `_xywh2cs` and mmpose's `GetBBoxCenterScale` for a square crop (aspect
    ratio 1): centre = the box centre; the box widened to a square of its longer side, times
    `BOX_MARGIN`; scale = that side / `features.PIXELS_PER_SCALE` (200). Used by the COCO
    converter (ground-truth boxes) and by serving (`serving.box_crop`, requested boxes).

    Args:
        box: [..., 4] (x1, y1, x2, y2), 0-based pixels (pixel (0, 0)'s centre at (0, 0)). A numpy
            array is computed in float64 numpy (the converter); anything else (a tensor, a list)
            as float32 TensorFlow ops (graphs, `tf.data`).

    Returns:
        (center [..., 2] (x, y), scale [...]): numpy float64 for a numpy box, else float32
        tensors.
    """
    if isinstance(box, np.ndarray):
        box, maximum = box.astype(np.float64), np.maximum
    else:
        box, maximum = tf.convert_to_tensor(box, tf.float32), tf.maximum
    center = 0.5 * (box[..., :2] + box[..., 2:])
    side = maximum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])
    return center, BOX_MARGIN * side / features.PIXELS_PER_SCALE


def crop_matrix(center, scale, input_size: int, rotation=0.0, flip=False):
    """Affine matrix mapping original-image pixels to crop pixels.

    The square of side `200 * scale` around `center` becomes the `input_size` crop, rotated by
    `rotation` degrees (counter-clockwise in the image as displayed, i.e. with y pointing down the
    person turns anticlockwise) and mirrored left-right when `flip`.

    Args:
        center: float [..., 2] (x, y) in original pixels.
        scale: float [...]; crop side = 200 * scale original pixels.
        input_size: crop side in pixels.
        rotation: float [...] degrees.
        flip: bool [...]; mirror the crop horizontally (x -> input_size - 1 - x).

    Returns:
        float32 [..., 3, 3].
    """
    center = tf.convert_to_tensor(center, tf.float32)
    scale = tf.convert_to_tensor(scale, tf.float32)
    rotation = tf.broadcast_to(tf.convert_to_tensor(rotation, tf.float32), tf.shape(scale))
    flip = tf.broadcast_to(tf.convert_to_tensor(flip, tf.bool), tf.shape(scale))
    zoom = input_size / (features.PIXELS_PER_SCALE * tf.maximum(scale, _EPS))
    theta = rotation * (math.pi / 180.0)
    cos, sin = tf.cos(theta) * zoom, tf.sin(theta) * zoom
    mirror = tf.where(flip, -1.0, 1.0)
    half = input_size / 2.0 - 0.5
    cx, cy = center[..., 0], center[..., 1]
    # p' = M R Z (p - c) + half, with rotation R(θ) = [[cos, sin], [-sin, cos]] in y-down pixels
    # (anticlockwise as displayed) and M = diag(mirror, 1) about the crop centre.
    a = mirror * cos
    b = mirror * sin
    d = -sin
    e = cos
    tx = half - (a * cx + b * cy)
    ty = half - (d * cx + e * cy)
    zeros, ones = tf.zeros_like(a), tf.ones_like(a)
    rows = [tf.stack([a, b, tx], -1), tf.stack([d, e, ty], -1), tf.stack([zeros, zeros, ones], -1)]
    return tf.stack(rows, -2)


def apply_affine(matrix, points):
    """Applies [..., 3, 3] affine matrices to [..., N, 2] points (x, y)."""
    matrix = tf.convert_to_tensor(matrix, tf.float32)
    points = tf.convert_to_tensor(points, tf.float32)
    linear = matrix[..., :2, :2]
    offset = matrix[..., :2, 2]
    return tf.linalg.matmul(points, linear, transpose_b=True) + offset[..., None, :]


def invert_affine(matrix):
    """Inverse of [..., 3, 3] affine matrices."""
    return tf.linalg.inv(tf.convert_to_tensor(matrix, tf.float32))


def warp_image(image, matrix, output_size: int):
    """Resamples `image` into the crop given by `matrix` in one bilinear warp.

    Args:
        image: float32 [H, W, C] or [B, H, W, C] (same matrix size batch).
        matrix: [3, 3] or [B, 3, 3], original pixels -> crop pixels (from `crop_matrix`).
        output_size: crop side.

    Returns:
        float32 [output_size, output_size, C] (or batched); outside the image is 0.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    batched = image.shape.rank == 4
    images = image if batched else image[None]
    inverse = invert_affine(matrix)
    inverse = tf.reshape(inverse, [-1, 9])[:, :8] / tf.reshape(inverse, [-1, 9])[:, 8:9]
    inverse = tf.broadcast_to(inverse, [tf.shape(images)[0], 8])
    # ImageProjectiveTransformV3 maps output pixel (x, y) to the input point it samples, with
    # integer coordinates at pixel centres: the same convention as ours.
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=inverse,
        output_shape=tf.constant([output_size, output_size], tf.int32),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return warped if batched else warped[0]


def _resample(image, matrix, output_size: int):
    """`warp_image` of one float32 [H, W, C] image, faster when `matrix` does not rotate.

    Without rotation (60% of training crops, every evaluation and serving crop) the crop's
    samples lie on an axis-aligned grid, and `tf.image.crop_and_resize` computes the same
    bilinear samples in less than half the time. A ring of zeros around the image makes its
    edge what `warp_image`'s constant fill gives (a sample less than a pixel outside blends
    with 0; crop_and_resize alone would return 0 there). Equal to `warp_image` within float
    rounding (1e-5; `tests/data/test_geometry.py`).
    """
    if output_size < 2:
        return warp_image(image, matrix, output_size)

    def aligned():
        inverse = invert_affine(matrix)  # crop pixels -> image pixels
        padded = tf.pad(image, [[1, 1], [1, 1], [0, 0]])
        span = tf.cast(tf.shape(image)[:2], tf.float32) + 1.0  # padded (H, W) - 1
        # (x, y) of crop pixels 0 and S - 1 in padded pixels; crop_and_resize wants them
        # divided by the padded size - 1, (y1, x1, y2, x2). Reversed for a mirrored crop.
        first = inverse[:2, 2] + 1.0
        last = first + tf.linalg.diag_part(inverse[:2, :2]) * (output_size - 1)
        box = tf.stack(
            [first[1] / span[0], first[0] / span[1], last[1] / span[0], last[0] / span[1]]
        )
        crop = tf.image.crop_and_resize(padded[None], box[None], [0], [output_size, output_size])
        return crop[0]

    rotated = tf.logical_or(tf.not_equal(matrix[0, 1], 0.0), tf.not_equal(matrix[1, 0], 0.0))
    return tf.cond(rotated, lambda: warp_image(image, matrix, output_size), aligned)


def scale_translate(scale_x, scale_y, shift_x, shift_y):
    """The affine matrix (x, y) -> (scale_x * x + shift_x, scale_y * y + shift_y): float32 [3, 3].

    Arguments are float scalars.
    """
    values = [tf.cast(v, tf.float32) for v in (scale_x, scale_y, shift_x, shift_y)]
    sx, sy, tx, ty = values
    zero, one = tf.constant(0.0), tf.constant(1.0)
    return tf.reshape(tf.stack([sx, zero, tx, zero, sy, ty, zero, zero, one]), [3, 3])


def shrink_factor(matrix):
    """Source pixels per crop pixel (per axis, geometric mean) of [..., 3, 3] affine matrices.

    sqrt(|det|) of the inverse's linear part: 200 * scale / input_size for `crop_matrix`
    (rotation and flip do not change it); above 1 the crop shrinks the image.

    Returns:
        float32 [...].
    """
    matrix = tf.convert_to_tensor(matrix, tf.float32)
    det = matrix[..., 0, 0] * matrix[..., 1, 1] - matrix[..., 0, 1] * matrix[..., 1, 0]
    return tf.math.rsqrt(tf.maximum(tf.abs(det), _EPS * _EPS))


def crop_window(matrix, output_size: int, height, width, margin=1.0):
    """The pixels of an image that a crop reads: int32 [4] (y0, x0, h, w), inside the image.

    The crop square [-0.5, S - 0.5]^2 is mapped back through `matrix` (rotation included); the
    axis-aligned box around its four corners, `margin` pixels wider on every side (what the
    resampling filters reach beyond the sample points: 1 for a bilinear warp), is rounded out
    to whole pixels and clipped to the image. A crop that misses the image gets a 1 x 1 window
    at the nearest corner: every sample is then more than `margin` pixels from it and reads 0.

    Args:
        matrix: float32 [3, 3], image pixels -> crop pixels.
        output_size: crop side S.
        height, width: image size in pixels (int scalars).
        margin: float scalar >= 0, pixels.

    Returns:
        int32 [4]: rows y0 .. y0 + h - 1 and columns x0 .. x0 + w - 1, h, w >= 1.
    """
    edge = output_size - 0.5
    corners = tf.constant([[-0.5, -0.5], [edge, -0.5], [-0.5, edge], [edge, edge]])
    points = apply_affine(invert_affine(matrix), corners)
    margin = tf.cast(margin, tf.float32)
    last = tf.cast(tf.stack([width, height]), tf.float32) - 1.0  # (x, y) of the last pixel
    low = tf.clip_by_value(tf.floor(tf.reduce_min(points, 0) - margin), 0.0, last)
    high = tf.clip_by_value(tf.math.ceil(tf.reduce_max(points, 0) + margin), low, last)
    low, size = tf.cast(low, tf.int32), tf.cast(high - low, tf.int32) + 1
    return tf.stack([low[1], low[0], size[1], size[0]])


def area_downscale(image, matrix):
    """Averages `image` down to the crop's scale, so that `matrix` becomes a warp of scale ~1.

    With s = `shrink_factor(matrix)` > 1 the image is resized to round(H / s) x round(W / s)
    with area resampling: each new pixel is the mean of the H/h' x W/w' source pixels it covers
    (fractional at the edges). Its centre (i, j) lies at ((j + 0.5) W/w' - 0.5, (i + 0.5) H/h'
    - 0.5) in image pixels (TF's resize convention, the same pixel-centre convention as ours),
    which the returned matrix accounts for. With s <= 1 the image keeps its size (area
    resampling to the same size copies it).

    Args:
        image: uint8 or float32 [H, W, C].
        matrix: float32 [3, 3], image pixels -> crop pixels.

    Returns:
        (float32 [h', w', C] in the value range of `image` (uint8: 0..255), float32 [3, 3]
        resized pixels -> crop pixels).
    """
    shrink = tf.maximum(shrink_factor(matrix), 1.0)
    size = tf.shape(image)[:2]
    size_f = tf.cast(size, tf.float32)
    new_size = tf.maximum(tf.cast(tf.round(size_f / shrink), tf.int32), 1)
    resized = tf.image.resize(image, new_size, method="area")
    step = size_f / tf.cast(new_size, tf.float32)  # image pixels per new pixel, (y, x)
    from_resized = scale_translate(step[1], step[0], 0.5 * step[1] - 0.5, 0.5 * step[0] - 0.5)
    return resized, tf.linalg.matmul(tf.convert_to_tensor(matrix, tf.float32), from_resized)


def crop_image(image, matrix, output_size: int, *, antialias: bool = True):
    """The crop of a decoded image: area averaging down to the crop's scale, one bilinear warp.

    Args:
        image: uint8 [H, W, C] (scaled to [0, 1]) or float32 [H, W, C].
        matrix: float32 [3, 3], image pixels -> crop pixels (`crop_matrix`, possibly composed
            with the placement of a window, as in `decode_crop`).
        output_size: crop side S.
        antialias: average first (`area_downscale`) when the crop shrinks the image; False:
            one bilinear warp from the image as it is (`warp_image`; aliases when shrinking).

    Returns:
        float32 [S, S, C]; outside the image is 0. A source point p lands at crop point
        `apply_affine(matrix, p)` either way. (With `antialias`, a crop without rotation is
        resampled by `tf.image.crop_and_resize`: the same bilinear samples, faster.)
    """
    image = tf.convert_to_tensor(image)
    uint8 = image.dtype == tf.uint8
    if not uint8:
        image = tf.cast(image, tf.float32)
    if antialias:
        # Averaged while still uint8 (the area resize reads uint8, writes float32): the
        # conversion then runs on the smaller image.
        image, matrix = area_downscale(image, matrix)
    else:
        image = tf.cast(image, tf.float32)
    if uint8:
        image = image * (1.0 / 255.0)  # tf.image.convert_image_dtype's scaling, bit for bit
    if not antialias:
        return warp_image(image, matrix, output_size)
    return _resample(image, tf.convert_to_tensor(matrix, tf.float32), output_size)


def decode_crop(encoded, matrix, output_size: int, *, antialias: bool = True):
    """Decodes what a crop needs of encoded image bytes, and crops it (module docstring).

    A JPEG is decoded at 1/r, r the largest of 1, 2, 4, 8 not above the shrink s (its pixel
    (u, v) sits at source (r u + (r - 1)/2, r v + (r - 1)/2)), and only in the window that the
    crop reads: the box around the crop's corners with a margin of `2 max(s / r, 1) + 2` decoded
    pixels. A crop pixel's bilinear sample reads the averaged pixels within one of them (s / r
    decoded pixels), each the mean of the decoded pixels within s / (2 r) + 1/2 of its centre:
    at most 1.5 s / r + 1/2 decoded pixels from the sample, well inside the margin, so no sample
    reads past a window edge inside the image (nor the window's edge columns, which libjpeg-turbo
    decodes slightly differently, `images.decode_jpeg_window`). Where the image size is not a
    multiple of r, its last decoded row and column also average libjpeg's edge padding (under one
    crop pixel, since r <= s). Other formats are decoded whole (r = 1) and the window sliced.

    `matrix` reads the upright image: a JPEG's EXIF orientation (`images.exif_orientation`) is
    composed into it (`images.orientation_matrix`, stored pixels → upright pixels), and the
    stored pixels are decoded and cropped as they are (the window is the composed matrix's).

    Args:
        encoded: string scalar, JPEG/PNG/GIF/BMP/WebP bytes whose header has been checked
            (`images.check_image_size`, `features.record_problem`): the size is taken from the
            JPEG header or the decoded image, the pixel limit is not checked again.
        matrix: float32 [3, 3], upright original pixels -> crop pixels (`crop_matrix`).
        output_size: crop side S.
        antialias: False: the whole image decoded at full size and one bilinear warp (the
            crop of this package before antialiasing, kept to compare with).

    Returns:
        float32 [S, S, 3] in [0, 1]; outside the image is 0.
    """
    encoded = tf.convert_to_tensor(encoded, tf.string)
    matrix = tf.convert_to_tensor(matrix, tf.float32)
    orientation = images.exif_orientation(encoded)

    def stored(height, width):
        """`matrix` from the stored pixels of a height x width image (its EXIF orientation)."""
        upright = images.orientation_matrix(orientation, height, width)
        return tf.linalg.matmul(matrix, upright)

    if not antialias:
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        size = tf.shape(image)
        return crop_image(image, stored(size[0], size[1]), output_size, antialias=False)
    shrink = shrink_factor(matrix)

    def place(height, width, ratio):
        """(window, window pixels -> crop pixels) in an image of height x width decoded at
        1/ratio."""
        r = tf.cast(ratio, tf.float32)
        decoded_matrix = tf.linalg.matmul(
            stored(height, width), scale_translate(r, r, (r - 1) / 2, (r - 1) / 2)
        )
        decoded_height = tf.cast(tf.math.ceil(tf.cast(height, tf.float32) / r), tf.int32)
        decoded_width = tf.cast(tf.math.ceil(tf.cast(width, tf.float32) / r), tf.int32)
        margin = 2.0 * tf.maximum(shrink / r, 1.0) + 2.0
        window = crop_window(decoded_matrix, output_size, decoded_height, decoded_width, margin)
        origin = tf.cast(window[:2], tf.float32)  # (y0, x0)
        from_window = scale_translate(1.0, 1.0, origin[1], origin[0])
        return window, tf.linalg.matmul(decoded_matrix, from_window)

    def jpeg():
        ratio = tf.constant(1, tf.int32)
        for r in images.JPEG_RATIOS[1:]:
            ratio = tf.where(shrink >= r, r, ratio)
        size = tf.image.extract_jpeg_shape(encoded)
        window, window_matrix = place(size[0], size[1], ratio)
        return images.decode_jpeg_window(encoded, window, ratio), window_matrix

    def other():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        size = tf.shape(image)
        window, window_matrix = place(size[0], size[1], 1)
        region = tf.slice(
            image, tf.stack([window[0], window[1], 0]), tf.concat([window[2:], [3]], 0)
        )
        return region, window_matrix

    region, window_matrix = tf.cond(images.is_jpeg(encoded), jpeg, other)
    region = tf.ensure_shape(region, [None, None, 3])
    return crop_image(region, window_matrix, output_size, antialias=True)


def sample_augmentation(
    seed,
    rotation: float = 30.0,
    rotation_prob: float = 0.4,
    scale: float = 0.25,
    flip: bool = True,
):
    """Draws one sample's augmentation parameters (stateless, from a [2] int seed).

    Args:
        seed: int32/int64 [2] stateless seed.
        rotation: maximum |angle| in degrees (paper: 30); uniform in [-rotation, rotation].
        rotation_prob: probability of rotating at all (pose-hg-train rotates 40% of the samples).
        scale: scale factor drawn uniformly from [1 - scale, 1 + scale] (paper: 0.75–1.25).
        flip: whether to mirror half of the samples.

    Returns:
        (rotation degrees float32 [], scale factor float32 [], flip bool []).
    """
    draws = tf.random.stateless_uniform([4], seed=seed)
    angle = (2.0 * draws[0] - 1.0) * rotation
    angle = tf.where(draws[1] < rotation_prob, angle, 0.0)
    factor = 1.0 + (2.0 * draws[2] - 1.0) * scale
    mirrored = tf.logical_and(tf.constant(flip), draws[3] < 0.5)
    return angle, factor, mirrored


def color_jitter(image, seed, strength: float = 0.4):
    """Multiplies each colour channel by a factor from [1 - strength, 1 + strength], clipped.

    pose-hg-train uses 0.4 (×[0.6, 1.4]); bearpaw/pytorch-pose 0.2.

    Args:
        image: float32 [H, W, 3] in [0, 1].
        seed: [2] stateless seed.
    """
    factors = 1.0 + (2.0 * tf.random.stateless_uniform([3], seed=seed) - 1.0) * strength
    return tf.clip_by_value(image * factors, 0.0, 1.0)
