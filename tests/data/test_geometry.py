"""Crop geometry and augmentation, against hand-computed cases."""

import numpy as np
import pytest
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


# --- Antialiased cropping: decode only the window, average down, one warp ----------------------


def _checkerboard(height, width):
    """uint8 [H, W, 3]: 1-pixel black and white squares."""
    board = np.add.outer(np.arange(height), np.arange(width)) % 2
    return np.repeat((board * 255).astype(np.uint8)[..., None], 3, axis=-1)


def _blob(height, width, x, y, sigma):
    """uint8 [H, W, 3]: a Gaussian spot of `sigma` pixels centred on (x, y)."""
    yy, xx = np.mgrid[0:height, 0:width]
    spot = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2.0 * sigma**2))
    return np.repeat(np.rint(255 * spot).astype(np.uint8)[..., None], 3, axis=-1)


def _centroid(crop):
    """Intensity-weighted (x, y) of channel 0 of a [S, S, C] crop, above a tenth of its peak
    (JPEG's faint ringing far from a spot would pull the centroid otherwise)."""
    weights = np.maximum(crop[..., 0] - 0.1 * crop[..., 0].max(), 0.0)
    weights /= weights.sum()
    yy, xx = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]]
    return np.array([np.sum(weights * xx), np.sum(weights * yy)])


def test_scale_translate_and_shrink_factor_hand_computed():
    m = geometry.scale_translate(2.0, 3.0, -1.0, 0.5).numpy()
    np.testing.assert_allclose(m, [[2, 0, -1], [0, 3, 0.5], [0, 0, 1]])
    np.testing.assert_allclose(geometry.shrink_factor(m), 1 / np.sqrt(6.0), rtol=1e-6)
    # Crop side 200 * 2 = 400 source pixels onto 100: 4 source pixels per crop pixel, whatever
    # the rotation and flip.
    m = geometry.crop_matrix(
        [[50.0, 60.0]] * 3, [2.0] * 3, 100, [0.0, 30.0, -90.0], [False, True, False]
    )
    np.testing.assert_allclose(geometry.shrink_factor(m).numpy(), [4.0] * 3, rtol=1e-5)


def test_crop_window_hand_computed():
    # Side 200 around (100, 50) onto 200: the crop square is x in [-0.5, 199.5], y in
    # [-50.5, 149.5]; 2 pixels of margin, rounded out: x 0 (clipped) .. 202, y 0 .. 119 (clipped
    # to a 120 x 300 image).
    m = geometry.crop_matrix([100.0, 50.0], 1.0, 200)
    np.testing.assert_array_equal(geometry.crop_window(m, 200, 120, 300, 2.0), [0, 0, 120, 203])
    # Side 100 around (150, 60) rotated 45 degrees: the corners lie 50 * sqrt(2) = 70.71 from the
    # centre along both axes: x 79.29 .. 220.71, less/plus 1 of margin -> 78 .. 222; y -10.71 ..
    # 130.71 -> 0 .. 119 after clipping.
    m = geometry.crop_matrix([150.0, 60.0], 0.5, 100, rotation=45.0)
    np.testing.assert_array_equal(geometry.crop_window(m, 100, 120, 300, 1.0), [0, 78, 120, 145])
    # A crop beside the image reads nothing: a 1 x 1 window in the nearest corner.
    m = geometry.crop_matrix([1000.0, 1000.0], 0.5, 100)
    np.testing.assert_array_equal(geometry.crop_window(m, 100, 120, 300, 2.0), [119, 299, 1, 1])


def test_area_downscale_hand_computed():
    image = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    # Side 8 around (1.5, 1.5) onto a 2 x 2 crop: shrink 4, the whole image becomes one pixel.
    m = geometry.crop_matrix([1.5, 1.5], 8 / 200, 2)
    small, to_crop = geometry.area_downscale(image, m)
    np.testing.assert_allclose(small.numpy().ravel(), [7.5])
    # Its centre (0, 0) is the image's centre (1.5, 1.5), which the crop puts at (0.5, 0.5).
    np.testing.assert_allclose(geometry.apply_affine(to_crop, [[0.0, 0.0]]), [[0.5, 0.5]])
    # Shrink 2 (side 8 onto 4): 2 x 2 means; new pixel (1, 0) (x, y) sits on image (2.5, 0.5).
    m = geometry.crop_matrix([1.5, 1.5], 8 / 200, 4)
    small, to_crop = geometry.area_downscale(image, m)
    np.testing.assert_allclose(small.numpy()[..., 0], [[2.5, 4.5], [10.5, 12.5]])
    expected = geometry.apply_affine(m, [[2.5, 0.5]])
    np.testing.assert_allclose(geometry.apply_affine(to_crop, [[1.0, 0.0]]), expected, atol=1e-5)
    # No shrink: unchanged.
    m = geometry.crop_matrix([1.5, 1.5], 4 / 200, 8)
    small, to_crop = geometry.area_downscale(image, m)
    np.testing.assert_allclose(small.numpy(), image)
    np.testing.assert_allclose(to_crop.numpy(), m.numpy(), atol=1e-6)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize(
    "shrink, rotation, flip",
    [
        (0.7, 10.0, False),
        (1.5, 0.0, False),
        (2.7, 20.0, True),
        (6.7, -30.0, False),
        (9.0, 0.0, True),
    ],
)
def test_decode_crop_puts_a_source_point_where_the_warp_did(fmt, shrink, rotation, flip):
    """The composite of window, DCT scaling, area averaging and warp is the crop matrix: a spot
    lands on the same crop point as with one warp from the full image (centroids within 0.05
    px; a spot's width of `2 * shrink` source pixels keeps it smooth at every scale, so that
    its centroid is well defined)."""
    size, x, y = 64, 700.3, 400.7
    image = _blob(720, 1280, x, y, sigma=2.0 * max(shrink, 1.0))
    data = tf.io.encode_jpeg(image, quality=95) if fmt == "jpeg" else tf.io.encode_png(image)
    m = geometry.crop_matrix([x + 13.0, y - 7.0], shrink * size / 200, size, rotation, flip)
    expected = geometry.apply_affine(m, [[x, y]]).numpy()[0]
    new = geometry.decode_crop(data, m, size).numpy()
    old = geometry.decode_crop(data, m, size, antialias=False).numpy()
    np.testing.assert_allclose(_centroid(new), expected, atol=0.05)
    np.testing.assert_allclose(_centroid(new), _centroid(old), atol=0.05)
    # The brightest crop pixel is one of the (up to 4) pixels around the expected point.
    peak = np.unravel_index(np.argmax(new[..., 0]), new.shape[:2])[::-1]
    assert np.all(np.abs(np.array(peak) - expected) < 1.0)


@pytest.mark.parametrize("rotation", [0.0, 17.0])
@pytest.mark.parametrize("shrink", [6.0, 6.3, 2.7])
def test_a_fine_checkerboard_shrunk_comes_out_grey(shrink, rotation):
    """1-pixel squares are above the crop's Nyquist limit: averaged, they are uniform grey.
    One bilinear warp from full resolution reads 4 of the shrink^2 pixels per crop pixel and
    shows moire (or, at an exact 6x, a uniform but wrong grey)."""
    size = 64
    image = _checkerboard(1200, 1200)
    m = geometry.crop_matrix([600.2, 590.7], shrink * size / 200, size, rotation=rotation)
    for data in (None, tf.io.encode_png(image), tf.io.encode_jpeg(image, quality=95)):
        if data is None:
            new = geometry.crop_image(image, m, size).numpy()
            old = geometry.crop_image(image, m, size, antialias=False).numpy()
        else:
            new = geometry.decode_crop(data, m, size).numpy()
            old = geometry.decode_crop(data, m, size, antialias=False).numpy()
        assert abs(new.mean() - 0.5) < 0.01 and new.std() < 0.05
        assert abs(old.mean() - 0.5) > 0.05 or old.std() > 0.1


@pytest.mark.parametrize(
    "center, rotation, flip",
    [([20.0, 25.0], 0.0, False), ([3.0, 44.0], 0.0, True), ([40.3, 2.7], 0.0, False)]
    + [([20.0, 25.0], 20.0, True)],
)
def test_crop_image_that_does_not_shrink_is_the_warp(center, rotation, flip):
    """No averaging below a shrink of 1, and the faster resampling of unrotated crops
    (crop_and_resize on a zero-ringed image) gives warp_image's samples, edges included."""
    image = np.random.default_rng(2).random((40, 50, 3)).astype(np.float32)
    m = geometry.crop_matrix(center, 0.6 * 32 / 200, 32, rotation=rotation, flip=flip)
    np.testing.assert_allclose(
        geometry.crop_image(image, m, 32), geometry.warp_image(image, m, 32), atol=2e-5
    )


def test_crop_image_without_antialias_is_the_plain_warp():
    image = np.random.default_rng(1).integers(0, 256, (40, 50, 3), np.uint8)
    m = geometry.crop_matrix([20.0, 25.0], 0.3, 16, rotation=12.0, flip=True)
    plain = geometry.warp_image(tf.image.convert_image_dtype(image, tf.float32), m, 16)
    np.testing.assert_array_equal(geometry.crop_image(image, m, 16, antialias=False), plain)
    data = tf.io.encode_png(image)
    np.testing.assert_array_equal(geometry.decode_crop(data, m, 16, antialias=False), plain)


@pytest.mark.parametrize("shrink, ratio", [(1.5, 1), (2.5, 2), (5.0, 4), (12.0, 8)])
@pytest.mark.parametrize("options", [{}, {"chroma_downsampling": False}, {"progressive": True}])
def test_decode_crop_of_a_jpeg_window_equals_the_crop_of_the_whole_decode(shrink, ratio, options):
    """decode_and_crop_jpeg at 1/ratio vs the whole JPEG decoded at 1/ratio (stored losslessly
    as a PNG, which decode_crop decodes whole and slices): the same window, the same crop.
    Identical although the window's edge columns of a 4:2:0 JPEG differ (images.decode_window):
    the margin keeps every sample away from them."""
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (90, 160, 3)).astype(np.float32)
    image = tf.image.resize(noise[None], (720, 1280))[0].numpy()
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    jpeg = tf.io.encode_jpeg(image, quality=90, **options)
    whole = tf.io.encode_png(tf.io.decode_jpeg(jpeg, channels=3, ratio=ratio))
    size = 64
    for center, rotation in (([640.0, 360.0], 0.0), ([400.0, 250.0], 25.0), ([90.0, 700.0], -40)):
        m = geometry.crop_matrix(center, shrink * size / 200, size, rotation=rotation)
        from_decoded = geometry.scale_translate(ratio, ratio, (ratio - 1) / 2, (ratio - 1) / 2)
        reference = geometry.decode_crop(whole, tf.linalg.matmul(m, from_decoded), size)
        np.testing.assert_allclose(geometry.decode_crop(jpeg, m, size), reference, atol=1e-5)


def test_decode_crop_in_tf_data_and_of_a_crop_beside_the_image():
    data = tf.io.encode_jpeg(_blob(60, 80, 50.0, 20.0, 3.0))
    m = geometry.crop_matrix([40.0, 30.0], 1.0, 32, rotation=30.0)
    eager = geometry.decode_crop(data, m, 32).numpy()
    ds = tf.data.Dataset.from_tensors((data, m)).map(lambda d, mm: geometry.decode_crop(d, mm, 32))
    np.testing.assert_array_equal(next(iter(ds)).numpy(), eager)
    far = geometry.crop_matrix([500.0, 500.0], 1.0, 32)
    assert not geometry.decode_crop(data, far, 32).numpy().any()


def test_box_to_center_scale_in_numpy_and_in_tensors():
    # HRNet's _xywh2cs / mmpose's GetBBoxCenterScale, square crop: the box centre, and a side of
    # 1.25 x the longer side (90 px) = 112.5 px = 200 x 0.5625.
    box = np.array([[10.0, 20.0, 70.0, 110.0], [0.0, 0.0, 40.0, 8.0]])
    center, scale = geometry.box_to_center_scale(box)
    assert center.dtype == scale.dtype == np.float64
    np.testing.assert_array_equal(center, [[40.0, 65.0], [20.0, 4.0]])
    np.testing.assert_array_equal(scale, [0.5625, 0.25])
    center_t, scale_t = tf.function(geometry.box_to_center_scale)(tf.constant(box, tf.float32))
    # float32, where a graph may divide by 200 as a multiplication by its rounded inverse: a few
    # ulps (2^-23 relative each).
    np.testing.assert_allclose(center_t.numpy(), center, rtol=4 * 2.0**-23)
    np.testing.assert_allclose(scale_t.numpy(), scale, rtol=4 * 2.0**-23)
