"""Torch's RMSprop, as used to train the paper's network."""

from __future__ import annotations

import keras
import tensorflow as tf

from stacked_hourglass.training import keras_hooks

keras_hooks.check()


@keras.saving.register_keras_serializable(package="stacked_hourglass")
class TorchRMSprop(keras.optimizers.RMSprop):
    """RMSprop with Torch's epsilon placement: `w -= lr * g / (sqrt(v) + eps)`.

    Keras's RMSprop divides by `sqrt(v + eps)` instead. With the paper's eps = 1e-8 the two differ
    while `v` is small (early training, rarely-updated weights): Keras's version caps the step at
    lr * g / 1e-4, Torch's lets it grow to lr * g / 1e-8. pose-hg-train used Torch's `optim.rmsprop`
    (alpha = 0.99, epsilon = 1e-8, no momentum); this reproduces it.

    The update is TensorFlow's fused Adam kernel (`ResourceApplyAdam`) in its Nesterov form with
    beta1 = 0 and both bias corrections off (beta powers 0), which is exactly this rule:

        v = v + (g^2 - v) * (1 - rho)                  # = rho * v + (1 - rho) * g^2
        w = w - (g * (1 - 0) + 0 * m) * lr / (sqrt(v) + eps)
          = w - g * lr / (sqrt(v) + eps)               # bit for bit, whatever finite m holds

    (The plain form would use m = m + (g - m), which is g only up to rounding relative to the
    previous step's gradient; the Nesterov form never reads m into the step.) One op per
    variable instead of about fourteen for Keras's update: the 8-stack network's 1,464 updates
    traced, optimised and ran as ~20,000 graph nodes, a large part of the time to the first
    step. The kernel still writes its `m` argument (m + (g - m), finite while g is), so the
    weights of one shape share one scratch buffer the update never depends on: 16 for the whole
    network instead of a float32 copy of every weight (102 MB at 8 stacks); the updates sharing
    a buffer run one after another. The buffers are not optimizer state: checkpoints keep
    Keras's variables (`iterations`, `learning_rate`, one velocity per weight) and load either
    way.
    """

    def __init__(self, learning_rate=2.5e-4, rho=0.99, epsilon=1e-8, name="torch_rmsprop", **kw):
        kw.pop("momentum", None)
        kw.pop("centered", None)
        super().__init__(learning_rate=learning_rate, rho=rho, epsilon=epsilon, name=name, **kw)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Plain tf.Variables, outside Keras's tracking on purpose, one per (shape, dtype) (see
        # the class docstring).
        by_shape = {}
        self._scratch = []
        for v in var_list:
            key = (tuple(v.shape), v.dtype)
            if key not in by_shape:
                by_shape[key] = tf.Variable(
                    tf.zeros(v.shape, v.dtype), trainable=False, name="scratch"
                )
            self._scratch.append(by_shape[key])

    # `_all_reduce_sum_gradients`, `_backend_update_step`, `_get_variable_index` and
    # `_velocities` are private to Keras; `keras_hooks.check` fails the import without them.
    def _all_reduce_sum_gradients(self, grads_and_vars):
        # Without a distribution strategy the sum over the one replica is the gradient itself,
        # but Keras's all-reduce still wraps every gradient in an Identity (1,464 graph nodes
        # in the 8-stack train step).
        if not tf.distribute.has_strategy():
            return list(grads_and_vars)
        return super()._all_reduce_sum_gradients(grads_and_vars)

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
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._scratch[index].handle,
            v=self._velocities[index].value.handle,
            beta1_power=zero,
            beta2_power=zero,
            lr=lr,
            beta1=zero,
            beta2=rho,
            epsilon=epsilon,
            grad=tf.cast(gradient, dtype),
            use_nesterov=True,
        )
