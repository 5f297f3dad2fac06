r"""Soak: the memory of a long training run on many records (prints figures, writes a JSON).

    nice -n 5 .venv/bin/python bench/soak.py [--records=20000] [--steps=2000] \
        [--workdir=/tmp/soak] [--output=soak.json]
    nice -n 5 .venv/bin/python bench/soak.py --flagfile=configs/demo.flags --records=2000 \
        --valid_records=500 --steps=2000 --steps_per_epoch=100 --warmup_steps=300

1. Writes `--records` synthetic people (images 64-96 px a side, people 40-80 px tall; with
   `--flagfile`, the demo's people: `SyntheticConfig()`) as the training split and
   `--valid_records` as the validation split, with the package's converter
   (`data.records.shards.write_split` over `data.sources.synthetic.generate_examples`). A
   workdir that already holds splits of those sizes (their manifests say so) is reused.
2. Trains a tiny model (1 stack, 16 features, 64x64 input, batch `--batch_size`; with
   `--flagfile`, the network, batch, schedule and augmentation of that flag file, e.g. the
   demo's) for `--steps` steps with the package's trainer (`training.trainer.train`: the
   tf.data pipeline with its record checks and augmentation, validation PCK at every epoch end,
   checkpoints every `--checkpoint_every_steps` steps and at epoch ends, TensorBoard and CSV
   logs), `--steps` / `--steps_per_epoch` epochs.
3. A Keras callback reads the process's resident memory (VmRSS in /proc/self/status) and the
   number of functions in TensorFlow's eager context every `--sample_every` steps and at every
   `on_train_begin` (the trainer calls `fit` once per epoch: the first is the figure before
   training, the others show what an epoch boundary keeps), and times each epoch boundary: from
   the epoch's last step to the end of its epoch-end callbacks (validation, checkpoint, logs),
   to the next `fit`'s start (a new input pipeline), to the end of the next epoch's first step.

Prints the peak RSS (the largest sample, and the kernel's high-water mark VmHWM, which also sees
between samples), the growth per 1,000 steps (the slope of the least-squares line through the
every-`--sample_every`-steps samples from `--warmup_steps` on: caches, the shuffle buffer and
tf.function traces fill up before that), RSS at each epoch's start, the growth after epoch 3
(the last sample, and the largest, less the sample at the start of epoch 4) and the median epoch
boundary. Writes these, the settings, the timings and every sample to `--output`. Asserts
nothing. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np


def read_status_kib(field: str) -> int:
    """A memory line of /proc/self/status ("VmRSS", "VmHWM"), in KiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field} line (not Linux?)")


def growth_per_1000_steps(steps, rss_mib, warmup_steps: int) -> float | None:
    """MiB per 1,000 steps: the slope of the least-squares line through the samples at step
    >= `warmup_steps`; None with fewer than 3 such samples."""
    steps = np.asarray(steps, np.float64)
    rss_mib = np.asarray(rss_mib, np.float64)
    after = steps >= warmup_steps
    if after.sum() < 3:
        return None
    slope, _ = np.polyfit(steps[after], rss_mib[after], 1)
    return float(slope * 1000.0)


def write_split(output_dir: str, split: str, count: int, seed: int, config) -> tuple[str, float]:
    """(glob, seconds) of `count` synthetic people written as SPLIT-*.tfrecord (0 seconds when
    the folder already holds that split with that count)."""
    from stacked_hourglass.data.records import shards
    from stacked_hourglass.data.records.split import Manifest, manifest_name
    from stacked_hourglass.data.sources import synthetic

    pattern = os.path.join(output_dir, f"{split}-*.tfrecord")
    manifest = os.path.join(output_dir, manifest_name(split))
    if os.path.isfile(manifest) and Manifest.read(manifest).num_records == count:
        print(f"Reusing {count} {split} records in {output_dir}")
        return pattern, 0.0
    start = time.perf_counter()
    shards.write_split(
        synthetic.generate_examples(split, count, seed=seed, config=config),
        count,
        output_dir,
        split,
        "synthetic",
        num_workers=2,
        show_progress=False,
    )
    seconds = time.perf_counter() - start
    print(f"Wrote {count} {split} records in {seconds:.0f} s ({count / seconds:.0f} people/s)")
    return pattern, seconds


def sampler_callback(every: int):
    """A Keras callback sampling memory every `every` steps and at each `fit`'s start, and
    timing the epoch boundaries (see the module docstring)."""
    import keras
    from tensorflow.python.eager import context

    class Sampler(keras.callbacks.Callback):
        """`samples`: (step, VmRSS MiB, seconds, where, eager functions), where is
        "train_begin" or "step"; `boundaries`: per boundary, seconds from the epoch's last
        step to its epoch end, to the next fit's start and to the next epoch's first step."""

        def __init__(self):
            super().__init__()
            self.step = 0
            self.samples: list[tuple[int, float, float, str, int]] = []
            self.boundaries: list[dict] = []
            self.start = time.perf_counter()
            self._last_step = self._epoch_end = self._fit_begin = None

        def sample(self, where: str):
            rss = read_status_kib("VmRSS") / 1024.0
            functions = len(context.context().list_function_names())
            seconds = time.perf_counter() - self.start
            self.samples.append((self.step, rss, seconds, where, functions))

        def on_train_begin(self, logs=None):
            self._fit_begin = time.perf_counter()
            self.sample("train_begin")

        def on_epoch_end(self, epoch, logs=None):
            self._epoch_end = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if batch == 0 and self._epoch_end is not None:
                self.boundaries.append(
                    {
                        "epoch_end_callbacks": self._epoch_end - self._last_step,
                        "to_next_fit": self._fit_begin - self._last_step,
                        "to_first_step": now - self._last_step,
                    }
                )
                self._epoch_end = None
            self._last_step = now
            self.step += 1
            if self.step % every == 0:
                self.sample("step")
                step, rss, seconds, _, functions = self.samples[-1]
                print(
                    f"  step {step:5d}  RSS {rss:7.1f} MiB  {functions:4d} functions  "
                    f"{seconds:6.0f} s",
                    flush=True,
                )

    return Sampler()


def experiment_config(args, train_files: str, valid_files: str, model_dir: str):
    """The soak's `ExperimentConfig`: `--flagfile`'s (or the tiny model's) with the soak's data,
    model_dir, steps and checkpoint frequency."""
    import dataclasses

    from absl import flags

    from stacked_hourglass import config as config_lib

    if args.flagfile:
        fv = flags.FlagValues()
        config_lib.define_flags(fv)
        fv([__file__, f"--flagfile={args.flagfile}"])
        base = config_lib.from_flags(fv)
    else:
        base = config_lib.ExperimentConfig(
            model=config_lib.ModelConfig(num_stacks=1, num_features=16, input_size=64),
            data=config_lib.DataConfig(dataset="synthetic"),
            train=config_lib.TrainConfig(batch_size=args.batch_size),
        )
    return dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, train_files=train_files, valid_files=valid_files),
        train=dataclasses.replace(
            base.train,
            model_dir=model_dir,
            epochs=args.steps // args.steps_per_epoch,
            steps_per_epoch=args.steps_per_epoch,
            checkpoint_every_steps=args.checkpoint_every_steps,
            verbose=0,
        ),
    )


def epoch_figures(sampler, steps_per_epoch: int) -> dict:
    """RSS and eager functions at each epoch's start, the growth after epoch 3 (MiB; None with
    fewer than 4 epochs) and the median boundary times."""
    begins = [(r, f) for _, r, _, where, f in sampler.samples if where == "train_begin"]
    rss = [r for _, r, _, _, _ in sampler.samples]
    after_3 = [r for s, r, _, _, _ in sampler.samples if s >= 3 * steps_per_epoch]
    boundaries = (
        {
            key: float(np.median([b[key] for b in sampler.boundaries]))
            for key in ("epoch_end_callbacks", "to_next_fit", "to_first_step")
        }
        if sampler.boundaries
        else None
    )
    return {
        "rss_mib_at_epoch_start": [r for r, _ in begins],
        "functions_at_epoch_start": [f for _, f in begins],
        "growth_after_epoch_3_mib": rss[-1] - after_3[0] if len(begins) > 3 else None,
        "peak_growth_after_epoch_3_mib": max(after_3) - after_3[0] if len(begins) > 3 else None,
        "median_boundary_seconds": boundaries,
        "boundaries": sampler.boundaries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="training records")
    parser.add_argument("--valid_records", type=int, default=256, help="validation records")
    parser.add_argument("--steps", type=int, default=2_000, help="training steps")
    parser.add_argument("--steps_per_epoch", type=int, default=400)
    parser.add_argument("--checkpoint_every_steps", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=16, help="without --flagfile")
    parser.add_argument("--flagfile", help="train flags (e.g. configs/demo.flags): the network")
    parser.add_argument("--sample_every", type=int, default=100, help="steps between samples")
    parser.add_argument("--warmup_steps", type=int, default=500, help="samples before: not fitted")
    parser.add_argument("--workdir", default="/tmp/stacked_hourglass_soak")
    parser.add_argument("--output", default="soak.json")
    args = parser.parse_args()
    if args.steps % args.steps_per_epoch:
        parser.error("--steps must be a multiple of --steps_per_epoch")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    from stacked_hourglass.data.sources import synthetic
    from stacked_hourglass.training import trainer
    from stacked_hourglass.utils import files

    people = synthetic.SyntheticConfig()
    if not args.flagfile:
        people = synthetic.SyntheticConfig(image_size_range=(64, 96), person_height_range=(40, 80))
    records_dir = os.path.join(args.workdir, "demo_records" if args.flagfile else "records")
    train_files, train_write_s = write_split(records_dir, "train", args.records, 0, people)
    valid_files, valid_write_s = write_split(records_dir, "valid", args.valid_records, 0, people)

    model_dir = os.path.join(args.workdir, f"run_{time.strftime('%Y%m%d-%H%M%S')}")
    config = experiment_config(args, train_files, valid_files, model_dir)
    model = config.model
    sampler = sampler_callback(args.sample_every)
    print(
        f"Training {args.steps} steps ({config.train.epochs} epochs of {args.steps_per_epoch}), "
        f"batch {config.train.batch_size}, {model.num_stacks} stacks x {model.num_features} "
        f"features, {model.input_size}x{model.input_size}, into {model_dir}",
        flush=True,
    )
    train_start = time.perf_counter()
    trainer.train(config, callbacks=[sampler])
    train_s = time.perf_counter() - train_start

    periodic = [(s, r) for s, r, _, where, _ in sampler.samples if where == "step"]
    steps = [s for s, _ in periodic]
    rss = [r for _, r, _, _, _ in sampler.samples]
    growth = growth_per_1000_steps(steps, [r for _, r in periodic], args.warmup_steps)
    result = {
        "settings": vars(args),
        "synthetic_people": {
            "image_size_range": list(people.image_size_range),
            "person_height_range": list(people.person_height_range),
        },
        "model": dataclasses.asdict(model),
        "model_dir": model_dir,
        "seconds": {
            "write_train_records": train_write_s,
            "write_valid_records": valid_write_s,
            "train": train_s,
            "total": time.perf_counter() - start,
        },
        "steps_per_second": args.steps / train_s,
        "rss_mib": {
            "before_training": rss[0],
            "after_warmup": next((r for s, r in periodic if s >= args.warmup_steps), None),
            "end": rss[-1],
            "peak_sampled": max(rss),
            "peak_vmhwm": read_status_kib("VmHWM") / 1024.0,
            "growth_per_1000_steps": growth,
        },
        "epochs": epoch_figures(sampler, args.steps_per_epoch),
        "samples": [
            {"step": s, "rss_mib": r, "seconds": t, "at": where, "functions": f}
            for s, r, t, where, f in sampler.samples
        ],
    }
    files.write_json(args.output, result)
    report(result, steps, args)


def report(result: dict, steps: list[int], args) -> None:
    """Prints the figures of `result`."""
    memory, epochs = result["rss_mib"], result["epochs"]
    print(
        f"Peak RSS {memory['peak_sampled']:.0f} MiB sampled, {memory['peak_vmhwm']:.0f} MiB "
        f"VmHWM; {memory['before_training']:.0f} MiB before the first step, "
        f"{memory['end']:.0f} MiB at step {steps[-1]}"
    )
    growth = memory["growth_per_1000_steps"]
    if growth is None:
        print(f"Growth: too few samples after step {args.warmup_steps} to fit")
    else:
        print(
            f"Growth {growth:+.1f} MiB per 1,000 steps (least squares over the "
            f"{sum(s >= args.warmup_steps for s in steps)} samples from step {args.warmup_steps})"
        )
    print(
        "RSS at each epoch's start (MiB):",
        " ".join(f"{r:.0f}" for r in epochs["rss_mib_at_epoch_start"]),
    )
    print(
        "Eager functions at each epoch's start:",
        " ".join(map(str, epochs["functions_at_epoch_start"])),
    )
    if epochs["growth_after_epoch_3_mib"] is not None:
        print(
            f"Growth after epoch 3: {epochs['growth_after_epoch_3_mib']:+.1f} MiB to the end, "
            f"{epochs['peak_growth_after_epoch_3_mib']:+.1f} MiB to the peak"
        )
    median = epochs["median_boundary_seconds"]
    if median:
        print(
            f"Epoch boundary (median of {len(epochs['boundaries'])}): last step to epoch end "
            f"{median['epoch_end_callbacks']:.2f} s, to the next fit "
            f"{median['to_next_fit']:.2f} s, to the next epoch's first step "
            f"{median['to_first_step']:.2f} s"
        )
    print(f"{result['steps_per_second']:.1f} steps/s; wrote {args.output}")


if __name__ == "__main__":
    main()
