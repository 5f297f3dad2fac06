r"""Converts MPII / FLIC / COCO-format annotations (or synthetic people) to sharded TFRecords plus
a manifest.

  python -m stacked_hourglass.convert --dataset=mpii --annotations=valid.h5 \
      --images=mpii/images --output_dir=tfrecords/mpii --split=valid
  python -m stacked_hourglass.convert --dataset=mpii \
      --annotations=mpii_human_pose_v1_u12_1.mat --images=mpii/images \
      --output_dir=tfrecords/mpii --split=train --split_file=valid.h5
  python -m stacked_hourglass.convert --dataset=flic --annotations=FLIC/examples.mat \
      --images=FLIC/images --output_dir=tfrecords/flic --split=valid
  python -m stacked_hourglass.convert --dataset=synthetic --num_examples=2000 --output_dir=DIR
  python -m stacked_hourglass.convert --dataset=coco \
      --annotations=annotations/person_keypoints_val2017.json --images=val2017 \
      --output_dir=tfrecords/coco --split=valid [--category=NAME|ID] [--joints=FILE.json]

Writes OUTPUT_DIR/SPLIT-XXXXX-of-NNNNN.tfrecord and OUTPUT_DIR/SPLIT.manifest.json (see
tfrecords/README.md). The train split is written in a seeded random order (`--shuffle_seed`),
the others in source order (`--order` overrides). People with bad annotations or images are
skipped and listed in the manifest; `--strict` turns any skip into a failure that writes nothing.
The flags and the work are in `stacked_hourglass.data.convert_lib`.
"""

from __future__ import annotations

from absl import flags

from stacked_hourglass.data import convert_lib
from stacked_hourglass.data.records import shards
from stacked_hourglass.utils import cli, errors


def define_flags(fv: flags.FlagValues) -> None:
    """Declares the conversion flags into `fv` (`convert_lib.define_flags`)."""
    convert_lib.define_flags(fv)


def run(fv: flags.FlagValues) -> int:
    """Converts the split the flags name; prints the summary."""
    cli.require(fv, "dataset", "output_dir")
    try:
        result = convert_lib.convert(
            fv.dataset, fv.split, fv.output_dir, annotations=fv.annotations, images=fv.images,
            split_file=fv.split_file, ground_truth=fv.ground_truth, num_shards=fv.num_shards,
            num_workers=fv.num_workers, strict=fv.strict, verify_images=fv.verify_images,
            num_examples=fv.num_examples, seed=fv.seed, order=fv.order,
            shuffle_seed=fv.shuffle_seed, flic_labels=fv.flic_labels, category=fv.category,
            joints_file=fv.joints,
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
