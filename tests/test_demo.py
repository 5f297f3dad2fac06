"""The README's demo command: end to end at toy size, and its errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stacked_hourglass import demo
from stacked_hourglass.workflows import demo_lib

REPO = Path(__file__).resolve().parents[1]
TOY_TRAINING = [
    "--epochs=1", "--steps_per_epoch=2", "--batch_size=4", "--num_features=16",
    "--input_size=64", "--eval_batch_size=8", "--tensorboard_images=1",
]  # fmt: skip


# About a minute of subprocesses: run by .ci/run with the other large end-to-end tests.
@pytest.mark.large
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
    assert len(held_out["people"]) == 1 and len(held_out["people"][0]["keypoints"]) == 16


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


def test_demo_steps_ask_for_onednn_unless_the_user_chose():
    """TensorFlow leaves oneDNN off on AVX2-only CPUs; the demo's steps turn it on, and a value
    the user set (0 included) stays."""
    env = demo_lib.step_environment({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "TF_ENABLE_ONEDNN_OPTS": "1"}
    chosen = demo_lib.step_environment({"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert chosen == {"TF_ENABLE_ONEDNN_OPTS": "0"}


def test_demo_step_prints_the_environment_it_adds(monkeypatch, capsys):
    """The printed command is the one that runs, oneDNN setting included."""
    envs = []

    def fake_run(command, env):
        envs.append(env)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(demo_lib.subprocess, "run", fake_run)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    demo_lib._run(["python", "-m", "stacked_hourglass.train"])
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    demo_lib._run(["python", "-m", "stacked_hourglass.evaluate"])
    out = capsys.readouterr().out
    assert "$ TF_ENABLE_ONEDNN_OPTS=1 python -m stacked_hourglass.train\n" in out
    assert "$ python -m stacked_hourglass.evaluate\n" in out
    assert [e["TF_ENABLE_ONEDNN_OPTS"] for e in envs] == ["1", "0"]
