"""Dataset sources: each turns its annotation files into items for the shard writer.

  * `mpii`: MPII Human Pose (official `.mat`, pose-hg `.h5` incl. the raw `annot.h5`, HRNet
    `.json`);
  * `flic`: FLIC `examples.mat`, observer- or person-centric labels;
  * `synthetic`: generated people (no files);
  * `coco`: COCO-format keypoint files (COCO itself, or any joint set: CVAT, Label Studio...).

`read_source(dataset, split, ...)` (or `read_items`, its items alone) picks the source by name.
Sources yield the items of `source_items` (`PendingExample`, `Skipped`, ...) and import nothing
of `data.records`: the shard writer (`data.records.shards`) and its per-person checks
(`data.records.items`) consume them.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable, Iterable

import numpy as np

from stacked_hourglass import joints
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
class Request:
    """What a conversion asks a source for (see `read_source` for the fields)."""

    split: str
    annotations: pathlib.Path | None = None
    images_dir: pathlib.Path | None = None
    split_file: PathLike | None = None
    ground_truth: PathLike | None = None
    num_examples: int = 0
    seed: int = 0
    flic_labels: str | None = None
    category: str | None = None
    joints_file: PathLike | None = None


@dataclasses.dataclass
class SourceData:
    """What a source read.

    Attributes:
        items: the items (a list, or a generator for synthetic), in source order.
        count: their number.
        files: the files whose sha256 belongs in the manifest (the annotations first).
        joint_set: the records' joint set (None: the built-in set of the dataset's name).
        notes: lines to print (e.g. what was inferred about the joint set).
        options: what the source chose, for the manifest's options (e.g. the COCO category).
    """

    items: Iterable[Item]
    count: int
    files: list[pathlib.Path]
    joint_set: joints.JointSet | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset source of the registry.

    Attributes:
        name: the `--dataset` name (also the name of the built-in joint set of most sources).
        splits: the splits it can produce (None: any split name).
        needs_files: whether it reads an annotations file and an images folder.
        read: `Request` → `SourceData` (its `files` without the annotations file, which
            `read_source` adds).
    """

    name: str
    splits: tuple[str, ...] | None
    needs_files: bool
    read: Callable[[Request], SourceData]


# The readers import their source module when called: h5py/scipy (MPII, FLIC) and the synthetic
# renderer are only loaded for the dataset asked for.


def _read_mpii(r: Request) -> SourceData:
    from stacked_hourglass.data.sources import mpii

    items = mpii.read_annotations(
        r.annotations, r.images_dir, r.split, r.split_file, r.ground_truth
    )
    return SourceData(
        items, len(items), [pathlib.Path(p) for p in (r.split_file, r.ground_truth) if p]
    )


def _read_flic(r: Request) -> SourceData:
    from stacked_hourglass.data.sources import flic

    if r.split_file or r.ground_truth:
        raise ValueError("FLIC takes no split file or ground truth file")
    items = flic.read_examples_mat(
        r.annotations, r.images_dir, r.split, r.flic_labels or flic.OBSERVER
    )
    return SourceData(items, len(items), [])


def _read_synthetic(r: Request) -> SourceData:
    from stacked_hourglass.data.sources import synthetic

    if r.annotations or r.images_dir or r.split_file or r.ground_truth:
        raise ValueError("synthetic takes no annotations, images, split file or ground truth")
    if r.num_examples < 1:
        raise ValueError(f"synthetic needs num_examples >= 1, got {r.num_examples}")
    return SourceData(
        synthetic.generate_examples(r.split, r.num_examples, r.seed), r.num_examples, []
    )


def _read_coco(r: Request) -> SourceData:
    from stacked_hourglass.data.sources import coco

    if r.split_file or r.ground_truth:
        raise ValueError("COCO-format files take no split file or ground truth file")
    data = coco.read_annotations(r.annotations, r.images_dir, r.category, r.joints_file)
    extra = [pathlib.Path(r.joints_file)] if r.joints_file else []
    options = {"category": data.category, "joints_file": r.joints_file and str(r.joints_file)}
    return SourceData(data.items, len(data.items), extra, data.joint_set, [data.note], options)


SOURCES = {
    s.name: s
    for s in (
        Source("mpii", ("train", "valid", "test"), True, _read_mpii),
        Source("flic", ("train", "valid"), True, _read_flic),
        Source("synthetic", ("train", "valid"), False, _read_synthetic),
        # A COCO-format file holds one split, named by the user (train2017.json → train).
        Source("coco", None, True, _read_coco),
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
    dataset: str, split: str, **kwargs
) -> tuple[Iterable[Item], int, list[pathlib.Path]]:
    """(items, number of items, source files to fingerprint) of `read_source(dataset, split,
    **kwargs)`."""
    data = read_source(dataset, split, **kwargs)
    return data.items, data.count, data.files


def _check_request(source: Source, r: Request) -> None:
    """Fails on options the source does not take, before anything is read."""
    if source.splits is not None and r.split not in source.splits:
        raise ValueError(f"{source.name} has splits {', '.join(source.splits)}; got {r.split!r}")
    if r.flic_labels is not None and source.name != "flic":
        raise ValueError(f"flic_labels is for FLIC only, not {source.name}")
    if (r.category is not None or r.joints_file is not None) and source.name != "coco":
        raise ValueError(f"category and joints files are for COCO-format files, not {source.name}")


def read_source(
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
    category: str | None = None,
    joints_file: PathLike | None = None,
) -> SourceData:
    """The items of one dataset split, their joint set and the files they came from.

    Args:
        dataset: "mpii" (format by extension of `annotations`), "flic", "synthetic" or "coco".
        split: "train", "valid" or (MPII only) "test": the `.mat` and the raw `annot.h5` pick
            each split's people, a pose-hg split `.h5` or a `.json` is read whole; COCO: any
            simple name (the file is read whole).
        annotations, images_dir: the annotation file and images folder (not for synthetic).
        split_file: MPII only, see `mpii.read_split_file`.
        ground_truth: MPII `.json` only, see `mpii.read_json`.
        num_examples, seed: synthetic only.
        flic_labels: FLIC only: "observer" (None: the default) or "person", see `flic`.
        category, joints_file: COCO only: the category to convert (name or id) and a joint-set
            file for it, see `coco.read_annotations`.

    Returns:
        `SourceData`: its `files` are those whose sha256 belongs in the manifest (annotations
        first).

    Raises:
        FileNotFoundError / ValueError: bad input, naming the file or option.
    """
    source = get_source(dataset)
    request = Request(
        split, None, None, split_file, ground_truth, num_examples, seed, flic_labels, category,
        joints_file,
    )  # fmt: skip
    _check_request(source, request)
    if not source.needs_files:
        return source.read(
            dataclasses.replace(request, annotations=annotations, images_dir=images_dir)
        )
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
    data = source.read(dataclasses.replace(request, annotations=annotations, images_dir=images_dir))
    data.items = confine_and_deduplicate(data.items, images_dir)
    data.files = [annotations, *data.files]
    return data


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
    seen, resolved, out = set(), {}, []
    for item in items:
        if isinstance(item, PendingExample):
            item = _confined(item, root, seen, resolved)
        out.append(item)
    return out


def _resolve(path: pathlib.Path, resolved: dict) -> pathlib.Path | Exception:
    """`path.resolve()`, or the error it raised, once per path (images hold several people)."""
    if path not in resolved:
        try:
            resolved[path] = path.resolve()
        except (RuntimeError, OSError) as e:  # a symlink loop (RuntimeError before Python 3.13)
            resolved[path] = e
    return resolved[path]


def _confined(item: PendingExample, root: pathlib.Path, seen: set, resolved: dict) -> Item:
    example = item.example

    def skip(reason: str, detail: str) -> Skipped:
        return Skipped(example.filename, example.index, example.person, reason, detail)

    resolved = _resolve(item.image_path, resolved)
    if isinstance(resolved, Exception):
        return skip(MISSING_IMAGE, f"{item.image_path}: cannot be resolved ({one_line(resolved)})")
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
