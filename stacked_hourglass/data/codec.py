"""The heatmap codec: keypoints <-> Gaussian heatmaps, and the grids between them.

One object owns every rule that ties keypoints to heatmaps (mmpose's `codecs` pattern), so the
input pipeline (encode), the training metric, validation, evaluation, prediction and the
SavedModel (decode) cannot disagree:

* grids: crop pixels (the S x S network input) and heatmap pixels (H x H, H = S / 4) cover the
  same square; a crop point p is the heatmap point `(p + 0.5) * H / S - 0.5`;
* encode: one Gaussian of `sigma` heatmap pixels per joint, centred on the exact sub-pixel
  location (peak 1 when it lies on a pixel centre), an all-zero channel for a joint that is not
  annotated or lies outside the square;
* decode: argmax plus a quarter-pixel shift toward the higher neighbour (paper §3.4);
* back-projection to original pixels through the crop's affine matrix;
* the flip test's mirror-and-swap of heatmap channels.

Coordinates are 0-based (x, y) with integer values at pixel centres (see `geometry`).
Everything works eagerly and inside `tf.data` / `tf.function`.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from stacked_hourglass.data import geometry


@dataclasses.dataclass(frozen=True)
class HeatmapCodec:
    """Encodes crop keypoints as heatmaps and decodes heatmaps back to keypoints.

    Attributes:
        input_size: crop side S in pixels.
        heatmap_size: heatmap side H (S / 4 for the hourglass network).
        sigma: Gaussian standard deviation in heatmap pixels (paper: 1).
    """

    input_size: int
    heatmap_size: int
    sigma: float = 1.0

    def __post_init__(self):
        if self.input_size < 1 or self.heatmap_size < 1 or not self.sigma > 0:
            raise ValueError(
                "HeatmapCodec needs positive sizes and sigma, got "
                f"input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={self.sigma}"
            )

    @classmethod
    def for_model(cls, input_size: int, sigma: float = 1.0) -> HeatmapCodec:
        """The codec of a stacked hourglass with S x S input (heatmaps S / 4)."""
        return cls(int(input_size), int(input_size) // 4, float(sigma))

    def crop_to_heatmap(self, points):
        """Crop pixels [..., 2] -> heatmap pixels."""
        return crop_to_heatmap(points, self.input_size, self.heatmap_size)

    def heatmap_to_crop(self, points):
        """Heatmap pixels [..., 2] -> crop pixels."""
        return heatmap_to_crop(points, self.input_size, self.heatmap_size)

    def encode(self, keypoints, valid):
        """Target heatmaps float32 [..., H, H, K] of crop keypoints [..., K, 2], valid [..., K]."""
        points = self.crop_to_heatmap(keypoints)
        return render_heatmaps(points, valid, self.heatmap_size, self.sigma)

    def decode(self, heatmaps):
        """(keypoints float32 [B, K, 2] in crop pixels, scores [B, K]) of heatmaps [B, H, H, K]."""
        coords, scores = decode_heatmaps(heatmaps)
        return self.heatmap_to_crop(coords), scores

    def decode_to_original(self, heatmaps, matrices):
        """(keypoints [B, K, 2] in original pixels, scores [B, K]).

        Args:
            heatmaps: float [B, H, H, K].
            matrices: float32 [B, 3, 3] original -> crop (`geometry.crop_matrix`).
        """
        crop_points, scores = self.decode(heatmaps)
        return geometry.apply_affine(geometry.invert_affine(matrices), crop_points), scores

    @staticmethod
    def flip(heatmaps, flip_permutation):
        """Heatmaps of a mirrored crop, mirrored back with left/right channels swapped."""
        return flip_heatmaps(heatmaps, flip_permutation)


def crop_to_heatmap(points, input_size: int, heatmap_size: int):
    """Crop pixels -> heatmap pixels (the two grids cover the same square)."""
    ratio = heatmap_size / input_size
    return (tf.convert_to_tensor(points, tf.float32) + 0.5) * ratio - 0.5


def heatmap_to_crop(points, input_size: int, heatmap_size: int):
    """Heatmap pixels -> crop pixels."""
    ratio = input_size / heatmap_size
    return (tf.convert_to_tensor(points, tf.float32) + 0.5) * ratio - 0.5


def render_heatmaps(keypoints, valid, heatmap_size: int, sigma: float = 1.0):
    """Gaussian target heatmaps, one channel per joint.

    Each channel is exp(-|p - k|² / 2σ²) sampled at the pixel centres, with k the joint's
    sub-pixel location (peak 1 when k is on a pixel centre). Joints that are not valid or whose
    location lies outside the heatmap square get an all-zero channel (still supervised).

    Args:
        keypoints: float [..., K, 2] (x, y) in heatmap pixels.
        valid: bool [..., K].
        heatmap_size: H = W of the heatmaps.
        sigma: Gaussian standard deviation in heatmap pixels (paper: 1).

    Returns:
        float32 [..., H, W, K].
    """
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    inside = tf.reduce_all(
        (keypoints >= -0.5) & (keypoints <= heatmap_size - 0.5), axis=-1
    ) & tf.convert_to_tensor(valid, tf.bool)
    grid = tf.range(heatmap_size, dtype=tf.float32)
    kx = keypoints[..., None, None, :, 0]  # [..., 1, 1, K]
    ky = keypoints[..., None, None, :, 1]
    dx2 = tf.square(grid[None, :, None] - kx)  # [..., 1, W, K]
    dy2 = tf.square(grid[:, None, None] - ky)  # [..., H, 1, K]
    heatmaps = tf.exp(-(dx2 + dy2) / (2.0 * sigma * sigma))
    return heatmaps * tf.cast(inside, tf.float32)[..., None, None, :]


def decode_heatmaps(heatmaps):
    """Joint locations from heatmaps: argmax plus a quarter-pixel shift (paper §3.4).

    The argmax is moved 0.25 px toward the higher of its two neighbours, separately in x and in
    y (no shift on the border, where a neighbour is missing).

    Args:
        heatmaps: float [B, H, W, K].

    Returns:
        (coords float32 [B, K, 2] (x, y) in heatmap pixels, scores float32 [B, K] = peak value).
    """
    heatmaps = tf.convert_to_tensor(heatmaps, tf.float32)
    shape = tf.shape(heatmaps)
    b, h, w, k = shape[0], shape[1], shape[2], shape[3]
    flat = tf.reshape(tf.transpose(heatmaps, [0, 3, 1, 2]), [b, k, h * w])
    index = tf.argmax(flat, axis=-1, output_type=tf.int32)
    scores = tf.reduce_max(flat, axis=-1)
    y, x = index // w, index % w

    def value_at(yy, xx):
        yy = tf.clip_by_value(yy, 0, h - 1)
        xx = tf.clip_by_value(xx, 0, w - 1)
        return tf.gather(flat, yy * w + xx, batch_dims=2)

    def shift(lo_y, lo_x, hi_y, hi_x, has_neighbours):
        step = 0.25 * tf.sign(value_at(hi_y, hi_x) - value_at(lo_y, lo_x))
        return tf.where(has_neighbours, step, 0.0)

    dx = shift(y, x - 1, y, x + 1, (x > 0) & (x < w - 1))
    dy = shift(y - 1, x, y + 1, x, (y > 0) & (y < h - 1))
    coords = tf.stack([tf.cast(x, tf.float32) + dx, tf.cast(y, tf.float32) + dy], axis=-1)
    return coords, scores


def flip_heatmaps(heatmaps, flip_permutation):
    """Mirrors heatmaps left-right and swaps left/right joint channels back.

    Used for the flip test: heatmaps predicted on a mirrored crop, after this, align with the
    heatmaps of the unmirrored crop.

    Args:
        heatmaps: float [B, H, W, K].
        flip_permutation: `JointSet.flip_permutation()`.
    """
    return tf.gather(tf.reverse(heatmaps, axis=[2]), flip_permutation, axis=3)
