"""Torch's RMSprop, as used to train the paper's network."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="stacked_hourglass")
class TorchRMSprop(keras.optimizers.RMSprop):
    """RMSprop with Torch's epsilon placement: `w -= lr * g / (sqrt(v) + eps)`.

    Keras's RMSprop divides by `sqrt(v + eps)` instead. With the paper's eps = 1e-8 the two differ
    while `v` is small (early training, rarely-updated weights): Keras's version caps the step at
    lr * g / 1e-4, Torch's lets it grow to lr * g / 1e-8. pose-hg-train used Torch's `optim.rmsprop`
    (alpha = 0.99, epsilon = 1e-8, no momentum); this reproduces it.

    The update is TensorFlow's fused Adam kernel (`ResourceApplyAdam`) with beta1 = 0 and both
    bias corrections off (beta powers 0), which is exactly this rule:

        m = m + (g - m) * (1 - 0)     # with m set to g just before: m = g, exactly
        v = v + (g^2 - v) * (1 - rho) # = rho * v + (1 - rho) * g^2
        w = w - lr * sqrt(1 - 0) / (1 - 0) * m / (sqrt(v) + eps)

    One op per variable instead of about fourteen: the 8-stack network's 1,464 updates traced,
    optimised and ran as ~20,000 graph nodes, a large part of the time to the first step. The
    `m` buffers (one float32 copy of the weights) are scratch, rewritten every step, and not
    optimizer state: checkpoints keep Keras's variables (`iterations`, `learning_rate`, one
    velocity per weight) and load either way.
    """

    def __init__(self, learning_rate=2.5e-4, rho=0.99, epsilon=1e-8, name="torch_rmsprop", **kw):
        kw.pop("momentum", None)
        kw.pop("centered", None)
        super().__init__(learning_rate=learning_rate, rho=rho, epsilon=epsilon, name=name, **kw)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Plain tf.Variables, outside Keras's tracking on purpose (see the class docstring).
        self._gradient_buffers = [
            tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name=f"{_name(v)}_gradient")
            for v in var_list
        ]

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # The kernel's scalar arguments, made once per step rather than once per variable.
        self._scalars = {}
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._scalars = None

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        scalars = getattr(self, "_scalars", None)
        scalars = {} if scalars is None else scalars
        if dtype not in scalars:
            scalars[dtype] = (
                tf.constant(0.0, dtype),
                tf.constant(self.rho, dtype),
                tf.constant(self.epsilon, dtype),
                tf.cast(learning_rate, dtype),
            )
        zero, rho, epsilon, lr = scalars[dtype]
        index = self._get_variable_index(variable)
        buffer = self._gradient_buffers[index]
        gradient = tf.cast(gradient, dtype)
        buffer.assign(gradient, read_value=False)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=buffer.handle,
            v=self._velocities[index].value.handle,
            beta1_power=zero,
            beta2_power=zero,
            lr=lr,
            beta1=zero,
            beta2=rho,
            epsilon=epsilon,
            grad=gradient,
        )


def _name(variable) -> str:
    return variable.path.replace("/", "_") if hasattr(variable, "path") else variable.name
