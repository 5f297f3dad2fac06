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

    Falls back to Keras's implementation where the fused kernel does not apply: synchronised
    statistics across replicas, masks, renormalisation, or inputs that are not [B, H, W, C] with
    the channels last.
    """

    def call(self, inputs, training=None, mask=None):
        if (
            self.synchronized
            or mask is not None
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
        if training and self.trainable:
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
