"""`python -m stacked_hourglass.model --summary` (and `stacked_hourglass.summary`)."""

import os
import subprocess
import sys

from stacked_hourglass import summary


def test_model_summary_command_prints_size_and_cost():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stacked_hourglass.model",
            "--summary",
            "--num_stacks=1",
            "--num_features=16",
            "--input_size=64",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in (
        "trainable parameters:",
        "non-trainable parameters:",
        "total parameters:",
        "multiply-adds per 64x64 image:",
        "first forward pass (batch 1):",
    ):
        assert line in out, out
    assert "'num_stacks': 1" in out and "'num_features': 16" in out


def test_bad_value_is_one_line(capsys):
    assert summary.main(["--num_stacks=0"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "summary: error: num_stacks must be a positive integer, got 0\n"
    assert captured.out == ""
