r"""8-stack training on one GPU: images/s in float32, mixed precision and with XLA, and the time
to the first step, as a markdown table to paste into BUILD.md (prints figures, asserts nothing).

    python bench/bench_gpu.py [--batch_size=16] [--steps=50] [--repeats=2] \
        [--configs=fp32,fp16,bf16,fp32_xla,fp16_xla]

Every configuration is a fresh process of bench/bench_train.py (random batches in GPU memory's
reach, so the network alone: the input pipeline is measured by bench_pipeline.py), with
CUDA_VISIBLE_DEVICES limited to one GPU; configurations alternate order from repeat to repeat and
the table shows medians. Needs TensorFlow with CUDA (`pip install "tensorflow[and-cuda]==2.21.*"`);
without a visible GPU it says so and exits 1.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys

from compare import _FIRST_STEP, _THROUGHPUT

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
CONFIGS = {
    "fp32": ["--mixed_precision=none"],
    "fp16": ["--mixed_precision=float16"],
    "bf16": ["--mixed_precision=bfloat16"],
    "fp32_xla": ["--mixed_precision=none", "--jit_compile"],
    "fp16_xla": ["--mixed_precision=float16", "--jit_compile"],
    "bf16_xla": ["--mixed_precision=bfloat16", "--jit_compile"],
}


def _gpu_name(python: str) -> str | None:
    code = (
        "import tensorflow as tf\n"
        "gpus = tf.config.list_physical_devices('GPU')\n"
        "print(tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU') "
        "if gpus else '')\n"
    )
    result = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env=_environment(), timeout=300
    )
    name = result.stdout.strip().splitlines()[-1:] if result.returncode == 0 else []
    return name[0] if name and name[0] else None


def _environment() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.setdefault("CUDA_VISIBLE_DEVICES", "0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    return env


def _run(python: str, flags: list[str], timeout: float) -> tuple[float | None, float | None]:
    command = [python, os.path.join(BENCH_DIR, "bench_train.py"), *flags]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=_environment(), timeout=timeout
        )
    except subprocess.TimeoutExpired:
        print(f"  timed out after {timeout:g} s: {' '.join(command)}", flush=True)
        return None, None
    rate, first = _THROUGHPUT.search(result.stdout), _FIRST_STEP.search(result.stdout)
    if result.returncode or not rate or not first:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-10:])
        print(f"  FAILED (exit {result.returncode}): {' '.join(command)}\n{tail}", flush=True)
        return None, None
    return float(rate.group(1)), float(first.group(1))


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="Python with TF (CUDA)")
    parser.add_argument("--configs", default="fp32,fp16,bf16,fp32_xla,fp16_xla")
    parser.add_argument("--num_stacks", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--input_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50, help="timed steps after the first")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or not names:
        parser.error(f"unknown configs {unknown} (known: {', '.join(CONFIGS)})")
    gpu = _gpu_name(args.python)
    if gpu is None:
        print("bench_gpu: error: TensorFlow sees no GPU; this benchmark has not run")
        return 1
    common = [
        f"--num_stacks={args.num_stacks}",
        f"--batch_size={args.batch_size}",
        f"--input_size={args.input_size}",
        f"--steps={args.steps}",
    ]
    rates = {n: [] for n in names}
    firsts = {n: [] for n in names}
    for repeat in range(args.repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            rate, first = _run(args.python, [*common, *CONFIGS[name]], args.timeout)
            print(
                f"  repeat {repeat + 1} {name}: {rate} images/s, first step {first} s", flush=True
            )
            rates[name].append(rate)
            firsts[name].append(first)
    fp32 = _median(rates.get("fp32", []))
    print(
        f"\n{datetime.date.today().isoformat()}, {gpu}, {args.num_stacks} stacks x 256, "
        f"{args.input_size}x{args.input_size}, batch {args.batch_size}, {args.steps} timed steps, "
        f"medians of {args.repeats} runs (bench/bench_gpu.py)\n"
    )
    print("| configuration | images/s | vs fp32 | time to first step |")
    print("|---|---|---|---|")
    for name in names:
        rate, first = _median(rates[name]), _median(firsts[name])
        versus = f"{rate / fp32:.2f}x" if rate and fp32 else "n/a"
        rate_text = f"{rate:.1f}" if rate else "failed"
        first_text = f"{first:.0f} s" if first else "n/a"
        print(f"| {name} | {rate_text} | {versus} | {first_text} |")
    return 0 if all(v is not None for vs in rates.values() for v in vs) else 1


if __name__ == "__main__":
    sys.exit(main())
