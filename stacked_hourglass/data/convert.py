"""Converting one dataset split to sharded TFRecords: a source's items through the shard writer.

`convert` is what `python -m stacked_hourglass.convert` (and `tools/make_tfrecords.py`) runs:
`sources.read_items` reads the annotations, `shards.write_split` writes
`OUTPUT_DIR/SPLIT-XXXXX-of-NNNNN.tfrecord` and `OUTPUT_DIR/SPLIT.manifest.json`.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable

from stacked_hourglass.data import sources
from stacked_hourglass.data.records import shards

PathLike = os.PathLike | str


def _check_inputs(dataset, split, output_dir, annotations, images, split_file, ground_truth):
    """Fails early, before reading annotations, on mistakes that need no file contents."""
    source = sources.get_source(dataset)
    if source.needs_files and (annotations is None or images is None):
        raise ValueError(f"--dataset={dataset} needs --annotations and --images")
    output_dir = pathlib.Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"output folder {output_dir} is a file, not a folder")
    for flag, path in (("split_file", split_file), ("ground_truth", ground_truth)):
        if path is not None and not pathlib.Path(path).is_file():
            raise FileNotFoundError(f"--{flag} {path} does not exist")


def _hint(dataset: str, split: str, annotations, split_file) -> str | None:
    """A note for a conversion that is valid but probably not what was meant."""
    if (
        dataset == "mpii"
        and split == "train"
        and str(annotations).lower().endswith(".mat")
        and not split_file
    ):
        return "Note: no --split_file, so train includes the Tompson validation people."
    return None


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
    verify_images: bool = False,
    num_examples: int = 0,
    seed: int = 0,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> shards.SplitResult:
    """Converts one split of a dataset to TFRecord shards and a manifest.

    Args:
        dataset: "mpii", "flic" or "synthetic" (`sources.DATASETS`).
        split: "train", "valid" or "test" (test: MPII only).
        output_dir: where shards and manifest go (created if missing).
        annotations, images: annotation file and images folder (not for synthetic).
        split_file, ground_truth: MPII only, see `sources.read_items`.
        num_shards, num_workers, strict, verify_images: see `shards.write_split`.
        num_examples, seed: synthetic only.
        show_progress: draw a progress bar on stderr.
        log: where the progress notes go (one line each).

    Returns:
        The `shards.SplitResult` (print it with `shards.format_summary`).

    Raises:
        ValueError / OSError: a bad option or input file, naming it; nothing is written.
        shards.NothingWrittenError: no records to write (e.g. an annotation file without
            people, or everybody skipped), or a skip under `strict`; nothing is written.
    """
    _check_inputs(dataset, split, output_dir, annotations, images, split_file, ground_truth)
    items, num_items, source_files = sources.read_items(
        dataset, split, annotations=annotations, images_dir=images, split_file=split_file,
        ground_truth=ground_truth, num_examples=num_examples, seed=seed,
    )  # fmt: skip
    where = annotations or "the synthetic generator"
    if num_items == 0:
        raise shards.EmptySplitError(f"no records: {where} has no people for split {split!r}")
    hint = _hint(dataset, split, annotations, split_file)
    if hint:
        log(hint)
    options = {"split_file": None if split_file is None else str(split_file),
               "verify_images": verify_images}  # fmt: skip
    if dataset == "synthetic":
        options.update(num_examples=num_examples, seed=seed)
    log(f"Converting {num_items} {dataset}/{split} people from {where} "
        f"with {num_workers} worker(s).")  # fmt: skip
    return shards.write_split(
        items, num_items, output_dir, split, dataset, num_shards=num_shards,
        num_workers=num_workers, sources=source_files, options=options, strict=strict,
        verify_images=verify_images, show_progress=show_progress,
    )  # fmt: skip
