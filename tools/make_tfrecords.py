r"""Converts MPII / FLIC / COCO-format annotations (or synthetic people) to sharded TFRecords plus
a manifest.

  python tools/make_tfrecords.py --dataset=mpii --annotations=valid.h5 --images=mpii/images \
      --output_dir=tfrecords/mpii --split=valid
  python tools/make_tfrecords.py --dataset=mpii --annotations=mpii_human_pose_v1_u12_1.mat \
      --images=mpii/images --output_dir=tfrecords/mpii --split=train --split_file=valid.h5
  python tools/make_tfrecords.py --dataset=flic --annotations=FLIC/examples.mat \
      --images=FLIC/images --output_dir=tfrecords/flic --split=valid
  python tools/make_tfrecords.py --dataset=synthetic --num_examples=2000 --output_dir=DIR
  python tools/make_tfrecords.py --dataset=coco --annotations=person_keypoints_val2017.json \
      --images=val2017 --output_dir=tfrecords/coco --split=valid

Writes OUTPUT_DIR/SPLIT-XXXXX-of-NNNNN.tfrecord and OUTPUT_DIR/SPLIT.manifest.json (see
tfrecords/README.md). The train split is written in a seeded random order (`--shuffle_seed`,
default 0), the others in source order (`--order=shuffled|source` overrides); FLIC labels are
observer-centric unless `--flic_labels=person`. People with bad annotations or images are skipped
and listed in the manifest; `--strict` turns any skip into a failure that writes nothing. This
file is kept for the command lines that name it: it runs `python -m stacked_hourglass.convert`,
which has the same flags.
"""

import sys

from stacked_hourglass import convert

if __name__ == "__main__":
    sys.exit(convert.main())
