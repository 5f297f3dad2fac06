"""Scoring released prediction files (pose-hg .h5, MPII .mat) against ground truth.

`python -m stacked_hourglass.evaluate --predictions=... --ground_truth=...`. Pure numpy: it
imports neither TensorFlow nor Keras (an import-linter contract keeps it so), so it scores a
file in a second.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from stacked_hourglass.evaluation import formats, pck
from stacked_hourglass.evaluation.report import report_figures
from stacked_hourglass.joints import JointSet
from stacked_hourglass.utils.digest import sha256_file


def define_flags(fv: flags.FlagValues) -> None:
    """The released mode's flags: --predictions (which selects it), --ground_truth,
    --posehg_label_filter."""
    flags.DEFINE_string(
        "predictions", None,
        "Prediction file: .h5 or .mat with `preds` (PCK), or COCO keypoint results .json (AP).",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_string(
        "ground_truth", None,
        "Ground truth: detections_our_format.mat or a pose-hg .h5; a COCO annotation .json "
        "(a model on COCO-format records: instead of the file its manifest records).",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_boolean(
        "posehg_label_filter",
        False,
        "Also skip ground-truth labels with x <= 1 or y <= 1, as pose-hg's calcDists does.",
        flag_values=fv,
    )


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
    gt, missing, normalizer, headboxes = formats.load_ground_truth(
        ground_truth, num_joints=joint_set.num_joints
    )
    preds = formats.load_predictions(predictions, num_joints=joint_set.num_joints)
    if preds.shape != gt.shape:
        raise ValueError(
            f"{predictions} has predictions for {preds.shape[0]} people x {preds.shape[1]} "
            f"joints but {ground_truth} has {gt.shape[0]} x {gt.shape[1]}"
        )
    if posehg_label_filter:
        missing = missing | pck.posehg_label_missing(gt)
    normalizer_source = (
        "0.6 x head-box diagonal (headboxes_src)" if headboxes is not None else "'normalize' field"
    )
    print(f"Predictions: {predictions} ({preds.shape[0]} people, {preds.shape[1]} joints)")
    print(f"Ground truth: {ground_truth} (normalizer: {normalizer_source})")
    if posehg_label_filter:
        print("Skipping labels with x <= 1 or y <= 1 (pose-hg calcDists).")
    sources = {
        "predictions": {"path": str(predictions), "sha256": sha256_file(predictions)},
        "ground_truth": {"path": str(ground_truth), "sha256": sha256_file(ground_truth)},
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
