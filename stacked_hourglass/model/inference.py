"""From crops to keypoints in original pixels: the one prediction path.

Validation during training, evaluation (of a Keras model or of an exported SavedModel) and the
SavedModel's own graph all call these functions, so the numbers they report come from the same
decoding (`data.codec.HeatmapCodec`).

A *heatmaps function* maps crops float32 [B, S, S, 3] in [0, 1] to the last stack's heatmaps
float32 [B, H, H, K]: `heatmaps_fn(model, flip_permutation)` makes one from a Keras model, and a
SavedModel's `serving_image_tensor` signature is one too.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from stacked_hourglass.data import features
from stacked_hourglass.data.codec import HeatmapCodec

HeatmapsFn = Callable[[tf.Tensor], tf.Tensor]


def last_output_name(model: keras.Model) -> str:
    """Name of the last stack's heatmap output (the prediction)."""
    names = [n for n in model.output_names if n.startswith("heatmaps_")]
    if not names:
        raise ValueError(f"Model has no heatmaps_N output; outputs are {model.output_names}")
    return max(names, key=lambda n: int(n.rsplit("_", 1)[1]))


def predict_heatmaps(model, images, flip_permutation=None):
    """Last-stack heatmaps of a batch of crops, optionally with the flip test.

    Args:
        model: a stacked hourglass `keras.Model` (dict outputs `heatmaps_i`).
        images: float32 [B, S, S, 3] in [0, 1].
        flip_permutation: `JointSet.flip_permutation()` to average with the heatmaps of the
            mirrored crops (flip test); None for a single pass.

    Returns:
        float32 [B, H, H, K].
    """
    name = last_output_name(model)
    heatmaps = model(images, training=False)[name]
    if flip_permutation is not None:
        mirrored = model(tf.reverse(images, axis=[2]), training=False)[name]
        heatmaps = 0.5 * (heatmaps + HeatmapCodec.flip(mirrored, flip_permutation))
    return tf.cast(heatmaps, tf.float32)


def heatmaps_fn(model: keras.Model, flip_permutation=None) -> HeatmapsFn:
    """A heatmaps function of a Keras model (see the module docstring)."""
    return lambda images: predict_heatmaps(model, images, flip_permutation)


def predict_step(heatmaps: HeatmapsFn, codec: HeatmapCodec, ignore_unlabelled: bool = False):
    """The traced step of `predict_dataset`: (crops [B, S, S, 3], matrices [B, 3, 3], target
    heatmaps [B, H, H, K] or [1, 1, 1, 1], annotated bool [B, K]) → (keypoints [B, K, 2] in
    original pixels, scores [B, K], heatmap MSE [B]).

    With `ignore_unlabelled` (`--unlabelled=ignore`) the MSE is the training loss's: the squared
    errors of a joint that is not annotated count 0, the denominator stays H * H * K.

    Make it once and pass it to every `predict_dataset` call over the same model (validation at
    every epoch end): a new step is traced again.
    """

    @tf.function(reduce_retracing=True, autograph=False)
    def step(images, matrices, targets, annotated):
        predicted = tf.cast(heatmaps(images), tf.float32)
        preds, scores = codec.decode_to_original(predicted, matrices)
        squared = tf.square(predicted - targets)
        if ignore_unlabelled:
            squared *= tf.cast(annotated, tf.float32)[:, None, None, :]
        mse = tf.reduce_mean(squared, axis=[1, 2, 3])
        return preds, scores, mse

    return step


def predict_dataset(
    heatmaps: HeatmapsFn,
    dataset,
    codec: HeatmapCodec,
    max_batches: int | None = None,
    step=None,
) -> dict:
    """Runs a heatmaps function over an evaluation dataset (`pipeline.make_eval_dataset`).

    Args:
        heatmaps: crops [B, S, S, 3] -> heatmaps [B, H, H, K] (see the module docstring).
        dataset: batches of (image, info).
        codec: decodes the heatmaps and maps them back through info["matrix"].
        max_batches: stop after this many batches (None: all).
        step: `predict_step(heatmaps, codec, ...)`, made once by a caller that predicts
            repeatedly; None: `predict_step(heatmaps, codec)`, made (and traced) here.

    Returns:
        dict of numpy arrays over the N people, in dataset order: "preds" [N, K, 2] and
        "keypoints" [N, K, 2] (0-based original pixels), "scores" [N, K], "missing" [N, K] bool
        (not annotated), "normalizer" [N], "index" [N], "person" [N], "scale" [N] (the crop's
        side is 200 × scale original pixels), and "heatmap_mse" [N]
        (mean squared error of the predicted against the target heatmaps, when the dataset
        carries targets in info["heatmaps"]).
    """
    step = step or predict_step(heatmaps, codec)
    keys = ("preds", "scores", "keypoints", "missing", "normalizer", "index", "person", "scale")
    parts = {k: [] for k in (*keys, "heatmap_mse")}
    for batch, (images, info) in enumerate(dataset):
        if max_batches is not None and batch >= max_batches:
            break
        targets = info.get("heatmaps")
        preds, scores, mse = step(
            images,
            info["matrix"],
            tf.zeros([1, 1, 1, 1]) if targets is None else targets,
            info["status"] != features.NOT_ANNOTATED,
        )
        if targets is not None:
            parts["heatmap_mse"].append(mse.numpy())
        parts["preds"].append(preds.numpy())
        parts["scores"].append(scores.numpy())
        parts["keypoints"].append(info["keypoints"].numpy())
        parts["missing"].append(info["status"].numpy() == features.NOT_ANNOTATED)
        parts["normalizer"].append(info["normalizer"].numpy())
        parts["index"].append(info["index"].numpy())
        parts["person"].append(info["person"].numpy())
        parts["scale"].append(info["scale"].numpy())
    if not parts["preds"]:
        raise ValueError("The evaluation dataset is empty")
    return {k: np.concatenate(v) for k, v in parts.items() if v}
