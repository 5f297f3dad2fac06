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
