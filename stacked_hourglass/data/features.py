"""The TFRecord contract: one `tf.train.Example` per annotated person.

Writer (`serialize_example`) and reader (`parse_example`) both live here, so the keys cannot drift
apart. Coordinates are 0-based pixels of the original image, (x, y) order; pixel (0, 0)'s centre is
at (0.0, 0.0). Readers of 1-based sources subtract 1 once, before building a `PersonExample`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from stacked_hourglass.data import images

IMAGE_ENCODED = "image/encoded"
IMAGE_FILENAME = "image/filename"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
CENTER = "person/center"
SCALE = "person/scale"
KEYPOINTS = "person/keypoints"
KEYPOINT_STATUS = "person/keypoint_status"
NORMALIZER = "person/normalizer"
HEADBOX = "person/headbox"
SOURCE_DATASET = "source/dataset"
SOURCE_INDEX = "source/index"
SOURCE_PERSON = "source/person"
# The person box (x1, y1, x2, y2), 0-based pixels, and its area (COCO's `area`): written only for
# people that have one (COCO-format sources), so other sources' records are unchanged.
PERSON_BOX = "person/box"
PERSON_AREA = "person/area"

# person/keypoint_status values.
NOT_ANNOTATED = 0
OCCLUDED = 1
VISIBLE = 2

# Crop side in pixels is PIXELS_PER_SCALE * person/scale (MPII's convention: a person ≈ 200·s px).
PIXELS_PER_SCALE = 200.0


@dataclasses.dataclass
class PersonExample:
    """One person, as written to a TFRecord.

    Attributes:
        image_encoded: the original image file's bytes (JPEG or PNG).
        filename: the image file name relative to the images folder.
        height, width: the original image's size in pixels.
        center: (x, y) crop centre, 0-based pixels, already adjusted (see DESIGN.md, *Conventions*).
        scale: crop side = 200 × scale pixels.
        keypoints: float [K, 2], (x, y), 0-based original pixels; (0, 0) where not annotated.
        keypoint_status: int [K], NOT_ANNOTATED / OCCLUDED / VISIBLE.
        normalizer: PCK reference length in pixels (MPII head size, FLIC torso size, the box's
            longer side for COCO-format data); 0 if unknown.
        headbox: (x1, y1, x2, y2), 0-based pixels, or None when the source has none.
        dataset: source dataset name ("mpii", "flic", "synthetic", "coco").
        index: image index in the source annotation (COCO: the image id).
        person: person index within that image in the source annotation (COCO: the annotation
            id).
        box: the person box (x1, y1, x2, y2), 0-based pixels (the image spans [-0.5, W - 0.5]),
            or None when the source has none (COCO: `sources.coco.coco_box` of the `bbox`).
        area: the person's area in pixels (COCO's `area`, which OKS divides by); 0.0 if unknown.
    """

    image_encoded: bytes
    filename: str
    height: int
    width: int
    center: tuple[float, float]
    scale: float
    keypoints: np.ndarray
    keypoint_status: np.ndarray
    normalizer: float
    headbox: tuple[float, float, float, float] | None
    dataset: str
    index: int
    person: int
    box: tuple[float, float, float, float] | None = None
    area: float = 0.0


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def serialize_example(example: PersonExample) -> bytes:
    """Serialises a person to `tf.train.Example` bytes (deterministic for equal inputs)."""
    keypoints = np.asarray(example.keypoints, np.float64)
    status = np.asarray(example.keypoint_status, np.int64)
    if keypoints.ndim != 2 or keypoints.shape[1] != 2 or status.shape != (keypoints.shape[0],):
        raise ValueError(
            f"{example.filename}: keypoints must be [K, 2] and keypoint_status [K], got "
            f"{keypoints.shape} and {status.shape}"
        )
    feature = {
        IMAGE_ENCODED: _bytes([example.image_encoded]),
        IMAGE_FILENAME: _bytes([example.filename.encode("utf-8")]),
        IMAGE_HEIGHT: _ints([example.height]),
        IMAGE_WIDTH: _ints([example.width]),
        CENTER: _floats(example.center),
        SCALE: _floats([example.scale]),
        KEYPOINTS: _floats(keypoints.reshape(-1)),
        KEYPOINT_STATUS: _ints(status),
        NORMALIZER: _floats([example.normalizer]),
        HEADBOX: _floats(example.headbox if example.headbox is not None else []),
        SOURCE_DATASET: _bytes([example.dataset.encode("utf-8")]),
        SOURCE_INDEX: _ints([example.index]),
        SOURCE_PERSON: _ints([example.person]),
    }
    if example.box is not None or example.area:
        feature[PERSON_BOX] = _floats(example.box if example.box is not None else [])
        feature[PERSON_AREA] = _floats([example.area])
    proto = tf.train.Example(features=tf.train.Features(feature=feature))
    return proto.SerializeToString(deterministic=True)


def feature_spec(num_joints: int) -> dict:
    """The `tf.io.parse_single_example` spec for `num_joints` joints."""
    return {
        IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
        IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
        IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
        CENTER: tf.io.FixedLenFeature([2], tf.float32),
        SCALE: tf.io.FixedLenFeature([], tf.float32),
        KEYPOINTS: tf.io.FixedLenFeature([2 * num_joints], tf.float32),
        KEYPOINT_STATUS: tf.io.FixedLenFeature([num_joints], tf.int64),
        NORMALIZER: tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
        HEADBOX: tf.io.VarLenFeature(tf.float32),
        SOURCE_DATASET: tf.io.FixedLenFeature([], tf.string, default_value=""),
        SOURCE_INDEX: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        SOURCE_PERSON: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        PERSON_BOX: tf.io.VarLenFeature(tf.float32),
        PERSON_AREA: tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
    }


def _four_or_zeros(values):
    """float32 [4]: the four values of a box feature, or zeros when it has none."""
    return tf.cond(
        tf.size(values) == 4, lambda: tf.reshape(values, [4]), lambda: tf.zeros([4], tf.float32)
    )


def parse_example(serialized, num_joints: int) -> dict:
    """Parses one serialised example into a dict of tensors (works inside `tf.data`).

    Returns:
        A dict with the contract's keys. `person/keypoints` is reshaped to float32 [K, 2] (x, y),
        `person/headbox` and `person/box` are float32 [4] (zeros when absent), `person/area`
        float32 (0 when absent), `image/height`/`image/width` int32.
    """
    parsed = tf.io.parse_single_example(serialized, feature_spec(num_joints))
    for key in (HEADBOX, PERSON_BOX):
        parsed[key] = _four_or_zeros(tf.sparse.to_dense(parsed[key]))
    keypoints = tf.reshape(parsed[KEYPOINTS], [num_joints, 2])
    # Coordinates of joints that are not annotated mean nothing, but a NaN there would still
    # turn its (masked) target heatmap into NaNs: such values read as 0.
    unused = (parsed[KEYPOINT_STATUS] == NOT_ANNOTATED)[:, None] & ~tf.math.is_finite(keypoints)
    parsed[KEYPOINTS] = tf.where(unused, tf.zeros_like(keypoints), keypoints)
    parsed[IMAGE_HEIGHT] = tf.cast(parsed[IMAGE_HEIGHT], tf.int32)
    parsed[IMAGE_WIDTH] = tf.cast(parsed[IMAGE_WIDTH], tf.int32)
    return parsed


def parse_example_numpy(serialized: bytes, num_joints: int) -> dict:
    """Eager convenience for tools and tests: `parse_example` with numpy values."""
    parsed = parse_example(tf.constant(serialized), num_joints)
    out = {}
    for key, value in parsed.items():
        value = value.numpy()
        out[key] = value.decode("utf-8") if key in (IMAGE_FILENAME, SOURCE_DATASET) else value
    return out


# --- checking records this package did not write --------------------------------------------

# Keys `parse_example` requires, with their number of values (K = num_joints).
_REQUIRED_COUNTS = {
    IMAGE_ENCODED: 1,
    IMAGE_HEIGHT: 1,
    IMAGE_WIDTH: 1,
    CENTER: 2,
    SCALE: 1,
    KEYPOINTS: "2K",
    KEYPOINT_STATUS: "K",
}
# Keys with a default: absent is fine, more than one value is not.
_OPTIONAL_SINGLE = (
    IMAGE_FILENAME, NORMALIZER, SOURCE_DATASET, SOURCE_INDEX, SOURCE_PERSON, PERSON_AREA,
)  # fmt: skip


def _first_values(values, count: int):
    """values[:count], zero-padded to exactly `count` (so checks run whatever the length)."""
    values = values[:count]
    return tf.pad(values, [[0, count - tf.size(values)]])


def record_problem(
    serialized,
    num_joints: int,
    *,
    need_normalizer: bool = False,
    max_pixels: int = images.DEFAULT_MAX_PIXELS,
):
    """Why a serialised record cannot be used, or "" when it can (works inside `tf.data`).

    The checks of a record this package did not necessarily write, cheapest first, without
    decoding the image: every key `parse_example` requires is present with the right number of
    values (`person/keypoints` 2K, `person/keypoint_status` K); the optional ones have at most
    one (`person/box`: none or 4); `person/center` is finite, `person/scale` finite and > 0,
    `person/keypoint_status` in 0..2, the annotated joints' `person/keypoints` finite; with
    `need_normalizer` (a split PCK is computed on), `person/normalizer` finite and > 0;
    `image/encoded` is a JPEG, PNG, GIF, BMP or WebP whose header (`images.image_header`) gives
    at most `max_pixels` pixels.

    Args:
        serialized: string scalar, one `tf.train.Example`.
        num_joints: K.
        need_normalizer: require a positive `person/normalizer`.
        max_pixels: largest image (height x width); <= 0: no limit.

    Returns:
        string scalar: "" or one line naming the field and what is wrong with it.

    Raises:
        InvalidArgumentError (at run time): only when the bytes are not a `tf.train.Example`, a
        key holds another type than the contract's (int64 keypoints, say), or a JPEG header is
        invalid; the caller names the record (`data.records.validate` does).
    """
    spec = {key: tf.io.VarLenFeature(f.dtype) for key, f in feature_spec(num_joints).items()}
    parsed = tf.io.parse_single_example(serialized, spec)
    values = {key: value.values for key, value in parsed.items()}
    # (bad, message), in the order they are reported.
    checks = _count_checks(values, num_joints) + _value_checks(values, num_joints)
    if need_normalizer:
        normalizer = _first_values(values[NORMALIZER], 1)[0]
        checks.append(
            (
                ~(tf.math.is_finite(normalizer) & (normalizer > 0)),
                tf.strings.format(
                    f"{NORMALIZER} is {{}}, but PCK needs a positive head or torso size (e.g. an "
                    "HRNet json converted without --ground_truth has none)",
                    normalizer,
                ),
            )
        )
    encoded = tf.concat([values[IMAGE_ENCODED][:1], [""]], 0)[0]
    height, width, header = images.image_header(encoded)
    limit = images.pixel_limit_problem(height, width, max_pixels)
    checks += [
        (tf.not_equal(header, ""), tf.strings.join([f"{IMAGE_ENCODED} ", header])),
        (tf.not_equal(limit, ""), tf.strings.join([f"{IMAGE_ENCODED} ", limit])),
    ]
    bad = tf.stack([b for b, _ in checks])
    messages = tf.stack([m for _, m in checks])
    first = tf.argmax(tf.cast(bad, tf.int32), output_type=tf.int32)
    return tf.where(tf.reduce_any(bad), messages[first], tf.constant(""))


def _count_checks(values: dict, num_joints: int) -> list:
    """(bad, message) of every key with the wrong number of values (`record_problem`)."""
    counts = {key: tf.size(value) for key, value in values.items()}
    checks = []
    for key, expected in _REQUIRED_COUNTS.items():
        n = {"2K": 2 * num_joints, "K": num_joints}.get(expected, expected)
        hint = f" ({num_joints} joints: is --dataset right?)" if isinstance(expected, str) else ""
        checks.append(
            (
                tf.not_equal(counts[key], n),
                tf.where(
                    tf.equal(counts[key], 0),
                    tf.constant(f"{key} is missing"),
                    tf.strings.format(f"{key} has {{}} values, expected {n}{hint}", counts[key]),
                ),
            )
        )
    for key in _OPTIONAL_SINGLE:
        checks.append(
            (
                counts[key] > 1,
                tf.strings.format(f"{key} has {{}} values, expected at most 1", counts[key]),
            )
        )
    checks.append(
        (
            (counts[PERSON_BOX] != 0) & (counts[PERSON_BOX] != 4),
            tf.strings.format(f"{PERSON_BOX} has {{}} values, expected 0 or 4", counts[PERSON_BOX]),
        )
    )
    return checks


def _value_checks(values: dict, num_joints: int) -> list:
    """(bad, message) of the centre, scale, statuses and annotated keypoints (`record_problem`)."""
    center = _first_values(values[CENTER], 2)
    scale = _first_values(values[SCALE], 1)[0]
    status = _first_values(values[KEYPOINT_STATUS], num_joints)
    keypoints = tf.reshape(_first_values(values[KEYPOINTS], 2 * num_joints), [num_joints, 2])
    annotated = status != NOT_ANNOTATED
    bad_joints = annotated & ~tf.reduce_all(tf.math.is_finite(keypoints), axis=1)
    return [
        (
            ~tf.reduce_all(tf.math.is_finite(center)),
            tf.strings.format(f"{CENTER} is not finite: {{}}", center),
        ),
        (
            ~(tf.math.is_finite(scale) & (scale > 0)),
            tf.strings.format(f"{SCALE} must be a positive number, got {{}}", scale),
        ),
        (
            tf.reduce_any((status < NOT_ANNOTATED) | (status > VISIBLE)),
            tf.strings.format(
                f"{KEYPOINT_STATUS} must hold 0, 1 or 2, got {{}}", status, summarize=-1
            ),
        ),
        (
            tf.reduce_any(bad_joints),
            tf.strings.format(
                f"{KEYPOINTS} is not finite at annotated joint(s) {{}}",
                tf.where(bad_joints)[:, 0],
                summarize=-1,
            ),
        ),
    ]
