"""Synchronised BatchNorm: two replicas (two logical CPU devices under MirroredStrategy) on
halves of a batch against one replica on the whole batch.

Logical devices must be configured before TensorFlow initialises its devices, so the comparison
runs in a subprocess (`_SCRIPT`), once for the module; it prints one JSON line of the largest
differences and the scale they are compared with.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

_SCRIPT = r"""
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from stacked_hourglass.model import ModelConfig, build_model
from stacked_hourglass.model.layers import FusedBatchNormalization

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
rng = np.random.default_rng(0)


def halves(array):
    # Replica r gets rows [r * B / 2, (r + 1) * B / 2): the concatenation is the whole batch.
    half = len(array) // 2
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(array[ctx.replica_id_in_sync_group * half:][:half])
    )


def run_both(make, step, *arrays):
    # step(model, *tensors) -> (outputs, gradients): one replica on the whole batch, then two.
    single = make()
    one = tf.function(lambda *t: step(single, *t))(*map(tf.constant, arrays))
    with strategy.scope():
        mirrored = make()
    two = strategy.run(tf.function(lambda *t: step(mirrored, *t)), args=tuple(map(halves, arrays)))
    outputs = [np.concatenate([v.numpy() for v in strategy.experimental_local_results(o)])
               for o in two[0]]
    # Each replica's gradient of its own share of the loss; their sum is the whole batch's.
    grads = [strategy.reduce("SUM", g, axis=None).numpy() for g in two[1]]
    return single, mirrored, (one[0], one[1]), (outputs, grads)


def report(name, one, two):
    # Largest difference and the largest magnitude of the one-replica result.
    pairs = list(zip([np.asarray(a) for a in one], [np.asarray(b) for b in two], strict=True))
    return {name: [max(float(np.abs(a - b).max()) for a, b in pairs),
                   max(float(np.abs(a).max()) for a, _ in pairs)]}


result = {}

# One layer; the input's mean (1) is of the order of its spread (3), as after a convolution.
channels = 3
weights = [rng.uniform(0.5, 2, channels), rng.normal(size=channels), rng.normal(size=channels),
           rng.uniform(0.5, 2, channels)]
def make_layer():
    layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=True)
    layer.build((None, 4, 5, channels))
    layer.set_weights([w.astype(np.float32) for w in weights])
    return layer
def layer_step(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * tf.sin(y))  # a loss whose gradient differs from pixel to pixel
    dx, d_gamma, d_beta = tape.gradient(loss, [x, layer.gamma, layer.beta])
    # The gradient of x is per pixel, like the outputs: concatenated rather than summed.
    return [y, dx], [d_gamma, d_beta]
x = (rng.normal(size=(4, 4, 5, channels)) * 3 + 1).astype(np.float32)
single, mirrored, one, two = run_both(make_layer, layer_step, x)
result.update(report("layer_outputs", one[0][:1], two[0][:1]))
result.update(report("layer_input_gradient", one[0][1:], two[0][1:]))
result.update(report("layer_gradients", one[1], two[1]))
result.update(report("layer_moving", [single.moving_mean, single.moving_variance],
                     [mirrored.moving_mean, mirrored.moving_variance]))

# A tiny network: one training step (forward, loss, gradients, moving statistics).
config = ModelConfig(num_stacks=1, depth=1, num_features=16, input_size=64, num_joints=4,
                     sync_batch_norm=True)
keras.utils.set_random_seed(0)
initial = build_model(config).get_weights()
def make_model():
    model = build_model(config)
    model.set_weights(initial)
    return model
def model_step(model, images, targets):
    with tf.GradientTape() as tape:
        heatmaps = model(images, training=True)["heatmaps_1"]
        # A sum over samples: the replicas' losses add up to the whole batch's.
        loss = tf.reduce_sum(tf.square(heatmaps - targets))
    return [heatmaps], tape.gradient(loss, model.trainable_variables)
images = rng.random((4, 64, 64, 3), np.float32)
targets = rng.random((4, 16, 16, 4), np.float32) ** 8
single, mirrored, one, two = run_both(make_model, model_step, images, targets)
result.update(report("model_outputs", one[0], two[0]))
# Relative to the gradient's norm: see the test for why not element by element.
g_one = np.concatenate([np.ravel(g) for g in one[1]])
g_two = np.concatenate([np.ravel(g) for g in two[1]])
result["model_gradient_relative"] = float(np.linalg.norm(g_two - g_one) / np.linalg.norm(g_one))
moving = [w.path for w in single.weights if "moving_" in w.path]
result.update(report("model_moving", [w for w in single.weights if w.path in moving],
                     [w for w in mirrored.weights if w.path in moving]))
result["num_moving"] = len(moving)
print("RESULT", json.dumps(result))
"""

# float32's unit roundoff.
U = 2.0**-24
# The layer's statistics and the gradients of gamma and beta are sums over n = 4 * 4 * 5 = 80
# values per channel, added in another order by two replicas (two partial sums) than by one;
# a float32 sum of n terms is within n * U of the sum of their magnitudes, and each term is a
# few roundings (x - mean, a square, a product) away from exact: 4 * n * U relative to the
# result's magnitude bounds both. A moving variance biased on either side would be off by
# 0.1 * var / (n - 1), 1.3e-3 of it: far above.
LAYER_TOL = 4 * 80 * U
# The network: one replica's fused kernel sums up to n = 4 * 32 * 32 values per channel (the
# stem's BatchNorms) in float32, within n * U of exact (the two replicas' statistics are closer:
# two-pass moments of half as many values each); that rounding of a layer's mean and variance
# shifts its whole output by as much relative to its spread, and passes on through the later
# layers (each normalises again) without growing.
MODEL_TOL = 4 * 32 * 32 * U
# Gradients: a ReLU whose input lies within that rounding of 0 can be on for one replica count
# and off for the other, which moves the gradient by that unit's share (~1e-3 of its norm in a
# network this small, see tests/test_launch.py); the stem has a dozen units within 1e-5 of 0
# for these inputs, so the bound is not rounding's: it admits flips (5e-3 measured here, up to
# 5e-2 with other random inputs) and catches what is of order 1: statistics not synchronised
# (1.1, measured), or no gradient through them (3.4, measured).
MODEL_GRADIENT_TOL = 0.1


@pytest.fixture(scope="module")
def compared():
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


@pytest.mark.parametrize(
    "name", ["layer_outputs", "layer_gradients", "layer_input_gradient", "layer_moving"]
)
def test_one_layer_over_two_replicas_is_one_replica_on_the_whole_batch(compared, name):
    difference, scale = compared[name]
    assert difference <= LAYER_TOL * scale, (name, difference, scale)


def test_a_training_step_over_two_replicas_is_one_replica_on_the_whole_batch(compared):
    difference, scale = compared["model_outputs"]
    assert difference <= MODEL_TOL * scale, compared
    assert compared["model_gradient_relative"] < MODEL_GRADIENT_TOL, compared
    # The moving statistics after the step: those of the global batch, the variance unbiased
    # with n the global count as in one replica's kernel (checked more closely on one layer).
    assert compared["num_moving"] == 2 * 26  # every BatchNorm of the network
    difference, scale = compared["model_moving"]
    assert difference <= MODEL_TOL * scale, compared
    assert np.isfinite(scale)
