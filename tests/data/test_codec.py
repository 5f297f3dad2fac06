"""The heatmap codec: grids, Gaussian encoding, quarter-pixel decoding, flip, back-projection."""

import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass import joints
from stacked_hourglass.data import codec as codec_lib
from stacked_hourglass.data import geometry
from stacked_hourglass.data.codec import HeatmapCodec


def test_heatmap_resolution_mapping():
    # The crop pixel block [0, 4) at 256 is heatmap pixel 0 at 64.
    np.testing.assert_allclose(codec_lib.crop_to_heatmap([[1.5, 253.5]], 256, 64), [[0.0, 63.0]])
    np.testing.assert_allclose(codec_lib.heatmap_to_crop([[0.0, 63.0]], 256, 64), [[1.5, 253.5]])
    codec = HeatmapCodec(256, 64)
    np.testing.assert_allclose(codec.crop_to_heatmap([[1.5, 253.5]]), [[0.0, 63.0]])
    np.testing.assert_allclose(codec.heatmap_to_crop([[0.0, 63.0]]), [[1.5, 253.5]])
    # The two grids cover the same square: crop edges are heatmap edges.
    np.testing.assert_allclose(codec.crop_to_heatmap([[-0.5, 255.5]]), [[-0.5, 63.5]])


def test_for_model_and_bad_arguments():
    assert HeatmapCodec.for_model(128, sigma=2) == HeatmapCodec(128, 32, 2.0)
    with pytest.raises(ValueError, match="input_size=0, heatmap_size=16, sigma=1.0"):
        HeatmapCodec(0, 16)
    with pytest.raises(ValueError, match="sigma=0"):
        HeatmapCodec(64, 16, 0)


def test_render_heatmaps():
    hm = codec_lib.render_heatmaps(
        [[3.0, 4.0], [3.5, 4.0], [1.0, 1.0], [20.0, 2.0]], [True, True, False, True], 8, sigma=1.0
    ).numpy()
    assert hm.shape == (8, 8, 4)
    assert hm[4, 3, 0] == pytest.approx(1.0)  # peak 1 on a pixel centre, [y, x]
    assert hm[4, 4, 0] == pytest.approx(np.exp(-0.5))
    assert hm[5, 4, 0] == pytest.approx(np.exp(-1.0))
    assert hm[4, 3, 1] == pytest.approx(hm[4, 4, 1]) == pytest.approx(np.exp(-0.125))
    assert not hm[..., 2].any()  # not annotated
    assert not hm[..., 3].any()  # outside the heatmap


def test_encode_is_render_on_the_heatmap_grid():
    codec = HeatmapCodec(64, 16, sigma=1.5)
    keypoints = np.array([[[10.0, 20.0], [33.3, 5.5]], [[0.0, 0.0], [63.0, 63.0]]], np.float32)
    valid = np.array([[True, False], [True, True]])
    encoded = codec.encode(keypoints, valid).numpy()
    assert encoded.shape == (2, 16, 16, 2)
    expected = codec_lib.render_heatmaps(
        codec_lib.crop_to_heatmap(keypoints, 64, 16), valid, 16, sigma=1.5
    )
    np.testing.assert_allclose(encoded, expected.numpy())
    assert not encoded[0, ..., 1].any()


@pytest.mark.parametrize("x, y", [(10.3, 7.8), (10.0, 7.0), (5.49, 12.51), (30.9, 0.2)])
def test_decode_subpixel_gaussian_within_quarter_pixel(x, y):
    hm = codec_lib.render_heatmaps([[x, y]], [True], 32)[None]
    coords, scores = codec_lib.decode_heatmaps(hm)
    assert np.abs(coords.numpy()[0, 0] - [x, y]).max() <= 0.25 + 1e-6
    assert 0.6 < scores.numpy()[0, 0] <= 1.0


def test_decode_quarter_shift_hand_computed():
    hm = np.zeros((1, 5, 5, 1), np.float32)
    hm[0, 2, 2, 0] = 1.0
    hm[0, 2, 3, 0] = 0.5  # right neighbour higher -> x + 0.25
    hm[0, 1, 2, 0] = 0.2  # upper neighbour higher -> y - 0.25
    coords, scores = codec_lib.decode_heatmaps(hm)
    np.testing.assert_allclose(coords.numpy()[0, 0], [2.25, 1.75])
    assert scores.numpy()[0, 0] == 1.0
    # On the border there is no neighbour: no shift.
    hm = np.zeros((1, 5, 5, 1), np.float32)
    hm[0, 0, 4, 0] = 1.0
    hm[0, 0, 3, 0] = 0.9
    np.testing.assert_allclose(codec_lib.decode_heatmaps(hm)[0].numpy()[0, 0], [4.0, 0.0])


@pytest.mark.parametrize("point", [(21.3, 40.7), (8.0, 8.0), (30.6, 13.1), (50.2, 57.9)])
def test_codec_round_trip_subpixel(point):
    """encode a sub-pixel crop point, decode it: within 0.25 heatmap pixels per axis.

    (Away from the border: on the first and last heatmap pixel decoding does not shift.)
    """
    codec = HeatmapCodec(64, 16, sigma=1.0)
    heatmaps = codec.encode([[point]], [[True]])
    assert heatmaps.shape == (1, 16, 16, 1)
    decoded, scores = codec.decode(heatmaps)
    assert decoded.shape == (1, 1, 2) and scores.shape == (1, 1)
    error = codec.crop_to_heatmap(decoded).numpy() - codec.crop_to_heatmap([[point]]).numpy()
    assert np.abs(error).max() <= 0.25 + 1e-6
    assert 0.6 < scores.numpy()[0, 0] <= 1.0


def test_decode_to_original_inverts_the_crop():
    codec = HeatmapCodec(128, 32)
    rng = np.random.default_rng(0)
    original = np.column_stack([rng.uniform(80, 160, 5), rng.uniform(60, 140, 5)])[None]
    matrix = geometry.crop_matrix([[120.0, 100.0]], [0.64], 128, rotation=[20.0], flip=[True])
    crop_points = geometry.apply_affine(matrix, original)
    heatmaps = codec.encode(crop_points, np.ones((1, 5), bool))
    back, scores = codec.decode_to_original(heatmaps, matrix)
    assert back.shape == (1, 5, 2) and scores.shape == (1, 5)
    # Within 0.25 heatmap px per crop axis = 1 crop px = 1 original px (side 128 onto 128),
    # so within sqrt(2) original px in any rotated frame.
    assert np.linalg.norm(back.numpy() - original, axis=-1).max() <= np.sqrt(2) + 1e-4


def test_flip_heatmaps_undoes_a_mirror():
    hm = tf.random.stateless_uniform([1, 8, 8, 16], seed=[1, 2])
    perm = joints.MPII.flip_permutation()
    twice = codec_lib.flip_heatmaps(codec_lib.flip_heatmaps(hm, perm), perm)
    np.testing.assert_allclose(twice.numpy(), hm.numpy())
    np.testing.assert_array_equal(HeatmapCodec.flip(hm, perm), codec_lib.flip_heatmaps(hm, perm))


def test_flip_heatmaps_of_a_mirrored_crop_match_the_plain_crop():
    """The flip test's premise: encode a mirrored crop, flip back = encode the plain crop."""
    mpii = joints.MPII
    codec = HeatmapCodec(64, 16)
    rng = np.random.default_rng(3)
    keypoints = np.column_stack([rng.integers(0, 16, 16), rng.integers(0, 16, 16)]) * 4 + 1.5
    valid = np.ones(16, bool)
    plain = codec.encode(keypoints[None], valid[None])
    mirrored_points = np.column_stack([63 - keypoints[:, 0], keypoints[:, 1]])
    # On the mirrored crop the person's left joints are the right ones: swap the channels.
    perm = mpii.flip_permutation()
    mirrored = codec.encode(mirrored_points[perm][None], valid[None])
    np.testing.assert_allclose(codec.flip(mirrored, perm).numpy(), plain.numpy(), atol=1e-6)


def test_codec_inside_tf_data_and_tf_function():
    """The codec in a tf.data map and a tf.function gives what it gives eagerly."""
    codec = HeatmapCodec(64, 16)
    keypoints = np.array([[10.2, 50.7], [33.0, 12.4], [5.0, 5.0]], np.float32)
    valid = np.array([True, True, False])
    eager = codec.encode(keypoints, valid).numpy()
    ds = tf.data.Dataset.from_tensors((keypoints, valid)).repeat(3).map(codec.encode).batch(3)
    (batch,) = list(ds)
    assert batch.shape == (3, 16, 16, 3)
    for item in batch.numpy():
        np.testing.assert_allclose(item, eager)
    decoded_ds = ds.map(codec.decode)
    (coords, scores), *_ = list(decoded_ds)
    eager_coords, eager_scores = codec.decode(batch)
    np.testing.assert_allclose(coords.numpy(), eager_coords.numpy())
    np.testing.assert_allclose(scores.numpy(), eager_scores.numpy())
    assert np.abs(coords.numpy()[:, :2] - keypoints[:2]).max() <= 1.0 + 1e-5

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.float32)])
    def decode(heatmaps):
        return codec.decode(heatmaps)

    traced_coords, _ = decode(batch)
    np.testing.assert_allclose(traced_coords.numpy(), eager_coords.numpy())


@pytest.mark.parametrize("x, y", [(10.3, 20.7), (31.45, 12.1), (5.5, 5.5), (40.9, 33.26)])
def test_dark_decodes_a_subpixel_gaussian_within_005_px(x, y):
    heatmap = codec_lib.render_heatmaps([[x, y]], [True], 64, 1.0)[None]
    dark, dark_scores = codec_lib.decode_heatmaps_dark(heatmap, 1.0)
    quarter, _ = codec_lib.decode_heatmaps(heatmap)
    np.testing.assert_allclose(dark.numpy()[0, 0], [x, y], atol=0.05)
    np.testing.assert_allclose(quarter.numpy()[0, 0], [x, y], atol=0.25 + 1e-6)
    # The score stays the raw peak, as with the quarter-pixel decoder.
    np.testing.assert_allclose(dark_scores.numpy()[0, 0], heatmap.numpy().max(), rtol=1e-6)


def test_dark_keeps_the_argmax_at_the_border_and_on_flat_channels():
    heatmap = np.zeros((1, 16, 16, 2), np.float32)
    heatmap[0, 0, 1, 0] = 1.0  # argmax next to the border: no Newton step
    coords, _ = codec_lib.decode_heatmaps_dark(heatmap, 1.0)
    np.testing.assert_allclose(coords.numpy()[0], [[1.0, 0.0], [0.0, 0.0]])


def test_codec_decoder_dark_is_used_by_decode_and_checked():
    dark = HeatmapCodec(64, 16, 1.0, decoder="dark")
    heatmap = codec_lib.render_heatmaps([[7.3, 8.6]], [True], 16, 1.0)[None]
    crop, _ = dark.decode(heatmap)
    np.testing.assert_allclose(crop.numpy()[0, 0], dark.heatmap_to_crop([7.3, 8.6]), atol=0.2)
    with pytest.raises(ValueError, match="decoder must be one of quarter, dark, got 'argmax'"):
        HeatmapCodec(64, 16, decoder="argmax")
