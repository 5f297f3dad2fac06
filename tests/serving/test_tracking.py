"""`serving.tracking`: the tracking box, IoU, greedy matching and per-person smoothing."""

from __future__ import annotations

import numpy as np

from stacked_hourglass.serving import tracking


def test_keypoint_box_frames_the_confident_joints_enlarged():
    keypoints = [[10, 20], [30, 60], [100, 100]]
    scores = [0.5, 0.9, 0.1]  # the third is left out
    # Centre (20, 40), half sizes (10, 20) x 1.25.
    box = tracking.keypoint_box(keypoints, scores, min_score=0.2)
    np.testing.assert_allclose(box, [7.5, 15.0, 32.5, 65.0])
    assert tracking.keypoint_box(keypoints, [0.9, 0.1, 0.1], 0.2) is None  # one joint
    assert tracking.keypoint_box([[5, 0], [5, 9]], [1, 1], 0.2) is None  # no width


def test_iou_and_person_size():
    np.testing.assert_allclose(tracking.iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]]),
                               [[50 / 150, 0.0]])  # fmt: skip
    sizes = tracking.person_size([[[0, 0], [10, 30]], [[5, 5], [5, 5]]])
    np.testing.assert_allclose(sizes, [20.0, 1.0])  # (10 + 30) / 2; a point: at least 1


def test_greedy_matching_takes_the_best_overlap_first():
    previous = [[0, 0, 10, 10], [20, 0, 30, 10]]
    current = [[21, 0, 31, 10], [1, 0, 11, 10], [100, 0, 110, 10]]
    assert sorted(tracking.match_boxes(previous, current)) == [(0, 1), (1, 0)]
    # One box overlapping two: the larger overlap wins, the other stays unmatched.
    assert tracking.match_boxes([[0, 0, 10, 10], [3, 0, 13, 10]], [[1, 0, 11, 10]]) == [(0, 0)]
    assert tracking.match_boxes(np.zeros((0, 4)), current) == []


def test_smoother_keeps_ids_across_frames_and_resets():
    smoother = tracking.PoseSmoother(None)  # no smoothing: the keypoints come back as they are
    keypoints = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    out, ids = smoother.update(0.0, [[0, 0, 10, 10], [50, 0, 60, 10]], keypoints)
    np.testing.assert_array_equal(out, keypoints)
    assert ids == [0, 1]
    # Listed the other way round and moved a little: the same people; a third one is new.
    boxes = [[52, 0, 62, 10], [1, 0, 11, 10], [200, 0, 210, 10]]
    _, ids = smoother.update(0.04, boxes, np.zeros((3, 3, 2)))
    assert ids == [1, 0, 2]
    smoother.reset()
    _, ids = smoother.update(0.08, boxes[:1], np.zeros((1, 3, 2)))
    assert ids == [3]


def test_smoother_filters_each_person():
    smoother = tracking.PoseSmoother((1.0, 0.0, 1.0))
    first = np.array([[[0.0, 0.0], [10.0, 10.0]]])
    smoother.update(0.0, [[0, 0, 10, 10]], first)
    out, _ = smoother.update(0.1, [[0, 0, 10, 10]], first + 1.0)
    a = 2 * np.pi * 0.1 / (1 + 2 * np.pi * 0.1)  # beta 0: a fixed 1 Hz low-pass
    np.testing.assert_allclose(out, first + a, rtol=1e-6)
