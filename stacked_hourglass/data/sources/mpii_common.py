"""What the MPII readers (`mpii_mat`, `mpii_h5`, `mpii_json`, `mpii_split_file`) share.

The crop adjustment of raw objpos/scale, the head size, image names of pose-hg files and the
`PendingExample` every reader builds; the conventions are in `mpii`'s docstring.
"""

from __future__ import annotations

import pathlib

import numpy as np

from stacked_hourglass import joints
from stacked_hourglass.data import features
from stacked_hourglass.data.sources.source_items import PendingExample

DATASET = "mpii"
NUM_JOINTS = joints.MPII.num_joints  # 16

# DESIGN.md, *Conventions*: the reference code's crop adjustment of MPII's raw objpos/scale.
CENTER_SHIFT_Y = 15.0  # pixels per unit of scale
SCALE_FACTOR = 1.25
HEAD_SIZE_FACTOR = 0.6  # MPII util_get_head_size.m

SPLITS = ("train", "valid", "test")
NOT_IN_ANNOTATIONS = "not_in_annotations"

# Datasets that only pose-hg's raw annot.h5 has (its src/misc/convert_annot.py writes them).
RAW_H5_MARKERS = ("istrain", "multi")
# annot.h5 `istrain`: 1 a training person with joints, 0 a test image's person, 2 a training
# image's person without joints.
RAW_TRAIN, RAW_TEST, RAW_TRAIN_NO_JOINTS = 1, 0, 2


def _decode(value) -> str:
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8")
    return str(value)


def image_names(imgname: np.ndarray) -> list[str]:
    """Image names of a pose-hg `imgname` dataset: strings, or rows of character codes.

    pose-hg's split files store strings (S13); its raw annot.h5 stores each name as a row of 16
    floats holding the characters' codes, padded with zeros (Torch could not read strings).
    """
    imgname = np.asarray(imgname)
    if imgname.dtype.kind in "iuf" and imgname.ndim == 2:
        return ["".join(chr(int(c)) for c in row if c > 0) for row in imgname]
    return [_decode(n) for n in imgname.reshape(-1)]


def adjust_center_scale(objpos_1based, scale: float) -> tuple[tuple[float, float], float]:
    """Raw 1-based MPII objpos/scale → 0-based adjusted crop centre and scale (DESIGN.md,
    *Conventions*)."""
    x, y = float(objpos_1based[0]), float(objpos_1based[1])
    return (x - 1.0, y - 1.0 + CENTER_SHIFT_Y * scale), scale * SCALE_FACTOR


def head_size(headbox) -> float:
    """0.6 × the diagonal of (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = (float(v) for v in headbox)
    return HEAD_SIZE_FACTOR * float(np.hypot(x2 - x1, y2 - y1))


def pending(
    images_dir: pathlib.Path,
    filename: str,
    center,
    scale: float,
    keypoints: np.ndarray,
    status: np.ndarray,
    normalizer: float,
    headbox,
    index: int,
    person: int,
) -> PendingExample:
    """A person of an MPII file whose image `images_dir / filename` is read later (0-based)."""
    example = features.PersonExample(
        image_encoded=b"",
        filename=filename,
        height=0,
        width=0,
        center=(float(center[0]), float(center[1])),
        scale=float(scale),
        keypoints=np.asarray(keypoints, np.float64),
        keypoint_status=np.asarray(status, np.int64),
        normalizer=float(normalizer),
        headbox=None if headbox is None else tuple(float(v) for v in headbox),
        dataset=DATASET,
        index=int(index),
        person=int(person),
    )
    return PendingExample(example, images_dir / filename)
