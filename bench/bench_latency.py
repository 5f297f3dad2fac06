r"""Single-image latency of `serving_default`: JPEG bytes in, keypoints out.

  python bench/bench_latency.py --saved_model=EXPORT_DIR/1 [--runs=20]
  python bench/bench_latency.py --num_stacks=8 --num_features=256 --input_size=256 [--runs=10]

Without --saved_model, a model of the given size is built with random weights and exported to a
temporary directory first (its size on disk is printed). Times the call through the loaded
SavedModel (decode, crop, network, decode, back-projection), median and spread of --runs calls
after --warmup calls. Prints figures, asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from absl import app, flags

_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Exported SavedModel version dir.")
_NUM_STACKS = flags.DEFINE_integer("num_stacks", 8, "Stacks of the freshly built model.")
_NUM_FEATURES = flags.DEFINE_integer("num_features", 256, "Features of the freshly built model.")
_INPUT_SIZE = flags.DEFINE_integer("input_size", 256, "Input size of the freshly built model.")
_FLIP_TEST = flags.DEFINE_boolean("flip_test", False, "Export with the flip test.")
_IMAGE_SIZE = flags.DEFINE_string("image_size", "480x640", "HxW of the synthetic JPEG.")
_RUNS = flags.DEFINE_integer("runs", 20, "Timed calls.", lower_bound=1)
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed calls first.", lower_bound=0)


def _dir_size(path):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def _time_calls(serve, inputs, warmup, runs):
    for _ in range(warmup):
        serve(**inputs)["keypoints"].numpy()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        serve(**inputs)["keypoints"].numpy()  # .numpy(): wait for the result
        times.append(time.perf_counter() - start)
    return times


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import numpy as np
    import tensorflow as tf

    from stacked_hourglass import joints
    from stacked_hourglass.model import build_model
    from stacked_hourglass.serving import exporter, layout

    with tempfile.TemporaryDirectory() as tmp:
        path = _SAVED_MODEL.value
        if path is None:
            model = build_model(
                num_stacks=_NUM_STACKS.value,
                num_features=_NUM_FEATURES.value,
                input_size=_INPUT_SIZE.value,
                num_joints=joints.MPII.num_joints,
            )
            start = time.perf_counter()
            path = exporter.export_model(
                model, joints.MPII, _INPUT_SIZE.value, tmp, flip_test=_FLIP_TEST.value
            )
            print(
                f"built + exported {_NUM_STACKS.value} stacks, {_NUM_FEATURES.value} features, "
                f"input {_INPUT_SIZE.value}, flip_test={_FLIP_TEST.value} in "
                f"{time.perf_counter() - start:.1f} s"
            )
        print(f"SavedModel {path}: {_dir_size(path) / 2**20:.1f} MiB")
        start = time.perf_counter()
        serve = tf.saved_model.load(path).signatures[layout.SERVING_DEFAULT]
        print(f"load: {time.perf_counter() - start:.1f} s")
        h, w = (int(v) for v in _IMAGE_SIZE.value.split("x"))
        pixels = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        inputs = {
            "image_bytes": tf.constant([tf.io.encode_jpeg(pixels).numpy()]),
            "box": tf.constant([[0.25 * w, 0.1 * h, 0.75 * w, 0.9 * h]], tf.float32),
        }
        start = time.perf_counter()
        serve(**inputs)["keypoints"].numpy()
        print(f"first call: {time.perf_counter() - start:.2f} s")
        times = _time_calls(serve, inputs, _WARMUP.value, _RUNS.value)
        ms = sorted(t * 1000 for t in times)
        print(
            f"latency, 1 image {h}x{w} JPEG -> keypoints, {len(ms)} runs: "
            f"median {statistics.median(ms):.1f} ms, min {ms[0]:.1f} ms, max {ms[-1]:.1f} ms "
            f"(TF threads: intra {tf.config.threading.get_intra_op_parallelism_threads()}, "
            f"{os.cpu_count()} CPUs)"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
