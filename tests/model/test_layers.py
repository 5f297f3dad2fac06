"""FusedBatchNormalization: Keras's BatchNormalization on TensorFlow's fused kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.model.layers import FusedBatchNormalization


def _pair(channels=3, seed=0):
    """A fused and a Keras BN layer with the same (non-trivial) weights."""
    rng = np.random.default_rng(seed)
    weights = [
        rng.uniform(0.5, 2.0, channels),  # gamma
        rng.normal(size=channels),  # beta
        rng.normal(size=channels),  # moving mean
        rng.uniform(0.5, 2.0, channels),  # moving variance
    ]
    layers = []
    for cls in (FusedBatchNormalization, keras.layers.BatchNormalization):
        layer = cls(momentum=0.9, epsilon=1e-5)
        layer.build((None, 4, 5, channels))
        layer.set_weights([w.astype(np.float32) for w in weights])
        layers.append(layer)
    return layers


def _inputs(seed=1, shape=(2, 4, 5, 3)):
    return (np.random.default_rng(seed).normal(size=shape) * 3 + 1).astype(np.float32)


def test_inference_equals_keras():
    fused, plain = _pair()
    x = _inputs()
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-5)


def test_training_output_and_gradients_equal_keras():
    fused, plain = _pair()
    x = tf.constant(_inputs())
    results = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.sin(y))
        grads = tape.gradient(loss, [x, *layer.trainable_variables])
        results.append((y.numpy(), [g.numpy() for g in grads]))
    (y_f, g_f), (y_k, g_k) = results
    np.testing.assert_allclose(y_f, y_k, atol=2e-5)
    for a, b in zip(g_f, g_k, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_moving_averages_follow_torch():
    # Hand-computed: new = 0.9 * old + 0.1 * batch statistic, the variance unbiased (n / (n - 1))
    # as in Torch and PyTorch; Keras's own layer uses the biased variance.
    fused, _ = _pair()
    old_mean, old_var = fused.moving_mean.numpy(), fused.moving_variance.numpy()
    x = _inputs()
    fused(x, training=True)
    flat = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(fused.moving_mean, 0.9 * old_mean + 0.1 * flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(
        fused.moving_variance, 0.9 * old_var + 0.1 * flat.var(0, ddof=1), rtol=1e-5
    )


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_activations_keep_float32_statistics(dtype):
    fused, plain = _pair()
    mixed = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, dtype=f"mixed_{dtype}")
    mixed.build((None, 4, 5, 3))
    mixed.set_weights(fused.get_weights())
    x = _inputs()
    y = mixed(tf.cast(x, dtype), training=True)
    assert y.dtype == dtype and mixed.moving_mean.dtype == "float32"
    tolerance = 0.05 if dtype == "bfloat16" else 0.01
    np.testing.assert_allclose(np.asarray(y, np.float32), plain(x, training=True), atol=tolerance)


def test_falls_back_to_keras_where_the_kernel_does_not_apply():
    layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)  # not [B, H, W, C]
    y = layer(x, training=True)
    np.testing.assert_allclose(np.asarray(y).mean(0), 0.0, atol=1e-5)


def test_keras_file_round_trip(tmp_path):
    inputs = keras.Input((4, 5, 3))
    model = keras.Model(inputs, FusedBatchNormalization(name="bn")(inputs))
    model.layers[-1].set_weights(_pair()[0].get_weights())
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("bn")) is FusedBatchNormalization
    x = _inputs()
    np.testing.assert_array_equal(loaded(x), model(x))
