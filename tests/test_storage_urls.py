"""Model directories and exports on a URL: training (a mid-epoch checkpoint, a kill, a resume),
export and evaluation with `--model_dir`/`--export_dir`/`--output` on TensorFlow's in-memory file
system (`ram://`), which only `tf.io.gfile` reaches: a path handled with `os` would land in a local
folder named `ram:` instead, which the tests look for."""

from __future__ import annotations

import json
import os
import uuid

import keras
import pytest
import tensorflow as tf

from stacked_hourglass import config as config_lib
from stacked_hourglass import evaluate, export, run_dir, train
from stacked_hourglass.training import trainer
from stacked_hourglass.utils import cli, files

TINY_FLAGS = [
    "--dataset=synthetic", "--num_stacks=1", "--depth=1", "--num_features=16",
    "--input_size=64", "--batch_size=4", "--epochs=2", "--steps_per_epoch=3",
    "--checkpoint_every_steps=2", "--eval_batch_size=8", "--tensorboard_images=1",
    "--shuffle_buffer=16", "--verbose=0",
]  # fmt: skip


class Killed(Exception):
    """Stands for the process dying mid-epoch: raised out of `fit`, so no epoch end runs."""


class KillAtStep(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise Killed(f"killed at step {self.step}")


@pytest.fixture
def no_local_url_folders(tmp_path, monkeypatch):
    """Runs the test in an empty folder; afterwards asserts that no local `ram:` (or `s3:`)
    folder appeared there or in the folder the tests were started from."""
    started_in = os.getcwd()
    monkeypatch.chdir(tmp_path)
    yield
    for folder in (tmp_path, started_in):
        assert not os.path.exists(os.path.join(folder, "ram:")), folder
        assert not os.path.exists(os.path.join(folder, "s3:")), folder
    assert os.listdir(tmp_path) == []


@pytest.fixture
def root():
    """A fresh `ram://` folder, removed afterwards (the in-memory file system is per process)."""
    url = f"ram://storage-{uuid.uuid4().hex[:8]}"
    yield url
    files.rmtree(url)


def _table_mean(out: str) -> float:
    """The Mean column of the PCK table `evaluate` prints (`pck.format_table`)."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["Head"])
    return float(lines[header + 1].split()[lines[header].split().index("Mean")])


def _run(capsys, main, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def test_train_resume_export_and_evaluate_on_ram(
    capsys, synthetic_records, root, no_local_url_folders
):
    model_dir, export_dir = f"{root}/run", f"{root}/export"
    data = [f"--train_files={synthetic_records['train']}"]
    data.append(f"--valid_files={synthetic_records['valid']}")
    # Killed at step 5 of 2 epochs x 3 steps, checkpointing every 2 steps: the resume point is
    # 2 steps into epoch 2.
    argv = ["train", *TINY_FLAGS, *data, f"--model_dir={model_dir}"]
    fv = cli.parse(train.define_flags, argv, "train")
    with pytest.raises(Killed):
        trainer.train(config_lib.from_flags(fv), callbacks=(KillAtStep(5),))
    state = run_dir.read_state(model_dir)
    assert state == {**state, "epoch": 1, "epoch_step": 2, "step": 5}
    assert files.listdir(run_dir.path(model_dir, run_dir.CHECKPOINT_DIR)) == [
        "epoch-0001.weights.h5",
        "epoch-0002-step-000000002.weights.h5",
        "state.json",
    ]
    assert not files.exists(run_dir.path(model_dir, run_dir.FINAL_MODEL_FILE))

    # The command line resumes it, then exports.
    out = _run(
        capsys,
        train.main,
        *TINY_FLAGS,
        *data,
        f"--model_dir={model_dir}",
        f"--export_dir={export_dir}",
    )
    assert f'"model_dir": "{model_dir}"' in out and '"steps": 6' in out
    summary = files.read_json(run_dir.path(model_dir, run_dir.SUMMARY_FILE))
    assert summary["resumed_from_epoch"] == 1 and summary["resumed_from_step"] == 5
    assert files.listdir(model_dir) == [
        "checkpoints", "config.json", "history.csv", "logs", "model.keras", "summary.json",
    ]  # fmt: skip
    rows = files.read_bytes(run_dir.path(model_dir, run_dir.HISTORY_FILE)).decode().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1"]
    assert tf.io.gfile.glob(f"{model_dir}/logs/*/events.out.tfevents.*")
    assert files.listdir(export_dir) == ["1"]
    assert files.exists(f"{export_dir}/1/saved_model.pb")
    assert json.loads(files.read_bytes(f"{export_dir}/1/assets/joints.json"))["input_size"] == 64
    assert run_dir.load_model(model_dir).count_params() == summary["parameters"]

    # Evaluation from the model directory and from the export scores what validation did.
    for flag in (f"--model_dir={model_dir}", f"--saved_model={export_dir}"):
        out = _run(capsys, evaluate.main, flag, f"--data={synthetic_records['valid']}")
        assert _table_mean(out) == pytest.approx(summary["validation"]["Mean"], abs=0.01), out


def test_export_to_a_second_version_and_to_litert_on_ram(
    capsys, root, make_model_dir, tmp_path, no_local_url_folders
):
    # A model directory on ram:// (the final model read back through a local copy).
    local = tmp_path.parent / f"{tmp_path.name}-model"
    make_model_dir(local, num_stacks=1, dataset="synthetic")
    model_dir = f"{root}/imported"
    files.copy_tree(local, model_dir)
    export_dir = f"{root}/export"
    _run(capsys, export.main, f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    _run(capsys, export.main, f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    assert files.listdir(export_dir) == ["1", "2"]

    pytest.importorskip("ai_edge_litert")
    from stacked_hourglass.serving import litert

    tflite = f"{root}/lite/model.tflite"
    _run(capsys, export.main, "--format=litert", f"--model_dir={model_dir}", f"--output={tflite}")
    assert files.listdir(f"{root}/lite") == ["model.json", "model.tflite"]
    lite = litert.LiteRTModel(tflite)
    assert lite.metadata["format"] == "litert" and lite.input_size == 64
    assert lite.run(tf.zeros([1, 64, 64, 3]).numpy())["keypoints"].shape == (1, 16, 2)


def test_a_url_scheme_tensorflow_lacks_is_one_line(capsys, synthetic_records, no_local_url_folders):
    """`s3://` needs `tensorflow-io`: without it, one line, and no local `s3:` folder."""
    if "s3" in _registered_schemes():
        pytest.skip("this TensorFlow has an s3 file system")
    data = [f"--train_files={synthetic_records['train']}"]
    data.append(f"--valid_files={synthetic_records['valid']}")
    status = train.main([*TINY_FLAGS, *data, "--model_dir=s3://bucket/run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert err == [
        "train: error: --model_dir=s3://bucket/run: File system scheme 's3' not implemented "
        "(file: 's3://bucket/run')"
    ]


def _registered_schemes() -> set[str]:
    try:
        tf.io.gfile.exists("s3://bucket/x")
    except tf.errors.UnimplementedError:
        return set()
    return {"s3"}
