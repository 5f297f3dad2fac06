r"""Where the time to the first training step goes, phase by phase (prints figures, asserts
nothing).

    python bench/bench_first_step.py [--num_stacks=8] [--num_features=256] [--input_size=256]

Phases, from process start: importing TensorFlow and the package, building the model (creating
its variables), `trainer.compile_model` (the optimizer's slots, the loss and metric trackers),
tracing the train step (`tf.function(model.train_step).get_concrete_function`: Python builds
the graph of the forward pass, its gradient and the optimizer's update), its first call
(Grappler, instantiation and the first execution, which touches the step's memory for the first
time) and its second call (a steady step). Random tensors in memory, no input pipeline. To
compare two trees, run it alternately with `PYTHONPATH=TREE`. `--run_eagerly` calls the train
step without `tf.function` (no tracing, no Grappler; each op dispatched from Python).
"""

from __future__ import annotations

import time

from absl import app, flags

_NUM_STACKS = flags.DEFINE_integer("num_stacks", 8, "Stacks.")
_NUM_FEATURES = flags.DEFINE_integer("num_features", 256, "Features.")
_INPUT_SIZE = flags.DEFINE_integer("input_size", 256, "Input side.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Batch size.")
_RUN_EAGERLY = flags.DEFINE_bool("run_eagerly", False, "Call the train step eagerly.")


def main(argv):
    del argv
    times = [("start", time.perf_counter())]
    import numpy as np
    import tensorflow as tf

    from stacked_hourglass.config import ModelConfig, TrainConfig
    from stacked_hourglass.model import build_model
    from stacked_hourglass.training import trainer

    times.append(("import", time.perf_counter()))
    trainer.set_graph_optimizer("auto")
    config = ModelConfig(
        num_stacks=_NUM_STACKS.value,
        num_features=_NUM_FEATURES.value,
        input_size=_INPUT_SIZE.value,
    )
    model = build_model(config)
    times.append(("build", time.perf_counter()))
    trainer.compile_model(model, config, TrainConfig())
    times.append(("compile", time.perf_counter()))
    rng = np.random.default_rng(0)
    b, s, h = _BATCH_SIZE.value, config.input_size, config.heatmap_size
    x = tf.constant(rng.random((b, s, s, 3), np.float32))
    y = tf.constant(rng.random((b, h, h, config.num_joints), np.float32) ** 8)
    batch = (x, {name: y for name in config.output_names})
    step = model.train_step
    if not _RUN_EAGERLY.value:
        step = tf.function(step)
        step.get_concrete_function(batch)
    times.append(("trace", time.perf_counter()))
    step(batch)
    times.append(("first call", time.perf_counter()))
    step(batch)
    times.append(("second call", time.perf_counter()))
    print(
        f"{config.num_stacks} stacks x {config.num_features} features, {s}x{s}, batch {b}: "
        f"{len(model.layers)} layers, {len(model.weights)} variables, eager {_RUN_EAGERLY.value}"
    )
    for (_, before), (phase, after) in zip(times[:-1], times[1:], strict=True):
        print(f"  {phase + ':':13s}{after - before:6.2f} s")
    print(f"  {'to the end of the first call:':13s} {times[-2][1] - times[0][1]:.2f} s")


if __name__ == "__main__":
    app.run(main)
