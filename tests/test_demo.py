"""The README's demo command and the ablation runner, end to end at toy size."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stacked_hourglass import ablation

REPO = Path(__file__).resolve().parents[1]
TOY_TRAINING = [
    "--epochs=1", "--steps_per_epoch=2", "--batch_size=4", "--num_features=16",
    "--input_size=64", "--eval_batch_size=8", "--tensorboard_images=1",
]  # fmt: skip


def test_demo_runs_end_to_end(tmp_path):
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable, "-m", "stacked_hourglass.demo", f"--workdir={workdir}",
            "--num_train=24", "--num_valid=8", *[f"--train_flag={f}" for f in TOY_TRAINING],
        ],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert {"Head", "Mean", "Mean@0.1"} <= set(summary["pckh"])
    assert summary["train_seconds"] > 0
    assert Path(summary["model_dir"]).is_dir()
    assert (workdir / "export" / "1" / "saved_model.pb").exists()
    png = Path(summary["prediction_png"])
    assert png.exists() and png.stat().st_size > 5_000
    held_out = json.loads((workdir / "predictions" / "held_out.json").read_text())
    assert len(held_out["keypoints"]) == 16


@pytest.mark.parametrize(
    "name, expected",
    [
        ("4x1", {"num_stacks": 4, "num_modules": 1, "supervise": "all"}),
        ("2x4_last", {"num_stacks": 2, "num_modules": 4, "supervise": "last"}),
    ],
)
def test_parse_variant(name, expected):
    assert ablation.parse_variant(name) == expected


def test_parse_variant_rejects_garbage():
    with pytest.raises(ValueError, match="4by1"):
        ablation.parse_variant("4by1")


@pytest.mark.large
def test_ablation_runs_end_to_end(tmp_path, synthetic_records):
    result = subprocess.run(
        [
            sys.executable, "-m", "stacked_hourglass.ablation",
            f"--base_flagfile={REPO / 'configs' / 'demo.flags'}", f"--workdir={tmp_path}",
            "--variants=1x2,2x1,2x1_last",
            *[f"--train_flag={f}" for f in TOY_TRAINING],
            f"--train_flag=--train_files={synthetic_records['train']}",
            f"--train_flag=--valid_files={synthetic_records['valid']}",
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2x1_last" in result.stdout
    assert (tmp_path / "ablation.png").exists()
