"""Size and cost of a network: parameters, multiply-adds, build and first-forward time."""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np
from keras import layers

from stacked_hourglass.config import ModelConfig
from stacked_hourglass.model.hourglass import build_model


def count_parameters(model: keras.Model) -> dict:
    """Parameter counts: trainable, non-trainable (BatchNorm moving statistics) and total."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {
        "trainable": trainable,
        "non_trainable": non_trainable,
        "total": trainable + non_trainable,
    }


def count_multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of one forward pass for one image, counted over the convolutions.

    Convolutions dominate; BatchNorm, ReLU, pooling, upsampling and additions (a few multiply-adds
    per activation) are left out, as in the usual FLOP counts of this network.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            total += h * w * c_out * kh * kw * c_in
    return int(total)


def summarize(config: ModelConfig) -> dict:
    """Builds a model and reports its size, cost, build time and first forward-pass time."""
    start = time.perf_counter()
    model = build_model(config)
    built = time.perf_counter()
    image = np.zeros((1, config.input_size, config.input_size, 3), np.float32)
    model(image, training=False)
    forward = time.perf_counter()
    return {
        "config": dataclasses.asdict(config),
        "parameters": count_parameters(model),
        "multiply_adds": count_multiply_adds(model),
        "build_seconds": built - start,
        "first_forward_seconds": forward - built,
    }


def format_summary(report: dict) -> str:
    """`summarize()`'s report as the lines `python -m stacked_hourglass.model --summary` prints."""
    params, size = report["parameters"], report["config"]["input_size"]
    trainable = params["trainable"]
    return "\n".join(
        [
            f"config: {report['config']}",
            f"trainable parameters:     {trainable:,} ({trainable / 1e6:.2f} M)",
            f"non-trainable parameters: {params['non_trainable']:,} (BatchNorm moving statistics)",
            f"total parameters:         {params['total']:,} ({params['total'] / 1e6:.2f} M)",
            f"multiply-adds per {size}x{size} image: {report['multiply_adds'] / 1e9:.2f} G",
            f"build time: {report['build_seconds']:.2f} s",
            f"first forward pass (batch 1): {report['first_forward_seconds']:.2f} s",
        ]
    )
