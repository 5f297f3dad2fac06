r"""Converts MPII / FLIC annotations (or synthetic people) to sharded TFRecords plus a manifest.

  python -m stacked_hourglass.convert --dataset=mpii --annotations=valid.h5 \
      --images=mpii/images --output_dir=tfrecords/mpii --split=valid
  python -m stacked_hourglass.convert --dataset=mpii \
      --annotations=mpii_human_pose_v1_u12_1.mat --images=mpii/images \
      --output_dir=tfrecords/mpii --split=train --split_file=valid.h5
  python -m stacked_hourglass.convert --dataset=flic --annotations=FLIC/examples.mat \
      --images=FLIC/images --output_dir=tfrecords/flic --split=valid
  python -m stacked_hourglass.convert --dataset=synthetic --num_examples=2000 --output_dir=DIR

Writes OUTPUT_DIR/SPLIT-XXXXX-of-NNNNN.tfrecord and OUTPUT_DIR/SPLIT.manifest.json (see
tfrecords/README.md). The train split is written in a seeded random order (`--shuffle_seed`),
the others in source order (`--order` overrides). People with bad annotations or images are
skipped and listed in the manifest; `--strict` turns any skip into a failure that writes nothing.
The work is done by `stacked_hourglass.data.convert_lib`; this file only declares flags.
"""

from __future__ import annotations

import os

from absl import flags

from stacked_hourglass.data import convert_lib, sources
from stacked_hourglass.data.records import shards
from stacked_hourglass.utils import cli, errors

# Help texts of the string flags (all default to None); the flags are declared in define_flags.
_STRING_FLAGS = {
    "annotations": "Annotation file. MPII: official .mat, pose-hg .h5 (a split file such as "
    "valid.h5, or the raw annot.h5 with every person) or HRNet .json (by extension); FLIC: "
    "examples.mat. Not used for synthetic.",
    "images": "Folder of the source images (not for synthetic).",
    "output_dir": "Where shards and manifest are written.",
    "split_file": "MPII validation people: a pose-hg valid.h5 or a text file of 'imgname index "
    "person' lines (0-based annolist index and annorect index). With the .mat or the raw "
    "annot.h5: valid = these people, train = the other training people.",
    "ground_truth": "MPII .json only: a .mat with headboxes_src (e.g. HRNet gt_valid.mat) aligned "
    "with the json rows, for head boxes and PCKh normalizers (otherwise the normalizer is 0).",
}


def define_flags(fv: flags.FlagValues) -> None:
    """Declares the conversion flags into `fv`."""
    flags.DEFINE_enum(
        "dataset", None, list(sources.DATASETS), "Dataset to convert.", flag_values=fv
    )
    for name, help_text in _STRING_FLAGS.items():
        flags.DEFINE_string(name, None, help_text, flag_values=fv)
    flags.DEFINE_enum(
        "split", "train", ["train", "valid", "test"], "Split to write (test: MPII only).",
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
    flags.DEFINE_bool("verify_images", False,
                      "Fully decode every image (slower; catches truncated files).",
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


def run(fv: flags.FlagValues) -> int:
    """Converts the split the flags name; prints the summary."""
    cli.require(fv, "dataset", "output_dir")
    try:
        result = convert_lib.convert(
            fv.dataset, fv.split, fv.output_dir, annotations=fv.annotations, images=fv.images,
            split_file=fv.split_file, ground_truth=fv.ground_truth, num_shards=fv.num_shards,
            num_workers=fv.num_workers, strict=fv.strict, verify_images=fv.verify_images,
            num_examples=fv.num_examples, seed=fv.seed, order=fv.order,
            shuffle_seed=fv.shuffle_seed, flic_labels=fv.flic_labels,
        )  # fmt: skip
    except shards.NothingWrittenError as e:
        return cli.error("convert", f"{errors.one_line(e)}; nothing written")
    print(shards.format_summary(result))
    return 0


def main(argv=None) -> int:
    """Runs the command; `argv` without the program name (None: `sys.argv`). The exit status."""
    return cli.main("convert", define_flags, run, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
