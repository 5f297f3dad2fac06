"""`serving.predictor`: the one-of check, and the three kinds of model behind one protocol giving
the same heatmaps and keypoints for the same crops."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from stacked_hourglass.serving import box_crop, client, keras_predictor, litert, predictor

KINDS = ["model_dir", "saved_model", "litert"]


def test_choose_model_takes_exactly_one():
    assert predictor.choose_model({"model_dir": None, "saved_model": "x"}) == ("saved_model", "x")
    several = {"model_dir": "a", "saved_model": None, "litert": "c"}
    with pytest.raises(ValueError) as info:
        predictor.choose_model(several)
    assert str(info.value) == "give exactly one of --model_dir, --saved_model and --litert"
    none = {"saved_model": None, "litert": ""}
    with pytest.raises(ValueError) as info:
        predictor.choose_model(none)
    assert str(info.value) == "give exactly one of --saved_model and --litert"
    with pytest.raises(ValueError, match="^--saved_model is required$"):
        predictor.choose_model(none, missing="--saved_model is required")


@pytest.fixture(scope="module")
def opened(synthetic_model, tmp_path_factory):
    """{kind: Predictor} of the synthetic model directory, its SavedModel export (no flip test)
    and its float32 LiteRT conversion (None without the LiteRT interpreter)."""
    models = {
        "model_dir": predictor.open_predictor("model_dir", synthetic_model["model_dir"]),
        "saved_model": predictor.open_predictor("saved_model", synthetic_model["plain"]),
        "litert": None,
    }
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return models
    tflite = str(tmp_path_factory.mktemp("predictor") / "synthetic.tflite")
    litert.convert_from_model_dir(synthetic_model["model_dir"], tflite)
    models["litert"] = predictor.open_predictor("litert", tflite)
    return models


def test_each_kind_implements_the_protocol(opened):
    assert isinstance(opened["model_dir"], keras_predictor.KerasPredictor)
    assert isinstance(opened["saved_model"], client.ServingModel)
    for kind, model in opened.items():
        if model is None:
            continue
        info = model.info
        assert info.kind == kind and info.input_size == 64 and info.joint_set.name == "synthetic"
        assert info.decoder == "quarter" and info.flip_test is False
    if opened["litert"] is not None:
        assert isinstance(opened["litert"], litert.LiteRTModel)
        assert opened["litert"].info.describe() == "LiteRT, quantize=none"


def heatmap_tolerance(model: keras.Model, heatmaps: np.ndarray) -> float:
    """How far float32 arithmetic alone can move a heatmap value between implementations.

    Each convolution output is a dot product of fan-in n; summed in another order (other
    kernels, BatchNorm folded into the weights, fused multiply-adds) its rounding errors, of
    random sign, move it by about sqrt(n) * u relative (u = 2^-24, float32's unit roundoff).
    Those of the D convolutions on the way add up along the network. The bound is relative to
    the largest heatmap value, with a factor 8 of headroom for the worst-conditioned layers.
    """
    kernels = [w for w in model.weights if len(w.shape) == 4]  # [kh, kw, in, out]
    fan_in = max(int(np.prod(kernel.shape[:-1])) for kernel in kernels)
    u = float(np.finfo(np.float32).eps) / 2
    return 8 * len(kernels) * math.sqrt(fan_in) * u * float(np.max(np.abs(heatmaps)))


def decisive(heatmaps: np.ndarray, tolerance: float) -> np.ndarray:
    """bool [B, K]: the joints whose quarter-decoder keypoint no change below `tolerance` can
    move: the peak beats the runner-up, and each interior neighbour pair differs, by more than
    2 x tolerance (both values may move)."""
    b, h, w, k = heatmaps.shape
    flat = heatmaps.transpose(0, 3, 1, 2).reshape(b, k, h * w)
    ordered = np.sort(flat, axis=-1)
    ok = ordered[..., -1] - ordered[..., -2] > 2 * tolerance
    y, x = np.divmod(np.argmax(flat, axis=-1), w)
    for i, j in np.ndindex(b, k):
        channel = heatmaps[i, :, :, j]
        yy, xx = y[i, j], x[i, j]
        if 0 < xx < w - 1:
            ok[i, j] &= abs(channel[yy, xx + 1] - channel[yy, xx - 1]) > 2 * tolerance
        if 0 < yy < h - 1:
            ok[i, j] &= abs(channel[yy + 1, xx] - channel[yy - 1, xx]) > 2 * tolerance
    return ok


@pytest.mark.parametrize("kind", ["saved_model", "litert"])
def test_every_kind_gives_the_keras_keypoints(opened, random_image, kind):
    if opened[kind] is None:
        pytest.skip("the LiteRT interpreter (ai_edge_litert) is not installed")
    crops = np.stack([random_image((64, 64), seed) for seed in (21, 22, 23, 24)]) / 255.0
    crops = crops.astype(np.float32)
    reference = opened["model_dir"]
    expected = reference.heatmaps(crops).numpy()
    tolerance = heatmap_tolerance(reference.model, expected)
    heatmaps = np.asarray(opened[kind].heatmaps(crops))
    np.testing.assert_allclose(heatmaps, expected, rtol=0, atol=tolerance)
    keypoints, scores = opened[kind].keypoints(crops)
    expected_keypoints, expected_scores = reference.keypoints(crops)
    np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=tolerance)
    # On a decisive joint the argmax and the quarter shift are the same, and the mapping to
    # crop pixels, (p + 0.5) * 4 - 0.5 on multiples of 0.25, is exact in float32.
    sure = decisive(expected, tolerance)
    assert sure.mean() >= 0.5, sure  # else this test would compare little
    np.testing.assert_array_equal(keypoints[sure], expected_keypoints[sure])


def test_host_crop_is_the_box_rule(random_image):
    """`box_crop.crop_on_host`: four zeros or None is the whole image; the crop's matrix is the
    rule's (centre, 1.25 x the longer side); a bad box gets the graph's message."""
    image = random_image((96, 72), 3)
    _, matrix, used = box_crop.crop_on_host(image, None, 64)
    np.testing.assert_array_equal(used, [-0.5, -0.5, 71.5, 95.5])
    _, zeros_matrix, _ = box_crop.crop_on_host(image, np.zeros(4, np.float32), 64)
    np.testing.assert_array_equal(zeros_matrix, matrix)
    crop, matrix, used = box_crop.crop_on_host(image, np.array([5, 10, 60, 90], np.float32), 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.float32
    # The box centre lands on the crop centre; the crop side 1.25 * 80 px spans 64 crop pixels.
    centre = box_crop.to_original(np.array([[31.5, 31.5]], np.float32), matrix)
    np.testing.assert_allclose(centre, [[32.5, 50.0]], atol=1e-4)
    np.testing.assert_allclose(matrix[0, 0], 64 / (1.25 * 80), rtol=1e-6)
    with pytest.raises(ValueError) as info:
        box_crop.crop_on_host(image, np.array([10, 5, 3, 40], np.float32), 64)
    assert str(info.value) == (
        "box[0] = [10 5 3 40] has zero or negative area or is not finite (need x1 < x2 and "
        "y1 < y2; four zeros mean the whole image)"
    )
    with pytest.raises(ValueError, match=r"^box\[0\] = \[500 500 600 600\] lies outside the 72x96"):
        box_crop.crop_on_host(image, np.array([500, 500, 600, 600], np.float32), 64)
    for absurd in (1e30, 3e38):
        with pytest.raises(ValueError, match=r"longer side must be between 1 pixel and 8 times the "
                           r"longer side of the 72x96 image$"):  # fmt: skip
            box_crop.crop_on_host(
                image, np.array([-absurd, -absurd, absurd, absurd], np.float32), 64
            )
