"""Reading prediction / ground-truth files and writing predictions and figures.

Coordinates: every released MPII file (pose-hg `valid.h5`, `detections_our_format.mat`, the
pose-hg / bearpaw / Tompson prediction files) holds MATLAB-style 1-based original-image pixels.
The readers here keep coordinates exactly as stored and never shift them, so released predictions
are compared with released ground truth without any offset. Our own pipeline works in 0-based
pixels (DESIGN.md, *Conventions*); `write_predictions_h5` takes the base of its input explicitly
and always writes 1-based, so our files compare with the released ground truth the same way.

HDF5 and MATLAB: h5py reads an array in C order, so an array written by MATLAB (column-major,
including `.mat` v7.3 files, which are HDF5) appears with its axes reversed: Tompson's MATLAB
[person, joint, xy] predictions read as (2, 16, 2958). `load_predictions` therefore detects the
orientation from the shape instead of assuming one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from stacked_hourglass.evaluation import pck
from stacked_hourglass.utils import files

# Joint counts of the datasets we know (MPII and the synthetic set: 16, FLIC: 11), used to tell
# the joint axis from the person axis when a file does not say which is which.
KNOWN_NUM_JOINTS = (16, 11)

_ORIENTATIONS = {
    # name: (predicate on the shape (a, b, c) and K, transpose to [N, K, 2])
    "[N,K,2]": (lambda s, k: s[2] == 2 and s[1] == k, (0, 1, 2)),
    "[K,2,N]": (lambda s, k: s[1] == 2 and s[0] == k, (2, 0, 1)),
    "[2,K,N]": (lambda s, k: s[0] == 2 and s[1] == k, (2, 1, 0)),
}


def _read_fields(path: Path, fields: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    """Reads named arrays from an HDF5 file (`.h5`, `.mat` v7.3) or a MATLAB ≤ v7.2 `.mat`.

    Returns a dict of numpy arrays (as stored: no transposition). ValueError naming the file and
    the field when a required field is absent; ValueError when the file is neither format.
    """
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                present = set(f.keys())
                data = {k: f[k][()] for k in (*fields, *optional) if k in present}
        except (OSError, RuntimeError, KeyError) as e:  # h5py on a damaged file
            raise _damaged_h5(path, e) from None
    else:
        try:
            mat = scipy.io.loadmat(path)
        except Exception as e:
            # scipy reports unreadable files with many exception types (MatReadError,
            # ValueError, IndexError on truncated headers...); re-raise as one ValueError that
            # names the file, chained to the original.
            raise ValueError(
                f"{path}: neither HDF5 nor a readable MATLAB .mat file ({type(e).__name__}: {e})"
            ) from e
        present = {k for k in mat if not k.startswith("__")}
        data = {k: mat[k] for k in (*fields, *optional) if k in present}
    absent = [k for k in fields if k not in data]
    if absent:
        raise ValueError(
            f"{path}: missing field(s) {absent}; fields present: {sorted(present) or 'none'}"
        )
    return data


def _damaged_h5(path: Path, error: Exception) -> ValueError:
    """One line naming an HDF5 file h5py failed to read (`OSError` "Can't read data",
    `RuntimeError` "wrong B-tree signature", `KeyError` for an object it cannot open)."""
    lines = str(error.args[0] if error.args else "").strip().splitlines()
    return ValueError(
        f"{path}: a damaged HDF5 file ({lines[0] if lines else type(error).__name__})"
    )


def orient_predictions(array, num_joints=None, source: str = "predictions") -> np.ndarray:
    """Puts a 3-D coordinate array into [N, K, 2] order.

    Accepted orientations: [N, K, 2] (pose-hg, bearpaw), [K, 2, N] (the `pos_pred_src` layout
    of `detections_our_format.mat`) and [2, K, N] (a MATLAB [N, K, 2] array read with h5py, e.g.
    `tompson.h5`). The joint axis is recognised by its length K and the coordinate axis by its
    length 2.

    Args:
        array: 3-D array of coordinates.
        num_joints: K, or None to accept any of `KNOWN_NUM_JOINTS`.
        source: name used in error messages (the file path).

    Returns:
        [N, K, 2] float64 array.

    Raises:
        ValueError: naming `source` and the shape when no orientation, or more than one, fits.
    """
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"{source}: predictions must be 3-D ([N,K,2]), got shape {array.shape}")
    ks = KNOWN_NUM_JOINTS if num_joints is None else (int(num_joints),)
    fits = {
        (name, perm)
        for k in ks
        for name, (test, perm) in _ORIENTATIONS.items()
        if test(array.shape, k)
    }
    if len(fits) != 1:
        what = "ambiguous" if fits else "unrecognised"
        options = ", ".join(sorted(name for name, _ in fits)) or "none of [N,K,2], [K,2,N], [2,K,N]"
        raise ValueError(
            f"{source}: {what} prediction array shape {array.shape} for K in {list(ks)} "
            f"(fits: {options})"
        )
    ((_, perm),) = fits
    return np.ascontiguousarray(np.transpose(array, perm), dtype=np.float64)


def load_predictions(path, num_joints: int | None = None) -> np.ndarray:
    """Reads the `preds` array of a prediction file.

    Args:
        path: `.h5` (pose-hg layout, dataset `preds`) or `.mat` (variable `preds`; MATLAB v7.3
            files are read with h5py).
        num_joints: K expected (16 MPII, 11 FLIC); None accepts either.

    Returns:
        [N, K, 2] float64 (x, y), coordinates exactly as stored (1-based pixels for all the
        released files; no offset is applied).

    Raises:
        ValueError: unreadable file, no `preds`, or a shape whose orientation cannot be told.
    """
    path = Path(path)
    preds = _read_fields(path, ("preds",))["preds"]
    return orient_predictions(preds, num_joints, source=f"{path} field 'preds'")


def load_ground_truth(path, num_joints: int | None = None):
    """Reads MPII/FLIC ground truth for PCK.

    Two formats:
      * Tompson et al.'s `detections_our_format.mat` (HRNet / bearpaw / mmpose GT): `pos_gt_src`
        (K, 2, N), `jnt_missing` (K, N), `headboxes_src` (2, 2, N) → normalizer = 0.6 × head-box
        diagonal.
      * pose-hg `.h5` (`valid.h5`): `part` (N, K, 2), a joint stored as (0, 0) is missing,
        normalizer = the `normalize` field (MPII head size, or FLIC torso size); no head boxes.

    Args:
        path: the file.
        num_joints: K expected, or None to accept what the file holds.

    Returns:
        (gt, missing, normalizer, headboxes): gt [N, K, 2] float64 1-based (x, y) as stored;
        missing [N, K] bool (not annotated); normalizer [N] float64 pixels; headboxes [N, 4]
        float64 (x1, y1, x2, y2), or None when the file has none.

    Raises:
        ValueError: naming the file and the field that is absent or malformed.
    """
    path = Path(path)
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                has_part = "part" in f
        except (OSError, RuntimeError) as e:  # h5py on a damaged file
            raise _damaged_h5(path, e) from None
    else:
        has_part = False
    if has_part:
        data = _read_fields(path, ("part", "normalize"))
        gt = np.asarray(data["part"], dtype=np.float64)
        if gt.ndim != 3 or gt.shape[2] != 2:
            raise ValueError(f"{path}: field 'part' must be [N, K, 2], got {gt.shape}")
        missing = np.all(gt == 0, axis=2)
        normalizer = np.asarray(data["normalize"], dtype=np.float64).reshape(-1)
        headboxes = None
    else:
        data = _read_fields(path, ("pos_gt_src", "jnt_missing", "headboxes_src"))
        pos = np.asarray(data["pos_gt_src"], dtype=np.float64)
        if pos.ndim != 3 or pos.shape[1] != 2:
            raise ValueError(f"{path}: field 'pos_gt_src' must be [K, 2, N], got {pos.shape}")
        gt = np.ascontiguousarray(np.transpose(pos, (2, 0, 1)))
        jnt_missing = np.asarray(data["jnt_missing"])
        if jnt_missing.shape != pos.shape[::2]:
            raise ValueError(
                f"{path}: field 'jnt_missing' must be {pos.shape[::2]} to match 'pos_gt_src', "
                f"got {jnt_missing.shape}"
            )
        missing = jnt_missing.T.astype(bool)
        boxes = np.asarray(data["headboxes_src"], dtype=np.float64)
        if boxes.shape != (2, 2, pos.shape[2]):
            raise ValueError(
                f"{path}: field 'headboxes_src' must be (2, 2, {pos.shape[2]}), got {boxes.shape}"
            )
        # [:, :, i] = [[x1, y1], [x2, y2]] → rows (x1, y1, x2, y2).
        headboxes = np.ascontiguousarray(boxes.transpose(2, 0, 1).reshape(-1, 4))
        normalizer = pck.head_size(headboxes)
    n, k = gt.shape[:2]
    if normalizer.shape != (n,):
        raise ValueError(f"{path}: field 'normalize' has shape {normalizer.shape}, expected ({n},)")
    if num_joints is not None and k != num_joints:
        raise ValueError(f"{path}: ground truth has {k} joints, expected {num_joints}")
    return gt, missing, normalizer, headboxes


def write_predictions_h5(
    path,
    preds,
    *,
    coordinate_base: int,
    extra: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Writes predictions in pose-hg's layout: dataset `preds` (N, K, 2) float64, 1-based (x, y).

    The file can be scored against the released ground truth with `load_predictions` /
    `python -m stacked_hourglass.evaluate --predictions=...` and read by pose-hg's tools.

    Args:
        path: output `.h5` path (written atomically: temporary file, then rename).
        preds: [N, K, 2] (x, y) in original-image pixels, rows in the ground truth's order.
        coordinate_base: 0 if `preds` are 0-based pixels (our pipeline; 1 is added), 1 if they
            are already 1-based (MATLAB / MPII convention). Required so the caller says which.
        extra: optional further datasets (e.g. "index", "person" for traceability).

    Returns:
        The path written.
    """
    if coordinate_base not in (0, 1):
        raise ValueError(f"coordinate_base must be 0 or 1, got {coordinate_base!r}")
    preds = np.asarray(preds, dtype=np.float64)
    if preds.ndim != 3 or preds.shape[2] != 2:
        raise ValueError(f"preds must be [N, K, 2], got shape {preds.shape}")
    extra = dict(extra or {})
    if "preds" in extra:
        raise ValueError("extra must not contain 'preds'")
    with files.atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("preds", data=preds + (1 - coordinate_base))
        for key, value in extra.items():
            f.create_dataset(key, data=np.asarray(value))
    return Path(path)


def write_json(path, figures: Mapping) -> Path:
    """Writes figures (tables, curves, metadata) as strict JSON, atomically.

    numpy arrays and scalars become lists and numbers; NaN (e.g. a group with nothing scored)
    becomes null.
    """
    # Not `files.write_json`: these files keep the figures' own key order (table columns in
    # reading order), which sort_keys would scramble.
    with files.atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(files.jsonable(figures), f, indent=2, allow_nan=False)
        f.write("\n")
    return Path(path)
