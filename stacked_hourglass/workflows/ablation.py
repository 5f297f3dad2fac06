"""The paper's ablations (§5.1, Fig. 8) as one table and one plot: the library behind
`python -m stacked_hourglass.ablation` (see there for the variants)."""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from stacked_hourglass import run_dir
from stacked_hourglass.evaluation import formats
from stacked_hourglass.utils import cli

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
        raise cli.CommandFailed(f"training {name} failed (exit {result.returncode})")
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


def run_ablation(
    base_flagfile: str, workdir: Path, variants: list[str], train_flags: list[str]
) -> dict:
    """Trains (or reuses) every variant; prints the table, writes plot and JSON; returns rows."""
    if not variants:
        raise ValueError("no variants to train (--variants is empty)")
    for name in variants:
        parse_variant(name)  # all names checked before anything trains
    if not Path(base_flagfile).is_file():
        raise FileNotFoundError(f"{base_flagfile}: no such training flagfile")
    workdir = Path(workdir)
    rows = {}
    for name in variants:
        model_dir = train_variant(name, base_flagfile, workdir, train_flags)
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
            # Its last line is the command's one-line error (TF's start-up logs come first).
            lines = result.stderr.strip().splitlines()
            reason = lines[-1] if lines else f"exit {result.returncode}"
            raise cli.CommandFailed(f"evaluating {name} failed: {reason}")
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
    return rows


def _valid_files(model_dir: Path) -> str:
    return run_dir.load_config(str(model_dir)).data.valid_files
