"""pose-hg `.h5` files as items: the split files (train/valid/test.h5) and the raw annot.h5.

Conventions (1-based → 0-based, which layout is already adjusted) are in `mpii`'s docstring and
`read_h5`'s.
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
    RAW_H5_MARKERS,
    RAW_TEST,
    RAW_TRAIN,
    RAW_TRAIN_NO_JOINTS,
    SPLITS,
    adjust_center_scale,
    image_names,
    pending,
)
from stacked_hourglass.data.sources.mpii_split_file import SplitEntry
from stacked_hourglass.data.sources.source_items import NO_KEYPOINTS, Item, Skipped


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
        names = image_names(_loaders.h5_array(f, "imgname"))
        n = len(names)

        def floats(key, default=None):
            if default is not None and key not in f:
                return default
            return np.asarray(_loaders.h5_array(f, key), np.float64)

        def ints(key):
            values = np.asarray(_loaders.h5_array(f, key)).reshape(-1)
            if values.dtype.kind == "f" and not (
                np.isfinite(values).all() and (values % 1 == 0).all()
            ):
                raise ValueError(f"{path}: {key} holds values that are not whole numbers")
            return values.astype(np.int64)

        a = {
            "center": floats("center"),
            "scale": floats("scale").reshape(-1),
            "part": floats("part"),
            "visible": floats("visible", np.ones((n, NUM_JOINTS))),
            "normalize": floats("normalize", np.zeros(n)),
            "index": ints("index"),
            "person": ints("person"),
        }
        if raw:
            a["istrain"] = ints("istrain")
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
    return pending(images_dir, names[r], center, scale, keypoints, status, normalizer, None,
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
        (DESIGN.md, *Conventions*), joints 1-based with (0, 0) for a joint that is not
        annotated. All rows are read, in file order; with `split_entries`, "valid" keeps the
        rows whose (index, person) are listed and "train" the others.
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
