"""From crops to keypoints in original pixels: the one prediction path.

Evaluation, the training-time validation callback and the exported SavedModel all call these
functions, so the numbers they report come from the same decoding.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from stacked_hourglass.data import features, geometry


def last_output_name(model: keras.Model) -> str:
    """Name of the last stack's heatmap output (the prediction)."""
    names = [n for n in model.output_names if n.startswith("heatmaps_")]
    if not names:
        raise ValueError(f"Model has no heatmaps_N output; outputs are {model.output_names}")
    return max(names, key=lambda n: int(n.rsplit("_", 1)[1]))


def predict_heatmaps(model, images, flip_permutation=None):
    """Last-stack heatmaps of a batch of crops, optionally with the flip test.

    Args:
        model: a stacked hourglass `keras.Model` (dict outputs `heatmaps_i`), or any callable
            returning such a dict.
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
        heatmaps = 0.5 * (heatmaps + geometry.flip_heatmaps(mirrored, flip_permutation))
    return tf.cast(heatmaps, tf.float32)


def heatmaps_to_keypoints(heatmaps, matrices, input_size: int):
    """Decodes heatmaps and maps the joints back to original pixels.

    Args:
        heatmaps: float32 [B, H, H, K].
        matrices: float32 [B, 3, 3], original -> crop (from `geometry.crop_matrix`).
        input_size: crop side S.

    Returns:
        (keypoints float32 [B, K, 2] (x, y) 0-based original pixels, scores float32 [B, K]).
    """
    coords, scores = geometry.decode_heatmaps(heatmaps)
    heatmap_size = heatmaps.shape[1] or tf.shape(heatmaps)[1]
    keypoints = geometry.heatmap_to_original(coords, matrices, input_size, heatmap_size)
    return keypoints, scores


def predict_dataset(model, dataset, input_size: int, flip_permutation=None, max_batches=None):
    """Runs a model over an evaluation dataset (`pipeline.make_eval_dataset`).

    Args:
        model: stacked hourglass model.
        dataset: batches of (image, info).
        input_size: crop side S.
        flip_permutation: enables the flip test (see `predict_heatmaps`).
        max_batches: stop after this many batches (None: all).

    Returns:
        dict of numpy arrays over the N people, in dataset order: "preds" [N, K, 2] and
        "keypoints" [N, K, 2] (0-based original pixels), "scores" [N, K], "missing" [N, K] bool
        (not annotated), "normalizer" [N], "index" [N], "person" [N], and "heatmap_mse" [N]
        (mean squared error of the predicted against the target heatmaps, when the dataset
        carries targets in info["heatmaps"]).
    """

    @tf.function(reduce_retracing=True)
    def step(images, matrices, targets):
        heatmaps = predict_heatmaps(model, images, flip_permutation)
        preds, scores = heatmaps_to_keypoints(heatmaps, matrices, input_size)
        mse = tf.reduce_mean(tf.square(heatmaps - targets), axis=[1, 2, 3])
        return preds, scores, mse

    keys = ("preds", "scores", "keypoints", "missing", "normalizer", "index", "person")
    parts = {k: [] for k in (*keys, "heatmap_mse")}
    for batch, (images, info) in enumerate(dataset):
        if max_batches is not None and batch >= max_batches:
            break
        targets = info.get("heatmaps")
        preds, scores, mse = step(
            images, info["matrix"], tf.zeros([0, 0, 0, 0]) if targets is None else targets
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
    if not parts["preds"]:
        raise ValueError("The evaluation dataset is empty")
    return {k: np.concatenate(v) for k, v in parts.items() if v}
