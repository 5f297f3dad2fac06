"""The heatmap loss under --unlabelled: hand-computed values, Keras's MSE when every weight is 1,
and an unlabelled joint giving no gradient through the model's compiled loss."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.config import DataConfig, ModelConfig, TrainConfig
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.model import build_model, inference
from stacked_hourglass.training import losses, trainer

TINY = ModelConfig(num_stacks=1, num_features=8, depth=1, input_size=64, num_joints=3)


def _small_case():
    """Targets and predictions [B=2, H=1, W=2, K=3] and weights [2, 1, 1, 3]."""
    target = np.array([[[[1, 0, 0], [0, 0, 1]]], [[[0, 1, 0], [0, 0, 0]]]], np.float32)
    pred = np.array([[[[0, 1, 0], [2, 0, 1]]], [[[0, 3, 1], [1, 0, 0]]]], np.float32)
    weights = np.array([[1, 0, 1], [0, 1, 1]], np.float32)[:, None, None, :]
    return target, pred, weights


def test_weighted_loss_by_hand():
    target, pred, weights = _small_case()
    # Squared errors per (b, x, j): b0: x0 (1, 1, 0), x1 (4, 0, 0); b1: x0 (0, 4, 1), x1 (1, 0, 0).
    # "zero" (every weight 1): (2 + 4 + 5 + 1) / (B*H*W*K = 12) = 1.
    # "ignore", b0 drops joint 1, b1 drops joint 0: (1 + 4) + (4 + 1) = 10 -> 10 / 12.
    loss = losses.JointWeightedMSE()
    assert float(loss(target, pred)) == pytest.approx(1.0, rel=1e-6)
    assert float(loss(target, pred, sample_weight=weights)) == pytest.approx(10 / 12, rel=1e-6)
    assert float(keras.losses.MeanSquaredError()(target, pred)) == pytest.approx(1.0, rel=1e-6)


def test_all_weights_one_is_keras_mse():
    rng = np.random.default_rng(0)
    target = rng.random((3, 16, 16, 5), np.float32)
    pred = rng.normal(size=(3, 16, 16, 5)).astype(np.float32)
    ones = np.ones((3, 1, 1, 5), np.float32)
    keras_mse = float(keras.losses.MeanSquaredError()(target, pred))
    # The same sum in another order: float32 rounding of 3840 terms of ~1, relative ~1e-6.
    assert float(losses.JointWeightedMSE()(target, pred, ones)) == pytest.approx(keras_mse, 1e-5)


def test_the_loss_is_a_keras_object_that_round_trips():
    loss = losses.JointWeightedMSE()
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(again, losses.JointWeightedMSE)
    assert again.get_config() == loss.get_config()


def test_mpii_keeps_the_papers_loss():
    """ "zero" (the resolved default of the paper's joint sets) compiles Keras's "mse", exactly
    today's loss; coco's default ignores unlabelled joints."""
    for dataset in ("mpii", "flic", "synthetic"):
        assert DataConfig(dataset=dataset).unlabelled_rule == "zero"
        assert losses.heatmap_loss(DataConfig(dataset=dataset)) == "mse"
    assert DataConfig(dataset="coco").unlabelled_rule == "ignore"
    assert isinstance(losses.heatmap_loss(DataConfig(dataset="coco")), losses.JointWeightedMSE)
    assert losses.heatmap_loss(DataConfig(dataset="coco", unlabelled="zero")) == "mse"


@pytest.fixture(scope="module")
def ignoring_model():
    keras.utils.set_random_seed(0)
    model = build_model(TINY)
    trainer.compile_model(model, TINY, TrainConfig(), DataConfig(unlabelled="ignore"))
    return model


def _gradients(model, joint, weighted=True):
    """Gradients of the compiled loss of a batch whose only labelled joint is `joint` (with
    `weighted`; without, every joint counts), w.r.t. the output heatmaps and the heatmap
    convolution's kernel and bias."""
    rng = np.random.default_rng(1)
    images = rng.random((2, 64, 64, 3), np.float32)
    targets = {"heatmaps_1": rng.random((2, 16, 16, 3), np.float32)}
    weights = np.zeros((2, 1, 1, 3), np.float32)
    weights[..., joint] = 1.0
    conv = model.get_layer("stack1_heatmap_conv")
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss = model.compute_loss(
            x=images,
            y=targets,
            y_pred=outputs,
            sample_weight={"heatmaps_1": weights} if weighted else None,
        )
    return tape.gradient(loss, [outputs["heatmaps_1"], conv.kernel, conv.bias])


@pytest.mark.parametrize("joint", [0, 2])
def test_only_the_labelled_joint_gets_gradients(ignoring_model, joint):
    heatmaps, kernel, bias = (g.numpy() for g in _gradients(ignoring_model, joint))
    others = [k for k in range(3) if k != joint]
    assert heatmaps.shape == (2, 16, 16, 3) and kernel.shape[-1] == 3
    assert np.all(heatmaps[..., others] == 0.0) and np.any(heatmaps[..., joint] != 0.0)
    assert np.all(kernel[..., others] == 0.0) and np.any(kernel[..., joint] != 0.0)
    assert np.all(bias[others] == 0.0) and bias[joint] != 0.0
    # Without the weights (every joint labelled, or "zero"), every channel has gradients.
    heatmaps, kernel, _ = (g.numpy() for g in _gradients(ignoring_model, joint, weighted=False))
    assert np.all(np.any(heatmaps != 0.0, axis=(0, 1, 2)))
    assert np.all(np.any(kernel != 0.0, axis=(0, 1, 2)))


@pytest.mark.parametrize("ignore", [False, True])
def test_validation_heatmap_mse_follows_the_rule(ignore):
    """`val_heatmap_mse` (the validation step's MSE per person) leaves the unlabelled joints
    out exactly as the training loss does under "ignore", over the same H * W * K."""
    rng = np.random.default_rng(2)
    pred = rng.random((2, 4, 4, 3), np.float32)
    target = rng.random((2, 4, 4, 3), np.float32)
    annotated = np.array([[True, False, True], [False, False, True]])
    step = inference.predict_step(lambda images: tf.constant(pred), HeatmapCodec(16, 4), ignore)
    _, _, mse = step(tf.zeros([2, 16, 16, 3]), tf.eye(3, batch_shape=[2]), target, annotated)
    squared = (pred - target) ** 2
    if ignore:
        squared = squared * annotated[:, None, None, :]
    np.testing.assert_allclose(mse, squared.sum(axis=(1, 2, 3)) / 48, rtol=1e-6)
