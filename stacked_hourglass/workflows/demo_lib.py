"""The demo's steps: synthetic data, then the command lines a user would type, in order.

The library behind `python -m stacked_hourglass.demo`; each step after the first runs the
printed command as a subprocess, so the demo doubles as a walkthrough of the command lines.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from stacked_hourglass.data import features
from stacked_hourglass.data.records import shards
from stacked_hourglass.data.sources import read_items, synthetic
from stacked_hourglass.utils import cli, files


def default_flagfile() -> Path:
    """`configs/demo.flags`, installed with the package (so the demo runs from any folder)."""
    return Path(str(importlib.resources.files("stacked_hourglass") / "configs" / "demo.flags"))


# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX512_VNNI, AVX512_BF16,
# AVX_VNNI or AMX; elsewhere (AVX2-only CPUs) it runs Eigen's, which train the demo's float32
# model more slowly (BUILD.md, "The demo"). The demo's commands ask for oneDNN unless the user has
# chosen; its recipe is float32, so no bfloat16 kernel (oneDNN lacks them on such CPUs) is involved.
ONEDNN = ("TF_ENABLE_ONEDNN_OPTS", "1")


def step_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with TF_ENABLE_ONEDNN_OPTS=1 added where it is not set (a set value stays)."""
    name, value = ONEDNN
    return {name: value, **environ}


def _run(command: list[str]) -> None:
    env = step_environment(os.environ)
    added = "".join(f"{k}={env[k]} " for k in env if k not in os.environ)
    print("\n$ " + added + shlex.join(command), flush=True)
    result = subprocess.run(command, env=env)
    if result.returncode:
        raise cli.CommandFailed(f"step failed (exit {result.returncode}): {shlex.join(command)}")


def make_data(out: Path, num_train: int, num_valid: int, num_workers: int) -> None:
    """Synthetic train/valid TFRecords (kept if a previous run wrote them)."""
    for split, count in (("train", num_train), ("valid", num_valid)):
        if (out / shards.manifest_name(split)).exists():
            print(f"Using existing {out / shards.manifest_name(split)}")
            continue
        items, num_items, sources = read_items("synthetic", split, num_examples=count, seed=0)
        result = shards.write_split(
            items,
            num_items,
            out,
            split,
            "synthetic",
            num_shards=max(1, count // 1000),
            num_workers=num_workers,
            sources=sources,
            options={"num_examples": count, "seed": 0},
        )
        print(shards.format_summary(result))


def write_held_out_image(path: Path) -> str:
    """A synthetic test-split picture (never trained on); returns its person box x1,y1,x2,y2."""
    example: features.PersonExample = next(synthetic.generate_examples("test", 1, seed=7))
    path.write_bytes(example.image_encoded)
    # The person box whose crop (1.25 x its longer side, serving/box_crop.py) is the record's crop.
    half = features.PIXELS_PER_SCALE * example.scale / 1.25 / 2
    cx, cy = example.center
    return ",".join(f"{v:.1f}" for v in (cx - half, cy - half, cx + half, cy + half))


def run_demo(
    workdir: Path,
    flagfile: Path | None = None,
    num_train: int = 4000,
    num_valid: int = 500,
    num_workers: int = 2,
    train_flags: tuple[str, ...] = (),
) -> dict:
    """Runs the demo's four steps in `workdir`; returns (and writes) its summary."""
    start = time.perf_counter()
    workdir = Path(workdir)
    records, model_dir, export_dir = workdir / "tfrecords", workdir / "model", workdir / "export"
    flagfile = Path(flagfile) if flagfile else default_flagfile()
    if not flagfile.is_file():  # before minutes of data generation, not after
        raise FileNotFoundError(f"{flagfile}: no such training flagfile")
    python = sys.executable

    print(f"[1/4] Synthetic TFRecords in {records}")
    make_data(records, num_train, num_valid, num_workers)
    data_seconds = time.perf_counter() - start

    print(f"\n[2/4] Training with {flagfile} (this is the long step)")
    train_start = time.perf_counter()
    _run(
        [
            python, "-m", "stacked_hourglass.train", f"--flagfile={flagfile}",
            f"--train_files={records}/train-*.tfrecord",
            f"--valid_files={records}/valid-*.tfrecord",
            f"--model_dir={model_dir}", f"--export_dir={export_dir}",
            *train_flags,
        ]
    )  # fmt: skip
    train_seconds = time.perf_counter() - train_start
    train_summary = json.loads((model_dir / "summary.json").read_text())

    print("\n[3/4] Evaluating on the held-out split")
    eval_dir = workdir / "evaluation"
    _run(
        [
            python, "-m", "stacked_hourglass.evaluate", f"--model_dir={model_dir}",
            f"--data={records}/valid-*.tfrecord", f"--output_dir={eval_dir}",
        ]
    )  # fmt: skip
    figures = json.loads((eval_dir / f"{model_dir.name}.pck.json").read_text())

    print("\n[4/4] Predicting on a held-out image with the exported SavedModel")
    image = workdir / "held_out.jpg"
    box = write_held_out_image(image)
    predictions = workdir / "predictions"
    _run(
        [
            python, "-m", "stacked_hourglass.predict", f"--saved_model={export_dir}",
            f"--image={image}", f"--box={box}", f"--output_dir={predictions}",
        ]
    )  # fmt: skip

    table = figures["table"]
    summary = {
        "pckh": {k: table[k] for k in [*table["columns"], "Mean", "Mean@0.1"]},
        "pckh_convention": "PCKh@0.5, Head = head_top, Mean pooled over 14 joints",
        "train_seconds": train_seconds,
        "data_seconds": data_seconds,
        "total_seconds": time.perf_counter() - start,
        "train_images_per_second": train_summary.get("images_per_second"),
        "steps": train_summary["steps"],
        "model_dir": str(model_dir),
        "export_dir": str(export_dir),
        "evaluation_dir": str(eval_dir),
        "prediction_png": str(predictions / "held_out.png"),
    }
    path = workdir / "summary.json"
    files.write_json(path, summary)
    print(f"\nDemo done in {summary['total_seconds'] / 60:.1f} min. Validation PCKh@0.5:")
    print("  ".join(f"{k} {v:.1f}" for k, v in summary["pckh"].items()))
    print(f"Summary: {path}\nSkeleton overlay: {summary['prediction_png']}")
    return summary
