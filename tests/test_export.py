"""`python -m stacked_hourglass.export`: one export in a subprocess, the error paths in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stacked_hourglass import export


def test_export_command_line(tmp_path, mpii_model_dir):
    model_dir = mpii_model_dir
    export_dir = tmp_path / "export"
    (export_dir / "4").mkdir(parents=True)  # the next version is 5
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [
            sys.executable, "-m", "stacked_hourglass.export", f"--model_dir={model_dir}",
            f"--export_dir={export_dir}", "--flip_test", "--decoder=dark",
        ],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        f"Exported {model_dir} -> {export_dir / '5'} (flip_test=True, decoder=dark)"
        in result.stdout
    )
    assert (
        "Signatures: serving_default, serving_box, serving_heatmaps, serving_image_tensor"
        in result.stdout
    )
    assert sorted(os.listdir(export_dir)) == ["4", "5"]
    assert (export_dir / "5" / "saved_model.pb").exists()
    metadata = json.loads((export_dir / "5" / "assets" / "joints.json").read_text())
    assert metadata["flip_test"] is True and metadata["dataset"] == "mpii"
    assert metadata["decoder"] == "dark"


@pytest.fixture
def run_export(capsys):
    """`run(*argv)` → (exit status, stdout, stderr lines) of an in-process `export.main`."""

    def run(*argv):
        status = export.main(list(argv))
        out, err = capsys.readouterr()
        return status, out, err.strip().splitlines()

    return run


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--export_dir=x"], "--model_dir is required"),
        (["--model_dir=x"], "--export_dir is required"),
        (["--model_dir=x", "--export_dir=y", "--version=0"], "--version"),
        (["--model_dir=x", "--export_dir=y", "--flip_test=maybe"], "flip_test"),
        (["--model_dir=x", "--export_dir=y", "--decoder=soft"], "decoder"),
        (["--format=litert", "--model_dir=x"], "--output is required"),
        (["--format=litert", "--model_dir=x", "--output=m.bin"], "expected a FILE.tflite"),
        (["--model_dir=x", "--export_dir=y", "--quantize=fp16"], "are for --format=litert"),
    ],
)
def test_flag_errors_are_one_line(run_export, argv, message):
    status, out, err = run_export(*argv)
    assert status == 1 and out == ""
    assert len(err) == 1 and err[0].startswith("export: error: ") and message in err[0], err


def test_not_a_model_dir_is_one_line(run_export, tmp_path):
    status, _, err = run_export(f"--model_dir={tmp_path / 'nothing'}", f"--export_dir={tmp_path}")
    assert status == 1
    assert err == [
        f"export: error: {tmp_path / 'nothing' / 'config.json'}: no config.json; "
        f"is {tmp_path / 'nothing'} a model_dir?"
    ]


def test_existing_version_is_one_line(run_export, tmp_path, mpii_model_dir):
    model_dir = mpii_model_dir
    (tmp_path / "export" / "2").mkdir(parents=True)
    status, _, err = run_export(
        f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'export'}", "--version=2"
    )
    assert status == 1 and len(err) == 1
    assert "export/2 already exists; pass another --version or remove it" in err[0]
    assert os.listdir(tmp_path / "export") == ["2"]
    assert os.listdir(tmp_path / "export" / "2") == []
