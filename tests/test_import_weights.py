"""`python -m stacked_hourglass.import_weights`: one real run, and its one-line errors."""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stacked_hourglass import import_weights
from stacked_hourglass.weights.torch_pickle_writer import save_checkpoint

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "reference-weights"
PRINCETON = REFERENCE / "princeton_2hg_f64.pt"
REPO = Path(__file__).resolve().parents[1]


def test_import_and_verify_the_princeton_fixture(tmp_path):
    npz = Path(f"{PRINCETON}.io.npz")
    if not PRINCETON.is_file() or not npz.is_file():
        pytest.skip(f"reference checkpoint {PRINCETON} absent: shared/data/reference-weights")
    model_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "stacked_hourglass.import_weights",
        "--format=princeton",
        f"--checkpoint={PRINCETON}",
        f"--model_dir={model_dir}",
        f"--verify={npz}",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "Imported princeton checkpoint: num_stacks=2, num_features=64" in out
    assert "Unused tensors: 58 (pre.3.skip_layer.conv.weight" in out
    assert f"Wrote {model_dir}" in out
    lines = [line for line in out.splitlines() if line.startswith("heatmaps_")]
    assert [line.split(":")[0] for line in lines] == ["heatmaps_1", "heatmaps_2"]
    assert all(float(line.rsplit("=", 1)[1]) <= 1e-4 for line in lines), lines
    assert sorted(os.listdir(model_dir)) == ["config.json", "import.json", "model.keras"]


def run_main(capsys, *argv) -> tuple[int, str]:
    code = import_weights.main(list(argv))
    return code, capsys.readouterr().err


def assert_one_error_line(err: str, *fragments: str):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("import_weights: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def small_checkpoint(path: Path, format: str) -> Path:
    state = {f"layer{i}.weight": np.ones((64, 64), np.float32) for i in range(4)}
    save_checkpoint(path, {"state_dict": state, "epoch": 1}, format=format)
    return path


@pytest.mark.parametrize("format", ["zip", "legacy"])
def test_truncated_file(tmp_path, capsys, format):
    path = small_checkpoint(tmp_path / "whole.pt", format)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    code, err = run_main(capsys, f"--checkpoint={path}", f"--model_dir={tmp_path / 'run'}")
    assert code == 1
    assert_one_error_line(err, str(path), "truncated")
    assert not (tmp_path / "run").exists()


def test_plain_pickle_is_not_a_checkpoint(tmp_path, capsys):
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"state_dict": {"w": [1.0, 2.0]}}, protocol=2))
    code, err = run_main(capsys, f"--checkpoint={path}", f"--model_dir={tmp_path / 'run'}")
    assert code == 1
    assert_one_error_line(err, "not a PyTorch checkpoint")
    assert not (tmp_path / "run").exists()


def os_system_pickle(command: str) -> bytes:
    """A pickle whose loading calls os.system(command) (with pickle.load)."""
    encoded = command.encode()
    return b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(encoded)) + encoded + b"\x85R."


def zip_checkpoint(data_pkl: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


@pytest.mark.parametrize("container", ["zip", "pickle"])
def test_malicious_pickle_is_refused_and_never_run(tmp_path, capsys, container):
    marker = tmp_path / "pwned"
    hostile = os_system_pickle(f"touch {marker}")
    path = tmp_path / "checkpoint.pth.tar"
    path.write_bytes(zip_checkpoint(hostile) if container == "zip" else hostile)
    code, err = run_main(capsys, f"--checkpoint={path}", f"--model_dir={tmp_path / 'run'}")
    assert code == 1
    assert_one_error_line(err, "refused to load", "os.system")
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_existing_model_dir_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    path = small_checkpoint(tmp_path / "c.pt", "zip")
    code, err = run_main(capsys, f"--checkpoint={path}", f"--model_dir={run}")
    assert code == 1
    assert_one_error_line(err, "not an empty directory")
    assert os.listdir(run) == ["config.json"]


def test_other_architecture_and_bad_flags(tmp_path, capsys):
    path = small_checkpoint(tmp_path / "resnet.pt", "zip")
    code, err = run_main(capsys, f"--checkpoint={path}", f"--model_dir={tmp_path / 'run'}")
    assert code == 1
    assert_one_error_line(err, "not a checkpoint of a known stacked hourglass implementation")
    code, err = run_main(capsys, f"--checkpoint={path}")
    assert code == 1
    assert_one_error_line(err, "--model_dir is required")
    code, err = run_main(capsys, f"--checkpoint={path}", "--model_dir=x", "--input_mean=1,a,2")
    assert code == 1
    assert_one_error_line(err, "--input_mean")
