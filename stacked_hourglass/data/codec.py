"""The heatmap codec: keypoints <-> Gaussian heatmaps, and the grids between them.

One object owns every rule that ties keypoints to heatmaps (mmpose's `codecs` pattern), so the
input pipeline (encode), the training metric, validation, evaluation, prediction and the
SavedModel (decode) cannot disagree:

* grids: crop pixels (the S x S network input) and heatmap pixels (H x H, H = S / 4) cover the
  same square; a crop point p is the heatmap point `(p + 0.5) * H / S - 0.5`;
* encode: one Gaussian of `sigma` heatmap pixels per joint, centred on the exact sub-pixel
  location (peak 1 when it lies on a pixel centre), an all-zero channel for a joint that is not
  annotated or lies outside the square;
* decode: argmax plus a quarter-pixel shift toward the higher neighbour (paper §3.4), or
  DARK's distribution-aware refinement (Zhang et al., CVPR 2020): smooth with the target's
  Gaussian, take the log, one Newton step from the argmax (`decoder="dark"`);
* back-projection to original pixels through the crop's affine matrix;
* the flip test's mirror-and-swap of heatmap channels.

Coordinates are 0-based (x, y) with integer values at pixel centres (see `geometry`).
Everything works eagerly and inside `tf.data` / `tf.function`.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from stacked_hourglass.data import geometry

DECODERS = ("quarter", "dark")


@dataclasses.dataclass(frozen=True)
class HeatmapCodec:
    """Encodes crop keypoints as heatmaps and decodes heatmaps back to keypoints.

    Attributes:
        input_size: crop side S in pixels.
        heatmap_size: heatmap side H (S / 4 for the hourglass network).
        sigma: Gaussian standard deviation in heatmap pixels (paper: 1).
        decoder: "quarter" (the paper's argmax + quarter-pixel shift) or "dark".
    """

    input_size: int
    heatmap_size: int
    sigma: float = 1.0
    decoder: str = "quarter"

    def __post_init__(self):
        if self.input_size < 1 or self.heatmap_size < 1 or not self.sigma > 0:
            raise ValueError(
                "HeatmapCodec needs positive sizes and sigma, got "
                f"input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={self.sigma}"
            )
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")

    @classmethod
    def for_model(
        cls, input_size: int, sigma: float = 1.0, decoder: str = "quarter"
    ) -> HeatmapCodec:
        """The codec of a stacked hourglass with S x S input (heatmaps S / 4)."""
        return cls(int(input_size), int(input_size) // 4, float(sigma), decoder)

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
        if self.decoder == "dark":
            coords, scores = decode_heatmaps_dark(heatmaps, self.sigma)
        else:
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


def gaussian_kernel(sigma: float):
    """A normalised 2-D Gaussian, float32 [k, k], k = 2 * ceil(3 sigma) + 1 (±3 sigma)."""
    radius = max(1, math.ceil(3.0 * sigma))
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    g = tf.exp(-tf.square(x) / (2.0 * sigma * sigma))
    kernel = g[:, None] * g[None, :]
    return kernel / tf.reduce_sum(kernel)


def decode_heatmaps_dark(heatmaps, sigma: float = 1.0):
    """Distribution-aware decoding (DARK, Zhang et al. CVPR 2020), in the graph.

    1. Smooth every channel with the targets' Gaussian (σ = `sigma`; DARK's kernel 11 for its
       σ = 2 targets is the same rule: the predicted blob becomes closer to a Gaussian, and a
       Gaussian convolved with a Gaussian stays one), rescaled to keep each channel's maximum.
    2. Take the log: a Gaussian becomes a quadratic, whose maximum one Newton step finds exactly.
    3. From the argmax m: offset = -H⁻¹ g with the gradient g (central differences) and the
       Hessian H (DARK's differences over ±2 pixels), applied when the argmax is at least 2
       pixels from the border and H is invertible; otherwise the argmax stays.

    Args:
        heatmaps: float [B, H, W, K].
        sigma: the target Gaussian's σ in heatmap pixels.

    Returns:
        (coords float32 [B, K, 2] (x, y) in heatmap pixels, scores float32 [B, K] = the
        original peak value).
    """
    heatmaps = tf.convert_to_tensor(heatmaps, tf.float32)
    shape = tf.shape(heatmaps)
    b, h, w, k = shape[0], shape[1], shape[2], shape[3]
    kernel = gaussian_kernel(sigma)
    radius = (kernel.shape[0] - 1) // 2
    # Channels into the batch so one [k, k, 1, 1] convolution smooths every channel.
    flat = tf.reshape(tf.transpose(heatmaps, [0, 3, 1, 2]), [b * k, h, w, 1])
    padded = tf.pad(flat, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    smooth = tf.nn.conv2d(padded, kernel[:, :, None, None], strides=1, padding="VALID")
    peak = tf.reduce_max(flat, axis=[1, 2, 3], keepdims=True)
    smooth = smooth * tf.math.divide_no_nan(
        peak, tf.reduce_max(smooth, axis=[1, 2, 3], keepdims=True)
    )
    logs = tf.reshape(tf.math.log(tf.maximum(smooth, 1e-10)), [b, k, h * w])

    raw = tf.reshape(flat, [b, k, h * w])
    index = tf.argmax(raw, axis=-1, output_type=tf.int32)
    scores = tf.reduce_max(raw, axis=-1)
    y, x = index // w, index % w

    def at(dy, dx):
        yy = tf.clip_by_value(y + dy, 0, h - 1)
        xx = tf.clip_by_value(x + dx, 0, w - 1)
        return tf.gather(logs, yy * w + xx, batch_dims=2)

    centre = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = 0.25 * (at(0, 2) - 2.0 * centre + at(0, -2))
    hyy = 0.25 * (at(2, 0) - 2.0 * centre + at(-2, 0))
    hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = hxx * hyy - hxy * hxy
    inside = (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2)
    usable = inside & (tf.abs(det) > 1e-12)
    safe_det = tf.where(usable, det, 1.0)
    # -H⁻¹ g for the symmetric 2x2 H = [[hxx, hxy], [hxy, hyy]].
    ox = -(hyy * gx - hxy * gy) / safe_det
    oy = -(-hxy * gx + hxx * gy) / safe_det
    # A Newton step longer than a pixel means the log-heatmap is not locally quadratic there
    # (a flat or multi-modal channel): keep the argmax.
    usable = usable & (tf.abs(ox) <= 1.0) & (tf.abs(oy) <= 1.0)
    ox = tf.where(usable, ox, 0.0)
    oy = tf.where(usable, oy, 0.0)
    coords = tf.stack([tf.cast(x, tf.float32) + ox, tf.cast(y, tf.float32) + oy], axis=-1)
    return coords, scores
