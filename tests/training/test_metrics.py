"""The training-time heatmap PCK (pose-hg-train's accuracy) on hand-placed Gaussians."""

from __future__ import annotations

import numpy as np
import pytest

from stacked_hourglass.data.codec import render_heatmaps
from stacked_hourglass.training.metrics import HeatmapPCK

SIZE = 16  # heatmap side: a joint is correct within threshold x 16 / 10 heatmap pixels


def _heatmaps(points, valid):
    return render_heatmaps(np.asarray(points, np.float32), np.asarray(valid), SIZE)


def test_heatmap_pck_counts_annotated_joints_within_the_threshold():
    # Sample 0: joint 0 exact, joint 1 one pixel off (1 / 1.6 = 0.625 > 0.5: wrong), joint 2
    # not annotated (all-zero target: not counted, wherever it is predicted).
    # Sample 1: every joint exact, joint 2 annotated. Correct 1 + 3 of 2 + 3 = 80 %.
    true = _heatmaps([[[5, 5], [10, 3], [0, 0]], [[2, 2], [7, 12], [14, 9]]], [[1, 1, 0], [1] * 3])
    pred = _heatmaps([[[5, 5], [11, 3], [8, 8]], [[2, 2], [7, 12], [14, 9]]], [[1, 1, 1], [1] * 3])
    metric = HeatmapPCK()
    metric.update_state(true[:1], pred[:1])
    assert float(metric.result()) == pytest.approx(0.5)
    metric.update_state(true[1:], pred[1:])
    assert float(metric.result()) == pytest.approx(0.8)
    # A looser threshold (0.7 x 1.6 = 1.12 px) accepts the one-pixel miss.
    loose = HeatmapPCK(threshold=0.7)
    loose.update_state(true, pred)
    assert float(loose.result()) == pytest.approx(1.0)
    metric.reset_state()
    assert float(metric.result()) == 0.0  # nothing counted: 0, not NaN


def test_heatmap_pck_config_round_trip():
    metric = HeatmapPCK(threshold=0.3, name="acc")
    config = metric.get_config()
    assert config["threshold"] == 0.3 and config["name"] == "acc"
    assert HeatmapPCK.from_config(config).threshold == 0.3
