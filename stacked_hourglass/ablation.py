r"""The paper's ablations (§5.1, Fig. 8), on any dataset, as one table and one plot.

    python -m stacked_hourglass.ablation --base_flagfile=configs/demo.flags --workdir=ablation \
        [--variants=1x2,2x1,2x1_last] [--train_flag=--epochs=8 --train_flag=--lr_drop_epochs=6,7]

Variants (name: stacks x residual modules per place, supervision):
  1x2       1 hourglass with 2 residual modules at every place
  2x1       2 stacks x 1 module: the same total depth (and nearly the same parameters) as 1x2,
            every stack supervised
  2x1_last  2 stacks x 1 module, only the last stack supervised
  Any `SxM[_last]` works; the paper compares 2x4, 4x2 and 8x1 (and 8x1_last) on MPII. The
  defaults are that comparison at the demo's size (two hourglasses' worth of depth), which a
  2-core CPU trains in under 30 minutes with the --train_flag values above.

Each variant is trained by `python -m stacked_hourglass.train --flagfile=... --num_stacks=S
--num_modules=M --supervise=all|last --model_dir=WORKDIR/NAME` (a finished variant is not
retrained: the trainer resumes and finds nothing left to do). Then the validation PCKh of each
variant's last stack is printed as one table, and WORKDIR/ablation.png plots validation PCKh per
epoch (the paper's Fig. 8, left) next to the final PCK curves; WORKDIR/ablation.json has it all.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from absl import app, flags

from stacked_hourglass.evaluation import formats

_FLAGFILE_ARG = flags.DEFINE_string("base_flagfile", None, "Training flagfile of every variant.")
_WORKDIR = flags.DEFINE_string("workdir", "ablation", "One model_dir per variant goes here.")
_VARIANTS = flags.DEFINE_list("variants", ["1x2", "2x1", "2x1_last"], "SxM[_last] variants.")
_TRAIN_FLAGS = flags.DEFINE_multi_string(
    "train_flag", [], "An extra training flag (repeatable), e.g. --train_flag=--epochs=8."
)

_VARIANT = re.compile(r"(\d+)x(\d+)(_last)?")


def parse_variant(name: str) -> dict:
    """'4x1_last' -> {"num_stacks": 4, "num_modules": 1, "supervise": "last"}."""
    match = _VARIANT.fullmatch(name)
    if not match:
        raise ValueError(f"variant {name!r} is not STACKSxMODULES[_last], e.g. 4x1 or 8x1_last")
    return {
        "num_stacks": int(match[1]),
        "num_modules": int(match[2]),
        "supervise": "last" if match[3] else "all",
    }


def train_variant(name: str, flagfile: str, workdir: Path, extra: list[str]) -> Path:
    """Trains (or resumes) one variant; returns its model_dir."""
    variant = parse_variant(name)
    model_dir = workdir / name
    command = [
        sys.executable, "-m", "stacked_hourglass.train", f"--flagfile={flagfile}",
        f"--num_stacks={variant['num_stacks']}", f"--num_modules={variant['num_modules']}",
        f"--supervise={variant['supervise']}", f"--model_dir={model_dir}", *extra,
    ]  # fmt: skip
    print("\n$ " + shlex.join(command), flush=True)
    result = subprocess.run(command)
    if result.returncode:
        raise SystemExit(f"ablation: training {name} failed (exit {result.returncode})")
    return model_dir


def read_history(model_dir: Path, column: str) -> list[float]:
    """Per-epoch values of a logged metric from MODEL_DIR/history.csv."""
    with open(model_dir / "history.csv", newline="", encoding="utf-8") as f:
        return [float(row[column]) for row in csv.DictReader(f) if row.get(column)]


def format_ablation_table(rows: dict[str, dict]) -> str:
    """One line per variant: parameters, then the validation table's columns."""
    first = next(iter(rows.values()))["validation"]
    columns = [*first["columns"], "Mean", "Mean@0.1"]
    header = f"{'variant':<10}{'params':>9}" + "".join(f"{c:>9}" for c in columns)
    lines = [header]
    for name, row in rows.items():
        table = row["validation"]
        values = "".join(f"{table[c]:>9.2f}" for c in columns)
        lines.append(f"{name:<10}{row['parameters'] / 1e6:>8.2f}M{values}")
    return "\n".join(lines)


def plot_ablation(rows: dict[str, dict], monitor: str, path: Path) -> Path:
    """Validation PCK per epoch and the final Mean PCK curves, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    for name, row in rows.items():
        history = row["history"]
        left.plot(range(1, len(history) + 1), history, marker="o", ms=3, label=name)
        curve = row["curves"]
        right.plot(curve["thresholds"], curve["Mean"], label=name)
    left.set(xlabel="epoch", ylabel=f"validation {monitor} (%)", title="Training progress")
    right.set(xlabel="normalised distance", ylabel="detection rate (%)", title="Final PCK, Mean")
    right.set_xlim(0, 0.5)
    right.set_ylim(0, 100)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not _FLAGFILE_ARG.value:
        raise app.UsageError("--base_flagfile is required (e.g. configs/demo.flags)")
    try:
        for name in _VARIANTS.value:
            parse_variant(name)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    workdir = Path(_WORKDIR.value)
    rows = {}
    for name in _VARIANTS.value:
        model_dir = train_variant(name, _FLAGFILE_ARG.value, workdir, _TRAIN_FLAGS.value)
        summary = json.loads((model_dir / "summary.json").read_text())
        monitor = summary["validation_metric"]
        # The last stack's predictions, scored in original pixels by the trainer's callback;
        # evaluate again for the curves.
        result = subprocess.run(
            [
                sys.executable, "-m", "stacked_hourglass.evaluate", f"--model_dir={model_dir}",
                f"--data={_valid_files(model_dir)}", f"--output_dir={model_dir / 'evaluation'}",
            ],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode:
            raise SystemExit(f"ablation: evaluating {name} failed: {result.stderr[-500:]}")
        figures = json.loads((model_dir / "evaluation" / f"{name}.pck.json").read_text())
        rows[name] = {
            "variant": parse_variant(name),
            "parameters": summary["parameters"],
            "train_seconds": summary["train_seconds"],
            "validation": figures["table"],
            "curves": figures["curves"],
            "history": read_history(model_dir, monitor),
        }
    print(f"\nAblation ({monitor}, last stack, validation split):")
    print(format_ablation_table(rows))
    png = plot_ablation(rows, monitor, workdir / "ablation.png")
    formats.write_json(workdir / "ablation.json", rows)
    print(f"Wrote {png} and {workdir / 'ablation.json'}")


def _valid_files(model_dir: Path) -> str:
    config = json.loads((model_dir / "config.json").read_text())
    return config["data"]["valid_files"]


if __name__ == "__main__":
    app.run(main)
