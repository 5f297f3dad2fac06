r"""The whole product in one command, on synthetic people (no download).

    python -m stacked_hourglass.demo [--workdir=demo_workdir] [--flagfile_demo=configs/demo.flags]

1. writes synthetic TFRecords to WORKDIR/tfrecords (skipped when they exist),
2. trains with configs/demo.flags into WORKDIR/model and exports WORKDIR/export/1,
3. evaluates the model on the held-out split (table, PCK curves, pose-hg style predictions),
4. predicts on a held-out image with the exported SavedModel (WORKDIR/predictions/*.png),
5. writes WORKDIR/summary.json: the validation PCKh table, the training wall time, paths.

Each step after the first runs the command a user would type (printed before it runs), so the
demo doubles as a walkthrough of the command lines.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

from stacked_hourglass.data import features
from stacked_hourglass.data.records import shards
from stacked_hourglass.data.sources import synthetic

_WORKDIR = flags.DEFINE_string("workdir", "demo_workdir", "Where everything is written.")
_FLAGFILE = flags.DEFINE_string(
    "demo_flagfile", None, "Training flagfile (default: configs/demo.flags of this checkout)."
)
_NUM_TRAIN = flags.DEFINE_integer("num_train", 8000, "Synthetic training people.")
_NUM_VALID = flags.DEFINE_integer("num_valid", 500, "Synthetic held-out people.")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 2, "Conversion threads.")
_TRAIN_FLAGS = flags.DEFINE_multi_string(
    "train_flag", [], "An extra training flag (repeatable), e.g. --train_flag=--epochs=8."
)


def _default_flagfile() -> Path:
    path = Path(__file__).resolve().parents[1] / "configs" / "demo.flags"
    if not path.exists():
        raise app.UsageError(f"{path} not found; pass --demo_flagfile")
    return path


def _run(command: list[str]) -> None:
    print("\n$ " + shlex.join(command), flush=True)
    result = subprocess.run(command)
    if result.returncode:
        raise SystemExit(f"demo: step failed (exit {result.returncode}): {shlex.join(command)}")


def make_data(out: Path, num_train: int, num_valid: int, num_workers: int) -> None:
    """Synthetic train/valid TFRecords (kept if a previous run wrote them)."""
    for split, count in (("train", num_train), ("valid", num_valid)):
        if (out / shards.manifest_name(split)).exists():
            print(f"Using existing {out / shards.manifest_name(split)}")
            continue
        items, num_items, sources = shards.read_items(
            "synthetic", split, None, None, None, None, count, 0
        )
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
    # The person box whose crop (1.25 x its longer side, see export_lib) is the record's crop.
    half = features.PIXELS_PER_SCALE * example.scale / 1.25 / 2
    cx, cy = example.center
    return ",".join(f"{v:.1f}" for v in (cx - half, cy - half, cx + half, cy + half))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    start = time.perf_counter()
    workdir = Path(_WORKDIR.value)
    records, model_dir, export_dir = workdir / "tfrecords", workdir / "model", workdir / "export"
    flagfile = Path(_FLAGFILE.value) if _FLAGFILE.value else _default_flagfile()
    python = sys.executable

    print(f"[1/4] Synthetic TFRecords in {records}")
    make_data(records, _NUM_TRAIN.value, _NUM_VALID.value, _NUM_WORKERS.value)
    data_seconds = time.perf_counter() - start

    print(f"\n[2/4] Training with {flagfile} (this is the long step)")
    train_start = time.perf_counter()
    _run(
        [
            python, "-m", "stacked_hourglass.train", f"--flagfile={flagfile}",
            f"--train_files={records}/train-*.tfrecord",
            f"--valid_files={records}/valid-*.tfrecord",
            f"--model_dir={model_dir}", f"--export_dir={export_dir}",
            *_TRAIN_FLAGS.value,
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
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nDemo done in {summary['total_seconds'] / 60:.1f} min. Validation PCKh@0.5:")
    print("  ".join(f"{k} {v:.1f}" for k, v in summary["pckh"].items()))
    print(f"Summary: {path}\nSkeleton overlay: {summary['prediction_png']}")


if __name__ == "__main__":
    app.run(main)
