"""A model directory two runs cannot corrupt: the run lock, and a resume checked against the
stored config before anything is written (training/trainer.py, utils/locks.py, config.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from stacked_hourglass import train

TINY = [
    "--dataset=synthetic", "--num_stacks=1", "--depth=1", "--num_features=16",
    "--input_size=64", "--batch_size=4", "--steps_per_epoch=2", "--eval_batch_size=8",
    "--tensorboard_images=0", "--shuffle_buffer=16", "--verbose=0",
]  # fmt: skip


def _run(capsys, records, model_dir, *flags):
    data = [f"--train_files={records['train']}", f"--valid_files={records['valid']}"]
    status = train.main([*TINY, *data, f"--model_dir={model_dir}", *flags])
    return status, capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, synthetic_records):
    """A finished 1-epoch run (its resume point: epoch 1)."""
    model_dir = tmp_path_factory.mktemp("guards") / "run"
    assert train.main([*TINY, f"--train_files={synthetic_records['train']}",
                       f"--valid_files={synthetic_records['valid']}", "--epochs=1",
                       f"--model_dir={model_dir}"]) == 0  # fmt: skip
    return model_dir


def test_a_second_run_on_a_locked_model_dir_is_one_line_and_writes_nothing(
    capsys, synthetic_records, tmp_path
):
    model_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from stacked_hourglass.utils import locks; "
         "locks.DirectoryLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)",
         str(model_dir)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        status, err = _run(capsys, synthetic_records, model_dir, "--epochs=1")
    finally:
        holder.kill()
        holder.wait()
    assert status == 1 and len(err) == 1
    assert f"train: error: {model_dir} is in use by PID {holder.pid} on " in err[0]
    assert sorted(p.name for p in model_dir.iterdir()) == ["run.lock"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--epochs=2", "--batch_size=8"],
            "train.batch_size 4 -> 8 (cannot change: the data position is counted in batches",
        ),
        (
            ["--epochs=2", "--num_stacks=2", "--allow_config_change=num_stacks"],
            "model.num_stacks 1 -> 2 (cannot change: the weights are of the stored architecture)",
        ),
        (["--epochs=2"], "train.epochs 1 -> 2 (--allow_config_change=epochs allows it)"),
        (["--epochs=1", "--dataset=mpii"], "data.dataset 'synthetic' -> 'mpii' (cannot change"),
    ],
    ids=["batch_size", "architecture", "epochs_not_named", "joint_set"],
)
def test_a_resume_with_other_flags_is_refused_before_anything_is_written(
    capsys, synthetic_records, one_epoch, flags, message
):
    before = {p.name: p.read_bytes() for p in one_epoch.rglob("*") if p.is_file()}
    status, err = _run(capsys, synthetic_records, one_epoch, *flags)
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith(f"train: error: {one_epoch / 'config.json'}: this run's config")
    assert message in err[0] and err[0].endswith("nothing written")
    after = {p.name: p.read_bytes() for p in one_epoch.rglob("*") if p.is_file()}
    assert after == before


def test_a_named_change_resumes(capsys, synthetic_records, tmp_path, one_epoch):
    model_dir = tmp_path / "copy"
    shutil.copytree(one_epoch, model_dir)
    status, err = _run(
        capsys, synthetic_records, model_dir, "--epochs=2", "--allow_config_change=epochs"
    )
    assert status == 0, err
    assert json.loads((model_dir / "summary.json").read_text())["steps"] == 4
    assert json.loads((model_dir / "config.json").read_text())["train"]["epochs"] == 2
