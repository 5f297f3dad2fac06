"""The heatmap loss: one mean squared error per supervised stack, joints weighted.

`DataConfig.unlabelled` says what a joint that is not annotated (`keypoint_status` 0,
`features.NOT_ANNOTATED`) does to the loss:

* "zero" (the paper's recipe, the default for MPII, FLIC and the synthetic people): its target
  heatmap is all zeros and the network is trained towards it. The loss is Keras's "mse".
* "ignore" (the default for COCO and joint sets of one's own, whose records leave many joints
  unlabelled): it contributes nothing. The pipeline gives every batch per-joint weights
  w [B, 1, 1, K] (`pipeline.make_train_dataset`), which Keras passes to `JointWeightedMSE` as the
  output's `sample_weight`, and the loss of a stack is

      sum over b, y, x, j of w[b, j] * (pred[b, y, x, j] - target[b, y, x, j])**2 / (B * H * W * K)

  with w = 0 for an unlabelled joint and 1 otherwise: the same denominator as "mse", so with
  every weight 1 it is "mse".

Keras's `MeanSquaredError` averages over the last axis (the joints) before it applies a sample
weight, so a per-joint weight cannot reach it; `JointWeightedMSE` returns the squared errors
per pixel and joint, which Keras's loss reduction multiplies by the broadcast weights and
divides by their count (`reduction="sum_over_batch_size"`). That reduction also divides by the
replicas in sync, as for "mse": the loss is a per-replica mean whose sum over replicas is the
global batch's.
"""

from __future__ import annotations

import keras

from stacked_hourglass.config import DataConfig

UNLABELLED_ZERO_LOSS = "mse"


@keras.saving.register_keras_serializable(package="stacked_hourglass")
class JointWeightedMSE(keras.losses.Loss):
    """Squared heatmap errors per pixel and joint, for per-joint `sample_weight`s [B, 1, 1, K].

    `call(y_true, y_pred)`: target and predicted heatmaps [B, H, W, K] → squared errors
    [B, H, W, K]; Keras's reduction weights them and divides by B * H * W * K (see the module
    docstring). Without a sample weight the result is the mean squared error.
    """

    def __init__(self, name="joint_weighted_mse", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return keras.ops.square(y_pred - y_true)


def heatmap_loss(data_config: DataConfig):
    """The loss of every supervised stack under `data_config`'s rule for unlabelled joints.

    Returns:
        "mse" for "zero" (the paper's loss, unchanged), a `JointWeightedMSE` for "ignore".
    """
    if data_config.unlabelled_rule == "ignore":
        return JointWeightedMSE()
    return UNLABELLED_ZERO_LOSS
