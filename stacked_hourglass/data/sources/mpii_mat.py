"""The official MPII release, `mpii_human_pose_v1_u12_1.mat` (struct RELEASE), as items.

Conventions (1-based → 0-based, the crop adjustment, splits) are in `mpii`'s docstring.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np

from stacked_hourglass.data import features
from stacked_hourglass.data.sources import _loaders
from stacked_hourglass.data.sources.mpii_common import (
    NOT_IN_ANNOTATIONS,
    NUM_JOINTS,
    SPLITS,
    adjust_center_scale,
    head_size,
    pending,
)
from stacked_hourglass.data.sources.mpii_split_file import SplitEntry
from stacked_hourglass.data.sources.source_items import (
    NAN_ANNOTATION,
    NO_CENTER,
    NO_KEYPOINTS,
    Item,
    Skipped,
)


def _as_list(value) -> list:
    """squeeze_me turns 1-element struct arrays into a bare struct and empty ones into []."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _field(struct, name: str):
    """A struct field, or None when the field is absent or an empty array."""
    value = getattr(struct, name, None)
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.size == 0:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _number(value) -> float:
    if isinstance(value, np.ndarray):
        value = value.ravel()[0]
    return float(value)


def _mat_person(
    rect, images_dir: pathlib.Path, filename: str, index: int, person: int, with_joints: bool
) -> Item:
    def skip(reason, detail):
        return Skipped(filename, index, person, reason, detail)

    where = f"annolist({index + 1}).annorect({person + 1})"  # MATLAB indexing, as users search
    objpos, scale = _field(rect, "objpos"), _field(rect, "scale")
    if objpos is None or scale is None or _field(objpos, "x") is None:
        return skip(NO_CENTER, f"{where} has no objpos/scale")
    try:
        raw_scale = _number(scale)
        center, scale = adjust_center_scale((_number(objpos.x), _number(objpos.y)), raw_scale)
    except (TypeError, ValueError, AttributeError) as e:
        return skip(NO_CENTER, f"{where}: unreadable objpos/scale ({e})")

    headbox, normalizer = None, 0.0
    box = [_field(rect, k) for k in ("x1", "y1", "x2", "y2")]
    if all(v is not None for v in box):
        headbox = tuple(_number(v) - 1.0 for v in box)
        normalizer = head_size(headbox)

    keypoints = np.zeros((NUM_JOINTS, 2), np.float64)
    status = np.full(NUM_JOINTS, features.NOT_ANNOTATED, np.int64)
    if with_joints:
        annopoints = _field(rect, "annopoints")
        points = _as_list(_field(annopoints, "point")) if annopoints is not None else []
        if not points:
            return skip(NO_KEYPOINTS, f"{where} has no annopoints")
        for point in points:
            try:
                joint = int(_number(point.id))
                x, y = _number(point.x), _number(point.y)
            except (TypeError, ValueError, AttributeError, IndexError) as e:
                return skip(NAN_ANNOTATION, f"{where}.annopoints: unreadable point ({e})")
            if not 0 <= joint < NUM_JOINTS:
                return skip(NAN_ANNOTATION, f"{where}.annopoints: joint id {joint}")
            keypoints[joint] = (x - 1.0, y - 1.0)
            visible = _field(point, "is_visible")
            # Missing/empty is_visible: the point was clicked, so treat it as visible.
            occluded = visible is not None and _number(visible) == 0
            status[joint] = features.OCCLUDED if occluded else features.VISIBLE
    return pending(
        images_dir,
        filename,
        center,
        scale,
        keypoints,
        status,
        normalizer,
        headbox,
        index,
        person,
    )


def _release(path: pathlib.Path):
    """The RELEASE struct of the official .mat; `ValueError` naming what is missing."""
    mat = _loaders.load_mat(path, "MPII annotation file", struct_as_record=False, squeeze_me=True)
    if "RELEASE" not in mat:
        raise ValueError(f"{path}: no 'RELEASE' variable (expected mpii_human_pose_v1_u12_1.mat)")
    release = mat["RELEASE"]
    for field in ("annolist", "img_train"):
        if not hasattr(release, field):
            raise ValueError(f"{path}: RELEASE has no field {field!r}")
    return release


def read_mat(
    path: pathlib.Path | str,
    images_dir: pathlib.Path | str,
    split: str,
    split_entries: Sequence[SplitEntry] | None = None,
) -> list[Item]:
    """Reads the official `mpii_human_pose_v1_u12_1.mat` (struct RELEASE).

    Args:
        path: the `.mat` file.
        images_dir: folder of the MPII images (`images/`).
        split: "train", "valid" or "test" (see the module docstring).
        split_entries: the validation people (`read_split_file`); required for "valid".

    Returns:
        Items in output order: `PendingExample` per person, `Skipped` for people
        without objpos/scale or joints (and split-file people absent from the `.mat`).
    """
    path, images_dir = pathlib.Path(path), pathlib.Path(images_dir)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "valid" and not split_entries:
        raise ValueError("split 'valid' of the official .mat needs a split file")
    release = _release(path)
    annolist = _as_list(release.annolist)
    img_train = np.atleast_1d(np.asarray(release.img_train)).astype(int)
    if len(img_train) != len(annolist):
        raise ValueError(
            f"{path}: RELEASE.img_train has {len(img_train)} entries, annolist {len(annolist)}"
        )
    if split == "valid":
        return _listed_people(path, images_dir, annolist, split_entries)
    excluded = {(e.index, e.person) for e in split_entries or ()}
    want_train = split == "train"
    items = []
    for i in range(len(annolist)):
        if bool(img_train[i]) != want_train:
            continue
        name = _image_name(annolist, i)
        for p, rect in enumerate(_rects(annolist, i)):
            if (i, p) in excluded:
                continue
            items.append(_mat_person(rect, images_dir, name, i, p, with_joints=want_train))
    return items


def _image_name(annolist: list, i: int) -> str:
    return str(_field(annolist[i].image, "name") or "")


def _rects(annolist: list, i: int) -> list:
    return _as_list(_field(annolist[i], "annorect"))


def _listed_people(
    path: pathlib.Path,
    images_dir: pathlib.Path,
    annolist: list,
    split_entries: Sequence[SplitEntry],
) -> list[Item]:
    """The split file's people, in its order; `Skipped` for those the `.mat` does not have."""
    items = []
    for entry in split_entries:
        rects = _rects(annolist, entry.index) if 0 <= entry.index < len(annolist) else []
        if not 0 <= entry.person < len(rects):
            items.append(
                Skipped(
                    entry.imgname,
                    entry.index,
                    entry.person,
                    NOT_IN_ANNOTATIONS,
                    f"{path} has no annolist({entry.index + 1}).annorect({entry.person + 1})",
                )
            )
            continue
        name = _image_name(annolist, entry.index)
        if name != entry.imgname:
            raise ValueError(
                f"split file says index {entry.index} is {entry.imgname}, {path} says {name}"
            )
        items.append(
            _mat_person(rects[entry.person], images_dir, name, entry.index, entry.person,
                        with_joints=True)
        )  # fmt: skip
    return items
