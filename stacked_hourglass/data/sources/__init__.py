"""Dataset sources: each turns its annotation files into items for the shard writer.

  * `mpii`: MPII Human Pose (official `.mat`, pose-hg `.h5` incl. the raw `annot.h5`, HRNet
    `.json`);
  * `flic`: FLIC `examples.mat`, observer- or person-centric labels;
  * `synthetic`: generated people (no files).

`read_items(dataset, split, ...)` picks the source by name. Sources yield the items of
`source_items` (`PendingExample`, `Skipped`, ...) and import nothing of `data.records`: the shard
writer (`data.records.shards`) and its per-person checks (`data.records.items`) consume them.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable, Iterable

import numpy as np

from stacked_hourglass.data.sources.source_items import (
    DUPLICATE_PERSON,
    MISSING_IMAGE,
    OUTSIDE_IMAGES_DIR,
    Item,
    PendingExample,
    Skipped,
)
from stacked_hourglass.utils.errors import one_line

PathLike = os.PathLike | str


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset source of the registry.

    Attributes:
        name: the `--dataset` name (also the joint set's name).
        splits: the splits it can produce.
        needs_files: whether it reads an annotations file and an images folder.
        read: (split, annotations, images_dir, split_file, ground_truth, num_examples, seed,
            flic_labels) → (items, number of items, extra source files to fingerprint).
    """

    name: str
    splits: tuple[str, ...]
    needs_files: bool
    read: Callable[..., tuple[Iterable[Item], int, list[pathlib.Path]]]


# The readers import their source module when called: h5py/scipy (MPII, FLIC) and the synthetic
# renderer are only loaded for the dataset asked for.


def _read_mpii(
    split, annotations, images_dir, split_file, ground_truth, num_examples, seed, flic_labels
):
    from stacked_hourglass.data.sources import mpii

    items = mpii.read_annotations(annotations, images_dir, split, split_file, ground_truth)
    return items, len(items), [pathlib.Path(p) for p in (split_file, ground_truth) if p]


def _read_flic(
    split, annotations, images_dir, split_file, ground_truth, num_examples, seed, flic_labels
):
    from stacked_hourglass.data.sources import flic

    if split_file or ground_truth:
        raise ValueError("FLIC takes no split file or ground truth file")
    items = flic.read_examples_mat(annotations, images_dir, split, flic_labels or flic.OBSERVER)
    return items, len(items), []


def _read_synthetic(
    split, annotations, images_dir, split_file, ground_truth, num_examples, seed, flic_labels
):
    from stacked_hourglass.data.sources import synthetic

    if annotations or images_dir or split_file or ground_truth:
        raise ValueError("synthetic takes no annotations, images, split file or ground truth")
    if num_examples < 1:
        raise ValueError(f"synthetic needs num_examples >= 1, got {num_examples}")
    return synthetic.generate_examples(split, num_examples, seed), num_examples, []


SOURCES = {
    s.name: s
    for s in (
        Source("mpii", ("train", "valid", "test"), True, _read_mpii),
        Source("flic", ("train", "valid"), True, _read_flic),
        Source("synthetic", ("train", "valid"), False, _read_synthetic),
    )
}
DATASETS = tuple(SOURCES)


def get_source(dataset: str) -> Source:
    """The registry entry of `dataset`; `ValueError` listing the known names otherwise."""
    try:
        return SOURCES[dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}"
        ) from None


def read_items(
    dataset: str,
    split: str,
    *,
    annotations: PathLike | None = None,
    images_dir: PathLike | None = None,
    split_file: PathLike | None = None,
    ground_truth: PathLike | None = None,
    num_examples: int = 0,
    seed: int = 0,
    flic_labels: str | None = None,
) -> tuple[Iterable[Item], int, list[pathlib.Path]]:
    """The items of one dataset split: (items, number of items, source files to fingerprint).

    Args:
        dataset: "mpii" (format by extension of `annotations`), "flic" or "synthetic".
        split: "train", "valid" or (MPII only) "test": the `.mat` and the raw `annot.h5` pick
            each split's people, a pose-hg split `.h5` or a `.json` is read whole.
        annotations, images_dir: the annotation file and images folder (not for synthetic).
        split_file: MPII only, see `mpii.read_split_file`.
        ground_truth: MPII `.json` only, see `mpii.read_json`.
        num_examples, seed: synthetic only.
        flic_labels: FLIC only: "observer" (None: the default) or "person", see `flic`.

    Returns:
        The items (a list, or a generator for synthetic), their number, and the files whose
        sha256 belongs in the manifest (annotations first).

    Raises:
        FileNotFoundError / ValueError: bad input, naming the file or option.
    """
    source = get_source(dataset)
    if split not in source.splits:
        raise ValueError(f"{dataset} has splits {', '.join(source.splits)}; got {split!r}")
    if flic_labels is not None and dataset != "flic":
        raise ValueError(f"flic_labels is for FLIC only, not {dataset}")
    if not source.needs_files:
        return source.read(split, annotations, images_dir, split_file, ground_truth,
                           num_examples, seed, flic_labels)  # fmt: skip
    if annotations is None or images_dir is None:
        raise ValueError(f"{dataset} needs an annotations file and an images folder")
    annotations, images_dir = pathlib.Path(annotations), pathlib.Path(images_dir)
    if annotations.is_dir():
        raise IsADirectoryError(f"annotations file {annotations} is a folder, not a file")
    if not annotations.is_file():
        raise FileNotFoundError(f"annotations file {annotations} does not exist")
    if images_dir.exists() and not images_dir.is_dir():
        raise NotADirectoryError(f"images folder {images_dir} is a file, not a folder")
    if not images_dir.is_dir():
        raise FileNotFoundError(f"images folder {images_dir} does not exist")
    items, count, extra = source.read(
        split, annotations, images_dir, split_file, ground_truth, num_examples, seed, flic_labels
    )
    return confine_and_deduplicate(items, images_dir), count, [annotations, *extra]


def confine_and_deduplicate(items: Iterable[Item], images_dir: PathLike) -> list[Item]:
    """The items, with two kinds of person replaced by a `Skipped` (one item for one item).

    - `OUTSIDE_IMAGES_DIR`: an image path that resolves (symlinks followed) outside
      `images_dir`, such as `../outside/x.jpg` or `/etc/passwd` in an annotation file: a
      converter never reads a file the user did not hand it.
    - `DUPLICATE_PERSON`: the same image file and the same keypoints and statuses as an earlier
      person (annotation files that list a person twice); the first is kept.

    Args:
        items: a source's items in source order.
        images_dir: the images folder every image must lie in.
    """
    root = pathlib.Path(images_dir).resolve()
    seen, out = set(), []
    for item in items:
        if isinstance(item, PendingExample):
            item = _confined(item, root, seen)
        out.append(item)
    return out


def _confined(item: PendingExample, root: pathlib.Path, seen: set) -> Item:
    example = item.example

    def skip(reason: str, detail: str) -> Skipped:
        return Skipped(example.filename, example.index, example.person, reason, detail)

    try:
        resolved = item.image_path.resolve()
    except (RuntimeError, OSError) as e:  # a symlink loop (RuntimeError before Python 3.13)
        return skip(MISSING_IMAGE, f"{item.image_path}: cannot be resolved ({one_line(e)})")
    if not resolved.is_relative_to(root):
        return skip(OUTSIDE_IMAGES_DIR, f"{item.image_path} resolves to {resolved}, outside {root}")
    key = (
        str(resolved),
        np.asarray(example.keypoints, np.float64).tobytes(),
        np.asarray(example.keypoint_status, np.int64).tobytes(),
    )
    if key in seen:
        return skip(DUPLICATE_PERSON, f"{resolved}: same keypoints as an earlier person")
    seen.add(key)
    return item
