"""The person box → crop rule, written once for the SavedModel's graph and the host path.

A box (x1, y1, x2, y2) in 0-based original pixels (four zeros: the whole image,
[-0.5, -0.5, W - 0.5, H - 0.5]) becomes the square crop of side `BOX_MARGIN * max(x2 - x1,
y2 - y1)` centred on the box centre: `center` = the box centre, `scale` = that side / 200 (the
MPII convention: a crop side is `200 * scale`, here with a 25% margin around the person): the
rule of `geometry.box_to_center_scale`, written once there (`BOX_MARGIN` is `data.box_rule`'s).
A box with no area, not finite, not overlapping the image, under one pixel or over
`MAX_BOX_TO_IMAGE` times the image's size is refused with a message naming it (a box partly
outside the image is fine: the crop is padded with zeros, as in training).

`serving.exporter` asserts `box_problems` in the graph and crops the encoded bytes
(`geometry.decode_crop`); `crop_on_host` (the image path of the LiteRT and Keras predictors,
`client.predict_on_host`) checks the same conditions eagerly and crops the decoded pixels
(`geometry.crop_image`): the same matrix, the same pixels up to the decoder's DCT scaling.
Both read the upright image (a JPEG's EXIF orientation applied: `decode_crop` composes it into
the matrix, the host path decodes upright, `client.decode_on_host`), so boxes are in its pixels.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from stacked_hourglass.data import geometry

# A box may be at most this many times the image's longer side (and at least one pixel): the
# image then still fills 1 / (BOX_MARGIN * MAX_BOX_TO_IMAGE) = 1/10 of the crop's side, 25 of its
# 256 pixels. Larger boxes (1e30) mean nothing and make the crop matrix overflow float32.
MAX_BOX_TO_IMAGE = 8.0


def fill_box(box, size):
    """Four zeros → the whole image's box; any other box as it is.

    Args:
        box: float32 [4] (x1, y1, x2, y2).
        size: int [2] (height, width) of the image.

    Returns:
        float32 [4].
    """
    box = tf.convert_to_tensor(box, tf.float32)
    h, w = tf.cast(size[0], tf.float32), tf.cast(size[1], tf.float32)
    whole = tf.stack([-0.5, -0.5, w - 0.5, h - 0.5])
    return tf.where(tf.reduce_all(tf.equal(box, 0.0)), whole, box)


def box_to_center_scale(box):
    """Person box → crop center and scale: `geometry.box_to_center_scale` on float32 tensors.

    Args:
        box: float [..., 4] (x1, y1, x2, y2) in original pixels.

    Returns:
        (center float32 [..., 2] = box centre (x, y), scale float32 [...] =
        `BOX_MARGIN * max(x2 - x1, y2 - y1) / 200`, so the crop side `200 * scale` is 1.25 times
        the box's longer side).
    """
    return geometry.box_to_center_scale(tf.convert_to_tensor(box, tf.float32))


def box_matrix(box, input_size: int):
    """float32 [..., 3, 3]: original pixels → crop pixels of the crop `box` [..., 4] gives."""
    center, scale = box_to_center_scale(box)
    return geometry.crop_matrix(center, scale, input_size)


def box_problems(box, size, index):
    """The conditions a (filled-in) box must meet, with the message when one does not.

    Args:
        box: float32 [4] (x1, y1, x2, y2), after `fill_box`.
        size: int [2] (height, width) of the image.
        index: the box's row in the request (named in the messages).

    Returns:
        [(ok bool [], message string [])]: a finite box with positive area; a box that
        overlaps the image; a box whose longer side is 1 pixel to `MAX_BOX_TO_IMAGE` times the
        image's longer side.
    """
    h, w = tf.cast(size[0], tf.float32), tf.cast(size[1], tf.float32)
    x1, y1, x2, y2 = tf.unstack(box)
    finite = tf.reduce_all(tf.math.is_finite(box))
    positive = tf.logical_and(x2 > x1, y2 > y1)
    overlaps = tf.reduce_all([x1 < w - 0.5, x2 > -0.5, y1 < h - 0.5, y2 > -0.5])
    area = tf.strings.format(
        "box[{}] = {} has zero or negative area or is not finite (need x1 < x2 and y1 < y2; "
        "four zeros mean the whole image)",
        (index, box),
    )
    outside = tf.strings.format(
        "box[{}] = {} lies outside the {}x{} (width x height) image",
        (index, box, size[1], size[0]),
    )
    side = tf.maximum(x2 - x1, y2 - y1)
    limit = MAX_BOX_TO_IMAGE * tf.maximum(h, w)
    sized = tf.logical_and(side >= 1.0, side <= limit)
    size_message = tf.strings.format(
        "box[{}] = {}: its longer side must be between 1 pixel and {} times the longer side of "
        "the {}x{} image",
        (index, box, int(MAX_BOX_TO_IMAGE), size[1], size[0]),
    )
    return [(tf.logical_and(finite, positive), area), (overlaps, outside), (sized, size_message)]


@tf.function(reduce_retracing=True, autograph=False)
def _checked_crop(image, box, index, input_size: int):
    """`crop_on_host`'s work as one graph (eager, its dozens of small ops cost more than the
    crop): (crop, matrix, box filled in, oks bool [C], messages string [C]) of `box_problems`;
    the crop is zeros when a condition fails (a box of 1e30 must not reach the warp)."""
    size = tf.shape(image)[:2]
    box = fill_box(box, size)
    problems = box_problems(box, size, index)
    oks = tf.stack([ok for ok, _ in problems])
    matrix = box_matrix(box, input_size)
    crop = tf.cond(
        tf.reduce_all(oks),
        lambda: geometry.crop_image(image, matrix, input_size),
        lambda: tf.zeros([input_size, input_size, 3], tf.float32),
    )
    return crop, matrix, box, oks, tf.stack([message for _, message in problems])


def crop_on_host(image, box, input_size: int, index: int = 0):
    """The crop `serving_box` makes, from decoded pixels (TF, one graph per input size).

    Args:
        image: uint8 [H, W, 3].
        box: float32 [4] x1, y1, x2, y2 in original pixels; None or four zeros = the whole image.
        input_size: S.
        index: the box's row among the image's boxes (named in the messages).

    Returns:
        (crop float32 [S, S, 3] in [0, 1], matrix float32 [3, 3] original → crop, box used [4]),
        numpy.

    Raises:
        ValueError: the message of the first condition of `box_problems` the box fails.
    """
    box = np.zeros(4, np.float32) if box is None else np.asarray(box, np.float32)
    crop, matrix, used, oks, messages = _checked_crop(
        tf.convert_to_tensor(image, tf.uint8), tf.constant(box), tf.constant(index), int(input_size)
    )
    for ok, message in zip(oks.numpy(), messages.numpy(), strict=True):
        if not ok:
            raise ValueError(message.decode("utf-8"))
    return crop.numpy(), matrix.numpy(), used.numpy()


def to_original(keypoints, matrix):
    """Crop-pixel keypoints [K, 2] → original pixels through the inverse of `matrix` [3, 3]."""
    inverse = geometry.invert_affine(tf.constant(matrix, tf.float32))
    return geometry.apply_affine(inverse, tf.constant(keypoints, tf.float32)).numpy()
