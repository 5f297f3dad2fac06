r"""Inference throughput and time to the first forward pass (prints figures, asserts nothing).

    python bench/bench_infer.py --num_stacks=8 --input_size=256 --batch_size=4 [--steps=10]
        [--mixed_precision=bfloat16] [--jit_compile]

The inference counterpart of bench_train.py (which times train steps only): the network alone,
`model(x, training=False)` in a `tf.function`, on a random batch in memory; every stack's heatmaps
are computed, the last one is fetched. --mixed_precision sets Keras's mixed_float16 /
mixed_bfloat16 policy before the model is built. The last two lines have bench_train.py's format
(bench/compare.py parses them).
"""

from __future__ import annotations

import time

from absl import app, flags

_NUM_STACKS = flags.DEFINE_integer("num_stacks", 2, "Stacks.")
_NUM_FEATURES = flags.DEFINE_integer("num_features", 256, "Features.")
_DEPTH = flags.DEFINE_integer("depth", 4, "Hourglass depth.")
_INPUT_SIZE = flags.DEFINE_integer("input_size", 256, "Input side.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed forward passes after the first.", lower_bound=1)
_MIXED = flags.DEFINE_enum("mixed_precision", "none", ["none", "float16", "bfloat16"], "Policy.")
_JIT = flags.DEFINE_bool("jit_compile", False, "XLA.")


def _model_api():
    """The package's model entry points; the one place that names their module."""
    from stacked_hourglass.model import ModelConfig, build_model

    return ModelConfig, build_model


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    start = time.perf_counter()
    import keras
    import numpy as np
    import tensorflow as tf

    model_config, build_model = _model_api()
    imported = time.perf_counter()
    policy = "float32" if _MIXED.value == "none" else f"mixed_{_MIXED.value}"
    keras.mixed_precision.set_global_policy(policy)
    config = model_config(
        num_stacks=_NUM_STACKS.value,
        num_features=_NUM_FEATURES.value,
        depth=_DEPTH.value,
        input_size=_INPUT_SIZE.value,
    )
    model = build_model(config)
    last = config.output_names[-1]
    forward = tf.function(lambda x: model(x, training=False)[last], jit_compile=_JIT.value)
    built = time.perf_counter()
    b, s = _BATCH_SIZE.value, config.input_size
    x = tf.constant(np.random.default_rng(0).random((b, s, s, 3), np.float32))
    forward(x).numpy()
    first = time.perf_counter()
    for _ in range(_STEPS.value):
        forward(x).numpy()  # .numpy(): wait for the result
    done = time.perf_counter()
    rate = _STEPS.value * b / (done - first)
    print(
        f"{config.num_stacks} stacks x {config.num_features} features, {s}x{s}, batch {b}, "
        f"policy {policy}, jit {_JIT.value}, inference (training=False), data random"
    )
    print(f"  import TF + package: {imported - start:.1f} s")
    print(f"  build:               {built - imported:.1f} s")
    print(f"  first forward pass:  {first - built:.1f} s (tracing included)")
    print(f"  time to first step:  {first - start:.1f} s from process start")
    step = (done - first) / _STEPS.value
    print(f"  throughput:          {rate:.2f} images/s ({step:.3f} s/step)")


if __name__ == "__main__":
    app.run(main)
