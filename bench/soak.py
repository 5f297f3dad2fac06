r"""Soak: the memory of a long training run on many records (prints figures, writes a JSON).

    nice -n 5 .venv/bin/python bench/soak.py [--records=20000] [--steps=2000] \
        [--workdir=/tmp/soak] [--output=soak.json]

1. Writes `--records` synthetic people (images 64-96 px a side, people 40-80 px tall) as the
   training split and `--valid_records` as the validation split, with the package's converter
   (`data.records.shards.write_split` over `data.sources.synthetic.generate_examples`). A
   workdir that already holds splits of those sizes (their manifests say so) is reused.
2. Trains a tiny model (1 stack, 16 features, 64x64 input, batch `--batch_size`) for `--steps`
   steps with the package's trainer (`training.trainer.train`: the tf.data pipeline with its
   record checks and augmentation, validation PCK at every epoch end, checkpoints every
   `--checkpoint_every_steps` steps and at epoch ends, TensorBoard and CSV logs), `--steps` /
   `--steps_per_epoch` epochs.
3. A Keras callback reads the process's resident memory (VmRSS in /proc/self/status) every
   `--sample_every` steps, and at every `on_train_begin` (the trainer calls `fit` once per epoch:
   the first is the figure before training, the others show what an epoch boundary costs).

Prints the peak RSS (the largest sample, and the kernel's high-water mark VmHWM, which also sees
between samples) and the growth per 1,000 steps: the slope of the least-squares line through the
every-`--sample_every`-steps samples from `--warmup_steps` on (caches, the shuffle buffer and
tf.function traces fill up before that). Writes these, the settings, the timings and every sample
to `--output`. Asserts nothing. Linux only (/proc).
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="training records")
    parser.add_argument("--valid_records", type=int, default=256, help="validation records")
    parser.add_argument("--steps", type=int, default=2_000, help="training steps")
    parser.add_argument("--steps_per_epoch", type=int, default=400)
    parser.add_argument("--checkpoint_every_steps", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--sample_every", type=int, default=100, help="steps between samples")
    parser.add_argument("--warmup_steps", type=int, default=500, help="samples before: not fitted")
    parser.add_argument("--workdir", default="/tmp/stacked_hourglass_soak")
    parser.add_argument("--output", default="soak.json")
    args = parser.parse_args()
    if args.steps % args.steps_per_epoch:
        parser.error("--steps must be a multiple of --steps_per_epoch")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    import keras

    from stacked_hourglass.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
    from stacked_hourglass.data.sources import synthetic
    from stacked_hourglass.training import trainer
    from stacked_hourglass.utils import files

    people = synthetic.SyntheticConfig(image_size_range=(64, 96), person_height_range=(40, 80))
    records_dir = os.path.join(args.workdir, "records")
    train_files, train_write_s = write_split(records_dir, "train", args.records, 0, people)
    valid_files, valid_write_s = write_split(records_dir, "valid", args.valid_records, 0, people)

    class RssSampler(keras.callbacks.Callback):
        """(step, VmRSS MiB, seconds, where) at each `fit`'s start ("train_begin") and every
        `every` steps ("step")."""

        def __init__(self, every: int):
            super().__init__()
            self.every = every
            self.step = 0
            self.samples: list[tuple[int, float, float, str]] = []
            self.start = time.perf_counter()

        def sample(self, where: str):
            rss = read_status_kib("VmRSS") / 1024.0
            self.samples.append((self.step, rss, time.perf_counter() - self.start, where))

        def on_train_begin(self, logs=None):
            self.sample("train_begin")

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % self.every == 0:
                self.sample("step")
                step, rss, seconds, _ = self.samples[-1]
                print(f"  step {step:5d}  RSS {rss:7.1f} MiB  {seconds:6.0f} s", flush=True)

    model_dir = os.path.join(args.workdir, f"run_{time.strftime('%Y%m%d-%H%M%S')}")
    config = ExperimentConfig(
        model=ModelConfig(num_stacks=1, num_features=16, input_size=64),
        data=DataConfig(dataset="synthetic", train_files=train_files, valid_files=valid_files),
        train=TrainConfig(
            model_dir=model_dir,
            batch_size=args.batch_size,
            epochs=args.steps // args.steps_per_epoch,
            steps_per_epoch=args.steps_per_epoch,
            checkpoint_every_steps=args.checkpoint_every_steps,
            verbose=0,
        ),
    )
    sampler = RssSampler(args.sample_every)
    print(
        f"Training {args.steps} steps ({config.train.epochs} epochs of {args.steps_per_epoch}), "
        f"batch {args.batch_size}, 1 stack x 16 features, 64x64, into {model_dir}",
        flush=True,
    )
    train_start = time.perf_counter()
    trainer.train(config, callbacks=[sampler])
    train_s = time.perf_counter() - train_start

    periodic = [(s, r) for s, r, _, where in sampler.samples if where == "step"]
    steps = [s for s, _ in periodic]
    rss = [r for _, r, _, _ in sampler.samples]
    growth = growth_per_1000_steps(steps, [r for _, r in periodic], args.warmup_steps)
    result = {
        "settings": vars(args),
        "synthetic_people": {"image_size_range": [64, 96], "person_height_range": [40, 80]},
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
        "samples": [
            {"step": s, "rss_mib": r, "seconds": t, "at": where}
            for s, r, t, where in sampler.samples
        ],
    }
    files.write_json(args.output, result)
    memory = result["rss_mib"]
    print(
        f"Peak RSS {memory['peak_sampled']:.0f} MiB sampled, {memory['peak_vmhwm']:.0f} MiB "
        f"VmHWM; {memory['before_training']:.0f} MiB before the first step, "
        f"{memory['end']:.0f} MiB at step {steps[-1]}"
    )
    if growth is None:
        print(f"Growth: too few samples after step {args.warmup_steps} to fit")
    else:
        print(
            f"Growth {growth:+.1f} MiB per 1,000 steps (least squares over the "
            f"{sum(s >= args.warmup_steps for s in steps)} samples from step {args.warmup_steps})"
        )
    print(f"{args.steps / train_s:.1f} steps/s; wrote {args.output}")


if __name__ == "__main__":
    main()
