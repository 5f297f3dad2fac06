"""Readers of MPII Human Pose annotations: the official `.mat`, pose-hg `.h5` and HRNet `.json`.

Coordinate conventions. Every MPII source stores MATLAB (1-based) pixel coordinates: the centre of
the top-left pixel is (1, 1). The readers here subtract 1 from every coordinate they read (joints,
objpos/center, head box) exactly once, so that `PersonExample`s hold 0-based pixels, (x, y) order,
as `features` requires. Lengths (scale, head size) do not change.

Crop centre and scale (DESIGN.md §1). MPII's raw `objpos`/`scale` put the centre on the torso; the
reference implementations move it down by 15·scale px and multiply the scale by 1.25:

  * `.mat` (raw) and HRNet `.json` (raw): this module applies center_y += 15·s, scale *= 1.25;
  * pose-hg split `.h5` (`train.h5`, `valid.h5`, `test.h5`): the values are already adjusted;
    only the 1-based → 0-based shift is applied;
  * pose-hg's raw `annot.h5` (every MPII person, recognised by its `istrain`/`multi` datasets):
    raw objpos/scale, adjusted here as pose-hg-train's `src/util/dataset/mpii.lua` does when it
    loads the file.

Keypoint status: 0 not annotated, 1 annotated but occluded (`is_visible` = 0), 2 annotated and
visible. An annotated point whose `is_visible` is missing or empty (it happens in the official
`.mat`) counts as visible. In pose-hg `.h5`, a joint at (0, 0) is not annotated and `visible` = 0
on an annotated joint means occluded. HRNet `.json` only says whether a joint is annotated
(`joints_vis`), so annotated joints are marked visible (2).

Normalizer: 0.6 × the head box diagonal (MPII's `util_get_head_size.m`) for `.mat`; the
`normalize` field for `.h5` (same quantity, no head box stored); for `.json` 0 (the json has no
head box) unless `ground_truth` names a `.mat` with `headboxes_src` (HRNet's `gt_valid.mat`,
bearpaw's `detections_our_format.mat`) holding one head box per json row.

Splits. The standard validation split is Tompson et al.'s 2958 people (pose-hg `valid.h5`). A
split file is either such a pose-hg `.h5` (its `imgname`, `index`, `person` are used) or a text file
with one `imgname index person` line per person (0-based `index` into `RELEASE.annolist` and
0-based `person` into its `annorect`, as in the `.h5`; `#` starts a comment). With the official
`.mat`: `valid` = the split file's people, in the split file's order; `train` = every other
person of an `img_train` image (all of them when no split file is given); `test` = the people of
the `img_train == 0` images, which have no joints (all status 0). A pose-hg split `.h5` or HRNet
`.json` is already one split: all its rows are read, or (`.h5` only) filtered by a split file.
The raw `annot.h5` holds every split (see `read_h5`): `train` = its `istrain` 1 (and 2, skipped:
no joints) people less the split file's, `valid` = the split file's people (required), `test` =
its `istrain == 0` people.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np

from stacked_hourglass import joints
from stacked_hourglass.data import features
from stacked_hourglass.data.records.items import (
    BAD_ANNOTATION,
    NAN_ANNOTATION,
    NO_CENTER,
    NO_KEYPOINTS,
    Item,
    PendingExample,
    Skipped,
)
from stacked_hourglass.data.sources import _loaders

DATASET = "mpii"
NUM_JOINTS = joints.MPII.num_joints  # 16

# DESIGN.md §1: the reference code's crop adjustment of MPII's raw objpos/scale.
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


@dataclasses.dataclass(frozen=True)
class SplitEntry:
    """One person of a split file: image name, 0-based annolist index, 0-based annorect index."""

    imgname: str
    index: int
    person: int


def read_split_file(path: pathlib.Path | str) -> list[SplitEntry]:
    """Reads a pose-hg `.h5` (imgname/index/person) or a text file of `imgname index person`.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: naming the file and line on a malformed line.
    """
    path = _loaders.require_file(path, "split file")
    if path.suffix == ".h5":
        with _loaders.open_h5(path, "pose-hg split file") as f:
            if any(k in f for k in RAW_H5_MARKERS):
                raise ValueError(
                    f"{path}: pose-hg's raw annot.h5 holds every person, it is no split file "
                    "(use pose-hg's valid.h5)"
                )
            names = _names(f["imgname"][()])
            index, person = f["index"][()], f["person"][()]
        if not len(names) == len(index) == len(person):
            raise ValueError(f"{path}: imgname, index and person differ in length")
        return [SplitEntry(n, int(i), int(p)) for n, i, p in zip(names, index, person, strict=True)]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: split file is neither a pose-hg .h5 nor UTF-8 text") from None
    entries = []
    for line_number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) != 3:
                raise ValueError
            entries.append(SplitEntry(parts[0], int(parts[1]), int(parts[2])))
        except ValueError:
            raise ValueError(
                f"{path}:{line_number}: expected 'imgname index person', got {line!r}"
            ) from None
    return entries


def _decode(value) -> str:
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8")
    return str(value)


def _names(imgname: np.ndarray) -> list[str]:
    """Image names of a pose-hg `imgname` dataset: strings, or rows of character codes.

    pose-hg's split files store strings (S13); its raw annot.h5 stores each name as a row of 16
    floats holding the characters' codes, padded with zeros (Torch could not read strings).
    """
    imgname = np.asarray(imgname)
    if imgname.dtype.kind in "iuf" and imgname.ndim == 2:
        return ["".join(chr(int(c)) for c in row if c > 0) for row in imgname]
    return [_decode(n) for n in imgname.reshape(-1)]


def adjust_center_scale(objpos_1based, scale: float) -> tuple[tuple[float, float], float]:
    """Raw 1-based MPII objpos/scale → 0-based adjusted crop centre and scale (DESIGN.md §1)."""
    x, y = float(objpos_1based[0]), float(objpos_1based[1])
    return (x - 1.0, y - 1.0 + CENTER_SHIFT_Y * scale), scale * SCALE_FACTOR


def head_size(headbox) -> float:
    """0.6 × the diagonal of (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = (float(v) for v in headbox)
    return HEAD_SIZE_FACTOR * float(np.hypot(x2 - x1, y2 - y1))


def _pending(
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


# --- official mpii_human_pose_v1_u12_1.mat -------------------------------------------------------


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
    return _pending(
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

    def image_name(i):
        return str(_field(annolist[i].image, "name") or "")

    def rects(i):
        return _as_list(_field(annolist[i], "annorect"))

    if split == "valid":
        items = []
        for entry in split_entries:
            if not 0 <= entry.index < len(annolist) or not 0 <= entry.person < len(
                rects(entry.index)
            ):
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
            name = image_name(entry.index)
            if name != entry.imgname:
                raise ValueError(
                    f"split file says index {entry.index} is {entry.imgname}, {path} says {name}"
                )
            items.append(
                _mat_person(rects(entry.index)[entry.person], images_dir, name, entry.index,
                            entry.person, with_joints=True)
            )  # fmt: skip
        return items

    excluded = {(e.index, e.person) for e in split_entries or ()}
    want_train = split == "train"
    items = []
    for i in range(len(annolist)):
        if bool(img_train[i]) != want_train:
            continue
        name = image_name(i)
        for p, rect in enumerate(rects(i)):
            if (i, p) in excluded:
                continue
            items.append(_mat_person(rect, images_dir, name, i, p, with_joints=want_train))
    return items


# --- pose-hg .h5 ---------------------------------------------------------------------------------


def is_raw_h5(path: pathlib.Path | str) -> bool:
    """Whether `path` is pose-hg's raw `annot.h5` (it has `istrain`/`multi` datasets)."""
    with _loaders.open_h5(path, "pose-hg annotation file") as f:
        return any(k in f for k in RAW_H5_MARKERS)


_H5_REQUIRED = ("imgname", "center", "scale", "part", "index", "person")


def _h5_arrays(path: pathlib.Path) -> tuple[dict[str, np.ndarray], list[str], bool]:
    """(the per-person datasets, the image names, whether it is the raw annot.h5) of a pose-hg
    `.h5`; `ValueError` naming the file and the dataset that is missing or misshapen."""
    with _loaders.open_h5(path, "pose-hg annotation file") as f:
        raw = any(k in f for k in RAW_H5_MARKERS)
        required = (*_H5_REQUIRED, "istrain") if raw else _H5_REQUIRED
        missing = [k for k in required if k not in f]
        if missing:
            raise ValueError(f"{path}: missing datasets {missing}")
        names = _names(f["imgname"][()])
        n = len(names)
        a = {
            "center": np.asarray(f["center"][()], np.float64),
            "scale": np.asarray(f["scale"][()], np.float64).reshape(-1),
            "part": np.asarray(f["part"][()], np.float64),
            "visible": (np.asarray(f["visible"][()], np.float64) if "visible" in f
                        else np.ones((n, NUM_JOINTS))),
            "normalize": (np.asarray(f["normalize"][()], np.float64) if "normalize" in f
                          else np.zeros(n)),
            "index": np.asarray(f["index"][()]).astype(np.int64).reshape(-1),
            "person": np.asarray(f["person"][()]).astype(np.int64).reshape(-1),
        }  # fmt: skip
        if raw:
            a["istrain"] = np.asarray(f["istrain"][()]).astype(np.int64).reshape(-1)
    expected = {
        "part": (n, NUM_JOINTS, 2), "center": (n, 2), "scale": (n,), "visible": (n, NUM_JOINTS),
        "normalize": (n,), "index": (n,), "person": (n,), "istrain": (n,),
    }  # fmt: skip
    for key, value in a.items():
        if value.shape != expected[key]:
            raise ValueError(f"{path}: {key} has shape {value.shape}, expected {expected[key]}")
    return a, names, raw


def _h5_person(
    a: dict[str, np.ndarray], r: int, names: Sequence[str], images_dir: pathlib.Path, raw: bool
) -> Item:
    """Row `r` of a pose-hg `.h5` as an item (see `read_h5` for the conventions)."""
    part = a["part"][r]
    index, person = int(a["index"][r]), int(a["person"][r])
    if raw:
        center, scale = adjust_center_scale(a["center"][r], float(a["scale"][r]))
    else:
        center, scale = a["center"][r] - 1.0, float(a["scale"][r])
    # (0, 0) marks a joint that is not annotated; a raw annot.h5 person without any
    # annotation (a test person, or a training person without annopoints) has -1 everywhere.
    no_joints = raw and bool(np.all(part == -1))
    annotated = np.zeros(NUM_JOINTS, bool) if no_joints else np.any(part != 0, axis=1)
    if raw and a["istrain"][r] != RAW_TEST and not annotated.any():
        what = f"annot.h5 row {r} (annolist({index + 1}).annorect({person + 1}))"
        return Skipped(names[r], index, person, NO_KEYPOINTS, f"{what} has no joints")
    keypoints = np.where(annotated[:, None], part - 1.0, 0.0)
    status = np.where(
        annotated,
        np.where(a["visible"][r] > 0, features.VISIBLE, features.OCCLUDED),
        features.NOT_ANNOTATED,
    )
    # annot.h5 holds a placeholder normalizer (1) for people without joints: no head box known.
    normalizer = 0.0 if no_joints else a["normalize"][r]
    return _pending(images_dir, names[r], center, scale, keypoints, status, normalizer, None,
                    index, person)  # fmt: skip


def _raw_rows(
    path: pathlib.Path,
    a: dict[str, np.ndarray],
    names: Sequence[str],
    images_dir: pathlib.Path,
    split: str | None,
    split_entries: Sequence[SplitEntry] | None,
) -> list[Item]:
    """The items of one split of the raw annot.h5 (see `read_h5`)."""
    istrain = a["istrain"]
    if split not in SPLITS:
        raise ValueError(
            f"{path} is pose-hg's raw annot.h5 (every MPII person): name a split "
            f"({', '.join(SPLITS)}), got {split!r}"
        )
    if split == "test":
        rows = np.flatnonzero(istrain == RAW_TEST)
        return [_h5_person(a, int(r), names, images_dir, raw=True) for r in rows]
    if split == "train":
        excluded = {(e.index, e.person) for e in split_entries or ()}
        rows = [
            r for r in np.flatnonzero((istrain == RAW_TRAIN) | (istrain == RAW_TRAIN_NO_JOINTS))
            if (int(a["index"][r]), int(a["person"][r])) not in excluded
        ]  # fmt: skip
        return [_h5_person(a, int(r), names, images_dir, raw=True) for r in rows]
    if not split_entries:
        raise ValueError(
            f"{path} is pose-hg's raw annot.h5 (every MPII person): split 'valid' needs a split "
            "file (e.g. pose-hg's valid.h5)"
        )
    pairs = zip(a["index"].tolist(), a["person"].tolist(), strict=True)
    row_of = {pair: r for r, pair in enumerate(pairs)}
    items = []
    for entry in split_entries:  # in the split file's order, as with the official .mat
        r = row_of.get((entry.index, entry.person))
        if r is None:
            items.append(Skipped(
                entry.imgname, entry.index, entry.person, NOT_IN_ANNOTATIONS,
                f"{path} has no person with index {entry.index} and person {entry.person}",
            ))  # fmt: skip
            continue
        if names[r] != entry.imgname:
            raise ValueError(
                f"split file says index {entry.index} is {entry.imgname}, {path} says {names[r]}"
            )
        items.append(_h5_person(a, r, names, images_dir, raw=True))
    return items


def read_h5(
    path: pathlib.Path | str,
    images_dir: pathlib.Path | str,
    split: str | None = None,
    split_entries: Sequence[SplitEntry] | None = None,
) -> list[Item]:
    """Reads a pose-hg `.h5` (imgname, center, scale, part, visible, normalize, index, person).

    Two kinds of file:

      * a split file (`train.h5`, `valid.h5`, `test.h5`): `center`/`scale` already adjusted
        (DESIGN.md §1), joints 1-based with (0, 0) for a joint that is not annotated. All rows
        are read, in file order; with `split_entries`, "valid" keeps the rows whose (index,
        person) are listed and "train" the others.
      * the raw `annot.h5` (it has `istrain` and `multi`; pose-hg-train's
        `src/misc/convert_annot.py` writes it from the official `.mat`): every person with an
        objpos, `center`/`scale` the raw objpos/scale (adjusted here: y += 15·s, s ×= 1.25, as
        pose-hg-train's `mpii.lua` does at load time), names as rows of character codes, joints
        as in the split files except that people without annotations (`istrain` 0: test
        images; 2: training images without annopoints) have -1 everywhere and normalize 1.
        "train" = `istrain` 1 and 2 (the latter skipped, `NO_KEYPOINTS`) less `split_entries`;
        "valid" = `split_entries`, required, in their order (absent ones skipped,
        `NOT_IN_ANNOTATIONS`); "test" = `istrain` 0 (no joints, normalizer 0).

    Coordinates are 1-based in both and shifted here; `index`/`person` are 0-based in both. (Both
    files' joints come from the same `partinfo` of pose-hg-train's `src/misc/mpii.py`, MATLAB
    pixels truncated to integers; the `annot.part:add(1)` that `mpii.lua` applies when it loads
    annot.h5 is a shift of its own Torch code, not of the file, and is not applied here.)

    Raises:
        FileNotFoundError / ValueError: naming the file (missing or misshapen datasets, a raw
            annot.h5 without a split, "valid" of a raw annot.h5 without `split_entries`).
    """
    path, images_dir = pathlib.Path(path), pathlib.Path(images_dir)
    a, names, raw = _h5_arrays(path)
    if raw:
        return _raw_rows(path, a, names, images_dir, split, split_entries)
    rows = range(len(names))
    if split_entries is not None and split in ("train", "valid"):
        wanted = {(e.index, e.person) for e in split_entries}
        rows = [
            r for r in rows
            if ((int(a["index"][r]), int(a["person"][r])) in wanted) == (split == "valid")
        ]  # fmt: skip
    return [_h5_person(a, r, names, images_dir, raw=False) for r in rows]


# --- HRNet / mmpose .json ------------------------------------------------------------------------


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
            _pending(images_dir, filename, center, scale, keypoints, status, normalizer,
                     headbox, r, -1)
        )  # fmt: skip
    return out


# --- dispatch ------------------------------------------------------------------------------------


def read_annotations(
    annotations: pathlib.Path | str,
    images_dir: pathlib.Path | str,
    split: str = "train",
    split_file: pathlib.Path | str | None = None,
    ground_truth: pathlib.Path | str | None = None,
) -> list[Item]:
    """Reads any MPII format, chosen by the file extension (.mat, .h5, .json).

    Raises:
        FileNotFoundError: when `annotations` or `split_file` does not exist.
        ValueError: for an unknown extension, an unreadable file (naming it) or an option that
            does not fit the format.
    """
    annotations = _loaders.require_file(annotations, "annotations file")
    suffix = annotations.suffix.lower()
    if suffix not in (".mat", ".h5", ".json"):
        raise ValueError(
            f"{annotations}: unknown MPII annotation format {suffix!r} (.mat/.h5/.json)"
        )
    if ground_truth is not None and suffix != ".json":
        raise ValueError(f"{annotations}: a ground truth file goes with a .json only")
    entries = read_split_file(split_file) if split_file else None
    if suffix == ".mat":
        return read_mat(annotations, images_dir, split, entries)
    if suffix == ".h5":
        if split == "test" and entries is not None:
            raise ValueError("a split file selects train/valid people, not test")
        return read_h5(annotations, images_dir, split, entries)
    if entries is not None:
        raise ValueError(f"{annotations}: a json file is already one split; no --split_file")
    return read_json(annotations, images_dir, ground_truth)
