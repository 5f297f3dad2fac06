"""The README's demo command and the ablation runner: end to end at toy size, and their errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stacked_hourglass import ablation, demo
from stacked_hourglass.workflows import ablation as ablation_lib
from stacked_hourglass.workflows import demo as demo_lib

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
            "--num_train=24", "--num_valid=8",
            *[f"--train_flag={f}" for f in [*TOY_TRAINING, "--num_stacks=1", "--depth=1"]],
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Each step prints the command a user would type.
    for step in ("train", "evaluate", "predict"):
        assert f"-m stacked_hourglass.{step} " in result.stdout
    summary = json.loads((workdir / "summary.json").read_text())
    assert {"Head", "Mean", "Mean@0.1"} <= set(summary["pckh"])
    assert summary["train_seconds"] > 0 and summary["steps"] == 2
    assert Path(summary["model_dir"]).is_dir()
    assert (workdir / "export" / "1" / "saved_model.pb").exists()
    png = Path(summary["prediction_png"])
    assert png.exists() and png.stat().st_size > 5_000
    held_out = json.loads((workdir / "predictions" / "held_out.json").read_text())
    assert len(held_out["keypoints"]) == 16


def test_demo_help_from_an_empty_folder(tmp_path):
    """The packaged configs/demo.flags is found from anywhere; --help writes nothing."""
    result = subprocess.run(
        [sys.executable, "-m", "stacked_hourglass.demo", "--help"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "The whole product in one command" in result.stdout
    for flag in ("--workdir", "--demo_flagfile", "--train_flag"):
        assert flag in result.stdout
    assert list(tmp_path.iterdir()) == []
    assert demo_lib.default_flagfile().is_file()
    assert "--dataset=synthetic" in demo_lib.default_flagfile().read_text()


def _main(module, capsys, *argv):
    status = module.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err.strip().splitlines()


def test_demo_missing_flagfile_fails_before_writing_data(capsys, tmp_path):
    status, _, err = _main(
        demo, capsys, f"--workdir={tmp_path / 'w'}", f"--demo_flagfile={tmp_path / 'x.flags'}"
    )
    assert status == 1
    assert err == [f"demo: error: {tmp_path / 'x.flags'}: no such training flagfile"]
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    "name, expected",
    [
        ("4x1", {"num_stacks": 4, "num_modules": 1, "supervise": "all"}),
        ("2x4_last", {"num_stacks": 2, "num_modules": 4, "supervise": "last"}),
    ],
)
def test_parse_variant(name, expected):
    assert ablation_lib.parse_variant(name) == expected


def test_parse_variant_rejects_garbage():
    with pytest.raises(ValueError, match="4by1"):
        ablation_lib.parse_variant("4by1")


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "--base_flagfile is required"),
        (["--base_flagfile={flags}", "--variants=2x1,4by1"], "variant '4by1' is not"),
        (["--base_flagfile={flags}", "--variants="], "--variants is empty"),
        (["--base_flagfile={tmp}/missing.flags"], "missing.flags: no such training flagfile"),
    ],
)
def test_ablation_errors_are_one_line_and_train_nothing(capsys, tmp_path, argv, message):
    flags = tmp_path / "base.flags"
    flags.write_text("--epochs=1\n")
    argv = [a.format(flags=flags, tmp=tmp_path) for a in argv]
    status, _, err = _main(ablation, capsys, *argv, f"--workdir={tmp_path / 'work'}")
    assert status == 1
    assert len(err) == 1 and err[0].startswith("ablation: error: ") and message in err[0], err
    assert not (tmp_path / "work").exists()


def test_ablation_table_and_history(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss,val_pckh\n0,1.0,10.5\n1,0.5,\n2,0.4,30\n")
    assert ablation_lib.read_history(tmp_path, "val_pckh") == [10.5, 30.0]
    table = {"columns": ["Head", "Mean"], "Head": 50.0, "Mean": 42.125, "Mean@0.1": 7.0}
    rows = {"2x1": {"parameters": 1_234_567, "validation": table}}
    header, line = ablation_lib.format_ablation_table(rows).splitlines()
    assert header.split() == ["variant", "params", "Head", "Mean", "Mean", "Mean@0.1"]
    assert line.split() == ["2x1", "1.23M", "50.00", "42.12", "42.12", "7.00"]


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
    rows = json.loads((tmp_path / "ablation.json").read_text())
    assert list(rows) == ["1x2", "2x1", "2x1_last"]
    assert rows["2x1_last"]["variant"]["supervise"] == "last"
