"""The paper's ablations (§5.1, Fig. 8) over several seeds, as tables, intervals and one plot: the
library behind `python -m stacked_hourglass.ablation` (see there for the variants).

Every (variant, seed) run is a model directory WORKDIR/VARIANT/seedK trained with `--seed=K`, which
sets the initialisation, the data order and the augmentation; variants trained with the same seed
see the same images in the same order, so comparisons are paired by seed. The statistics
(`mean_and_std`, `t_interval`, `paired_difference`, `aggregate_runs`, `comparisons`) are pure
functions of numbers and names.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from stacked_hourglass import run_dir
from stacked_hourglass.evaluation import formats
from stacked_hourglass.utils import cli

_VARIANT = re.compile(r"(\d+)x(\d+)(_last)?")
# Training flags the ablation sets for each run; a --train_flag may not change them.
_RUN_FLAGS = ("num_stacks", "num_modules", "supervise", "seed", "model_dir")
# The column the paired differences compare.
DIFFERENCE_COLUMN = "Mean"


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


def run_path(workdir: Path, name: str, seed: int) -> Path:
    """The model directory of one run: WORKDIR/VARIANT/seedK."""
    return Path(workdir) / name / f"seed{seed}"


# --- statistics: pure functions ---------------------------------------------------------------


def mean_and_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1; None for fewer than 2 values).

    Raises:
        ValueError: no values.
    """
    n = len(values)
    if n == 0:
        raise ValueError("mean_and_std of no values")
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean with its two-sided Student-t confidence interval over independent values.

    Returns:
        {"n", "mean", "std" (ddof=1), "half_width" = t(1 - (1 - confidence) / 2, n - 1) · std /
        √n, "low", "high"}; the last four are None when n < 2 (no interval).
    """
    from scipy import stats

    mean, std = mean_and_std(values)
    n = len(values)
    result = {"n": n, "mean": mean, "std": std, "half_width": None, "low": None, "high": None}
    if std is not None:
        half = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1)) * std / math.sqrt(n)
        result.update(half_width=half, low=mean - half, high=mean + half)
    return result


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> dict:
    """a − b over the seeds both have, with the 95 % t-interval of the mean difference.

    Args:
        a, b: seed -> value (e.g. Mean PCKh of one variant per seed).

    Returns:
        `t_interval` of the differences, plus "seeds" and "differences" (in seed order).

    Raises:
        ValueError: the two share no seed.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no common seed to pair: {sorted(a)} vs {sorted(b)}")
    differences = [a[s] - b[s] for s in seeds]
    return {"seeds": seeds, "differences": differences, **t_interval(differences)}


def aggregate_runs(runs: Mapping[int, dict]) -> dict:
    """Mean and sample std over seeds of every column of the runs' validation tables.

    Args:
        runs: seed -> run row ({"parameters", "validation": the PCKh table}).

    Returns:
        {"n", "seeds", "parameters", "columns" (joints, Mean, Mean@0.1), "mean": {column: value},
        "std": {column: value or None}}.

    Raises:
        ValueError: no runs, or runs of different sizes (parameters) or columns.
    """
    if not runs:
        raise ValueError("no runs to aggregate")
    seeds = sorted(runs)
    first = runs[seeds[0]]
    columns = [*first["validation"]["columns"], "Mean", "Mean@0.1"]
    for seed in seeds:
        if runs[seed]["parameters"] != first["parameters"]:
            raise ValueError(
                f"seed {seed} has {runs[seed]['parameters']} parameters, seed {seeds[0]} "
                f"{first['parameters']}: not the same variant"
            )
        if runs[seed]["validation"]["columns"] != first["validation"]["columns"]:
            raise ValueError(f"seed {seed}'s table has other columns than seed {seeds[0]}'s")
    stats = {c: mean_and_std([runs[s]["validation"][c] for s in seeds]) for c in columns}
    return {
        "n": len(seeds),
        "seeds": seeds,
        "parameters": first["parameters"],
        "columns": columns,
        "mean": {c: m for c, (m, _) in stats.items()},
        "std": {c: s for c, (_, s) in stats.items()},
    }


def comparisons(variants: Sequence[str]) -> list[tuple[str, str, str]]:
    """The paper's comparisons that `variants` allow, as (a, b, what) for a − b.

    - Stacking vs one deeper hourglass at equal depth (Fig. 8): variants with the same
      supervision and the same stacks × modules but different stacks; a has more stacks.
    - Intermediate vs last-stack supervision: SxM − SxM_last (S > 1).
    """
    specs = {name: parse_variant(name) for name in variants}
    pairs = []
    for x, y in itertools.combinations(variants, 2):
        sx, sy = specs[x], specs[y]
        depth = sx["num_stacks"] * sx["num_modules"]
        if (
            sx["supervise"] == sy["supervise"]
            and sx["num_stacks"] != sy["num_stacks"]
            and depth == sy["num_stacks"] * sy["num_modules"]
        ):
            more, fewer = (x, y) if sx["num_stacks"] > sy["num_stacks"] else (y, x)
            pairs.append((more, fewer, f"stacks vs depth, {depth} modules per place in all"))
    for name, spec in specs.items():
        if spec["supervise"] == "all" and spec["num_stacks"] > 1 and f"{name}_last" in specs:
            pairs.append((name, f"{name}_last", "intermediate vs last-stack supervision"))
    return pairs


def difference_table(
    runs: Mapping[str, Mapping[int, dict]], column: str = DIFFERENCE_COLUMN
) -> list[dict]:
    """`paired_difference` of `column` for every pair of `comparisons(runs)`."""
    rows = []
    for a, b, what in comparisons(list(runs)):
        values = {
            name: {seed: row["validation"][column] for seed, row in runs[name].items()}
            for name in (a, b)
        }
        rows.append(
            {"a": a, "b": b, "comparison": what, "column": column,
             **paired_difference(values[a], values[b])}
        )  # fmt: skip
    return rows


# --- text -------------------------------------------------------------------------------------


def _cell(mean: float, std: float | None) -> str:
    return f"{mean:.1f}±{std:.1f}" if std is not None else f"{mean:.1f}"


def format_ablation_table(aggregates: Mapping[str, dict]) -> str:
    """One line per variant: parameters, seeds, then mean±std over seeds of every column."""
    columns = next(iter(aggregates.values()))["columns"]
    header = f"{'variant':<10}{'params':>8}{'n':>3}" + "".join(f"{c:>11}" for c in columns)
    lines = [header]
    for name, agg in aggregates.items():
        cells = "".join(f"{_cell(agg['mean'][c], agg['std'][c]):>11}" for c in columns)
        lines.append(f"{name:<10}{agg['parameters'] / 1e6:>7.2f}M{agg['n']:>3}{cells}")
    return "\n".join(lines)


def format_differences(differences: Sequence[dict]) -> str:
    """One line per comparison: a − b, mean difference, its 95 % interval, n."""
    if not differences:
        return "(these variants allow none of the paper's comparisons)"
    lines = []
    for d in differences:
        pair = f"{d['a']} − {d['b']}"
        if d["half_width"] is None:
            interval = "n<2: no interval"
        else:
            interval = f"± {d['half_width']:.2f}  [{d['low']:+.2f}, {d['high']:+.2f}]"
        lines.append(f"{pair:<20}{d['mean']:>+7.2f} {interval:<26} n={d['n']}  {d['comparison']}")
    return "\n".join(lines)


# --- runs -------------------------------------------------------------------------------------


def _check_train_flags(train_flags: Sequence[str]) -> None:
    for flag in train_flags:
        name = flag.lstrip("-").split("=", 1)[0]
        if name in _RUN_FLAGS:
            raise ValueError(
                f"--train_flag={flag}: the ablation sets --{name} for each run "
                "(use --variants, --seeds, --seed_base, --workdir)"
            )


def train_run(name: str, seed: int, flagfile: str, workdir: Path, extra: Sequence[str]) -> Path:
    """Trains (or resumes) one (variant, seed) run; returns its model_dir.

    A run whose summary.json exists is finished and is not started again.
    """
    variant = parse_variant(name)
    model_dir = run_path(workdir, name, seed)
    if (model_dir / run_dir.SUMMARY_FILE).exists():
        print(f"Reusing {model_dir} (finished)", flush=True)
        return model_dir
    command = [
        sys.executable, "-m", "stacked_hourglass.train", f"--flagfile={flagfile}", *extra,
        f"--num_stacks={variant['num_stacks']}", f"--num_modules={variant['num_modules']}",
        f"--supervise={variant['supervise']}", f"--seed={seed}", f"--model_dir={model_dir}",
    ]  # fmt: skip
    print("\n$ " + shlex.join(command), flush=True)
    result = subprocess.run(command)
    if result.returncode:
        raise cli.CommandFailed(f"training {name} seed {seed} failed (exit {result.returncode})")
    return model_dir


def evaluate_run(model_dir: Path) -> dict:
    """The run's evaluation figures (table, curves), evaluated once into MODEL_DIR/evaluation."""
    path = model_dir / "evaluation" / f"{model_dir.name}.pck.json"
    if not path.exists():
        command = [
            sys.executable, "-m", "stacked_hourglass.evaluate", f"--model_dir={model_dir}",
            f"--data={run_dir.load_config(str(model_dir)).data.valid_files}",
            f"--output_dir={model_dir / 'evaluation'}",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            # Its last line is the command's one-line error (TF's start-up logs come first).
            lines = result.stderr.strip().splitlines()
            reason = lines[-1] if lines else f"exit {result.returncode}"
            raise cli.CommandFailed(f"evaluating {model_dir} failed: {reason}")
    return json.loads(path.read_text())


def read_history(model_dir: Path, column: str) -> list[float]:
    """Per-epoch values of a logged metric from MODEL_DIR/history.csv."""
    with open(model_dir / run_dir.HISTORY_FILE, newline="", encoding="utf-8") as f:
        return [float(row[column]) for row in csv.DictReader(f) if row.get(column)]


def read_run(name: str, seed: int, model_dir: Path) -> dict:
    """One run's row: variant, seed, parameters, validation table, PCK curves, history."""
    summary = json.loads((model_dir / run_dir.SUMMARY_FILE).read_text())
    # The last stack's predictions scored in original pixels; the evaluation adds the curves.
    figures = evaluate_run(model_dir)
    return {
        "variant": name,
        "seed": seed,
        **parse_variant(name),
        "model_dir": str(model_dir),
        "parameters": summary["parameters"],
        "train_seconds": summary["train_seconds"],
        "validation_metric": summary["validation_metric"],
        "validation": figures["table"],
        "curves": figures["curves"],
        "history": read_history(model_dir, summary["validation_metric"]),
    }


# --- plot -------------------------------------------------------------------------------------


def plot_ablation(runs: Mapping[str, Mapping[int, dict]], monitor: str, path: Path) -> Path:
    """Validation PCK per epoch (mean ± std over seeds, each run a faint line) and the final
    Mean PCK curves (mean over seeds, ± std shaded)."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    for i, (name, by_seed) in enumerate(runs.items()):
        colour, rows = f"C{i}", list(by_seed.values())
        epochs = min(len(r["history"]) for r in rows)
        for r in rows:
            x = range(1, len(r["history"]) + 1)
            left.plot(x, r["history"], color=colour, lw=0.8, alpha=0.3)
        history = np.array([r["history"][:epochs] for r in rows])
        spread = history.std(axis=0, ddof=1) if len(rows) > 1 else None
        dodge = 0.06 * (i - (len(runs) - 1) / 2)  # so that the error bars do not overlap
        left.errorbar(
            np.arange(1, epochs + 1) + dodge, history.mean(axis=0), yerr=spread, color=colour,
            marker="o", ms=3, capsize=3, label=f"{name} (n={len(rows)})",
        )  # fmt: skip
        curves = np.array([r["curves"]["Mean"] for r in rows])
        thresholds = rows[0]["curves"]["thresholds"]
        right.plot(thresholds, curves.mean(axis=0), color=colour, label=name)
        if len(rows) > 1:
            mean, std = curves.mean(axis=0), curves.std(axis=0, ddof=1)
            right.fill_between(thresholds, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
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


# --- the command ------------------------------------------------------------------------------


def run_ablation(
    base_flagfile: str,
    workdir: Path,
    variants: Sequence[str],
    train_flags: Sequence[str],
    seeds: int = 3,
    seed_base: int = 0,
) -> dict:
    """Trains (or reuses) every (variant, seed) run; prints the tables, writes plot and JSON.

    Runs go seed by seed (all variants of seed_base first), so a stopped ablation leaves complete
    pairs; a run already finished in WORKDIR is reused, so a larger --seeds only adds runs.

    Returns:
        What WORKDIR/ablation.json holds: {"metric", "seeds", "runs" (one row per run),
        "aggregates" (variant -> `aggregate_runs`), "differences" (`difference_table`)}.

    Raises:
        ValueError / FileNotFoundError: bad arguments, before anything trains.
        cli.CommandFailed: a training or evaluation subprocess failed.
    """
    if not variants:
        raise ValueError("no variants to train (--variants is empty)")
    for name in variants:
        parse_variant(name)  # all names checked before anything trains
    repeated = sorted({v for v in variants if list(variants).count(v) > 1})
    if repeated:
        raise ValueError(f"variants listed twice: {','.join(repeated)}")
    if seeds < 1 or seed_base < 0:
        raise ValueError(f"seeds must be >= 1 and seed_base >= 0, got {seeds} and {seed_base}")
    _check_train_flags(train_flags)
    if not Path(base_flagfile).is_file():
        raise FileNotFoundError(f"{base_flagfile}: no such training flagfile")
    workdir = Path(workdir)
    seed_list = list(range(seed_base, seed_base + seeds))
    runs: dict[str, dict[int, dict]] = {name: {} for name in variants}
    total = len(seed_list) * len(variants)
    for k, (seed, name) in enumerate(itertools.product(seed_list, variants), 1):
        print(f"\n[{k}/{total}] {name}, seed {seed}", flush=True)
        model_dir = train_run(name, seed, base_flagfile, workdir, train_flags)
        runs[name][seed] = read_run(name, seed, model_dir)
    monitor = runs[variants[0]][seed_list[0]]["validation_metric"]
    aggregates = {name: aggregate_runs(by_seed) for name, by_seed in runs.items()}
    differences = difference_table(runs)
    print(f"\nAblation ({monitor}, last stack, validation split), mean±std over seeds {seed_list}:")
    print(format_ablation_table(aggregates))
    print(
        f"\nPaired differences of {DIFFERENCE_COLUMN} PCKh (same seed = same data order), "
        "mean and 95 % t-interval over seeds:"
    )
    print(format_differences(differences))
    png = plot_ablation(runs, monitor, workdir / "ablation.png")
    result = {
        "metric": monitor,
        "seeds": seed_list,
        "runs": [row for by_seed in runs.values() for row in by_seed.values()],
        "aggregates": aggregates,
        "differences": differences,
    }
    formats.write_json(workdir / "ablation.json", result)
    print(f"Wrote {png} and {workdir / 'ablation.json'}")
    return result
