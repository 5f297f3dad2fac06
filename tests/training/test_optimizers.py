"""Torch's RMSprop: epsilon added after the square root."""

from __future__ import annotations

import keras
import numpy as np

from stacked_hourglass.training.optimizers import TorchRMSprop


def test_torch_rmsprop_matches_hand_computed_step():
    var = keras.Variable(np.array([1.0, -2.0], np.float32))
    opt = TorchRMSprop(learning_rate=0.1, rho=0.9, epsilon=1e-8)
    grad = np.array([0.5, -4.0], np.float32)
    opt.apply_gradients([(grad, var)])
    velocity = 0.1 * grad**2
    expected = np.array([1.0, -2.0]) - 0.1 * grad / (np.sqrt(velocity) + 1e-8)
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-6)


def test_torch_rmsprop_serializes():
    opt = TorchRMSprop(learning_rate=0.01, rho=0.95, epsilon=1e-6)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(clone) is TorchRMSprop
    assert (clone.rho, clone.epsilon) == (0.95, 1e-6)
    assert float(clone.learning_rate) == np.float32(0.01)


def _torch_rmsprop(weights, gradients, lr, rho, eps):
    """Torch's `optim.rmsprop` in float64, step by step."""
    w, v = weights.astype(np.float64), np.zeros_like(weights, np.float64)
    for g in gradients:
        v = rho * v + (1 - rho) * g.astype(np.float64) ** 2
        w = w - lr * g / (np.sqrt(v) + eps)
    return w, v


def test_fused_update_follows_torch_over_steps_with_gradients_of_any_size():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 5)).astype(np.float32)
    # Consecutive gradients 1e6 apart: an update through the fused kernel's `m = m + (g - m)`
    # keeps the small one only to within the large one's rounding, and one that read a stale
    # `m` would move the weights on the zero gradient.
    scales = [1.0, 1e-6, 1e3, 0.0, 1e-9]
    gradients = [(rng.normal(size=(3, 5)) * s).astype(np.float32) for s in scales]
    var = keras.Variable(start)
    opt = TorchRMSprop(learning_rate=2.5e-4, rho=0.99, epsilon=1e-8)

    @tf.function
    def step(g):
        opt.apply_gradients([(g, var)])

    opt.build([var])
    for i, g in enumerate(gradients):
        # From zero weights the step itself is read back exactly, however small it is.
        var.assign(np.zeros_like(start))
        step(g)
        _, v_i = _torch_rmsprop(start, gradients[: i + 1], 2.5e-4, 0.99, 1e-8)
        np.testing.assert_allclose(-var.numpy(), 2.5e-4 * g / (np.sqrt(v_i) + 1e-8), rtol=1e-5)
    np.testing.assert_allclose(opt.variables[-1].numpy(), v_i, rtol=1e-5, atol=1e-30)


def test_scratch_buffers_are_not_optimizer_state():
    # Checkpoints (`.weights.h5`) hold `optimizer.variables`: iterations, learning rate and one
    # velocity per weight, as before the fused update, so older checkpoints still load.
    var = keras.Variable(np.zeros((2, 2), np.float32))
    opt = TorchRMSprop()
    opt.build([var])
    assert len(opt.variables) == 3


def test_weights_of_one_shape_share_one_scratch_buffer():
    variables = [keras.Variable(np.zeros(shape, np.float32)) for shape in [(2, 2), (3,), (2, 2)]]
    opt = TorchRMSprop()
    opt.build(variables)
    assert opt._scratch[0] is opt._scratch[2] and opt._scratch[0] is not opt._scratch[1]
    # Two updates through the shared buffer give what separate ones would.
    scales = [1.0, 2.0, 1e-6]
    gradients = [np.full(v.shape, g, np.float32) for v, g in zip(variables, scales, strict=True)]
    opt.apply_gradients(zip(gradients, variables, strict=True))
    step = 2.5e-4 / (np.sqrt(0.01) + 1e-8 / np.array(scales))
    for v, s in zip(variables, step, strict=True):
        np.testing.assert_allclose(v.numpy(), -s, rtol=1e-5)
