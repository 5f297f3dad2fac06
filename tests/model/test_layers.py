"""The model's layers: Keras's BatchNormalization, Conv2D and UpSampling2D as fewer graph ops."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacked_hourglass.model.layers import (
    BiasAddConv2D,
    FusedBatchNormalization,
    NearestUpsampling2D,
)


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
def test_low_precision_activations_keep_float32_statistics(dtype, skip_capped_bf16):
    skip_capped_bf16(dtype)
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


@pytest.mark.parametrize("training", [False, True])
def test_relu_activation_equals_a_relu_layer_after_it(training):
    fused, _ = _pair()
    with_relu = FusedBatchNormalization(activation="relu", momentum=0.9, epsilon=1e-5)
    with_relu.build((None, 4, 5, 3))
    with_relu.set_weights(fused.get_weights())
    x = _inputs()
    expected = keras.layers.ReLU()(fused(x, training=training))
    np.testing.assert_array_equal(with_relu(x, training=training), expected)
    np.testing.assert_array_equal(with_relu.moving_variance, fused.moving_variance)
    assert with_relu.get_config()["activation"] == "relu"
    assert FusedBatchNormalization.from_config(with_relu.get_config()).activation == "relu"


def test_other_activations_are_refused():
    with pytest.raises(ValueError, match="activation must be None or 'relu'; got 'tanh'"):
        FusedBatchNormalization(activation="tanh")


def test_weights_of_a_model_with_separate_relu_layers_load(tmp_path):
    """Models built before the ReLU went into the BatchNorm layer had a ReLU layer after each;
    those hold no variables, so their weight files load into today's layout."""
    inputs = keras.Input((4, 5, 3))
    before = FusedBatchNormalization(name="bn")(inputs)
    before = BiasAddConv2D(2, 1, name="conv")(keras.layers.ReLU(name="bn_relu")(before))
    before = keras.Model(inputs, before)
    rng = np.random.default_rng(3)
    before.set_weights([rng.uniform(0.5, 2.0, w.shape).astype(np.float32) for w in before.weights])
    before.save_weights(tmp_path / "before.weights.h5")
    after = FusedBatchNormalization(activation="relu", name="bn")(inputs)
    after = keras.Model(inputs, BiasAddConv2D(2, 1, name="conv")(after))
    after.load_weights(tmp_path / "before.weights.h5")
    x = _inputs()
    np.testing.assert_array_equal(after(x), before(x))


def _graph_ops(fn, *inputs) -> list[str]:
    """Op types of `fn`'s forward pass and gradient, traced for `inputs`."""

    def forward_and_backward(*args):
        with tf.GradientTape() as tape:
            tape.watch(args)
            y = fn(*args)
        return tape.gradient(y, args)

    specs = [tf.TensorSpec(x.shape, x.dtype) for x in inputs]
    graph = tf.function(forward_and_backward).get_concrete_function(*specs).graph
    return [op.type for op in graph.get_operations()]


def _conv_pair(seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    layers = [cls(4, 3, padding="same", **kwargs) for cls in (BiasAddConv2D, keras.layers.Conv2D)]
    for layer in layers:
        layer.build((None, 5, 6, 3))
    weights = [rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4)]
    for layer in layers:
        layer.set_weights([w.astype(np.float32) for w in weights])
    return layers


@pytest.mark.parametrize("policy", [None, "mixed_bfloat16"])
def test_bias_add_conv_equals_keras_conv(policy, skip_capped_bf16):
    skip_capped_bf16(policy)
    ours, keras_conv = _conv_pair(dtype=policy)
    x = tf.constant(_inputs(shape=(2, 5, 6, 3)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_ours, y_keras = ours(x), keras_conv(x)
    assert y_ours.dtype == y_keras.dtype
    np.testing.assert_array_equal(np.float32(y_ours), np.float32(y_keras))
    for a, b in zip(
        tape.gradient(y_ours, [x, *ours.trainable_weights]),
        tape.gradient(y_keras, [x, *keras_conv.trainable_weights]),
        strict=True,
    ):
        np.testing.assert_allclose(np.float32(a), np.float32(b), rtol=1e-5, atol=1e-5)


def test_bias_add_conv_is_one_bias_add_op():
    ours, keras_conv = _conv_pair()
    x = tf.zeros((2, 5, 6, 3))
    ops = _graph_ops(ours, x)
    assert ops.count("BiasAdd") == 1 and ops.count("BiasAddGrad") == 1
    assert not {"Reshape", "Squeeze"} & set(ops)
    # What it saves: Keras's bias is a reshape, squeeze and add, and their gradients.
    assert len(_graph_ops(keras_conv, x)) >= len(ops) + 4


@pytest.mark.parametrize("size", [2, (3, 2)])
@pytest.mark.parametrize("policy", [None, "mixed_bfloat16"])
def test_nearest_upsampling_equals_keras(size, policy):
    ours = NearestUpsampling2D(size, dtype=policy)
    keras_up = keras.layers.UpSampling2D(size, dtype=policy)
    x = tf.constant(_inputs(shape=(2, 5, 7, 3)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_ours, y_keras = ours(x), keras_up(x)
        weights = tf.cast(tf.constant(_inputs(seed=2, shape=y_ours.shape)), y_ours.dtype)
        loss_ours, loss_keras = tf.reduce_sum(y_ours * weights), tf.reduce_sum(y_keras * weights)
    assert y_ours.shape == y_keras.shape and y_ours.dtype == y_keras.dtype
    np.testing.assert_array_equal(np.float32(y_ours), np.float32(y_keras))
    # Each input pixel's gradient sums its block of output gradients. In bfloat16 the op rounds
    # after every term and Keras's reduction once, so they agree to the block's terms times a
    # bfloat16 ulp (2**-8 relative) of the sum of their magnitudes.
    difference = np.float32(tape.gradient(loss_ours, x)) - np.float32(tape.gradient(loss_keras, x))
    magnitudes = tf.cast(tf.abs(weights), tf.float32)
    with tf.GradientTape() as magnitude_tape:
        magnitude_tape.watch(x)
        total = tf.reduce_sum(keras.layers.UpSampling2D(size)(x) * magnitudes)
    block = np.prod(ours.size)
    bound = 1e-6 if policy is None else block * 2.0**-8 * magnitude_tape.gradient(total, x)
    assert np.all(np.abs(difference) <= bound + 1e-6)


def test_nearest_upsampling_is_one_resize_op():
    ops = _graph_ops(NearestUpsampling2D(2), tf.zeros((1, 4, 4, 2)))
    assert ops.count("ResizeNearestNeighbor") == 1 and ops.count("ResizeNearestNeighborGrad") == 1
    assert not {"Tile", "Reshape", "ConcatV2"} & set(ops)


def test_nearest_upsampling_falls_back_without_a_static_size():
    layer = NearestUpsampling2D(2)
    images = tf.reshape(tf.range(8, dtype=tf.float32), (1, 2, 2, 2))
    y = tf.function(layer).get_concrete_function(tf.TensorSpec((1, None, None, 2)))(images)
    np.testing.assert_array_equal(y, keras.layers.UpSampling2D(2)(images))


def test_new_layers_round_trip_through_keras_files(tmp_path):
    inputs = keras.Input((4, 4, 3))
    x = BiasAddConv2D(2, 1, name="conv")(inputs)
    model = keras.Model(inputs, NearestUpsampling2D(2, name="up")(x))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("conv")) is BiasAddConv2D
    assert type(loaded.get_layer("up")) is NearestUpsampling2D
    x = _inputs(shape=(1, 4, 4, 3))
    np.testing.assert_array_equal(loaded(x), model(x))
