r"""Scores pose predictions with PCK / PCKh (the paper's tables and curves).

Released predictions (a file of coordinates against a ground-truth file):

  python -m stacked_hourglass.evaluate --predictions=FILE --ground_truth=FILE \
      [--dataset=mpii] [--head=head_top|neck_and_top] [--threshold=T] [--output_dir=DIR]

  FILE: `.h5` (pose-hg layout, `preds`) or `.mat` (`preds`), in [N,K,2], [K,2,N] or [2,K,N].
  Ground truth: `detections_our_format.mat` (normaliser 0.6 × head-box diagonal) or a pose-hg
  `.h5` (`part`, `normalize`). Coordinates are compared as stored (all released files are 1-based
  MATLAB pixels), without any offset.
  The table is printed. Files are written only when --output_dir is given: NAME.pck.json (table,
  curves, inputs, conventions) and NAME.pck_curves.png, NAME being the predictions file's stem.
  --posehg_label_filter additionally skips labels with x ≤ 1 or y ≤ 1, as pose-hg's
  `th main.lua eval` does (use with --head=neck_and_top and the pose-hg valid.h5 to reproduce it).

A trained model on TFRecords (the table in original-image pixels; with --output_dir also
NAME.preds.h5 in pose-hg's layout, 1-based, rows in source order):

  python -m stacked_hourglass.evaluate --model_dir=DIR|--saved_model=DIR --data=GLOB \
      [--dataset=mpii] [--flip_test] [--output_dir=DIR]

--dataset defaults to the model_dir's training dataset.
"""

from __future__ import annotations

import sys

from absl import app, flags

from stacked_hourglass.evaluation import report
from stacked_hourglass.joints import get_joint_set

# Released-predictions mode.
_PREDICTIONS = flags.DEFINE_string(
    "predictions", None, "Prediction file (.h5 or .mat with `preds`); selects released mode."
)
_GROUND_TRUTH = flags.DEFINE_string(
    "ground_truth",
    None,
    "Ground-truth file: detections_our_format.mat or a pose-hg .h5 (valid.h5).",
)
_POSEHG_LABEL_FILTER = flags.DEFINE_boolean(
    "posehg_label_filter",
    False,
    "Also skip ground-truth labels with x <= 1 or y <= 1, as pose-hg's calcDists does.",
)
# Model mode.
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Training directory with checkpoints.")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Exported SavedModel directory.")
_DATA = flags.DEFINE_string("data", None, "TFRecord glob of the evaluation split.")
_FLIP_TEST = flags.DEFINE_boolean(
    "flip_test", False, "Average with the heatmaps of the flipped image."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Evaluation batch size.", lower_bound=1)
# Shared.
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    None,
    "Where to write NAME.pck.json and NAME.pck_curves.png; unset: print only, write nothing.",
)
_DATASET = flags.DEFINE_enum(
    "dataset",
    None,
    ["mpii", "flic", "synthetic"],
    "Joint set of the predictions; default mpii, or the model_dir's training dataset.",
)
_HEAD = flags.DEFINE_enum(
    "head",
    "head_top",
    ["head_top", "neck_and_top"],
    "MPII 'Head' column: head_top (HRNet/mmpose/bearpaw) or the mean of upper_neck and head_top "
    "(MPII's own evaluation, pose-hg).",
)
_THRESHOLD = flags.DEFINE_float(
    "threshold", None, "PCK threshold; default the dataset's (0.5 MPII PCKh, 0.2 FLIC PCK)."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _PREDICTIONS.value:
        joint_set = get_joint_set(_DATASET.value or "mpii")
        if not _GROUND_TRUTH.value:
            raise app.UsageError("--predictions needs --ground_truth")
        try:
            report.run_released_evaluation(
                _PREDICTIONS.value,
                _GROUND_TRUTH.value,
                joint_set=joint_set,
                head=_HEAD.value,
                threshold=_THRESHOLD.value,
                output_dir=_OUTPUT_DIR.value,
                posehg_label_filter=_POSEHG_LABEL_FILTER.value,
            )
        except ValueError as e:
            # Bad input: one line naming the file and the problem, non-zero exit (DESIGN.md §4).
            print(f"evaluate: error: {' '.join(str(e).split())}", file=sys.stderr)
            return 1
        return 0
    try:
        dataset = _DATASET.value
        if dataset is None:
            from stacked_hourglass import training  # TensorFlow: model mode only.

            dataset = (
                training.load_configs(_MODEL_DIR.value)[1].dataset if _MODEL_DIR.value else "mpii"
            )
        report.run_model_evaluation(
            model_dir=_MODEL_DIR.value,
            saved_model=_SAVED_MODEL.value,
            data=_DATA.value,
            flip_test=_FLIP_TEST.value,
            batch_size=_BATCH_SIZE.value,
            joint_set=get_joint_set(dataset),
            head=_HEAD.value,
            threshold=_THRESHOLD.value,
            output_dir=_OUTPUT_DIR.value,
        )
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"evaluate: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
