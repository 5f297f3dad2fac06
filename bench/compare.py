r"""This package (TF / Keras) against the same network in PyTorch, alternating, in one run.

    python bench/compare.py [--repeats=3] [--steps=5] [--cases=2stack_train_fp32,...]
        [--python_tf=.venv/bin/python] [--python_torch=/tmp/torchvenv/bin/python]

Every measurement is a fresh process: ours is bench/bench_train.py (train) or bench/bench_infer.py
(inference), PyTorch's is bench/bench_torch.py with the same flags. Per repeat every case runs
both sides back to back, and which side goes first alternates from repeat to repeat, so slow
drifts of the machine (thermals, neighbours) hit both. Prints a markdown table of medians over
the repeats and their ratio -- ours / torch for throughput, torch / ours for times, so > 1 always
means this package is faster -- then the raw values. A run that fails prints the tail of its
stderr and the comparison goes on without it. Each run also records the share of the CPUs that
other processes used meanwhile (from /proc/stat, the child's own CPU time taken out); above
--max_others_load the table gets a warning: on a shared machine the ratios are not clean.

Cases (batch --batch_size, --input_size, 256 features, depth 4, 16 joints, random data):
  2stack_train_fp32, 2stack_train_bf16, 2stack_infer_fp32, 2stack_infer_bf16,
  8stack_train_fp32, 8stack_first_step (time from process start to the end of the first train
  step, 8 stacks, float32; runs one timed step after it); and, not by default,
  8stack_train_bf16, 8stack_infer_fp32, 8stack_infer_bf16.

--baseline=DIR adds a third side, this package from a checkout of an earlier commit (same Python
as ours), and the columns `before` and `ours/before` (> 1: faster now).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import resource
import statistics
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
_THROUGHPUT = re.compile(r"^\s*throughput:\s+([0-9.]+) images/s", re.MULTILINE)
_FIRST_STEP = re.compile(r"^\s*time to first step:\s+([0-9.]+) s", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Case:
    num_stacks: int
    mode: str  # "train" | "infer"
    precision: str  # "none" | "bfloat16"
    metric: str = "throughput"  # "throughput" (images/s) | "first_step" (s)
    steps: int | None = None  # overrides --steps


CASES = {
    "2stack_train_fp32": Case(2, "train", "none"),
    "2stack_train_bf16": Case(2, "train", "bfloat16"),
    "2stack_infer_fp32": Case(2, "infer", "none"),
    "2stack_infer_bf16": Case(2, "infer", "bfloat16"),
    "8stack_train_fp32": Case(8, "train", "none"),
    "8stack_first_step": Case(8, "train", "none", metric="first_step", steps=1),
    # Not in the default list (slow): 8 stacks in bfloat16 and inference.
    "8stack_train_bf16": Case(8, "train", "bfloat16"),
    "8stack_infer_fp32": Case(8, "infer", "none"),
    "8stack_infer_bf16": Case(8, "infer", "bfloat16"),
}
DEFAULT_CASES = list(CASES)[:6]
SIDES = ("ours", "torch")
BEFORE = "before"  # --baseline: this package at an earlier commit


def _command(side: str, case: Case, args) -> list[str]:
    flags = [
        f"--num_stacks={case.num_stacks}",
        f"--batch_size={args.batch_size}",
        f"--input_size={args.input_size}",
        f"--steps={case.steps or args.steps}",
        f"--mixed_precision={case.precision}",
    ]
    if side == "torch":
        script = os.path.join(BENCH_DIR, "bench_torch.py")
        return [args.python_torch, script, f"--mode={case.mode}", *flags]
    script = "bench_train.py" if case.mode == "train" else "bench_infer.py"
    return [args.python_tf, os.path.join(_checkout(side, args), "bench", script), *flags]


def _checkout(side: str, args) -> str:
    return args.baseline if side == BEFORE else REPO_ROOT


def _environment(side: str, args) -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if side != "torch":  # the package from that checkout, whatever the venv has installed
        root = _checkout(side, args)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _tail(text: str, lines: int) -> str:
    return "\n".join("    | " + line for line in text.strip().splitlines()[-lines:])


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _others_load(before, after, child_cpu: float, wall: float) -> float | None:
    """Fraction of the machine's CPUs that other processes (and the hypervisor's steal) used."""
    if before is None or after is None or wall <= 0:
        return None
    busy = after[0] - before[0] - child_cpu + (after[1] - before[1])
    return max(0.0, busy / (wall * (os.cpu_count() or 1)))


def _run(side: str, name: str, case: Case, args) -> tuple[float | None, str, float | None]:
    """Runs one side of one case: (value or None, its first stdout line, others' CPU load)."""
    command = _command(side, case, args)
    cpu_before, child_before, start = _cpu_seconds(), _children_cpu_seconds(), time.perf_counter()
    try:
        proc = subprocess.run(
            command,
            cwd=_checkout(side, args),
            env=_environment(side, args),
            capture_output=True,
            text=True,
            timeout=args.timeout,
        )
    except subprocess.TimeoutExpired:
        print(f"  {name} {side}: timed out after {args.timeout} s: {' '.join(command)}", flush=True)
        return None, "", None
    except OSError as e:
        print(f"  {name} {side}: cannot start {command[0]}: {e}", flush=True)
        return None, "", None
    others = _others_load(
        cpu_before,
        _cpu_seconds(),
        _children_cpu_seconds() - child_before,
        time.perf_counter() - start,
    )
    pattern = _THROUGHPUT if case.metric == "throughput" else _FIRST_STEP
    match = pattern.search(proc.stdout)
    if proc.returncode != 0 or match is None:
        print(
            f"  {name} {side}: FAILED (exit {proc.returncode}): {' '.join(command)}\n"
            f"{_tail(proc.stderr or proc.stdout, args.tail)}",
            flush=True,
        )
        return None, "", others
    value = float(match.group(1))
    unit = "images/s" if case.metric == "throughput" else "s to first step"
    load = "" if others is None else f" (other processes: {others:.0%} of the CPUs)"
    print(f"  {name} {side}: {value:g} {unit}{load}", flush=True)
    return value, proc.stdout.strip().splitlines()[0], others


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _format(value, unit=""):
    return "n/a" if value is None else f"{value:.2f}{unit}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python_tf", default=sys.executable, help="Python with TF + package")
    parser.add_argument("--python_torch", default="/tmp/torchvenv/bin/python", help="with torch")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per case")
    parser.add_argument(
        "--cases", default=",".join(DEFAULT_CASES), help="comma list of: " + ",".join(CASES)
    )
    parser.add_argument(
        "--baseline",
        help="also run this package from this checkout of an earlier commit (a third side, "
        "'before'; e.g. `git worktree add /tmp/before COMMIT`), for before/after ratios",
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per run (after 1st)")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--input_size", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument(
        "--max_others_load",
        type=float,
        default=0.1,
        help="warn when other processes used more than this share of the CPUs during a run",
    )
    parser.add_argument("--tail", type=int, default=15, help="stderr lines shown for a failure")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown or not names or args.repeats < 1 or args.steps < 1:
        parser.error(f"unknown cases {unknown} (known: {', '.join(CASES)}), or repeats/steps < 1")

    print(f"{_cpu_model()}, {len(os.sched_getaffinity(0))} cores available")
    sides = SIDES + ((BEFORE,) if args.baseline else ())
    if args.baseline and not os.path.isfile(os.path.join(args.baseline, "bench", "bench_train.py")):
        parser.error(f"--baseline={args.baseline}: no bench/bench_train.py there")
    print(f"ours:  {args.python_tf}\ntorch: {args.python_torch}")
    if args.baseline:
        print(f"before: {args.baseline} (same Python as ours)")
    print(
        f"batch {args.batch_size}, {args.input_size}x{args.input_size}, {args.steps} timed steps, "
        f"{args.repeats} repeats, cases: {', '.join(names)}\n",
        flush=True,
    )
    results = {name: {side: [] for side in sides} for name in names}
    loads = {name: {side: [] for side in sides} for name in names}
    headers = {}
    start = time.perf_counter()
    for repeat in range(args.repeats):
        order = sides if repeat % 2 == 0 else sides[::-1]
        print(f"repeat {repeat + 1}/{args.repeats} ({' first, '.join(order)} second)", flush=True)
        for name in names:
            for side in order:
                value, header, others = _run(side, name, CASES[name], args)
                results[name][side].append(value)
                loads[name][side].append(others)
                if header:
                    headers.setdefault((name, side), header)

    print(f"\n(total {time.perf_counter() - start:.0f} s)\n")
    before_columns = " before | ours/before |" if args.baseline else ""
    print("| case | PyTorch | ours | ratio |" + before_columns)
    print("|---|---|---|---|" + ("---|---|" if args.baseline else ""))
    for name in names:
        case = CASES[name]
        torch_median = _median(results[name]["torch"])
        ours_median = _median(results[name]["ours"])
        ratio = None
        if torch_median and ours_median:
            if case.metric == "throughput":
                ratio, how = ours_median / torch_median, "ours/torch"
            else:
                ratio, how = torch_median / ours_median, "torch/ours"
        else:
            how = ""
        unit = " img/s" if case.metric == "throughput" else " s to first step"
        ratio_text = "n/a" if ratio is None else f"{ratio:.2f}x ({how})"
        row = (
            f"| {name} | {_format(torch_median, unit)} | {_format(ours_median, unit)} "
            f"| {ratio_text} |"
        )
        if args.baseline:
            before_median = _median(results[name][BEFORE])
            speedup = None
            if before_median and ours_median:
                speedup = (
                    ours_median / before_median
                    if case.metric == "throughput"
                    else before_median / ours_median
                )
            row += f" {_format(before_median, unit)} | {_format(speedup, 'x')} |"
        print(row)
    print("\nmedians over the repeats; ratio > 1: this package faster (throughput: ours/torch,")
    print("time to first step: torch/ours).")
    busiest = max((v for r in loads.values() for vs in r.values() for v in vs if v), default=0)
    if busiest > args.max_others_load:
        print(
            f"WARNING: other processes used up to {busiest:.0%} of the CPUs during a run (see "
            "below); the machine was shared, so these figures are not a clean comparison (an "
            "OpenMP build such as torch's degrades more than TF's thread pool when cores are "
            "oversubscribed). Rerun on an idle machine."
        )
    print("\nraw values, repeat by repeat [other processes' share of the CPUs during the run]:")
    for name in names:
        for side in sides:
            values = ", ".join(
                f"{_format(v)} [{'?' if o is None else f'{o:.0%}'}]"
                for v, o in zip(results[name][side], loads[name][side], strict=True)
            )
            print(f"  {name:18s} {side:6s}: {values}")
    print("\nconfigurations:")
    for (name, side), header in sorted(headers.items()):
        print(f"  {name:18s} {side:6s}: {header}")
    failed = any(v is None for r in results.values() for vs in r.values() for v in vs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
