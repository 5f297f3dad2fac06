"""Training-time metrics computed on heatmaps inside the train step."""

from __future__ import annotations

import keras
import tensorflow as tf

from stacked_hourglass.data.codec import decode_heatmaps


class HeatmapPCK(keras.metrics.Metric):
    """PCK computed on heatmaps, as pose-hg-train's training accuracy.

    Both the target and the predicted heatmaps are decoded (argmax + quarter-pixel shift); a joint
    counts when its target heatmap has a peak (annotated and inside the crop) and the distance is
    ≤ `threshold` × heatmap_size / 10 heatmap pixels (pose-hg-train's normaliser). Cheap enough for
    every batch; the real PCKh in original pixels comes from `callbacks.Validation`.
    """

    def __init__(self, threshold=0.5, name="pck", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = threshold
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true_xy, true_peak = decode_heatmaps(y_true)
        pred_xy, _ = decode_heatmaps(y_pred)
        size = tf.cast(tf.shape(y_true)[1], tf.float32)
        distance = tf.norm(pred_xy - true_xy, axis=-1) / (size / 10.0)
        valid = true_peak > 0.5
        hits = tf.logical_and(valid, distance <= self.threshold)
        self.correct.assign_add(tf.reduce_sum(tf.cast(hits, self.dtype)))
        self.total.assign_add(tf.reduce_sum(tf.cast(valid, self.dtype)))

    def result(self):
        return tf.math.divide_no_nan(self.correct, self.total)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}
