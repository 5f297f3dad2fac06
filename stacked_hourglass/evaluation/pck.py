"""PCK / PCKh: the evaluation math of the paper's tables (numpy, float64 throughout).

Conventions (see DESIGN.md, *Conventions*):
  * A joint is correct when ‖pred − gt‖ / normalizer ≤ threshold, distances in original-image
    pixels. Ties exactly at the threshold count as correct (`≤`, as MPII, HRNet, bearpaw and
    pose-hg all do).
  * Joints flagged missing (not annotated) are skipped: they count neither as correct nor as
    scored. Occluded joints are scored: visibility plays no part in PCK.
  * A non-finite prediction (NaN or ±inf, e.g. from a diverged network) of an annotated joint is
    scored and counts as a miss at every threshold, never as a hit; `non_finite_counts` says how
    many there were (the evaluation report prints a warning with them).
  * A table column ("Head", "Shoulder", ...) is the unweighted mean of its joints' per-joint
    values (HRNet's `0.5 * (PCKh[lsho] + PCKh[rsho])`, pose-hg's `displayPCK`). Pooling the group's
    counts instead gives a different value where the two joints have different numbers of
    annotations, and only the per-joint mean reproduces the published tables (Tompson's Wrist:
    76.74, pooled 76.73).
  * "Mean" pools correct / scored over `JointSet.mean_indices()` (HRNet's `jnt_ratio` weighting);
    "uMean" is the unweighted mean of those per-joint values (bearpaw's README "Mean").
  * "Mean@0.1" is the pooled Mean at threshold 0.1 exactly. HRNet's code labels as "Mean@0.1"
    the value at `np.arange(0, 0.5 + 0.01, 0.01)[11]` = 0.11; we do not reproduce that.

Float64 matters: several published normalised distances lie within 3e-6 of 0.5, so a float32
evaluation can flip a joint. Every function here converts its inputs to float64 first.

Coordinates are (x, y). The metric only uses differences, so any pixel origin works as long as
predictions and ground truth share it (the released MPII files are all 1-based).
"""

from __future__ import annotations

import numpy as np

from stacked_hourglass.joints import JointSet

# Ratio of the PCKh reference length to the head-box diagonal (MPII `util_get_head_size.m`:
# SC_BIAS = 0.6).
HEAD_SIZE_RATIO = 0.6

# The standard curve of the paper's figures: 0 to 0.5 in steps of 0.01.
DEFAULT_CURVE_THRESHOLDS = np.linspace(0.0, 0.5, 51)


def _as_float64(name: str, array, shape_tail: tuple[int, ...], ndim: int) -> np.ndarray:
    """Converts to float64 and checks the rank and trailing dimensions; ValueError otherwise."""
    out = np.asarray(array, dtype=np.float64)
    if out.ndim != ndim or out.shape[out.ndim - len(shape_tail) :] != shape_tail:
        expected = "[" + ", ".join(["N"] * (ndim - len(shape_tail)) + [str(d) for d in shape_tail])
        raise ValueError(f"{name} must have shape {expected}], got {out.shape}")
    return out


def _check_inputs(pred, gt, normalizer, missing):
    """Validates and converts the four PCK inputs; returns them as float64 / bool arrays."""
    gt = np.asarray(gt, dtype=np.float64)
    if gt.ndim != 3 or gt.shape[2] != 2:
        raise ValueError(f"gt must have shape [N, K, 2], got {gt.shape}")
    n, k, _ = gt.shape
    pred = _as_float64("pred", pred, (k, 2), 3)
    if pred.shape[0] != n:
        raise ValueError(f"pred has {pred.shape[0]} people but gt has {n}")
    normalizer = np.asarray(normalizer, dtype=np.float64)
    if normalizer.shape != (n,):
        raise ValueError(f"normalizer must have shape [{n}], got {normalizer.shape}")
    missing = np.asarray(missing)
    if missing.shape != (n, k):
        raise ValueError(f"missing must have shape [{n}, {k}], got {missing.shape}")
    missing = missing.astype(bool)
    scored_people = (~missing).any(axis=1)
    bad = scored_people & ~(np.isfinite(normalizer) & (normalizer > 0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"normalizer must be finite and > 0 for every person with a scored joint; "
            f"{int(bad.sum())} are not, first person {first}: {normalizer[first]!r}"
        )
    return pred, gt, normalizer, missing


def normalized_distances(pred, gt, normalizer, missing) -> np.ndarray:
    """Distance of each prediction to its ground truth, divided by the person's normalizer.

    Args:
        pred: [N, K, 2] predicted (x, y), original-image pixels.
        gt: [N, K, 2] ground-truth (x, y), same pixel convention as `pred`.
        normalizer: [N] reference length per person in pixels (head size or torso size).
        missing: [N, K] bool, True where the joint is not annotated.

    Returns:
        [N, K] float64 normalised distances; NaN where `missing`. A prediction that is NaN
        (a joint the method does not predict) gives NaN too, and ±inf gives inf: `pck` counts
        both as wrong.
    """
    pred, gt, normalizer, missing = _check_inputs(pred, gt, normalizer, missing)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.sqrt(np.sum((pred - gt) ** 2, axis=2)) / normalizer[:, None]
    dist[missing] = np.nan
    return dist


def pck(pred, gt, normalizer, missing, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint correctness at one threshold.

    Args:
        pred: [N, K, 2] predicted (x, y), original-image pixels.
        gt: [N, K, 2] ground-truth (x, y), same pixel convention as `pred`.
        normalizer: [N] reference length per person in pixels.
        missing: [N, K] bool, True where the joint is not annotated (skipped).
        threshold: a joint is correct when distance / normalizer ≤ threshold.

    Returns:
        (correct, counts): `correct` [N, K] bool, True where the joint is scored and within the
        threshold (False for missing joints); `counts` [K] int64, the number of scored
        (non-missing) instances of each joint.
    """
    dist = normalized_distances(pred, gt, normalizer, missing)
    scored = ~np.asarray(missing, dtype=bool)
    # NaN <= t is False, so a non-predicted (NaN) joint that is annotated counts as wrong.
    correct = (dist <= float(threshold)) & scored
    return correct, scored.sum(axis=0).astype(np.int64)


def non_finite_counts(pred, missing) -> dict[str, int]:
    """How many predictions hold NaN or ±inf (in x or y).

    Args:
        pred: [N, K, 2] predicted (x, y).
        missing: [N, K] bool, True where the joint is not annotated.

    Returns:
        {"people": people with at least one non-finite keypoint, "keypoints": non-finite
        keypoints, "scored": those of them on annotated joints (each a miss in the table)}.
    """
    bad = ~np.all(np.isfinite(np.asarray(pred, dtype=np.float64)), axis=-1)
    scored = bad & ~np.asarray(missing, dtype=bool)
    return {
        "people": int(bad.any(axis=-1).sum()),
        "keypoints": int(bad.sum()),
        "scored": int(scored.sum()),
    }


def head_size(headboxes) -> np.ndarray:
    """MPII PCKh reference length: 0.6 × the head-box diagonal (`util_get_head_size.m`).

    Args:
        headboxes: [N, 4] head rectangles (x1, y1, x2, y2) in pixels (any origin).

    Returns:
        [N] float64 head sizes in pixels.
    """
    boxes = _as_float64("headboxes", headboxes, (4,), 2)
    diagonal = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return HEAD_SIZE_RATIO * diagonal


def torso_size(gt, joint_set: JointSet) -> np.ndarray:
    """FLIC PCK reference length: distance between the joint set's two torso joints.

    pose-hg-train uses ‖r_shoulder − l_hip‖ (`JointSet.torso_joints`). Note that pose-hg-train's
    FLIC `normalize` field is measured on the person-centric labels, so use it (not this) when
    `gt` holds observer-centric labels whose left/right sides were swapped.

    Args:
        gt: [N, K, 2] ground-truth (x, y) in pixels.
        joint_set: a joint set with `torso_joints`.

    Returns:
        [N] float64 torso sizes in pixels.
    """
    if joint_set.torso_joints is None:
        raise ValueError(f"Joint set {joint_set.name} has no torso_joints")
    gt = _as_float64("gt", gt, (joint_set.num_joints, 2), 3)
    a, b = joint_set.indices(joint_set.torso_joints)
    return np.hypot(gt[:, a, 0] - gt[:, b, 0], gt[:, a, 1] - gt[:, b, 1])


def posehg_label_missing(gt) -> np.ndarray:
    """The "missing" rule of pose-hg's `calcDists`: a label with x ≤ 1 or y ≤ 1 is skipped.

    pose-hg (`th main.lua eval` in pose-hg-demo / pose-hg-train) does not read an annotation
    flag; it skips any 1-based label with x ≤ 1 or y ≤ 1. That covers the (0, 0) of
    not-annotated joints, and also annotated joints that lie on or beyond the top/left image
    border (54 in the MPII validation set). OR it with the annotation mask to reproduce pose-hg.

    Args:
        gt: [N, K, 2] 1-based (x, y) labels.

    Returns:
        [N, K] bool, True where pose-hg skips the label.
    """
    gt = np.asarray(gt, dtype=np.float64)
    return (gt[..., 0] <= 1) | (gt[..., 1] <= 1)


def _resolve_threshold(joint_set: JointSet, threshold) -> float:
    return float(joint_set.pck_threshold if threshold is None else threshold)


def _summaries(correct: np.ndarray, counts: np.ndarray, groups, mean_idx) -> dict[str, np.ndarray]:
    """Per-group values, pooled Mean and unweighted uMean from per-instance correctness.

    `correct` may carry leading threshold axes: [..., N, K]; `counts` is [K]. Every value is an
    array over those leading axes, in %; "_per_joint" is [..., K].
    """
    hits = correct.sum(axis=-2)  # [..., K]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(counts > 0, 100.0 * hits / np.maximum(counts, 1), np.nan)
    out = {}
    for column, idx in groups.items():
        # Per-joint mean, not pooled: HRNet / pose-hg, and what the published tables use.
        out[column] = _nanmean_last(per_joint[..., idx])
    total = counts[mean_idx].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["Mean"] = np.where(
            total > 0, 100.0 * hits[..., mean_idx].sum(axis=-1) / max(total, 1), np.nan
        )
    out["uMean"] = _nanmean_last(per_joint[..., mean_idx])
    out["_per_joint"] = per_joint
    return out


def _nanmean_last(values: np.ndarray):
    """Mean over the last axis ignoring NaN; NaN where every entry is NaN (no warning)."""
    defined = ~np.isnan(values)
    n = defined.sum(axis=-1)
    total = np.where(defined, values, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def pck_table(
    pred,
    gt,
    normalizer,
    missing,
    joint_set: JointSet,
    threshold: float | None = None,
    head: str = "head_top",
) -> dict:
    """The paper-style table: PCK per column, Mean, uMean, Mean@0.1 and per-joint values.

    Args:
        pred: [N, K, 2] predicted (x, y), original-image pixels.
        gt: [N, K, 2] ground-truth (x, y), same pixel convention as `pred`.
        normalizer: [N] reference length per person (head size for MPII, torso for FLIC).
        missing: [N, K] bool, True where the joint is not annotated (skipped).
        joint_set: names the columns (`pck_groups`) and the Mean joints (`mean_indices`).
        threshold: PCK threshold; None → `joint_set.pck_threshold` (0.5 MPII, 0.2 FLIC).
        head: MPII "Head" column: "head_top" (HRNet/mmpose/bearpaw) or "neck_and_top" (MPII's
            own evaluation and pose-hg: mean of upper_neck and head_top).

    Returns:
        A JSON-ready dict. Values are percentages (float; NaN where nothing was scored):
          * one key per column of `joint_set.pck_groups`, in table order (listed in "columns");
          * "Mean" (pooled over `mean_indices`), "uMean" (unweighted over the same joints),
            "Mean@0.1" (pooled, threshold exactly 0.1);
          * "per_joint": joint name → value; "counts": joint name → number scored;
          * metadata: "columns", "column_joints" (column → joint names), "threshold", "head",
            "dataset", "num_people",
            "num_joints_scored" (scored instances over the Mean joints).
    """
    threshold = _resolve_threshold(joint_set, threshold)
    groups = joint_set.group_indices(head=head)
    mean_idx = joint_set.mean_indices()
    dist = normalized_distances(pred, gt, normalizer, missing)
    scored = ~np.asarray(missing, dtype=bool)
    counts = scored.sum(axis=0)
    correct = np.stack([(dist <= threshold) & scored, (dist <= 0.1) & scored])
    summary = _summaries(correct, counts, groups, mean_idx)
    table = {column: float(summary[column][0]) for column in groups}
    table["Mean"] = float(summary["Mean"][0])
    table["uMean"] = float(summary["uMean"][0])
    table["Mean@0.1"] = float(summary["Mean"][1])
    table["per_joint"] = {
        name: float(v) for name, v in zip(joint_set.names, summary["_per_joint"][0], strict=True)
    }
    table["counts"] = {name: int(c) for name, c in zip(joint_set.names, counts, strict=True)}
    table["columns"] = list(groups)
    table["column_joints"] = {c: [joint_set.names[i] for i in idx] for c, idx in groups.items()}
    table["threshold"] = threshold
    table["head"] = head
    table["dataset"] = joint_set.name
    table["num_people"] = int(dist.shape[0])
    table["num_joints_scored"] = int(counts[mean_idx].sum())
    return table


def pck_curve(
    pred,
    gt,
    normalizer,
    missing,
    joint_set: JointSet,
    thresholds=DEFAULT_CURVE_THRESHOLDS,
    head: str = "head_top",
) -> dict[str, np.ndarray]:
    """PCK as a function of the threshold (the paper's PCKh curves).

    Args:
        pred, gt, normalizer, missing: as in `pck_table`.
        joint_set: names the columns and the Mean joints.
        thresholds: [T] thresholds (normalised distance), default 0, 0.01, ..., 0.5.
        head: as in `pck_table`.

    Returns:
        dict: "thresholds" → [T] float64, and each column of the table plus "Mean" and
        "uMean" → [T] float64 percentages.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    groups = joint_set.group_indices(head=head)
    dist = normalized_distances(pred, gt, normalizer, missing)
    scored = ~np.asarray(missing, dtype=bool)
    counts = scored.sum(axis=0)
    correct = (dist[None] <= thresholds[:, None, None]) & scored[None]
    summary = _summaries(correct, counts, groups, joint_set.mean_indices())
    curves = {"thresholds": thresholds}
    for key in [*groups, "Mean", "uMean"]:
        curves[key] = np.asarray(summary[key], dtype=np.float64)
    return curves


def format_table(table: dict) -> str:
    """Paper-like text table of a `pck_table` result, 2 decimals.

    Columns: the joint set's groups (MPII: Head Shoulder Elbow Wrist Hip Knee Ankle), then
    Mean and Mean@0.1; a second line gives uMean and the conventions used.
    """
    columns = [*table["columns"], "Mean", "Mean@0.1"]
    width = max(9, *(len(c) + 1 for c in columns))
    header = "".join(f"{c:>{width}}" for c in columns)
    values = "".join(f"{table[c]:>{width}.2f}" for c in columns)
    kind = "PCKh" if table["dataset"] in ("mpii", "synthetic") else "PCK"
    note = (
        f"{kind}@{table['threshold']:g}, {column_note(table, 'Head')}; Mean pooled over "
        f"{table['num_joints_scored']} scored joints; uMean {table['uMean']:.2f}; "
        f"Mean@0.1 at threshold 0.1"
    )
    return f"{header}\n{values}\n{note}"


def column_note(table: dict, column: str) -> str:
    """ "Head = head_top" / "Head = mean(upper_neck, head_top)": which joints a column averages."""
    names = table["column_joints"].get(column)
    if not names:
        return f"no {column} column"
    joined = names[0] if len(names) == 1 else f"mean({', '.join(names)})"
    return f"{column} = {joined}"
