"""The TFRecord contract: one `tf.train.Example` per annotated person.

Writer (`serialize_example`) and reader (`parse_example`) both live here, so the keys cannot drift
apart. Coordinates are 0-based pixels of the original image, (x, y) order; pixel (0, 0)'s centre is
at (0.0, 0.0). Readers of 1-based sources subtract 1 once, before building a `PersonExample`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

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
        center: (x, y) crop centre, 0-based pixels, already adjusted (see DESIGN.md §1).
        scale: crop side = 200 × scale pixels.
        keypoints: float [K, 2], (x, y), 0-based original pixels; (0, 0) where not annotated.
        keypoint_status: int [K], NOT_ANNOTATED / OCCLUDED / VISIBLE.
        normalizer: PCK reference length in pixels (MPII head size, FLIC torso size); 0 if unknown.
        headbox: (x1, y1, x2, y2), 0-based pixels, or None when the source has none.
        dataset: source dataset name ("mpii", "flic", "synthetic").
        index: image index in the source annotation.
        person: person index within that image in the source annotation.
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
    }


def parse_example(serialized, num_joints: int) -> dict:
    """Parses one serialised example into a dict of tensors (works inside `tf.data`).

    Returns:
        A dict with the contract's keys. `person/keypoints` is reshaped to float32 [K, 2] (x, y),
        `person/headbox` is float32 [4] (zeros when absent), `image/height`/`image/width` int32.
    """
    parsed = tf.io.parse_single_example(serialized, feature_spec(num_joints))
    headbox = tf.sparse.to_dense(parsed[HEADBOX])
    parsed[HEADBOX] = tf.cond(
        tf.size(headbox) == 4,
        lambda: tf.reshape(headbox, [4]),
        lambda: tf.zeros([4], tf.float32),
    )
    parsed[KEYPOINTS] = tf.reshape(parsed[KEYPOINTS], [num_joints, 2])
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
