"""Readers of MPII Human Pose annotations: the official `.mat`, pose-hg `.h5` and HRNet `.json`.

One module per format (`mpii_mat`, `mpii_h5`, `mpii_json`; split files in `mpii_split_file`, the
shared pieces in `mpii_common`); this one picks the reader by extension (`read_annotations`) and
holds the public names of all of them.

Coordinate conventions. Every MPII source stores MATLAB (1-based) pixel coordinates: the centre of
the top-left pixel is (1, 1). The readers here subtract 1 from every coordinate they read (joints,
objpos/center, head box) exactly once, so that `PersonExample`s hold 0-based pixels, (x, y) order,
as `features` requires. Lengths (scale, head size) do not change.

Crop centre and scale (DESIGN.md, *Conventions*). MPII's raw `objpos`/`scale` put the centre on
the torso; the reference implementations move it down by 15·scale px and multiply the scale by 1.25:

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

import pathlib

from stacked_hourglass.data.sources import _loaders
from stacked_hourglass.data.sources.mpii_common import (
    CENTER_SHIFT_Y,
    DATASET,
    HEAD_SIZE_FACTOR,
    NOT_IN_ANNOTATIONS,
    NUM_JOINTS,
    RAW_H5_MARKERS,
    RAW_TEST,
    RAW_TRAIN,
    RAW_TRAIN_NO_JOINTS,
    SCALE_FACTOR,
    SPLITS,
    adjust_center_scale,
    head_size,
)
from stacked_hourglass.data.sources.mpii_h5 import is_raw_h5, read_h5
from stacked_hourglass.data.sources.mpii_json import read_headboxes, read_json
from stacked_hourglass.data.sources.mpii_mat import read_mat
from stacked_hourglass.data.sources.mpii_split_file import SplitEntry, read_split_file
from stacked_hourglass.data.sources.source_items import Item

__all__ = [
    "CENTER_SHIFT_Y",
    "DATASET",
    "HEAD_SIZE_FACTOR",
    "NOT_IN_ANNOTATIONS",
    "NUM_JOINTS",
    "RAW_H5_MARKERS",
    "RAW_TEST",
    "RAW_TRAIN",
    "RAW_TRAIN_NO_JOINTS",
    "SCALE_FACTOR",
    "SPLITS",
    "SplitEntry",
    "adjust_center_scale",
    "head_size",
    "is_raw_h5",
    "read_annotations",
    "read_h5",
    "read_headboxes",
    "read_json",
    "read_mat",
    "read_split_file",
]


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
