"""Converting one dataset split to sharded TFRecords: a source's items through the shard writer.

`convert` is what `python -m stacked_hourglass.convert` (and `tools/make_tfrecords.py`) runs, with
the flags `define_flags` declares:
`sources.read_source` reads the annotations, `shards.write_split` writes
`OUTPUT_DIR/SPLIT-XXXXX-of-NNNNN.tfrecord` and `OUTPUT_DIR/SPLIT.manifest.json`.

Record order (`default_order`): the training split is written in a seeded random order, so that a
reader interleaving a few shards through a bounded shuffle buffer sees a uniform mix (as
pose-hg-train's uniform permutation of the training people does); every other split in source
order, because evaluation writes its predictions in record order.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Callable

from absl import flags

from stacked_hourglass.data import sources
from stacked_hourglass.data.records import shards
from stacked_hourglass.data.records import split as split_lib

PathLike = os.PathLike | str


def _check_inputs(dataset, split, output_dir, annotations, images, files_by_flag):
    """Fails early, before reading annotations, on mistakes that need no file contents."""
    source = sources.get_source(dataset)
    if source.needs_files and (annotations is None or images is None):
        raise ValueError(f"--dataset={dataset} needs --annotations and --images")
    if not re.fullmatch(split_lib.SPLIT_NAME, split):
        raise ValueError(f"--split must be a simple name (letters, digits, _), got {split!r}")
    output_dir = pathlib.Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"output folder {output_dir} is a file, not a folder")
    for flag, path in files_by_flag.items():
        if path is not None and not pathlib.Path(path).is_file():
            raise FileNotFoundError(f"--{flag} {path} does not exist")


def default_order(split: str) -> str:
    """`shards.SHUFFLED_ORDER` for "train", `shards.SOURCE_ORDER` for the other splits."""
    return shards.SHUFFLED_ORDER if split == "train" else shards.SOURCE_ORDER


def _holds_every_split(annotations) -> bool:
    """An MPII file with the validation people among the training ones (.mat, raw annot.h5)."""
    suffix = pathlib.Path(annotations).suffix.lower()
    if suffix == ".h5":
        from stacked_hourglass.data.sources import mpii  # h5py only when needed

        return mpii.is_raw_h5(annotations)
    return suffix == ".mat"


def _hints(dataset: str, split: str, annotations, split_file, order: str) -> list[str]:
    """Notes for a conversion that is valid but probably not what was meant."""
    notes = []
    train_without_split_file = dataset == "mpii" and split == "train" and not split_file
    if train_without_split_file and _holds_every_split(annotations):
        notes.append("Note: no --split_file, so train includes the Tompson validation people.")
    if split != "train" and order == shards.SHUFFLED_ORDER:
        notes.append(
            f"Note: {split} in shuffled order; predictions made on it come in that order "
            "(source/index and source/person name each record's row)."
        )
    return notes


def convert(
    dataset: str,
    split: str,
    output_dir: PathLike,
    *,
    annotations: PathLike | None = None,
    images: PathLike | None = None,
    split_file: PathLike | None = None,
    ground_truth: PathLike | None = None,
    num_shards: int | None = None,
    num_workers: int = 1,
    strict: bool = False,
    verify_images: bool = True,
    num_examples: int = 0,
    seed: int = 0,
    order: str | None = None,
    shuffle_seed: int = 0,
    flic_labels: str | None = None,
    category: str | None = None,
    joints_file: PathLike | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> shards.SplitResult:
    """Converts one split of a dataset to TFRecord shards and a manifest.

    Args:
        dataset: "mpii", "flic", "synthetic" or "coco" (`sources.DATASETS`).
        split: "train", "valid" or "test" (test: MPII only); COCO: any simple name.
        output_dir: where shards and manifest go (created if missing).
        annotations, images: annotation file and images folder (not for synthetic).
        split_file, ground_truth: MPII only, see `sources.read_items`.
        num_shards, num_workers, strict, verify_images: see `shards.write_split`.
        num_examples, seed: synthetic only.
        order: `shards.SHUFFLED_ORDER` or `shards.SOURCE_ORDER`; None: `default_order(split)`.
        shuffle_seed: the seed of the shuffled order (`shards.shuffled_order`).
        flic_labels: FLIC only: "observer" (None: the default) or "person" (`sources.flic`);
            recorded in the manifest's options.
        category, joints_file: COCO only: the category to convert (name or id; None: the only
            one with keypoints) and a joint-set file for it (None: inferred from the category,
            see `sources.coco`); recorded in the manifest's options, the file in its sources.
        show_progress: draw a progress bar on stderr.
        log: where the progress notes go (one line each).

    Returns:
        The `shards.SplitResult` (print it with `shards.format_summary`).

    Raises:
        ValueError / OSError: a bad option or input file, naming it; nothing is written.
        shards.NothingWrittenError: no records to write (e.g. an annotation file without
            people, or everybody skipped), or a skip under `strict`; nothing is written.
    """
    _check_inputs(
        dataset, split, output_dir, annotations, images,
        {"split_file": split_file, "ground_truth": ground_truth, "joints": joints_file},
    )  # fmt: skip
    order = order or default_order(split)
    if order not in shards.ORDERS:
        raise ValueError(f"--order must be one of {', '.join(shards.ORDERS)}, got {order!r}")
    if flic_labels is not None and dataset != "flic":
        raise ValueError(f"--flic_labels is for --dataset=flic only, not {dataset}")
    if (category is not None or joints_file is not None) and dataset != "coco":
        raise ValueError(f"--category and --joints are for --dataset=coco only, not {dataset}")
    if dataset == "flic":
        flic_labels = flic_labels or "observer"
    data = sources.read_source(
        dataset, split, annotations=annotations, images_dir=images, split_file=split_file,
        ground_truth=ground_truth, num_examples=num_examples, seed=seed, flic_labels=flic_labels,
        category=category, joints_file=joints_file,
    )  # fmt: skip
    where = annotations or "the synthetic generator"
    if data.count == 0:
        raise shards.EmptySplitError(f"no records: {where} has no people for split {split!r}")
    for note in [*data.notes, *_hints(dataset, split, annotations, split_file, order)]:
        log(note)
    options = {"split_file": None if split_file is None else str(split_file),
               "verify_images": verify_images, **data.options}  # fmt: skip
    if dataset == "synthetic":
        options.update(num_examples=num_examples, seed=seed)
    if dataset == "flic":
        options.update(flic_labels=flic_labels)
    how = "in source order" if order == shards.SOURCE_ORDER else f"shuffled (seed {shuffle_seed})"
    log(f"Converting {data.count} {dataset}/{split} people from {where} {how} "
        f"with {num_workers} worker(s).")  # fmt: skip
    return shards.write_split(
        data.items, data.count, output_dir, split, dataset, num_shards=num_shards,
        num_workers=num_workers, sources=data.files, options=options, strict=strict,
        verify_images=verify_images, show_progress=show_progress, order=order,
        shuffle_seed=shuffle_seed, joint_set=data.joint_set,
    )  # fmt: skip


# Help texts of the string flags (all default to None); declared by define_flags.
_STRING_FLAGS = {
    "annotations": "Annotation file. MPII: official .mat, pose-hg .h5 (a split file such as "
    "valid.h5, or the raw annot.h5 with every person) or HRNet .json (by extension); FLIC: "
    "examples.mat; coco: a COCO-format keypoint .json (any joint set). Not used for synthetic.",
    "images": "Folder of the source images (not for synthetic).",
    "output_dir": "Where shards and manifest are written.",
    "split_file": "MPII validation people: a pose-hg valid.h5 or a text file of 'imgname index "
    "person' lines (0-based annolist index and annorect index). With the .mat or the raw "
    "annot.h5: valid = these people, train = the other training people.",
    "ground_truth": "MPII .json only: a .mat with headboxes_src (e.g. HRNet gt_valid.mat) aligned "
    "with the json rows, for head boxes and PCKh normalizers (otherwise the normalizer is 0).",
    "category": "coco only: the category to convert, by name or id (default: the file's only "
    "category with keypoints).",
    "joints": "coco only: a joint-set JSON file for the category (its joints must be the "
    "category's keypoints, in order); default: the set inferred from the category (COCO's 17 "
    "person keypoints: the built-in 'coco' set).",
}


def define_flags(fv: flags.FlagValues) -> None:
    """Declares the conversion flags into `fv`."""
    flags.DEFINE_enum(
        "dataset", None, list(sources.DATASETS), "Dataset to convert.", flag_values=fv
    )
    for name, help_text in _STRING_FLAGS.items():
        flags.DEFINE_string(name, None, help_text, flag_values=fv)
    flags.DEFINE_string(
        "split", "train",
        "Split to write: train, valid or test (test: MPII only); coco: any simple name (letters, "
        "digits, _), the whole file is converted. The shards and manifest are named after it.",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_integer(
        "num_shards", None, "Number of shards (default: about 1024 records per shard).",
        lower_bound=1, flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_integer(
        "num_workers", min(8, os.cpu_count() or 1),
        "Threads reading and encoding records (the output does not depend on it).",
        lower_bound=1, flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_bool("strict", False, "Fail (and write nothing) if anybody is skipped.",
                      flag_values=fv)  # fmt: skip
    flags.DEFINE_bool("verify_images", True,
                      "Decode every image to its end, skipping people whose image is truncated "
                      "or corrupt (corrupt_image); --noverify_images reads headers only.",
                      flag_values=fv)  # fmt: skip
    flags.DEFINE_integer("num_examples", 1000, "Synthetic only: number of people.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Synthetic only: random seed.", flag_values=fv)
    flags.DEFINE_enum(
        "order", None, list(shards.ORDERS),
        "Record order: 'shuffled' (a seeded uniform permutation, so that training batches mix the "
        "whole dataset) or 'source' (the annotation file's order, which evaluation needs). "
        "Default: shuffled for train, source for valid and test.",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_integer(
        "shuffle_seed", 0, "Seed of the shuffled order (the same seed gives the same shards).",
        lower_bound=0, upper_bound=2**63 - 1, flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_enum(
        "flic_labels", None, ["observer", "person"],
        "FLIC only: left/right labels. 'observer' (default; pose-hg-train's train.h5/valid.h5, "
        "which the hourglass paper used): l_* is the joint on the image's right, where a person "
        "facing the camera has their left; 'person': raw FLIC's person-centric labels.",
        flag_values=fv,
    )  # fmt: skip
