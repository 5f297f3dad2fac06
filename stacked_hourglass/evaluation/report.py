"""The evaluation report: PCK table printed, and (optionally) JSON figures and PCK curves.

Shared by both evaluation modes (`released`: prediction files; `model_eval`: a network run over
TFRecords). Pure numpy + matplotlib: no TensorFlow.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from absl import flags

from stacked_hourglass.evaluation import formats, pck, plots
from stacked_hourglass.joints import JOINT_SET_NAMES, JointSet


def define_flags(fv: flags.FlagValues) -> None:
    """The report's flags, shared by both modes of `evaluate`: --output_dir, --dataset, --head,
    --threshold."""
    flags.DEFINE_string(
        "output_dir", None,
        "Where NAME.pck.json and NAME.pck_curves.png go; unset: print only.", flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_enum(
        "dataset",
        None,
        list(JOINT_SET_NAMES),
        "Joint set; default: the model's training dataset (mpii for --predictions).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "head",
        "head_top",
        ["head_top", "neck_and_top"],
        "MPII 'Head' column: head_top (HRNet/mmpose/bearpaw) or the mean of upper_neck and "
        "head_top (MPII's own evaluation, pose-hg).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "threshold", None, "PCK threshold; default the dataset's (0.5 PCKh, 0.2 FLIC PCK).",
        flag_values=fv,
    )  # fmt: skip


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
    convention as `gt`. Non-finite predictions (NaN/inf) count as misses (`pck`); when there are
    any, one warning line on stderr gives their counts (also in the figures,
    "non_finite_predictions").

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
    table = pck.pck_table(preds, gt, normalizer, missing, joint_set, threshold, head)
    curves = pck.pck_curve(preds, gt, normalizer, missing, joint_set, head=head)
    n, k = missing.shape
    head_note = pck.column_note(table, "Head")
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
    print(pck.format_table(table))
    non_finite = pck.non_finite_counts(preds, missing)
    if non_finite["keypoints"]:
        print(
            f"warning: {name}: {non_finite['people']} of {n} people have non-finite (NaN/inf) "
            f"predictions: {non_finite['keypoints']} of {n * k} keypoints, "
            f"{non_finite['scored']} of them annotated and counted as misses",
            file=sys.stderr,
        )
    figures = {
        "name": name,
        "sources": sources,
        "table": table,
        "curves": curves,
        "non_finite_predictions": non_finite,
    }
    if output_dir:
        out = Path(output_dir)
        json_path = formats.write_json(out / f"{name}.pck.json", figures)
        title = f"{name}: {kind}@{table['threshold']:g}, {pck.column_note(table, 'Head')}"
        png_path = plots.plot_pck_curves(curves, out / f"{name}.pck_curves.png", title)
        print(f"Wrote {json_path} and {png_path}")
    return figures
