r"""Does bfloat16 training track float32? The same short run in both, loss and PCKh per epoch.

    python bench/precision_curves.py [--workdir=/tmp/precision_curves] \
        [--flagfile=configs/demo.flags] [--train_flag=--epochs=4 ...] [--policies=none,bfloat16]

Trains `python -m stacked_hourglass.train --flagfile=FLAGFILE --mixed_precision=P
--model_dir=WORKDIR/P [train flags]` for each policy (same seed: same initial weights, data
order and augmentation), then prints the training loss and validation PCKh of every epoch side by
side and writes WORKDIR/precision_curves.png. A finished run is reused. The default train flags
are the ablation's small demo size (64x64 crops, depth 3, 6 epochs of 125 steps; a few minutes
per policy on 2 cores) on the demo's data (`python -m stacked_hourglass.demo` writes it to
demo_workdir/tfrecords).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
DEFAULT_TRAIN_FLAGS = [
    "--train_files=demo_workdir/tfrecords/train-*.tfrecord",
    "--valid_files=demo_workdir/tfrecords/valid-*.tfrecord",
    "--input_size=64",
    "--depth=3",
    "--epochs=6",
    "--steps_per_epoch=125",
    "--lr_drop_epochs=4,5",
    "--tensorboard_images=0",
]


def _history(model_dir: str) -> list[dict]:
    with open(os.path.join(model_dir, "history.csv"), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _monitor(rows: list[dict]) -> str:
    names = [k for k in rows[0] if k.startswith("val_") and "pck" in k.lower()]
    return names[0] if names else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/precision_curves")
    parser.add_argument("--flagfile", default=os.path.join(REPO_ROOT, "configs", "demo.flags"))
    parser.add_argument("--policies", default="none,bfloat16")
    parser.add_argument(
        "--train_flag", action="append", help="a training flag (repeatable); default: see above"
    )
    args = parser.parse_args(argv)
    train_flags = args.train_flag or DEFAULT_TRAIN_FLAGS
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    histories = {}
    for policy in policies:
        model_dir = os.path.join(args.workdir, policy)
        if not os.path.isfile(os.path.join(model_dir, "summary.json")):
            command = [
                sys.executable, "-m", "stacked_hourglass.train", f"--flagfile={args.flagfile}",
                f"--mixed_precision={policy}", f"--model_dir={model_dir}", *train_flags,
            ]  # fmt: skip
            print("$ " + " ".join(command), flush=True)
            if subprocess.run(command, cwd=REPO_ROOT).returncode:
                print(f"precision_curves: error: training with {policy} failed", file=sys.stderr)
                return 1
        histories[policy] = _history(model_dir)
    monitor = _monitor(next(iter(histories.values())))
    header = "epoch" + "".join(f"{'loss ' + p:>16}" for p in policies)
    header += "".join(f"{monitor + ' ' + p:>24}" for p in policies) if monitor else ""
    print(header)
    for epoch in range(max(len(h) for h in histories.values())):
        rows = [h[epoch] if epoch < len(h) else {} for h in histories.values()]
        line = f"{epoch + 1:>5}" + "".join(f"{float(r.get('loss', 'nan')):>16.6f}" for r in rows)
        if monitor:
            line += "".join(f"{float(r.get(monitor, 'nan')):>24.2f}" for r in rows)
        print(line)
    _plot(histories, monitor, os.path.join(args.workdir, "precision_curves.png"))
    return 0


def _plot(histories: dict, monitor: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    for policy, rows in histories.items():
        epochs = range(1, len(rows) + 1)
        left.plot(epochs, [float(r["loss"]) for r in rows], marker="o", label=policy)
        if monitor:
            right.plot(epochs, [float(r[monitor]) for r in rows], marker="o", label=policy)
    left.set(xlabel="epoch", ylabel="training loss (sum over stacks)", yscale="log")
    right.set(xlabel="epoch", ylabel=f"validation {monitor}")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
