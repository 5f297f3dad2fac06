"""Torch's RMSprop, as used to train the paper's network."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="stacked_hourglass")
class TorchRMSprop(keras.optimizers.RMSprop):
    """RMSprop with Torch's epsilon placement: `w -= lr * g / (sqrt(v) + eps)`.

    Keras's RMSprop divides by `sqrt(v + eps)` instead. With the paper's eps = 1e-8 the two differ
    while `v` is small (early training, rarely-updated weights): Keras's version caps the step at
    lr * g / 1e-4, Torch's lets it grow to lr * g / 1e-8. pose-hg-train used Torch's `optim.rmsprop`
    (alpha = 0.99, epsilon = 1e-8, no momentum); this reproduces it.
    """

    def __init__(self, learning_rate=2.5e-4, rho=0.99, epsilon=1e-8, name="torch_rmsprop", **kw):
        kw.pop("momentum", None)
        kw.pop("centered", None)
        super().__init__(learning_rate=learning_rate, rho=rho, epsilon=epsilon, name=name, **kw)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        velocity = self._velocities[self._get_variable_index(variable)]
        self.assign(
            velocity,
            ops.add(
                ops.multiply(self.rho, velocity), ops.multiply(1 - self.rho, ops.square(gradient))
            ),
        )
        denominator = ops.add(ops.sqrt(velocity), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(lr, gradient), denominator))
