"""Crop geometry and augmentation, against hand-computed cases."""

import numpy as np
import tensorflow as tf

from stacked_hourglass.data import geometry


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


def test_crop_matrix_batched_matches_one_at_a_time():
    centers = [[30.0, 40.0], [100.0, 20.0]]
    scales = [0.5, 1.5]
    rotations = [10.0, -45.0]
    flips = [False, True]
    batched = geometry.crop_matrix(centers, scales, 64, rotation=rotations, flip=flips).numpy()
    assert batched.shape == (2, 3, 3)
    for i in range(2):
        single = geometry.crop_matrix(centers[i], scales[i], 64, rotations[i], flips[i]).numpy()
        np.testing.assert_allclose(batched[i], single, atol=1e-6)
    np.testing.assert_allclose(batched[:, 2], [[0.0, 0.0, 1.0]] * 2)


def test_warp_image_moves_a_pixel_where_the_matrix_says():
    image = np.zeros((60, 80, 3), np.float32)
    image[20, 50] = 1.0  # pixel (x=50, y=20)
    m = geometry.crop_matrix([40.0, 30.0], 0.32, 64, rotation=30.0, flip=True)  # side 64
    crop = geometry.warp_image(image, m, 64).numpy()
    expected = geometry.apply_affine(m, [[50.0, 20.0]]).numpy()[0]
    y, x = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    assert abs(x - expected[0]) <= 0.5 and abs(y - expected[1]) <= 0.5


def test_warp_image_identity_and_outside_is_zero():
    image = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    # Side 8 around the image centre onto an 8 crop: every pixel onto itself.
    m = geometry.crop_matrix([3.5, 3.5], 8 / 200, 8)
    np.testing.assert_allclose(geometry.warp_image(image, m, 8).numpy(), image, atol=1e-5)
    # A window far from the image samples nothing.
    far = geometry.crop_matrix([500.0, 500.0], 8 / 200, 8)
    assert not geometry.warp_image(image, far, 8).numpy().any()


def test_sample_augmentation_ranges_and_determinism():
    angles, factors, flips = [], [], []
    for i in range(64):
        angle, factor, mirrored = (
            t.numpy() for t in geometry.sample_augmentation(tf.constant([i, 1]), 30.0, 0.5, 0.25)
        )
        angles.append(angle)
        factors.append(factor)
        flips.append(bool(mirrored))
    assert np.all(np.abs(angles) <= 30.0) and 0 < np.count_nonzero(angles) < 64
    assert np.all((np.array(factors) >= 0.75) & (np.array(factors) <= 1.25))
    assert set(flips) == {True, False}
    same = geometry.sample_augmentation(tf.constant([5, 1]), 30.0, 0.5, 0.25)
    assert [t.numpy() for t in same] == [angles[5], factors[5], flips[5]]
    # Everything off: the identity augmentation.
    angle, factor, mirrored = geometry.sample_augmentation(
        tf.constant([3, 3]), 0.0, 0.0, 0.0, False
    )
    assert (float(angle), float(factor), bool(mirrored)) == (0.0, 1.0, False)


def test_color_jitter_range():
    image = tf.fill([4, 4, 3], 0.5)
    out = geometry.color_jitter(image, tf.constant([1, 2]), 0.4).numpy()
    assert np.all(out >= 0.5 * 0.6 - 1e-6) and np.all(out <= 0.5 * 1.4 + 1e-6)
    assert len(np.unique(out[0, 0])) == 3
