"""What a dataset source yields: one item per person, in source order, and why one is skipped.

  * `PendingExample`: a person whose annotation is fine; its image has not been read yet (the
    file is read lazily, by a worker, when the record is written: `records.items.load_example`);
  * `features.PersonExample`: a complete person (the synthetic generator yields these);
  * `Skipped`: a person left out, with a reason key (e.g. no objpos/scale, NaN in the
    annotation); the keys below are also those of the records' own checks and of manifests.

Sources (`mpii`, `flic`, `synthetic`, `coco`) build these; `data.records` consumes them. This module
imports nothing of the records or of any source.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Union

from stacked_hourglass.data import features

# Reason keys used in manifests (free-form details go with them).
MISSING_IMAGE = "missing_image"
CORRUPT_IMAGE = "corrupt_image"
NAN_ANNOTATION = "nan_in_annotation"
BAD_ANNOTATION = "bad_annotation"  # a field that is missing, unreadable or of the wrong length
IMAGE_TOO_LARGE = "image_too_large"  # more pixels than max_pixels (read from the header)
BAD_SCALE = "non_positive_scale"
FAR_OUTSIDE = "joint_far_outside_image"
NO_CENTER = "no_objpos_or_scale"
NO_KEYPOINTS = "no_keypoints"
OUTSIDE_IMAGES_DIR = "image_outside_images_dir"  # a path that leaves --images (.., /, symlinks)
DUPLICATE_PERSON = "duplicate_person"  # the same image and keypoints as an earlier person
# COCO-format annotations (`sources.coco`):
CROWD = "crowd"  # iscrowd = 1: a group of people, not one person
OTHER_CATEGORY = "other_category"  # an annotation of a category other than the one converted
UNKNOWN_IMAGE_ID = "unknown_image_id"  # an image_id that no entry of `images` has
DEGENERATE_BOX = "degenerate_box"  # a bbox with a width or height <= 0, or not finite
BOX_OUTSIDE = "box_outside_image"  # a bbox that does not overlap its image


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A person left out of the output.

    Attributes:
        filename: image file name (relative to the images folder), "" if unknown.
        index: image index in the source annotation (0-based), -1 if unknown.
        person: person index in the source annotation (0-based), -1 if unknown.
        reason: a short key (`MISSING_IMAGE`, `NAN_ANNOTATION`, ...), used to count skips.
        detail: a human-readable explanation naming the file/field.
    """

    filename: str
    index: int
    person: int
    reason: str
    detail: str = ""

    def as_dict(self) -> dict:
        """The manifest entry of this skip."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class PendingExample:
    """A person whose annotation has been read but whose image has not.

    `example.image_encoded`, `example.height` and `example.width` are placeholders (b"", 0, 0)
    until `load_example` fills them from `image_path`. Coordinates in `example` are already
    0-based (the source converted them).
    """

    example: features.PersonExample
    image_path: pathlib.Path


Item = Union[PendingExample, features.PersonExample, Skipped]  # noqa: UP007
