"""Reader of FLIC's `examples.mat` (Sapp & Taskar, CVPR'13).

`examples` is a struct array with fields coords (2, 29), torsobox [x1 y1 x2 y2], filepath,
imgdims, istrain, istest (and others not used). Of the 29 MODEC keypoints 11 are labelled; they are
mapped to the pose-hg-train order of `joints.FLIC` (`MODEC_IDS` below).

Coordinate conventions. FLIC stores MATLAB (1-based) pixels. This reader subtracts 1, once, from
the joints and the torso box, so `PersonExample`s hold 0-based pixels, (x, y) order.

Crop centre and scale follow pose-hg-train's FLIC files (DESIGN.md, *Conventions*): centre x =
middle of the torso box, centre y = 240 (the middle row of the 480-pixel frames), scale 2.2, no
vertical shift and no scale adjustment. pose-hg-train's centre lives in their 1-based frame, so here
center = ((x1 + x2) / 2 − 1, 240 − 1) = ((x1 + x2) / 2 − 1, 239): the same image point.

Left and right (`LABELS`, the `labels` argument):

  * "observer" (the default): pose-hg-train's default FLIC labels, its `data/flic/annot/train.h5`
    and `valid.h5`, which the hourglass paper's FLIC numbers used. "l_*" is the joint on the
    image's right-hand side, where a person facing the camera has their left: for a person seen
    from the back (raw l_shoulder left of raw r_shoulder in the image, x smaller) every left/right
    pair (shoulders, elbows, wrists, hips, eyes) is swapped, and nothing else changes. This was
    found by comparing pose-hg's files with each other and with raw FLIC (no script of
    pose-hg-train says it): they differ in exactly those people (199 of 3987 train, 48 of 1016
    valid), by exactly that swap; FLIC's people are frontal enough that the hips order the same
    way as the shoulders in every example, so either pair gives the same rule.
  * "person": raw FLIC's (and pose-hg's `*_personcentric.h5`) person-centric labels: "l_shoulder"
    is the person's own left shoulder, wherever it is in the image.

Every labelled joint is marked visible (2): FLIC has no visibility flag. The normalizer is the
torso size ‖r_shoulder − l_hip‖ of the person-centric labels (pose-hg-train's FLIC PCK reference
length; its observer-centric files keep the same value for swapped people); no head box.
Splits: "train" = `istrain` examples, "valid" = `istest` examples (FLIC's test set, pose-hg's
FLIC `valid.h5`). `index` is the 0-based position in `examples`, `person` is 0.
"""

from __future__ import annotations

import pathlib

import numpy as np

from stacked_hourglass import joints
from stacked_hourglass.data import features
from stacked_hourglass.data.sources import _loaders
from stacked_hourglass.data.sources.source_items import (
    NAN_ANNOTATION,
    Item,
    PendingExample,
    Skipped,
)

DATASET = "flic"

# 1-based MODEC keypoint ids of joints.FLIC's joints, in joints.FLIC order.
MODEC_IDS = {
    "l_shoulder": 1,
    "l_elbow": 2,
    "l_wrist": 3,
    "r_shoulder": 4,
    "r_elbow": 5,
    "r_wrist": 6,
    "l_hip": 7,
    "r_hip": 10,
    "l_eye": 13,
    "r_eye": 14,
    "nose": 17,
}
CENTER_Y_1BASED = 240.0  # pose-hg-train
SCALE = 2.2  # pose-hg-train
SPLITS = ("train", "valid")
OBSERVER, PERSON = "observer", "person"
LABELS = (OBSERVER, PERSON)  # left/right conventions, default first (see the module docstring)


def _columns() -> np.ndarray:
    return np.asarray([MODEC_IDS[name] - 1 for name in joints.FLIC.names])


def _examples(path: pathlib.Path) -> np.ndarray:
    """The `examples` struct array; `ValueError` naming the file or the missing field."""
    mat = _loaders.load_mat(path, "FLIC annotation file", struct_as_record=False, squeeze_me=True)
    if "examples" not in mat:
        raise ValueError(f"{path}: no 'examples' variable (expected FLIC examples.mat)")
    examples = np.atleast_1d(mat["examples"])
    for field in ("coords", "torsobox", "filepath", "istrain", "istest"):
        if examples.size and not hasattr(examples[0], field):
            raise ValueError(f"{path}: examples has no field {field!r}")
    return examples


def _flag(example, flag: str, path: pathlib.Path, i: int) -> bool:
    try:
        return bool(np.asarray(getattr(example, flag)).ravel()[0])
    except (AttributeError, IndexError, TypeError, ValueError):
        raise ValueError(f"{path}: examples({i + 1}).{flag} is not a 0/1 flag") from None


def observer_centric(keypoints: np.ndarray) -> np.ndarray:
    """Person-centric FLIC keypoints [11, 2] (joints.FLIC order) → observer-centric: the
    left/right pairs swapped when the l_shoulder is left of the r_shoulder in the image."""
    left, right = joints.FLIC.indices(("l_shoulder", "r_shoulder"))
    if keypoints[left, 0] < keypoints[right, 0]:  # seen from the back (NaN: left as is)
        return keypoints[joints.FLIC.flip_permutation()]
    return keypoints


def read_examples_mat(
    path: pathlib.Path | str, images_dir: pathlib.Path | str, split: str, labels: str = OBSERVER
) -> list[Item]:
    """Reads FLIC `examples.mat` into pending examples of one split (see the module docstring).

    Args:
        path: FLIC's `examples.mat`.
        images_dir: FLIC's `images/` folder.
        split: "train" (`istrain`) or "valid" (`istest`).
        labels: "observer" (pose-hg's default `train.h5`/`valid.h5`) or "person" (raw FLIC).

    Raises:
        FileNotFoundError: when `path` does not exist.
        ValueError: for an unknown split or labels, or a file without an `examples` struct array.
    """
    path, images_dir = pathlib.Path(path), pathlib.Path(images_dir)
    if split not in SPLITS:
        raise ValueError(f"FLIC split must be one of {SPLITS}, got {split!r}")
    if labels not in LABELS:
        raise ValueError(f"FLIC labels must be one of {', '.join(LABELS)}, got {labels!r}")
    examples = _examples(path)
    flag = "istrain" if split == "train" else "istest"
    columns = _columns()
    torso = joints.FLIC.indices(joints.FLIC.torso_joints)
    items = []
    for i, ex in enumerate(examples):
        if not _flag(ex, flag, path, i):
            continue
        filename = str(ex.filepath)
        try:
            coords = np.asarray(ex.coords, np.float64).reshape(2, -1)
            keypoints = coords[:, columns].T - 1.0
            x1, _, x2, _ = (float(v) - 1.0 for v in np.asarray(ex.torsobox).ravel())
        except (TypeError, ValueError, IndexError, AttributeError) as e:
            items.append(
                Skipped(filename, i, 0, NAN_ANNOTATION,
                               f"{path} examples({i + 1}): unreadable coords/torsobox ({e})")
            )  # fmt: skip
            continue
        # Midpoint of the 0-based box = pose-hg's 1-based midpoint − 1.
        center = ((x1 + x2) / 2.0, CENTER_Y_1BASED - 1.0)
        normalizer = float(np.linalg.norm(keypoints[torso[0]] - keypoints[torso[1]]))
        if labels == OBSERVER:  # after the normalizer: pose-hg keeps the person-centric one
            keypoints = observer_centric(keypoints)
        example = features.PersonExample(
            image_encoded=b"",
            filename=filename,
            height=0,
            width=0,
            center=center,
            scale=SCALE,
            keypoints=keypoints,
            keypoint_status=np.full(len(columns), features.VISIBLE, np.int64),
            normalizer=normalizer,
            headbox=None,
            dataset=DATASET,
            index=i,
            person=0,
        )
        items.append(PendingExample(example, images_dir / filename))
    return items
