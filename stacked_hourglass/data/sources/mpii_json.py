"""HRNet / mmpose MPII `.json` as items, with head boxes from a ground-truth `.mat`.

Conventions (1-based → 0-based, the crop adjustment, no head box without `ground_truth`) are in
`mpii`'s docstring and `read_json`'s.
"""

from __future__ import annotations

import contextlib
import pathlib

import numpy as np

from stacked_hourglass.data import features
from stacked_hourglass.data.sources import _loaders
from stacked_hourglass.data.sources.mpii_common import (
    NUM_JOINTS,
    adjust_center_scale,
    head_size,
    pending,
)
from stacked_hourglass.data.sources.source_items import (
    BAD_ANNOTATION,
    NAN_ANNOTATION,
    Item,
    Skipped,
)


def read_headboxes(path: pathlib.Path | str) -> np.ndarray:
    """Head boxes [N, 4] (x1, y1, x2, y2), 0-based, from a `.mat` with `headboxes_src` (2, 2, N)."""
    mat = _loaders.load_mat(path, "ground truth file")
    if "headboxes_src" not in mat:
        raise ValueError(f"{path}: no 'headboxes_src' variable")
    boxes = np.asarray(mat["headboxes_src"], np.float64)  # [[x1, y1], [x2, y2]] per person
    if boxes.ndim == 2 and boxes.shape == (2, 2):
        boxes = boxes[:, :, None]  # savemat drops a trailing singleton: one person
    if boxes.ndim != 3 or boxes.shape[:2] != (2, 2):
        raise ValueError(f"{path}: headboxes_src has shape {boxes.shape}, expected (2, 2, N)")
    return boxes.transpose(2, 0, 1).reshape(-1, 4) - 1.0


class _RowError(ValueError):
    """A json row field that cannot be read: `field` names it, `reason` is the skip reason."""

    def __init__(self, field: str, problem: str, reason: str = BAD_ANNOTATION):
        super().__init__(f"field {field!r}: {problem}" if field else problem)
        self.field = field
        self.reason = reason


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_field(row: dict, field: str, convert):
    if field not in row:
        raise _RowError(field, "missing")
    try:
        return convert(row[field])
    except OverflowError as e:  # e.g. 10**400: a number, but not a finite float
        raise _RowError(
            field, f"{_short(row[field])} is unreadable (OverflowError: {e})", NAN_ANNOTATION
        ) from None
    except (TypeError, ValueError) as e:
        raise _RowError(
            field, f"{_short(row[field])} is unreadable ({type(e).__name__}: {e})"
        ) from None


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(shape: tuple[int, ...], what: str):
    """A converter: a json array of numbers of exactly `shape` -> float64 array."""

    def convert(value):
        array = np.empty(0, object)
        if isinstance(value, list):
            with contextlib.suppress(ValueError):  # ragged nesting numpy cannot even hold
                array = np.array(value, dtype=object)
        if not isinstance(value, list) or array.shape != shape:
            got = f"shape {array.shape}" if isinstance(value, list) else type(value).__name__
            raise ValueError(f"expected {what}, got {got}")
        if not all(_is_number(v) for v in array.flat):
            raise TypeError(f"expected {what}, got a value that is not a number")
        return np.asarray([float(v) for v in array.flat], np.float64).reshape(shape)

    return convert


def _json_number(value) -> float:
    if not _is_number(value):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _image_name(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"expected an image file name, got {type(value).__name__}")
    return value


def _json_row(row) -> tuple[str, tuple[float, float], float, np.ndarray, np.ndarray]:
    """(filename, adjusted 0-based centre, adjusted scale, 1-based joints, annotated) of a row.

    Every field must have its exact type and shape (a `center` of 3 values is not a centre);
    `_RowError` names the first that does not.
    """
    if not isinstance(row, dict):
        raise _RowError("", f"expected an object, got {type(row).__name__}")
    filename = _json_field(row, "image", _image_name)
    objpos = _json_field(row, "center", _numbers((2,), "2 numbers (x, y)"))
    raw_scale = _json_field(row, "scale", _json_number)
    joints_1based = _json_field(
        row, "joints", _numbers((NUM_JOINTS, 2), f"{NUM_JOINTS} (x, y) pairs")
    )
    annotated = _json_field(row, "joints_vis", _numbers((NUM_JOINTS,), f"{NUM_JOINTS} numbers")) > 0
    center, scale = adjust_center_scale(objpos, raw_scale)
    return filename, center, scale, joints_1based, annotated


def read_json(
    path: pathlib.Path | str,
    images_dir: pathlib.Path | str,
    ground_truth: pathlib.Path | str | None = None,
) -> list[Item]:
    """Reads HRNet/mmpose json: a list of {image, center, scale, joints, joints_vis}.

    `center`/`scale` are raw MPII objpos/scale (adjusted here, as HRNet's `mpii.py` does in code)
    and `joints` 1-based. There is no image/person index: `index` is the row in the json list and
    `person` is -1 (unknown). `ground_truth`: optional `.mat` with `headboxes_src` aligned with the
    rows, giving the head box and normalizer (otherwise none and 0). A row with a missing or
    unreadable field, or one of the wrong type or shape (a `center` of 3 values), is skipped
    (`BAD_ANNOTATION`; `NAN_ANNOTATION` for a number too large for a float, and, later, for
    NaN/inf values), the detail naming the row and field.

    Raises:
        FileNotFoundError / ValueError: naming the file when it is missing, not JSON, not a list,
            or when `ground_truth` does not match it.
    """
    path, images_dir = pathlib.Path(path), pathlib.Path(images_dir)
    rows = _loaders.load_json(path, "MPII annotation file")
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a json list of people, got {type(rows).__name__}")
    boxes = None
    if ground_truth is not None:
        boxes = read_headboxes(ground_truth)
        if len(boxes) != len(rows):
            raise ValueError(
                f"{ground_truth} has {len(boxes)} head boxes but {path} has {len(rows)} people"
            )
    out = []
    for r, row in enumerate(rows):
        try:
            filename, center, scale, joints_1based, annotated = _json_row(row)
        except _RowError as e:
            name = row.get("image", "") if isinstance(row, dict) else ""
            name = name if isinstance(name, str) else ""
            out.append(Skipped(name, r, -1, e.reason, f"{path} row {r}: {e}"))
            continue
        keypoints = np.where(annotated[:, None], joints_1based - 1.0, 0.0)
        status = np.where(annotated, features.VISIBLE, features.NOT_ANNOTATED)
        headbox = None if boxes is None else boxes[r]
        normalizer = 0.0 if boxes is None else head_size(boxes[r])
        out.append(
            pending(images_dir, filename, center, scale, keypoints, status, normalizer,
                     headbox, r, -1)
        )  # fmt: skip
    return out
