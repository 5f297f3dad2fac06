"""Tests of the synthetic people generator (stacked_hourglass/data/sources/synthetic/)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.data import features
from stacked_hourglass.data.sources import synthetic

JS = joints.SYNTHETIC
K = JS.num_joints


@pytest.fixture(scope="module")
def train_examples():
    return list(synthetic.generate_examples("train", 60, seed=0))


@pytest.fixture(scope="module")
def scenes():
    return [synthetic.render_scene(synthetic.example_rng("valid", i, seed=3)) for i in range(60)]


def _same(a: features.PersonExample, b: features.PersonExample) -> bool:
    return (
        a.image_encoded == b.image_encoded
        and np.array_equal(a.keypoints, b.keypoints)
        and np.array_equal(a.keypoint_status, b.keypoint_status)
        and a.center == b.center
        and a.scale == b.scale
        and a.headbox == b.headbox
        and a.normalizer == b.normalizer
    )


def test_deterministic():
    first = list(synthetic.generate_examples("train", 4, seed=7))
    np.random.seed(123)  # a global RNG must not matter
    second = list(synthetic.generate_examples("train", 4, seed=7))
    assert all(_same(a, b) for a, b in zip(first, second, strict=True))
    # Random access gives the same example as iteration.
    assert _same(synthetic.make_example("train", 2, seed=7), first[2])


def test_splits_and_seeds_differ():
    train = next(synthetic.generate_examples("train", 1, seed=0))
    valid = next(synthetic.generate_examples("valid", 1, seed=0))
    other_seed = next(synthetic.generate_examples("train", 1, seed=1))
    assert train.image_encoded != valid.image_encoded
    assert train.image_encoded != other_seed.image_encoded
    assert not np.allclose(train.keypoints, valid.keypoints)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        synthetic.generate_examples("training", 1)
    with pytest.raises(ValueError):
        synthetic.generate_examples("train", -1)


def test_contract_fields(train_examples):
    for i, ex in enumerate(train_examples):
        assert ex.filename == f"synthetic_train_{i:06d}.jpg"
        assert (ex.dataset, ex.index, ex.person) == ("synthetic", i, 0)
        assert ex.keypoints.shape == (K, 2) and ex.keypoint_status.shape == (K,)
        assert set(np.unique(ex.keypoint_status)) <= {0, 1, 2}
        lo, hi = synthetic.SyntheticConfig().image_size_range
        assert lo <= ex.width <= hi and lo <= ex.height <= hi
        assert np.all(ex.keypoints[ex.keypoint_status == features.NOT_ANNOTATED] == 0.0)
    image = tf.io.decode_jpeg(train_examples[0].image_encoded).numpy()
    assert image.shape == (train_examples[0].height, train_examples[0].width, 3)


def test_serialize_round_trip(train_examples):
    ex = train_examples[0]
    parsed = features.parse_example_numpy(features.serialize_example(ex), K)
    np.testing.assert_allclose(parsed[features.KEYPOINTS], ex.keypoints, atol=1e-3)
    np.testing.assert_array_equal(parsed[features.KEYPOINT_STATUS], ex.keypoint_status)
    assert parsed[features.SOURCE_DATASET] == "synthetic"


def test_visible_joints_inside_image(train_examples):
    for ex in train_examples:
        vis = ex.keypoints[ex.keypoint_status == features.VISIBLE]
        assert np.all(vis >= -0.5)
        assert np.all(vis[:, 0] <= ex.width - 0.5) and np.all(vis[:, 1] <= ex.height - 0.5)


def test_status_mix(train_examples):
    status = np.stack([ex.keypoint_status for ex in train_examples])
    visible = np.mean(status == features.VISIBLE)
    # Mostly visible, but occlusion happens (occluders, distractors in front, borders).
    assert 0.7 < visible < 0.99
    assert np.any(status == features.OCCLUDED)


def test_headbox_and_normalizer(train_examples):
    top, neck = JS.index("head_top"), JS.index("upper_neck")
    for ex in train_examples:
        x1, y1, x2, y2 = ex.headbox
        assert x1 < x2 and y1 < y2
        assert ex.normalizer == pytest.approx(0.6 * math.hypot(x2 - x1, y2 - y1), rel=1e-9)
        for j in (top, neck):
            if ex.keypoint_status[j] == features.NOT_ANNOTATED:
                continue
            x, y = ex.keypoints[j]
            assert x1 - 1 <= x <= x2 + 1 and y1 - 1 <= y <= y2 + 1, (ex.filename, j)


def test_crop_square_contains_annotated_joints(train_examples):
    for ex in train_examples:
        half = 0.5 * features.PIXELS_PER_SCALE * ex.scale
        annotated = ex.keypoints[ex.keypoint_status != features.NOT_ANNOTATED]
        offset = np.abs(annotated - np.asarray(ex.center))
        assert np.all(offset <= half), ex.filename
        # ... with a margin, like MPII's adjusted scale: the person is not much smaller either.
        extent = np.max(annotated.max(axis=0) - annotated.min(axis=0))
        assert 0.3 * 2 * half < extent < 0.9 * 2 * half, ex.filename


def test_left_right_anatomy():
    idx = JS.index
    params = synthetic.PoseParams(facing_camera=True)
    body = synthetic.pose_body(params, 150.0, (100.0, 120.0))
    kp = body.keypoints
    # Facing the camera, the person's right side is on the image left.
    for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        assert kp[idx(f"r_{part}"), 0] < kp[idx(f"l_{part}"), 0], part
    # Upright: head above thorax above pelvis above knees above ankles (y grows downward).
    assert kp[idx("head_top"), 1] < kp[idx("upper_neck"), 1] < kp[idx("thorax"), 1]
    assert kp[idx("thorax"), 1] < kp[idx("pelvis"), 1] < kp[idx("r_knee"), 1]
    assert kp[idx("r_knee"), 1] < kp[idx("r_ankle"), 1]
    # Stature: head top to ankle is most of the height.
    assert 0.85 * 150 < kp[idx("r_ankle"), 1] - kp[idx("head_top"), 1] < 150

    away = synthetic.pose_body(
        synthetic.PoseParams(facing_camera=False), 150.0, (100.0, 120.0)
    ).keypoints
    assert away[idx("r_shoulder"), 0] > away[idx("l_shoulder"), 0]
    assert away[idx("r_hip"), 0] > away[idx("l_hip"), 0]


def test_sampled_poses_keep_left_right():
    idx = JS.index
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        params = synthetic.sample_pose(rng)
        if abs(params.rotation) > 10:
            continue
        kp = synthetic.pose_body(params, 100.0, (0.0, 0.0)).keypoints
        sign = 1.0 if params.facing_camera else -1.0
        for part in ("shoulder", "hip"):
            assert sign * (kp[idx(f"l_{part}"), 0] - kp[idx(f"r_{part}"), 0]) > 0
        checked += 1
    assert checked > 100


def test_body_drawn_at_visible_joints(scenes):
    """At visible joints the image differs from the background alone: the body is drawn there."""
    diffs = []
    for scene in scenes:
        image = scene.image.astype(np.float32)
        background = scene.background.astype(np.float32)
        h, w = image.shape[:2]
        for j in np.flatnonzero(scene.keypoint_status == features.VISIBLE):
            x, y = np.rint(scene.keypoints[j]).astype(int)
            ys, xs = slice(max(y - 1, 0), min(y + 2, h)), slice(max(x - 1, 0), min(x + 2, w))
            diffs.append(np.abs(image[ys, xs] - background[ys, xs]).mean())
    diffs = np.asarray(diffs)
    assert diffs.size > 500
    assert np.median(diffs) > 30
    assert np.mean(diffs > 8) > 0.9


def test_jpeg_matches_scene():
    scene = synthetic.render_scene(synthetic.example_rng("train", 5))
    ex = synthetic.make_example("train", 5)
    decoded = tf.io.decode_jpeg(ex.image_encoded).numpy().astype(np.float32)
    assert np.abs(decoded - scene.image).mean() < 6
    np.testing.assert_array_equal(ex.keypoints, scene.keypoints)


def test_throughput_smoke():
    examples = list(synthetic.generate_examples("valid", 50, seed=11))
    assert len(examples) == 50
    assert len({ex.filename for ex in examples}) == 50
