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

Model evaluation (--model_dir / --saved_model with --data=GLOB [--flip_test]) is not available
yet: see `run_model_evaluation`.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
from absl import app, flags

from stacked_hourglass import evaluation_io, metrics, plots
from stacked_hourglass.joints import JointSet, get_joint_set

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
# Model mode (the lead's part; declared here so both modes share one set of flags).
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
    "dataset", "mpii", ["mpii", "flic", "synthetic"], "Joint set of the predictions."
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


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def report_figures(
    preds: np.ndarray,
    gt: np.ndarray,
    missing: np.ndarray,
    normalizer: np.ndarray,
    *,
    joint_set: JointSet,
    head: str,
    threshold: float | None,
    name: str,
    output_dir: str | None,
    sources: dict,
) -> dict:
    """Computes, prints and (with `output_dir`) writes the table and the curves.

    Shared by both modes: the model mode passes its decoded predictions in the same pixel
    convention as `gt`.

    Args:
        preds: [N, K, 2] predicted (x, y), same pixel origin as `gt`.
        gt: [N, K, 2] ground-truth (x, y).
        missing: [N, K] bool, True where a joint is skipped.
        normalizer: [N] reference length in pixels.
        joint_set: columns and Mean joints.
        head: "head_top" or "neck_and_top".
        threshold: PCK threshold; None → the joint set's.
        name: stem of the output files and title of the figure.
        output_dir: folder for NAME.pck.json and NAME.pck_curves.png; None writes nothing.
        sources: descriptions of the inputs (paths, digests, conventions) stored in the JSON.

    Returns:
        The figures dict (as written to the JSON).
    """
    table = metrics.pck_table(preds, gt, normalizer, missing, joint_set, threshold, head)
    curves = metrics.pck_curve(preds, gt, normalizer, missing, joint_set, head=head)
    n, k = missing.shape
    head_note = metrics.column_note(table, "Head")
    if joint_set.name in ("mpii", "synthetic"):
        head_note += {
            "head_top": " (HRNet/mmpose/bearpaw convention)",
            "neck_and_top": " (MPII / pose-hg convention)",
        }[head]
    kind = "PCKh" if joint_set.normalizer == "head" else "PCK"
    excluded = sorted(set(range(k)) - set(joint_set.mean_indices()))
    print(
        f"{kind}@{table['threshold']:g}: correct when distance <= {table['threshold']:g} x "
        f"normalizer (ties count); {head_note}."
    )
    print(
        f"Scored {n} people, {int((~missing).sum())} of {n * k} joints "
        f"({int(missing.sum())} skipped); Mean pooled over {table['num_joints_scored']} joints"
        + (f" (excluding {', '.join(joint_set.names[i] for i in excluded)})." if excluded else ".")
    )
    print(metrics.format_table(table))
    figures = {"name": name, "sources": sources, "table": table, "curves": curves}
    if output_dir:
        out = Path(output_dir)
        json_path = evaluation_io.write_json(out / f"{name}.pck.json", figures)
        title = f"{name}: {kind}@{table['threshold']:g}, {metrics.column_note(table, 'Head')}"
        png_path = plots.plot_pck_curves(curves, out / f"{name}.pck_curves.png", title)
        print(f"Wrote {json_path} and {png_path}")
    return figures


def run_released_evaluation(
    predictions: str,
    ground_truth: str,
    *,
    joint_set: JointSet,
    head: str,
    threshold: float | None,
    output_dir: str | None,
    posehg_label_filter: bool = False,
) -> dict:
    """Scores a released prediction file against a ground-truth file; see the module doc.

    Raises:
        ValueError: unreadable files, missing fields, or predictions and ground truth that do
            not match in people or joints (message names both files and shapes).
    """
    gt, missing, normalizer, headboxes = evaluation_io.load_ground_truth(
        ground_truth, num_joints=joint_set.num_joints
    )
    preds = evaluation_io.load_predictions(predictions, num_joints=joint_set.num_joints)
    if preds.shape != gt.shape:
        raise ValueError(
            f"{predictions} has predictions for {preds.shape[0]} people x {preds.shape[1]} "
            f"joints but {ground_truth} has {gt.shape[0]} x {gt.shape[1]}"
        )
    if posehg_label_filter:
        missing = missing | metrics.posehg_label_missing(gt)
    normalizer_source = (
        "0.6 x head-box diagonal (headboxes_src)" if headboxes is not None else "'normalize' field"
    )
    print(f"Predictions: {predictions} ({preds.shape[0]} people, {preds.shape[1]} joints)")
    print(f"Ground truth: {ground_truth} (normalizer: {normalizer_source})")
    if posehg_label_filter:
        print("Skipping labels with x <= 1 or y <= 1 (pose-hg calcDists).")
    sources = {
        "predictions": {"path": str(predictions), "sha256": _sha256(predictions)},
        "ground_truth": {"path": str(ground_truth), "sha256": _sha256(ground_truth)},
        "normalizer": normalizer_source,
        "coordinates": "as stored in both files (1-based for the released files), no offset",
        "posehg_label_filter": posehg_label_filter,
    }
    return report_figures(
        preds,
        gt,
        missing,
        normalizer,
        joint_set=joint_set,
        head=head,
        threshold=threshold,
        name=Path(predictions).stem,
        output_dir=output_dir,
        sources=sources,
    )


# ------------------------------------------------------------------------------------------------
# Model evaluation (--model_dir / --saved_model, --data, --flip_test, --batch_size).
# Placeholder: the lead replaces this block. Decode predictions in original-image pixels, then
# call `report_figures` with ground truth in the same pixel convention (or write them with
# `evaluation_io.write_predictions_h5(..., coordinate_base=0)` to score against released GT).
# ------------------------------------------------------------------------------------------------
def run_model_evaluation(
    *,
    model_dir: str | None,
    saved_model: str | None,
    data: str | None,
    flip_test: bool,
    batch_size: int,
    joint_set: JointSet,
    head: str,
    threshold: float | None,
    output_dir: str | None,
) -> dict:
    """Evaluates a trained model on TFRecords. Not available yet."""
    del model_dir, saved_model, data, flip_test, batch_size, joint_set, head, threshold
    del output_dir
    raise app.UsageError("model evaluation not available yet")


# ------------------------------------------------------------------------------------------------


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    joint_set = get_joint_set(_DATASET.value)
    if _PREDICTIONS.value:
        if not _GROUND_TRUTH.value:
            raise app.UsageError("--predictions needs --ground_truth")
        try:
            run_released_evaluation(
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
    run_model_evaluation(
        model_dir=_MODEL_DIR.value,
        saved_model=_SAVED_MODEL.value,
        data=_DATA.value,
        flip_test=_FLIP_TEST.value,
        batch_size=_BATCH_SIZE.value,
        joint_set=joint_set,
        head=_HEAD.value,
        threshold=_THRESHOLD.value,
        output_dir=_OUTPUT_DIR.value,
    )
    return 0


if __name__ == "__main__":
    app.run(main)
