"""Reader of COCO-format keypoint annotations (COCO's person_keypoints_*.json, CVAT, Label Studio).

The file is one JSON object with `images` ({id, file_name, width, height}), `categories` ({id,
name, keypoints, skeleton}) and `annotations` ({id, image_id, category_id, keypoints [x, y, v] x
K, num_keypoints, bbox [x, y, w, h], area, iscrowd}). One category with keypoints is converted
(`category`, for files with several); its joint set comes from a joint-set file or from the
category itself (`joints.from_coco_category`).

Coordinate convention. COCO's keypoint (x, y) are read as pixel indices, i.e. already in this
package's convention (pixel (0, 0)'s centre at (0.0, 0.0)) and kept unchanged, as Detectron2
reads them. COCO's `bbox` [x, y, w, h] is continuous (pixel (0, 0) covers [0, 1) x [0, 1)), so
the person box is `coco_box`: (x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5), and `to_coco_bbox`
its inverse. Written back (keypoints unchanged, boxes through `to_coco_bbox`), annotations come out
as they were read, so ground truth scored as predictions gives AP 1.0.

Per person (one record per annotation that is not skipped):

  * centre and scale from the box by `geometry.box_to_center_scale` (HRNet's `_xywh2cs`, mmpose's
    `GetBBoxCenterScale`, square crop: box centre, side 1.25 x max(w, h), scale = side / 200);
  * normalizer (PCK) = the box's longer side max(w, h), as mmpose's PCK bbox normalisation (the
    joint set's normalizer "box");
  * visibility v 0 / 1 / 2 → `NOT_ANNOTATED` / `OCCLUDED` / `VISIBLE`; v = 0 joints get (0, 0);
  * `box`, `area` (COCO's, which OKS uses), `index` = the image id, `person` = the annotation
    id, `dataset` "coco" (whatever the category), so predictions can be written back as COCO
    results.

Skipped, counted by reason in the manifest (`source_items`): another category's annotations
(`OTHER_CATEGORY`), an `image_id` with no image (`UNKNOWN_IMAGE_ID`), `iscrowd` (`CROWD`), no
labelled joint (`NO_KEYPOINTS`), a box with a side <= 0 or not finite (`DEGENERATE_BOX`), a box
not overlapping its image's declared size (`BOX_OUTSIDE`); later, when the record is written, a
missing or too large image and joints far outside the image (`records.items`). A malformed entry
(a key missing, a value of the wrong type) is a `ValueError`: one line naming the file and the
entry.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from collections.abc import Mapping

import numpy as np

from stacked_hourglass import joints
from stacked_hourglass.config import read_joint_set_file
from stacked_hourglass.data import features, geometry
from stacked_hourglass.data.sources.source_items import (
    BOX_OUTSIDE,
    CROWD,
    DEGENERATE_BOX,
    NO_KEYPOINTS,
    OTHER_CATEGORY,
    UNKNOWN_IMAGE_ID,
    Item,
    PendingExample,
    Skipped,
)
from stacked_hourglass.utils import files

DATASET = "coco"
# COCO visibility flag v → person/keypoint_status.
STATUS_OF_VISIBILITY = {0: features.NOT_ANNOTATED, 1: features.OCCLUDED, 2: features.VISIBLE}


@dataclasses.dataclass
class CocoData:
    """What `read_annotations` read.

    Attributes:
        items: one item per annotation, in the file's order (`source_items`).
        joint_set: the records' joints.
        category: the converted category's {"id", "name"}.
        note: one line saying where the joint set came from (what was inferred).
    """

    items: list[Item]
    joint_set: joints.JointSet
    category: dict
    note: str


@dataclasses.dataclass(frozen=True)
class _Image:
    file_name: str
    width: int  # 0: not given
    height: int


def coco_box(bbox) -> tuple[float, float, float, float]:
    """COCO `bbox` [x, y, w, h] (continuous pixels) → (x1, y1, x2, y2) in 0-based pixel-centre
    coordinates: (x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5)."""
    x, y, w, h = (float(v) for v in bbox)
    return (x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5)


_NUMBER_TYPES = (int, float)


def to_coco_bbox(box) -> list[float]:
    """(x1, y1, x2, y2) in 0-based pixel-centre coordinates → COCO's continuous `bbox`
    [x, y, w, h]: the inverse of `coco_box`."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1 + 0.5, y1 + 0.5, x2 - x1, y2 - y1]


def _is_number(value) -> bool:
    return type(value) in _NUMBER_TYPES


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _list_field(payload: Mapping, key: str, path) -> list:
    value = payload.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{path}: '{key}' is missing or not a list (not a COCO-format file?)")
    return value


def load(path: os.PathLike | str) -> dict:
    """The annotation file's JSON object, with `images`, `annotations` and `categories` lists."""
    payload = files.read_json(path, "COCO annotation file")
    for key in ("images", "annotations", "categories"):
        _list_field(payload, key, path)
    return payload


def keypoint_categories(payload: Mapping, path) -> list[dict]:
    """The categories with keypoint names; `ValueError` naming a malformed one."""
    found = []
    for i, category in enumerate(payload["categories"]):
        if not isinstance(category, dict) or not _is_int(category.get("id")):
            raise ValueError(f"{path}: categories[{i}] is not an object with an integer 'id'")
        keypoints = category.get("keypoints")
        if keypoints is not None and not (
            isinstance(keypoints, list) and all(isinstance(k, str) for k in keypoints)
        ):
            raise ValueError(f"{path}: categories[{i}] 'keypoints' is not a list of names")
        if keypoints:
            found.append(category)
    return found


def pick_category(payload: Mapping, path, category: str | int | None = None) -> dict:
    """The category to convert: `category` (a name or an id), or the file's only category with
    keypoints.

    Raises:
        ValueError: one line listing the file's keypoint categories when none matches, when
            there is none, or when there are several and `category` is None.
    """
    candidates = keypoint_categories(payload, path)
    listed = ", ".join(f"{c.get('name')!r} (id {c['id']})" for c in candidates)
    if not candidates:
        raise ValueError(f"{path}: no category with 'keypoints' names")
    if category is None:
        if len(candidates) > 1:
            raise ValueError(
                f"{path}: {len(candidates)} categories with keypoints ({listed}); pick one with "
                "--category=NAME|ID"
            )
        return candidates[0]
    wanted = str(category)
    for c in candidates:
        if (wanted.isdigit() and c["id"] == int(wanted)) or str(c.get("name")) == wanted:
            return c
    raise ValueError(f"{path}: no keypoint category {wanted!r}; the file has {listed}")


def joint_set_of(category: Mapping, path, joints_file=None) -> tuple[joints.JointSet, str]:
    """The category's joint set and one line saying where it came from.

    With `joints_file` (a joint-set JSON file, `JointSet.from_dict`), its joint names must be
    the category's `keypoints`, in order; otherwise `joints.from_coco_category` infers it.

    Raises:
        ValueError / FileNotFoundError: one line naming the file(s).
    """
    names = list(category["keypoints"])
    where = f"{path} category {category.get('name')!r} (id {category['id']})"
    if joints_file is None:
        return joints.from_coco_category(category, where)
    joint_set = read_joint_set_file(joints_file)
    if list(joint_set.names) != names:
        raise ValueError(
            f"{os.fspath(joints_file)}: joints {list(joint_set.names)} are not the keypoints "
            f"{names} of {where}"
        )
    if joint_set.normalizer != "box":
        raise ValueError(
            f"{os.fspath(joints_file)}: normalizer {joint_set.normalizer!r}, but COCO-format "
            'records are normalised by their box\'s longer side: use "box"'
        )
    return joint_set, f"{where}: joint set {joint_set.name!r} from {os.fspath(joints_file)}"


def _images(payload: Mapping, path) -> dict[int, _Image]:
    """image id → `_Image`; `ValueError` naming a malformed or repeated entry."""
    out = {}
    for i, image in enumerate(payload["images"]):
        ok = isinstance(image, dict) and _is_int(image.get("id"))
        ok = ok and isinstance(image.get("file_name"), str) and image["file_name"]
        sizes = [image.get(k, 0) for k in ("width", "height")] if ok else []
        if not ok or not all(_is_int(s) and s >= 0 for s in sizes):
            raise ValueError(
                f"{path}: images[{i}] needs an integer 'id', a 'file_name' and integer 'width' "
                f"and 'height' (got {str(image)[:120]})"
            )
        if image["id"] in out:
            raise ValueError(f"{path}: images[{i}]: image id {image['id']} appears twice")
        out[image["id"]] = _Image(image["file_name"], *sizes)
    return out


def _numbers(value, count: int) -> bool:
    """Whether `value` is a list of `count` JSON numbers (bools excluded)."""
    return (
        isinstance(value, list)
        and len(value) == count
        and all(type(v) in _NUMBER_TYPES for v in value)  # type(): one lookup per value, no bool
    )


def _annotation_problem(ann: dict, num_joints: int) -> str:
    """What is malformed in a (dict) annotation of the converted category, or ""."""
    keypoints, bbox = ann.get("keypoints"), ann.get("bbox")
    if not _is_int(ann.get("num_keypoints", 0)):
        return "'num_keypoints' is not an integer"
    if ann.get("iscrowd", 0) not in (0, 1):
        return "'iscrowd' is not 0 or 1"
    if not _is_number(ann.get("area", 0)):
        return "'area' is not a number"
    if not _numbers(bbox, 4):
        return f"'bbox' is not [x, y, w, h] (got {str(bbox)[:80]})"
    if not _numbers(keypoints, 3 * num_joints):
        return (
            f"'keypoints' is not {3 * num_joints} numbers ([x, y, v] for {num_joints} joints; "
            f"got {str(keypoints)[:80]})"
        )
    flags = keypoints[2::3]
    if any(v not in STATUS_OF_VISIBILITY for v in flags):
        return f"visibility flags must be 0, 1 or 2, got {flags}"
    return ""


def _person(ann: dict, image: _Image, images_dir: pathlib.Path) -> Item:
    """The person of a well-formed annotation of the converted category (or why it is skipped)."""

    def skip(reason: str, detail: str) -> Skipped:
        return Skipped(image.file_name, ann["image_id"], ann["id"], reason, detail)

    values = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
    status = np.asarray([STATUS_OF_VISIBILITY[int(v)] for v in values[:, 2]], np.int64)
    labelled = status != features.NOT_ANNOTATED
    num_keypoints = ann.get("num_keypoints", int(labelled.sum()))
    if num_keypoints == 0 or not labelled.any():
        return skip(NO_KEYPOINTS, f"num_keypoints = {num_keypoints}")
    x, y, w, h = (float(v) for v in ann["bbox"])
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return skip(DEGENERATE_BOX, f"bbox {ann['bbox']} has no area or is not finite")
    box = coco_box(ann["bbox"])
    if image.width and image.height and not (
        box[0] < image.width - 0.5 and box[2] > -0.5
        and box[1] < image.height - 0.5 and box[3] > -0.5
    ):  # fmt: skip
        return skip(
            BOX_OUTSIDE,
            f"bbox {ann['bbox']} lies outside the {image.width}x{image.height} image",
        )
    center, scale = geometry.box_to_center_scale(np.asarray(box))
    keypoints = np.where(labelled[:, None], values[:, :2], 0.0)
    example = features.PersonExample(
        image_encoded=b"", filename=image.file_name, height=0, width=0,
        center=(float(center[0]), float(center[1])), scale=float(scale), keypoints=keypoints,
        keypoint_status=status, normalizer=max(w, h), headbox=None, dataset=DATASET,
        index=ann["image_id"], person=ann["id"], box=box, area=float(ann.get("area", w * h)),
    )  # fmt: skip
    return PendingExample(example, images_dir / image.file_name)


def _item(path, i: int, ann, category_id: int, images: dict, images_dir, num_joints: int) -> Item:
    """Annotation `i`'s item: a pending person or why it is skipped; `ValueError` naming the file
    and the annotation when it is malformed."""
    if not isinstance(ann, dict) or not all(
        _is_int(ann.get(k)) for k in ("id", "image_id", "category_id")
    ):
        raise ValueError(
            f"{path}: annotations[{i}] needs integer 'id', 'image_id' and 'category_id' "
            f"(got {str(ann)[:120]})"
        )
    image = images.get(ann["image_id"])

    def skip(reason: str, detail: str) -> Skipped:
        return Skipped(image.file_name if image else "", ann["image_id"], ann["id"], reason, detail)

    if ann["category_id"] != category_id:
        return skip(OTHER_CATEGORY, f"category_id {ann['category_id']}")
    if image is None:
        return skip(UNKNOWN_IMAGE_ID, f"no image with id {ann['image_id']} in {path}")
    if ann.get("iscrowd") == 1:  # before the checks: nothing of a crowd region is used
        return skip(CROWD, "iscrowd = 1 (a crowd region, not one person)")
    problem = _annotation_problem(ann, num_joints)
    if problem:
        raise ValueError(f"{path}: annotations[{i}] (id {ann['id']}): {problem}")
    return _person(ann, image, pathlib.Path(images_dir))


def read_annotations(
    path: os.PathLike | str,
    images_dir: os.PathLike | str,
    category: str | int | None = None,
    joints_file: os.PathLike | str | None = None,
) -> CocoData:
    """Reads a COCO-format keypoint file into one item per annotation (module docstring).

    Args:
        path: the annotation JSON file.
        images_dir: the folder the images' `file_name`s are relative to.
        category: the category to convert (name or id); None: the only one with keypoints.
        joints_file: a joint-set JSON file for the category (None: inferred, see
            `joint_set_of`).

    Raises:
        FileNotFoundError / ValueError: one line naming the file and the entry.
    """
    payload = load(path)
    chosen = pick_category(payload, path, category)
    joint_set, note = joint_set_of(chosen, path, joints_file)
    images = _images(payload, path)
    items = [
        _item(path, i, ann, chosen["id"], images, images_dir, joint_set.num_joints)
        for i, ann in enumerate(payload["annotations"])
    ]
    category_entry = {"id": chosen["id"], "name": str(chosen.get("name", ""))}
    return CocoData(items, joint_set, category_entry, note)
