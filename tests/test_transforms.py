"""Crop geometry, augmentation and heatmap encode/decode, against hand-computed cases."""

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.data import features, geometry, pipeline


def test_crop_matrix_hand_computed():
    # Window of side 200 around (100, 50) onto a 200 crop: the identity up to a shift.
    m = geometry.crop_matrix([100.0, 50.0], 1.0, 200).numpy()
    pts = geometry.apply_affine(m, [[100.0, 50.0], [0.0, -50.0], [199.0, 149.0]]).numpy()
    # The centre lands between the two middle pixels (99.5); the window's top-left edge
    # (-0.5, -50.5) at the crop's edge.
    np.testing.assert_allclose(pts, [[99.5, 99.5], [-0.5, -0.5], [198.5, 198.5]], atol=1e-5)
    # Side 400 onto 100: a zoom of 1/4.
    m = geometry.crop_matrix([200.0, 200.0], 2.0, 100).numpy()
    pts = geometry.apply_affine(m, [[200.0, 200.0], [240.0, 200.0]]).numpy()
    np.testing.assert_allclose(pts, [[49.5, 49.5], [59.5, 49.5]], atol=1e-5)


def test_crop_matrix_rotation_and_flip():
    # +90°: a point right of the centre goes up in the crop (anticlockwise as displayed).
    m = geometry.crop_matrix([0.0, 0.0], 1.0, 200, rotation=90.0).numpy()
    np.testing.assert_allclose(
        geometry.apply_affine(m, [[10.0, 0.0]]).numpy(), [[99.5, 89.5]], atol=1e-4
    )
    # Flip mirrors about the crop centre: x -> S - 1 - x.
    plain = geometry.crop_matrix([30.0, 40.0], 0.5, 64).numpy()
    flipped = geometry.crop_matrix([30.0, 40.0], 0.5, 64, flip=True).numpy()
    p = geometry.apply_affine(plain, [[35.0, 47.0]]).numpy()
    q = geometry.apply_affine(flipped, [[35.0, 47.0]]).numpy()
    np.testing.assert_allclose(q, [[63 - p[0, 0], p[0, 1]]], atol=1e-4)
    # Inverse.
    back = geometry.apply_affine(geometry.invert_affine(flipped), q).numpy()
    np.testing.assert_allclose(back, [[35.0, 47.0]], atol=1e-4)


def test_warp_image_moves_a_pixel_where_the_matrix_says():
    image = np.zeros((60, 80, 3), np.float32)
    image[20, 50] = 1.0  # pixel (x=50, y=20)
    m = geometry.crop_matrix([40.0, 30.0], 0.32, 64, rotation=30.0, flip=True)  # side 64
    crop = geometry.warp_image(image, m, 64).numpy()
    expected = geometry.apply_affine(m, [[50.0, 20.0]]).numpy()[0]
    y, x = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    assert abs(x - expected[0]) <= 0.5 and abs(y - expected[1]) <= 0.5


def test_heatmap_resolution_mapping():
    # The crop pixel block [0, 4) at 256 is heatmap pixel 0 at 64.
    np.testing.assert_allclose(geometry.crop_to_heatmap([[1.5, 253.5]], 256, 64), [[0.0, 63.0]])
    np.testing.assert_allclose(geometry.heatmap_to_crop([[0.0, 63.0]], 256, 64), [[1.5, 253.5]])


def test_render_heatmaps():
    hm = geometry.render_heatmaps(
        [[3.0, 4.0], [3.5, 4.0], [1.0, 1.0], [20.0, 2.0]], [True, True, False, True], 8, sigma=1.0
    ).numpy()
    assert hm.shape == (8, 8, 4)
    assert hm[4, 3, 0] == pytest.approx(1.0)  # peak 1 on a pixel centre, [y, x]
    assert hm[4, 4, 0] == pytest.approx(np.exp(-0.5))
    assert hm[5, 4, 0] == pytest.approx(np.exp(-1.0))
    assert hm[4, 3, 1] == pytest.approx(hm[4, 4, 1]) == pytest.approx(np.exp(-0.125))
    assert not hm[..., 2].any()  # not annotated
    assert not hm[..., 3].any()  # outside the heatmap


@pytest.mark.parametrize("x, y", [(10.3, 7.8), (10.0, 7.0), (5.49, 12.51), (30.9, 0.2)])
def test_decode_subpixel_gaussian_within_quarter_pixel(x, y):
    hm = geometry.render_heatmaps([[x, y]], [True], 32)[None]
    coords, scores = geometry.decode_heatmaps(hm)
    assert np.abs(coords.numpy()[0, 0] - [x, y]).max() <= 0.25 + 1e-6
    assert 0.6 < scores.numpy()[0, 0] <= 1.0


def test_decode_quarter_shift_hand_computed():
    hm = np.zeros((1, 5, 5, 1), np.float32)
    hm[0, 2, 2, 0] = 1.0
    hm[0, 2, 3, 0] = 0.5  # right neighbour higher -> x + 0.25
    hm[0, 1, 2, 0] = 0.2  # upper neighbour higher -> y - 0.25
    coords, scores = geometry.decode_heatmaps(hm)
    np.testing.assert_allclose(coords.numpy()[0, 0], [2.25, 1.75])
    assert scores.numpy()[0, 0] == 1.0
    # On the border there is no neighbour: no shift.
    hm = np.zeros((1, 5, 5, 1), np.float32)
    hm[0, 0, 4, 0] = 1.0
    hm[0, 0, 3, 0] = 0.9
    np.testing.assert_allclose(geometry.decode_heatmaps(hm)[0].numpy()[0, 0], [4.0, 0.0])


def _record(keypoints, status, center=(120.0, 100.0), scale=0.32):
    image = tf.io.encode_jpeg(tf.zeros([200, 240, 3], tf.uint8)).numpy()
    example = features.PersonExample(
        image_encoded=image,
        filename="x.jpg",
        height=200,
        width=240,
        center=center,
        scale=scale,
        keypoints=np.asarray(keypoints, np.float64),
        keypoint_status=np.asarray(status, np.int64),
        normalizer=10.0,
        headbox=None,
        dataset="mpii",
        index=0,
        person=0,
    )
    return features.serialize_example(example)


def _mpii_keypoints(rng):
    return np.column_stack([rng.uniform(100, 140, 16), rng.uniform(80, 120, 16)])


def _decode_back(config, record, seed):
    """Crop + augment + heatmaps, then decode + inverse, all with the sample's parameters."""
    image, heatmaps = pipeline.make_training_example(record, seed, config)
    aug_seed, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    matrix, mirrored = pipeline.augmentation_matrix(record, aug_seed, config)
    coords, _ = geometry.decode_heatmaps(heatmaps[None])
    back = geometry.heatmap_to_original(coords, matrix[None], config.input_size, 64)[0]
    perm = tf.constant(joints.MPII.flip_permutation())
    # Channel j of a mirrored sample holds joint perm[j]: swap back before comparing.
    back = tf.where(mirrored, tf.gather(back, perm), back)
    return image, heatmaps, back, mirrored


def test_augmented_heatmaps_decode_back_within_half_pixel():
    """crop + rotation + scale + flip -> Gaussian -> argmax/quarter shift -> inverse crop."""
    rng = np.random.default_rng(0)
    config = pipeline.DataConfig(dataset="mpii", input_size=256, heatmap_size=64, rotation_prob=1.0)
    errors = []
    mirrored_seen = set()
    for i in range(12):
        kps = _mpii_keypoints(rng)
        serialized = _record(kps, np.full(16, 2))
        record = features.parse_example(tf.constant(serialized), 16)
        _, heatmaps, back, mirrored = _decode_back(config, record, tf.constant([i, 7]))
        assert heatmaps.shape == (64, 64, 16)
        mirrored_seen.add(bool(mirrored))
        errors.append(np.linalg.norm(back.numpy() - kps, axis=-1).max())
    # Side 200·0.32 = 64 original px over 64 heatmap px, × up to 1.25 scale jitter.
    assert max(errors) < 0.5, errors
    assert mirrored_seen == {True, False}


def test_same_results_inside_tf_data():
    """Eager and tf.data (graph) runs of the same sample agree."""
    rng = np.random.default_rng(1)
    serialized = _record(_mpii_keypoints(rng), np.full(16, 2))
    config = pipeline.DataConfig(dataset="mpii", input_size=128, heatmap_size=32, rotation_prob=1.0)
    seed = tf.constant([3, 4], tf.int64)
    eager = pipeline.make_training_example(features.parse_example(serialized, 16), seed, config)
    ds = tf.data.Dataset.from_tensors((serialized, seed)).map(
        lambda s, sd: pipeline.make_training_example(features.parse_example(s, 16), sd, config)
    )
    graph = next(iter(ds))
    for a, b in zip(eager, graph, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_flip_swaps_left_and_right_joints():
    mpii = joints.MPII
    kps = np.zeros((16, 2))
    kps[:, 1] = 100.0
    kps[:, 0] = 120.0
    kps[mpii.index("l_wrist")] = [130.0, 90.0]  # the person's left wrist is on the image right
    kps[mpii.index("r_wrist")] = [105.0, 110.0]
    status = np.zeros(16, np.int64)
    status[[mpii.index("l_wrist"), mpii.index("r_wrist")]] = 2
    record = features.parse_example(tf.constant(_record(kps, status)), 16)
    config = pipeline.DataConfig(
        dataset="mpii", input_size=256, heatmap_size=64, rotation=0, scale=0, color_jitter=0
    )
    peaks = {}
    for i in range(20):
        seed = tf.constant([i, 0])
        _, heatmaps = pipeline.make_training_example(record, seed, config)
        aug_seed, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        mirrored = bool(geometry.sample_augmentation(aug_seed, 0, 0, 0, True)[2])
        coords, _ = geometry.decode_heatmaps(heatmaps[None])
        peaks[mirrored] = coords.numpy()[0]
    assert set(peaks) == {True, False}
    lw, rw = mpii.index("l_wrist"), mpii.index("r_wrist")
    plain, flipped = peaks[False], peaks[True]
    # Mirrored: the l_wrist channel now holds the old right wrist, reflected (x -> 63 - x);
    # each decode is within 0.25 px of the truth.
    np.testing.assert_allclose(flipped[lw], [63 - plain[rw][0], plain[rw][1]], atol=0.51)
    np.testing.assert_allclose(flipped[rw], [63 - plain[lw][0], plain[lw][1]], atol=0.51)
    # A mirrored camera-facing person still faces the camera: their left stays on the image right.
    assert flipped[lw][0] > flipped[rw][0] and plain[lw][0] > plain[rw][0]


def test_flip_heatmaps_undoes_a_mirror():
    hm = tf.random.stateless_uniform([1, 8, 8, 16], seed=[1, 2])
    perm = joints.MPII.flip_permutation()
    twice = geometry.flip_heatmaps(geometry.flip_heatmaps(hm, perm), perm)
    np.testing.assert_allclose(twice.numpy(), hm.numpy())


def test_color_jitter_range():
    image = tf.fill([4, 4, 3], 0.5)
    out = geometry.color_jitter(image, tf.constant([1, 2]), 0.4).numpy()
    assert np.all(out >= 0.5 * 0.6 - 1e-6) and np.all(out <= 0.5 * 1.4 + 1e-6)
    assert len(np.unique(out[0, 0])) == 3
