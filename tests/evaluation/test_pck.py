"""The PCK / PCKh math on hand-computed cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from stacked_hourglass.evaluation import pck
from stacked_hourglass.joints import FLIC, MPII


def _mpii_people(n):
    """n people with every MPII joint at (100, 100) and a head size of 10 px."""
    gt = np.full((n, MPII.num_joints, 2), 100.0)
    return gt, gt.copy(), np.full(n, 10.0), np.zeros((n, MPII.num_joints), dtype=bool)


def test_tie_at_threshold_counts_as_correct():
    # One person, one joint: gt (0, 0), pred (3, 4) → distance 5 (a 3-4-5 triangle, exact in
    # binary), normaliser 10 → 0.5 exactly. "≤" makes it correct at 0.5; the next float below
    # 0.5 makes it wrong.
    gt = np.zeros((1, 1, 2))
    pred = np.array([[[3.0, 4.0]]])
    norm = np.array([10.0])
    missing = np.zeros((1, 1), dtype=bool)
    assert pck.normalized_distances(pred, gt, norm, missing)[0, 0] == 0.5
    correct, counts = pck.pck(pred, gt, norm, missing, 0.5)
    assert correct[0, 0] and counts.tolist() == [1]
    correct, _ = pck.pck(pred, gt, norm, missing, np.nextafter(0.5, 0.0))
    assert not correct[0, 0]


def test_missing_joints_are_skipped_and_nan():
    # Two people, two joints. Person 0: joint 0 exact, joint 1 missing (prediction far off, but
    # it must not count). Person 1: joint 0 off by 20 px of a 10 px normaliser (2.0 → wrong),
    # joint 1 exact. Counts: joint 0 scored twice, joint 1 once.
    gt = np.zeros((2, 2, 2))
    pred = np.array([[[0.0, 0.0], [999.0, 999.0]], [[20.0, 0.0], [0.0, 0.0]]])
    norm = np.array([10.0, 10.0])
    missing = np.array([[False, True], [False, False]])
    dist = pck.normalized_distances(pred, gt, norm, missing)
    assert dist[0, 0] == 0.0 and math.isnan(dist[0, 1]) and dist[1, 0] == 2.0
    correct, counts = pck.pck(pred, gt, norm, missing, 0.5)
    assert correct.tolist() == [[True, False], [False, True]]
    assert counts.tolist() == [2, 1]


def test_occluded_joints_are_scored_and_nan_prediction_is_wrong():
    # The metric has no visibility input: every non-missing joint is scored. A NaN prediction
    # (a joint a method does not predict) is scored as wrong, not skipped.
    gt, pred, norm, missing = _mpii_people(1)
    pred[0, MPII.index("head_top")] = np.nan
    correct, counts = pck.pck(pred, gt, norm, missing, 0.5)
    assert counts.sum() == MPII.num_joints
    assert correct.sum() == MPII.num_joints - 1


def test_group_with_all_joints_missing_is_nan_without_warning():
    gt, pred, norm, missing = _mpii_people(3)
    missing[:, MPII.indices(["l_ankle", "r_ankle"])] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = pck.pck_table(pred, gt, norm, missing, MPII)
        curves = pck.pck_curve(pred, gt, norm, missing, MPII)
    assert math.isnan(table["Ankle"])
    assert math.isnan(table["per_joint"]["l_ankle"])
    assert table["Knee"] == 100.0 and table["Mean"] == 100.0 and table["uMean"] == 100.0
    assert np.isnan(curves["Ankle"]).all()
    # Everything missing: every value NaN, still no warning or exception.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = pck.pck_table(pred, gt, norm, np.ones_like(missing), MPII)
    assert math.isnan(empty["Mean"]) and math.isnan(empty["uMean"]) and math.isnan(empty["Head"])
    assert "nan" in pck.format_table(empty)


def test_pooled_mean_versus_unweighted_mean():
    # Person 0: all 16 joints exact. Person 1: every Mean joint missing except r_ankle, which is
    # 20 px off (distance 2.0 → wrong).
    # Per joint: r_ankle 1/2 = 50 %, the other 13 Mean joints 1/1 = 100 %.
    # Mean (pooled): 14 correct / 15 scored = 93.333... %.
    # uMean (unweighted): (50 + 13 × 100) / 14 = 96.428571... %.
    # Pelvis/thorax of person 1 are scored but wrong: they must not enter either mean.
    gt, pred, norm, missing = _mpii_people(2)
    mean_joints = MPII.mean_indices()
    missing[1, mean_joints] = True
    missing[1, MPII.index("r_ankle")] = False
    pred[1, MPII.index("r_ankle"), 0] += 20.0
    pred[1, MPII.indices(["pelvis", "thorax"]), 0] += 20.0
    table = pck.pck_table(pred, gt, norm, missing, MPII)
    assert table["per_joint"]["r_ankle"] == 50.0
    assert table["per_joint"]["pelvis"] == 50.0
    assert table["Mean"] == pytest.approx(100.0 * 14 / 15, abs=1e-12)
    assert table["uMean"] == pytest.approx((50.0 + 13 * 100.0) / 14, abs=1e-12)
    assert table["num_joints_scored"] == 15
    # A column averages its joints' per-joint values (not pooled): Ankle = (50 + 100) / 2 = 75
    # (pooled would be 2 / 3 = 66.7 %).
    assert table["Ankle"] == 75.0


def test_head_column_conventions():
    # head_top correct, upper_neck wrong: "head_top" Head = 100, "neck_and_top" Head = 50.
    gt, pred, norm, missing = _mpii_people(1)
    pred[0, MPII.index("upper_neck"), 1] += 30.0
    assert pck.pck_table(pred, gt, norm, missing, MPII)["Head"] == 100.0
    table = pck.pck_table(pred, gt, norm, missing, MPII, head="neck_and_top")
    assert table["Head"] == 50.0
    assert table["column_joints"]["Head"] == ["upper_neck", "head_top"]
    with pytest.raises(ValueError, match="head must be"):
        pck.pck_table(pred, gt, norm, missing, MPII, head="neck")


def test_mean_at_0_1_uses_exactly_0_1():
    # Distance 1 px of a 10 px normaliser = 0.1 exactly (→ correct at 0.1); 1.05 px = 0.105
    # (→ wrong at 0.1, though HRNet's "Mean@0.1" at 0.11 would count it).
    gt, pred, norm, missing = _mpii_people(2)
    pred[0, :, 0] += 1.0
    pred[1, :, 0] += 1.05
    table = pck.pck_table(pred, gt, norm, missing, MPII)
    assert table["Mean@0.1"] == 50.0 and table["Mean"] == 100.0
    assert pck.pck_table(pred, gt, norm, missing, MPII, threshold=0.11)["Mean"] == 100.0


def test_head_size_formula():
    # Box (10, 20)–(40, 60): sides 30 × 40, diagonal 50, head size 0.6 × 50 = 30. Corners given
    # in either order give the same size.
    boxes = np.array([[10.0, 20.0, 40.0, 60.0], [40.0, 60.0, 10.0, 20.0]])
    np.testing.assert_allclose(pck.head_size(boxes), [30.0, 30.0], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="headboxes"):
        pck.head_size(np.zeros((2, 3)))


def test_torso_size_uses_r_shoulder_and_l_hip():
    # r_shoulder (10, 10), l_hip (13, 14): ‖(3, 4)‖ = 5. Other joints are irrelevant.
    gt = np.full((1, FLIC.num_joints, 2), 77.0)
    gt[0, FLIC.index("r_shoulder")] = (10.0, 10.0)
    gt[0, FLIC.index("l_hip")] = (13.0, 14.0)
    np.testing.assert_allclose(pck.torso_size(gt, FLIC), [5.0])
    with pytest.raises(ValueError, match="torso_joints"):
        pck.torso_size(np.zeros((1, 16, 2)), MPII)


def test_flic_table_uses_threshold_0_2():
    # torso 100 px; errors of 20 px (0.2, tie → correct) on every joint of person 0, 21 px on
    # person 1 → 50 % everywhere at the default FLIC threshold 0.2.
    gt = np.zeros((2, FLIC.num_joints, 2))
    pred = gt.copy()
    pred[0, :, 1] = 20.0
    pred[1, :, 1] = 21.0
    table = pck.pck_table(pred, gt, np.full(2, 100.0), np.zeros((2, 11), bool), FLIC)
    assert table["threshold"] == 0.2
    assert table["columns"] == ["Head", "Shoulder", "Elbow", "Wrist", "Hip"]
    assert table["Elbow"] == 50.0 and table["Mean"] == 50.0
    assert "PCK@0.2" in pck.format_table(table)


def test_pck_curve_is_monotone_and_matches_table():
    rng = np.random.default_rng(0)
    gt, pred, norm, missing = _mpii_people(50)
    pred += rng.normal(scale=4.0, size=pred.shape)
    missing[rng.random(missing.shape) < 0.1] = True
    curves = pck.pck_curve(pred, gt, norm, missing, MPII)
    assert curves["thresholds"].shape == (51,) and curves["thresholds"][-1] == 0.5
    table = pck.pck_table(pred, gt, norm, missing, MPII)
    for column in [*table["columns"], "Mean", "uMean"]:
        assert np.all(np.diff(curves[column]) >= 0)
        assert curves[column][-1] == pytest.approx(table[column], abs=1e-12)
    assert curves["Mean"][10] == pytest.approx(table["Mean@0.1"], abs=1e-12)


def test_input_validation_names_the_problem():
    gt, pred, norm, missing = _mpii_people(2)
    with pytest.raises(ValueError, match="pred has 1 people but gt has 2"):
        pck.pck(pred[:1], gt, norm, missing, 0.5)
    with pytest.raises(ValueError, match="normalizer must be finite and > 0"):
        pck.pck(pred, gt, np.array([10.0, 0.0]), missing, 0.5)


def test_format_table_layout():
    gt, pred, norm, missing = _mpii_people(1)
    text = pck.format_table(pck.pck_table(pred, gt, norm, missing, MPII))
    header, values, note = text.splitlines()
    assert header.split() == [
        "Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"
    ]  # fmt: skip
    assert values.split() == ["100.00"] * 9
    assert "PCKh@0.5" in note and "Head = head_top" in note


def test_posehg_label_filter():
    # pose-hg skips any label with x ≤ 1 or y ≤ 1 (1-based), not only the (0, 0) of missing ones.
    gt = np.array([[[0.0, 0.0], [1.0, 50.0], [50.0, 1.0], [1.5, 1.5], [30.0, -2.0]]])
    assert pck.posehg_label_missing(gt).tolist() == [[True, True, True, False, True]]


def test_non_finite_predictions_are_misses_at_every_threshold():
    # Person 0: head_top NaN, r_ankle +inf in x; person 1: l_wrist -inf in y, and neck NaN on a
    # joint that is not annotated (skipped, not a miss). Everything else is exact.
    gt, pred, norm, missing = _mpii_people(2)
    pred[0, MPII.index("head_top")] = np.nan
    pred[0, MPII.index("r_ankle"), 0] = np.inf
    pred[1, MPII.index("l_wrist"), 1] = -np.inf
    pred[1, MPII.index("upper_neck")] = np.nan
    missing[1, MPII.index("upper_neck")] = True
    assert pck.non_finite_counts(pred, missing) == {"people": 2, "keypoints": 4, "scored": 3}
    correct, counts = pck.pck(pred, gt, norm, missing, 0.5)
    assert counts.sum() == 2 * MPII.num_joints - 1 and correct.sum() == counts.sum() - 3
    # The same joints finite and far away score the same, in the table and along the curve.
    far = np.where(np.isfinite(pred), pred, 1e6)
    table = pck.pck_table(pred, gt, norm, missing, MPII)
    assert table == pck.pck_table(far, gt, norm, missing, MPII)
    curve, far_curve = (pck.pck_curve(p, gt, norm, missing, MPII) for p in (pred, far))
    for key, values in curve.items():
        np.testing.assert_array_equal(values, far_curve[key])
    assert np.all(curve["Mean"] < 100.0)  # not one threshold, even 0.5, counts them as hits
    assert pck.non_finite_counts(gt, missing) == {"people": 0, "keypoints": 0, "scored": 0}
