"""Layers of the network that Keras does not provide in the form the network needs."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="stacked_hourglass")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras's BatchNormalization computed by TensorFlow's fused kernel (`FusedBatchNormV3`).

    Keras 3 normalises with about 17 elementwise ops per layer (moments, moving averages,
    scale and shift) and their gradients; the 8-stack network has 1,000+ BatchNorm layers, so
    those ops were most of its graph: slow to trace, slow to optimise (Grappler) and a pass over
    the activations each. The fused kernel is one op forwards and one backwards, takes bfloat16
    or float16 activations with float32 statistics (no casts around it), and oneDNN fuses it.

    Same variables, names and weights as `keras.layers.BatchNormalization` (checkpoints, `.keras`
    files and imported weights load either way). One difference, on purpose: in training the
    moving variance is updated with the unbiased batch variance (n / (n - 1)), as Torch's
    SpatialBatchNormalization and PyTorch do, where Keras uses the biased one; normalisation
    itself uses the biased variance in both.

    With `synchronized=True` and several replicas in training, the statistics are those of the
    global batch (`_synchronized_batch_norm`): one collective of packed statistics per layer
    forwards and one backwards (Keras's synchronised layer all-reduces the sum, the sum of
    squares and the count separately, and their gradients), and the same moving-variance
    convention with n the global batch's count. With one replica, or in inference,
    `synchronized` changes nothing.

    `activation="relu"` applies a ReLU to the output, as a `keras.layers.ReLU` after the layer
    would: the network's every BatchNorm is followed by one, and a layer fewer for each is a
    Keras call fewer to build and trace (ReLU layers hold no variables, so weight files and
    checkpoints of models built with separate ReLU layers load unchanged).

    Falls back to Keras's implementation where the fused kernel does not apply: masks,
    renormalisation, or inputs that are not [B, H, W, C] with the channels last.

    Args:
        activation: None or "relu".
        **kwargs: `keras.layers.BatchNormalization`'s arguments.
    """

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        if activation not in (None, "relu"):
            raise ValueError(
                f"FusedBatchNormalization: activation must be None or 'relu'; got {activation!r}"
            )
        self.activation = activation

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": self.activation}

    def call(self, inputs, training=None, mask=None):
        outputs = self._normalize(inputs, training, mask)
        return tf.nn.relu(outputs) if self.activation == "relu" else outputs

    def _normalize(self, inputs, training, mask):
        if (
            mask is not None
            or self.renorm
            or len(inputs.shape) != 4
            or self.axis not in (-1, 3)
            or not (self.center and self.scale)
        ):
            return super().call(inputs, training=training, mask=mask)
        dtype = inputs.dtype if inputs.dtype in (tf.bfloat16, tf.float16) else tf.float32
        inputs = tf.cast(inputs, dtype)
        # The statistics and the affine parameters stay float32 whatever the activations are.
        gamma = tf.cast(self.gamma, tf.float32)
        beta = tf.cast(self.beta, tf.float32)
        moving_mean = tf.cast(self.moving_mean, tf.float32)
        moving_variance = tf.cast(self.moving_variance, tf.float32)
        replica = tf.distribute.get_replica_context()
        if (
            training
            and self.trainable
            and self.synchronized
            and replica is not None
            and replica.num_replicas_in_sync > 1
        ):
            outputs = self._synchronized_batch_norm(inputs, gamma, beta, replica)
        elif training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                gamma,
                beta,
                mean=moving_mean,
                variance=moving_variance,
                epsilon=self.epsilon,
                is_training=True,
                # The kernel returns the updated moving averages: old * momentum + new * (1 -
                # momentum), Keras's convention for `momentum`.
                exponential_avg_factor=1.0 - self.momentum,
            )
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                gamma,
                beta,
                mean=moving_mean,
                variance=moving_variance,
                epsilon=self.epsilon,
                is_training=False,
            )
        return tf.cast(outputs, self.compute_dtype)

    def _synchronized_batch_norm(self, inputs, gamma, beta, replica):
        """Training-mode BatchNorm over the global batch of all replicas.

        Forwards: the global batch's statistics (`_global_moments`, one all-gather), then the
        fused kernel normalises with them. Backwards (`_normalize_with_global_statistics`): one
        all-reduce of the packed [2C] sums that the gradient through the statistics needs. The
        moving averages are updated as the single-replica kernel updates them: the variance
        unbiased, with n the global batch's count.

        Args:
            inputs: [B, H, W, C] this replica's activations (float32, bfloat16 or float16).
            gamma, beta: [C] float32.
            replica: the replica context (several replicas in sync).

        Returns:
            [B, H, W, C] normalised, in `inputs`' dtype.
        """
        mean, variance, count = _global_moments(inputs, replica)
        outputs = _normalize_with_global_statistics(
            inputs, gamma, beta, mean, variance, count, self.epsilon, replica
        )
        unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + unbiased * (1.0 - self.momentum)
        )
        return outputs


def _global_moments(x, replica):
    """Mean and (biased) variance per channel of the global batch, and its count.

    Every replica contributes its count n_r, mean m_r and sum of squared deviations M2_r
    (two passes over its activations, as accurate as one replica's kernel), packed into one
    [2C + 1] vector; one all-gather brings all of them to every replica, which combines them
    (Chan et al.): M2 = sum(M2_r) + sum(n_r * (m_r - mean)^2). A sum-and-sum-of-squares
    all-reduce would be cheaper to combine but computes E[x^2] - E[x]^2, which loses
    (mean / std)^2 * 2^-24 of the variance: 1e-3 and more after a convolution whose outputs'
    mean is large against their spread, as at initialisation.

    Args:
        x: [B, H, W, C] this replica's activations; they receive no gradient from here (the
            statistics' share of the gradient is in `_normalize_with_global_statistics`).
        replica: the replica context.

    Returns:
        (mean [C], variance [C], count []) float32, identical on every replica.
    """
    x = tf.cast(tf.stop_gradient(x), tf.float32)
    local_mean, local_variance = tf.nn.moments(x, [0, 1, 2])
    local_count = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
    packed = tf.concat([local_count[None], local_mean, local_variance * local_count], 0)
    gathered = replica.all_gather(packed[None], axis=0)  # [replicas, 2C + 1]
    counts, means, squares = tf.split(gathered, [1, x.shape[-1], x.shape[-1]], axis=1)
    count = tf.reduce_sum(counts)
    mean = tf.reduce_sum(counts * means, 0) / count
    squares = tf.reduce_sum(squares, 0) + tf.reduce_sum(counts * tf.square(means - mean), 0)
    return mean, squares / count, count


def _normalize_with_global_statistics(x, gamma, beta, mean, variance, count, epsilon, replica):
    """gamma * (x - mean) / sqrt(variance + epsilon) + beta with the global batch's gradient.

    The forward pass is the fused kernel in inference mode (the statistics given); so is the
    first part of the gradient, which gives dy * gamma / sigma and this replica's sums
    sum(dy * x_hat) and sum(dy) (the gradients of gamma and beta, which the strategy sums across
    replicas as it does every variable's). The statistics' share of dx needs those sums over the
    global batch, hence one all-reduce of the two packed:
    dx = gamma / sigma * (dy - (sum(dy) + x_hat * sum(dy * x_hat)) / n), n the global count.

    Args:
        x: [B, H, W, C] this replica's activations.
        gamma, beta, mean, variance: [C] float32; mean and variance are the global batch's and
            receive no gradient (their share is in dx).
        count: the global batch's count per channel (B * H * W summed over replicas), float32.
        epsilon: added to the variance.
        replica: the replica context.

    Returns:
        [B, H, W, C] in `x`'s dtype.
    """

    @tf.custom_gradient
    def normalize(x, gamma, beta):
        y, _, _, _, _, reserve = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=mean, variance=variance, epsilon=epsilon,
            is_training=False,
        )  # fmt: skip

        def grad(dy):
            dx_direct, d_gamma, d_beta, _, _ = tf.raw_ops.FusedBatchNormGradV3(
                y_backprop=dy, x=x, scale=gamma, reserve_space_1=mean, reserve_space_2=variance,
                reserve_space_3=reserve, epsilon=epsilon, is_training=False,
            )  # fmt: skip
            sums = replica.all_reduce(tf.distribute.ReduceOp.SUM, tf.concat([d_gamma, d_beta], 0))
            sum_dy_x_hat, sum_dy = tf.split(sums, 2)
            inv_sigma = tf.math.rsqrt(variance + epsilon)
            # -gamma / sigma / n * (sum_dy + x_hat * sum_dy_x_hat) as x * slope + intercept.
            slope = -gamma * inv_sigma**2 * sum_dy_x_hat / count
            intercept = -gamma * inv_sigma * sum_dy / count - slope * mean
            dx = dx_direct + x * tf.cast(slope, x.dtype) + tf.cast(intercept, x.dtype)
            return dx, d_gamma, d_beta

        return y, grad

    return normalize(x, gamma, beta)


@keras.saving.register_keras_serializable(package="stacked_hourglass")
class BiasAddConv2D(keras.layers.Conv2D):
    """Keras's Conv2D with the bias added by one `BiasAdd` op.

    Keras 3 reshapes the bias to [1, 1, 1, C], adds it, and its TensorFlow backend turns that
    add back into `Squeeze` + `BiasAdd`: three ops forwards and five with their gradients, where
    `BiasAdd` and `BiasAddGrad` are all there is to compute. The 8-stack network has 378
    convolutions, so those were ~2,300 of the train step's graph nodes, each traced, optimised
    by Grappler and instantiated before the first step. Same variables, names, config and
    results as `keras.layers.Conv2D` (oneDNN fuses Conv2D + BiasAdd either way).

    Falls back to Keras's implementation for channels-first data and grouped convolutions.
    """

    def call(self, inputs):
        if self.data_format != "channels_last" or self.groups != 1:
            return super().call(inputs)
        outputs = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package="stacked_hourglass")
class NearestUpsampling2D(keras.layers.UpSampling2D):
    """Keras's nearest-neighbour UpSampling2D as one `ResizeNearestNeighbor` op.

    Keras 3 repeats the rows and then the columns (`tf.repeat`, ~20 ops each with their
    constants) and its gradient is as large again: ~45 graph nodes per upsampling where one op
    forwards (`ResizeNearestNeighbor`) and one backwards (`ResizeNearestNeighborGrad`) compute
    the same thing. Output pixel (i, j) is input pixel (i // fy, j // fx) in both; the op's
    half-pixel centres give floor((i + 0.5) / f) = i // f for an integer factor f. LiteRT has it
    as a builtin (RESIZE_NEAREST_NEIGHBOR).

    Falls back to Keras's implementation for channels-first data, other interpolations and
    inputs whose height or width is unknown when traced.
    """

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        if (
            self.data_format != "channels_last"
            or self.interpolation != "nearest"
            or height is None
            or width is None
        ):
            return super().call(inputs)
        factor_y, factor_x = self.size
        return tf.raw_ops.ResizeNearestNeighbor(
            images=inputs,
            size=[height * factor_y, width * factor_x],
            align_corners=False,
            half_pixel_centers=True,
        )
