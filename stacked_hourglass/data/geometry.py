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
"""

from __future__ import annotations

import math

import tensorflow as tf

from stacked_hourglass.data import features

_EPS = 1e-6


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
