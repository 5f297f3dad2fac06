r"""Training throughput and time to the first step (prints figures, asserts nothing).

    python bench/bench_train.py --num_stacks=8 --input_size=256 --batch_size=4 [--steps=10]
        [--data='tfrecords/synthetic/train-*'] [--mixed_precision=bfloat16] [--jit_compile]

Without --data the batches are random tensors in memory (the network alone); with --data they
come from the real tf.data pipeline (decode, augment, heatmaps) so input-bound setups show.
"""

from __future__ import annotations

import time

from absl import app, flags

_NUM_STACKS = flags.DEFINE_integer("num_stacks", 2, "Stacks.")
_NUM_FEATURES = flags.DEFINE_integer("num_features", 256, "Features.")
_DEPTH = flags.DEFINE_integer("depth", 4, "Hourglass depth.")
_INPUT_SIZE = flags.DEFINE_integer("input_size", 256, "Input side.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps after the first.")
_DATA = flags.DEFINE_string("data", None, "TFRecord glob (synthetic or MPII); default random.")
_DATASET = flags.DEFINE_string("dataset", "synthetic", "Joint set of --data.")
_MIXED = flags.DEFINE_enum("mixed_precision", "none", ["none", "float16", "bfloat16"], "Policy.")
_JIT = flags.DEFINE_bool("jit_compile", False, "XLA.")
_GRAPH_OPTIMIZER = flags.DEFINE_enum(
    "graph_optimizer", "auto", ["auto", "full"], "Grappler passes (as train's flag)."
)


def main(argv):
    del argv
    start = time.perf_counter()
    import numpy as np
    import tensorflow as tf

    from stacked_hourglass.config import DataConfig, ModelConfig, TrainConfig
    from stacked_hourglass.data import pipeline
    from stacked_hourglass.data.codec import HeatmapCodec
    from stacked_hourglass.model import build_model
    from stacked_hourglass.training import precision, trainer

    imported = time.perf_counter()
    policy = precision.set_precision_policy(_MIXED.value)
    trainer.set_graph_optimizer(_GRAPH_OPTIMIZER.value)
    config = ModelConfig(
        num_stacks=_NUM_STACKS.value,
        num_features=_NUM_FEATURES.value,
        depth=_DEPTH.value,
        input_size=_INPUT_SIZE.value,
    )
    model = build_model(config)
    trainer.compile_model(model, config, TrainConfig(jit_compile=_JIT.value))
    built = time.perf_counter()
    b, s, h = _BATCH_SIZE.value, config.input_size, config.heatmap_size
    if _DATA.value:
        data_config = DataConfig(dataset=_DATASET.value, train_files=_DATA.value)
        codec = HeatmapCodec.for_model(s, data_config.sigma)
        ds = pipeline.make_train_dataset(data_config, codec, b, config.output_names)
    else:
        rng = np.random.default_rng(0)
        x = rng.random((b, s, s, 3), np.float32)
        y = rng.random((b, h, h, config.num_joints), np.float32) ** 8
        ds = tf.data.Dataset.from_tensors((x, {n: y for n in config.output_names})).repeat()
    iterator = iter(ds)
    model.train_on_batch(*next(iterator))
    first = time.perf_counter()
    for _ in range(_STEPS.value):
        model.train_on_batch(*next(iterator))
    done = time.perf_counter()
    rate = _STEPS.value * b / (done - first)
    print(
        f"{config.num_stacks} stacks x {config.num_features} features, {s}x{s}, batch {b}, "
        f"policy {policy}, jit {_JIT.value}, graph optimizer {_GRAPH_OPTIMIZER.value}, "
        f"data {'pipeline' if _DATA.value else 'random'}"
    )
    print(f"  import TF + package: {imported - start:.1f} s")
    print(f"  build + compile:     {built - imported:.1f} s")
    print(f"  first train step:    {first - built:.1f} s (tracing included)")
    print(f"  time to first step:  {first - start:.1f} s from process start")
    step = (done - first) / _STEPS.value
    print(f"  throughput:          {rate:.2f} images/s ({step:.3f} s/step)")


if __name__ == "__main__":
    app.run(main)
