r"""Time from `trainer.train(config)` to the end of its first step on a large split (prints only).

    python bench/bench_start.py --workdir=/tmp/bench_start [--num_shards=22] \
        [--records_per_shard=500] [--repeats=3] [--baseline=CHECKOUT]

Writes once (reused afterwards) a training split of NUM_SHARDS shards of 960x960 synthetic
JPEGs (about MPII's bytes per record), and a small validation split; then runs `train` with a
one-stack, 64-feature network at 64 px and `steps_per_epoch=0` (steps counted from the data, as
`configs/mpii_8stack.flags` does), stopped after its first step, so the time measured is what a
training start costs beyond the network: listing and checking the splits and counting records.
With `--baseline=CHECKOUT`, the same run of that checkout's package alternates with this one
(each in a fresh process); the medians of both are printed. `--cold` drops the page cache before
every run, so the split is read from the disk.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/bench_start", "Data and runs go here.")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 22, "Shards of the training split.")
_RECORDS = flags.DEFINE_integer("records_per_shard", 500, "Records per training shard.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Runs per side.")
_BASELINE = flags.DEFINE_string("baseline", None, "Another checkout to compare with.")
_CHILD = flags.DEFINE_string("child", None, "Internal: run one timed start into this folder.")
_COLD = flags.DEFINE_bool(
    "cold",
    False,
    "Drop the page cache before each run (root on Linux): the split is read from "
    "disk, as on a cluster file system, not from memory.",
)

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DISTINCT = 64  # distinct people; the split repeats them (index, filename differ)


def _write_data(workdir: str) -> tuple[str, str]:
    from stacked_hourglass.data.records import shards
    from stacked_hourglass.data.sources import synthetic

    train, valid = os.path.join(workdir, "data"), os.path.join(workdir, "data")
    if not os.path.exists(os.path.join(train, "train.manifest.json")):
        config = synthetic.SyntheticConfig(
            image_size_range=(960, 960), person_height_range=(400.0, 600.0)
        )
        people = list(synthetic.generate_examples("train", _DISTINCT, config=config))
        total = _NUM_SHARDS.value * _RECORDS.value

        def items():
            for i in range(total):
                person = people[i % _DISTINCT]
                person.index, person.filename = i, f"synthetic_train_{i:06d}.jpg"
                yield person

        shards.write_split(
            items(), total, train, "train", "synthetic", num_shards=_NUM_SHARDS.value,
            order="source",
        )  # fmt: skip
        shards.write_split(
            synthetic.generate_examples("valid", 64), 64, valid, "valid", "synthetic",
            num_shards=2,
        )  # fmt: skip
    return os.path.join(train, "train-*.tfrecord"), os.path.join(valid, "valid-*.tfrecord")


def _child(model_dir: str) -> None:
    start = time.perf_counter()
    import keras

    from stacked_hourglass.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
    from stacked_hourglass.training import trainer

    train_glob, valid_glob = (os.path.join(_WORKDIR.value, "data", f"{s}-*.tfrecord")
                              for s in ("train", "valid"))  # fmt: skip
    first_step = {}

    class _StopAfterFirstStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            first_step.setdefault("seconds", time.perf_counter() - start)
            self.model.stop_training = True

    config = ExperimentConfig(
        model=ModelConfig(num_stacks=1, num_features=64, depth=2, input_size=64),
        data=DataConfig(dataset="synthetic", train_files=train_glob, valid_files=valid_glob),
        train=TrainConfig(model_dir=model_dir, epochs=1, steps_per_epoch=0, batch_size=4,
                          valid_batches=1, verbose=0),
    )  # fmt: skip
    try:
        trainer.train(config, callbacks=[_StopAfterFirstStep()])
    except Exception as error:  # the first step is what is measured; report what followed
        print(f"(after the first step: {type(error).__name__}: {error})", file=sys.stderr)
    print(json.dumps({"first_step_seconds": first_step.get("seconds")}))


def _run(checkout: str, index: int) -> float:
    if _COLD.value:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    model_dir = os.path.join(_WORKDIR.value, "runs", f"{os.path.basename(checkout)}-{index}")
    env = dict(os.environ, PYTHONPATH=checkout, TF_CPP_MIN_LOG_LEVEL="3")
    script = os.path.join(_REPO, "bench", "bench_start.py")
    run = subprocess.run(
        [sys.executable, script, f"--workdir={_WORKDIR.value}", f"--child={model_dir}"],
        cwd=checkout, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(run.stdout.strip().splitlines()[-1])["first_step_seconds"]


def main(argv) -> int:
    del argv
    if _CHILD.value:
        _child(_CHILD.value)
        return 0
    os.makedirs(_WORKDIR.value, exist_ok=True)
    _write_data(_WORKDIR.value)
    sides = {"this": _REPO} | ({"baseline": _BASELINE.value} if _BASELINE.value else {})
    times = {name: [] for name in sides}
    for i in range(_REPEATS.value):
        for name, checkout in sides.items():
            times[name].append(_run(checkout, i))
            print(f"{name} run {i + 1}: {times[name][-1]:.1f} s", flush=True)
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.1f} s of {values}")
    return 0


if __name__ == "__main__":
    app.run(main)
