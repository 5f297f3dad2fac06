"""Converts MPII / FLIC annotations (or synthetic people) to sharded TFRecords plus a manifest.

  python tools/make_tfrecords.py --dataset=mpii --annotations=valid.h5 --images=mpii/images \
      --output_dir=tfrecords/mpii --split=valid
  python tools/make_tfrecords.py --dataset=mpii --annotations=mpii_human_pose_v1_u12_1.mat \
      --images=mpii/images --output_dir=tfrecords/mpii --split=train --split_file=valid.h5
  python tools/make_tfrecords.py --dataset=flic --annotations=FLIC/examples.mat \
      --images=FLIC/images --output_dir=tfrecords/flic --split=valid
  python tools/make_tfrecords.py --dataset=synthetic --num_examples=2000 --output_dir=DIR

Writes OUTPUT_DIR/SPLIT-XXXXX-of-NNNNN.tfrecord and OUTPUT_DIR/SPLIT.manifest.json (see
tfrecords/README.md). People with bad annotations or images are skipped and listed in the
manifest; `--strict` turns any skip into a failure that writes nothing. The work is done by
`stacked_hourglass.datasets.writer`; this file only declares flags.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from stacked_hourglass.data.records import shards

_DATASET = flags.DEFINE_enum(
    "dataset", None, ["mpii", "flic", "synthetic"], "Which dataset to convert."
)
_ANNOTATIONS = flags.DEFINE_string(
    "annotations",
    None,
    "Annotation file. MPII: official .mat, pose-hg .h5 or HRNet .json (by extension); "
    "FLIC: examples.mat. Not used for synthetic.",
)
_IMAGES = flags.DEFINE_string("images", None, "Folder of the source images (not for synthetic).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where shards and manifest are written.")
_SPLIT = flags.DEFINE_enum(
    "split", "train", ["train", "valid", "test"], "Split to write (test: MPII .mat only)."
)
_SPLIT_FILE = flags.DEFINE_string(
    "split_file",
    None,
    "MPII validation people: a pose-hg valid.h5 or a text file of 'imgname index person' "
    "lines (0-based annolist index and annorect index). With the .mat: valid = these people, "
    "train = the other training people.",
)
_GROUND_TRUTH = flags.DEFINE_string(
    "ground_truth",
    None,
    "MPII .json only: a .mat with headboxes_src (e.g. HRNet gt_valid.mat) aligned with the json "
    "rows, for head boxes and PCKh normalizers (otherwise the normalizer is 0).",
)
_NUM_SHARDS = flags.DEFINE_integer(
    "num_shards", None, "Number of shards (default: about 1024 records per shard).", lower_bound=1
)
_NUM_WORKERS = flags.DEFINE_integer(
    "num_workers",
    min(8, os.cpu_count() or 1),
    "Threads reading and encoding records (the output does not depend on it).",
    lower_bound=1,
)
_STRICT = flags.DEFINE_bool("strict", False, "Fail (and write nothing) if anybody is skipped.")
_VERIFY_IMAGES = flags.DEFINE_bool(
    "verify_images", False, "Fully decode every image (slower; catches truncated files)."
)
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 1000, "Synthetic only: number of people.")
_SEED = flags.DEFINE_integer("seed", 0, "Synthetic only: random seed.")


def _error(message: str) -> int:
    """One line on stderr; the exit status for `app.run` (its UsageError prints all the help)."""
    print(f"make_tfrecords: error: {message}", file=sys.stderr)
    return 1


def main(argv):
    if len(argv) > 1:
        return _error(f"unexpected arguments: {' '.join(argv[1:])}")
    if _DATASET.value is None or _OUTPUT_DIR.value is None:
        return _error("--dataset and --output_dir are required")
    if _DATASET.value != "synthetic" and (_ANNOTATIONS.value is None or _IMAGES.value is None):
        return _error(f"--dataset={_DATASET.value} needs --annotations and --images")
    if _SPLIT_FILE.value and not os.path.isfile(_SPLIT_FILE.value):
        return _error(f"split file {_SPLIT_FILE.value} does not exist")
    try:
        items, num_items, sources = shards.read_items(
            _DATASET.value,
            _SPLIT.value,
            _ANNOTATIONS.value,
            _IMAGES.value,
            _SPLIT_FILE.value,
            _GROUND_TRUTH.value,
            _NUM_EXAMPLES.value,
            _SEED.value,
        )
    except (OSError, ValueError, KeyError) as e:
        return _error(str(e).splitlines()[0] if str(e) else repr(e))
    if (
        _DATASET.value == "mpii"
        and _SPLIT.value == "train"
        and _ANNOTATIONS.value.endswith(".mat")
        and not _SPLIT_FILE.value
    ):
        print("Note: no --split_file, so train includes the Tompson validation people.")
    options = {"split_file": _SPLIT_FILE.value, "verify_images": _VERIFY_IMAGES.value}
    if _DATASET.value == "synthetic":
        options.update(num_examples=_NUM_EXAMPLES.value, seed=_SEED.value)
    print(f"Converting {num_items} {_DATASET.value}/{_SPLIT.value} people from "
          f"{_ANNOTATIONS.value or 'the synthetic generator'} "
          f"with {_NUM_WORKERS.value} worker(s).")  # fmt: skip
    try:
        result = shards.write_split(
            items,
            num_items,
            _OUTPUT_DIR.value,
            _SPLIT.value,
            _DATASET.value,
            num_shards=_NUM_SHARDS.value,
            num_workers=_NUM_WORKERS.value,
            sources=sources,
            options=options,
            strict=_STRICT.value,
            verify_images=_VERIFY_IMAGES.value,
        )
    except shards.NothingWrittenError as e:
        return _error(f"{e}; nothing written")
    print(shards.format_summary(result))
    return 0


if __name__ == "__main__":
    app.run(main)
