"""Model directories and exports on a URL: training (a mid-epoch checkpoint, a kill, a resume),
export and evaluation with `--model_dir`/`--export_dir`/`--output` on TensorFlow's in-memory file
system (`ram://`), which only `tf.io.gfile` reaches: a path handled with `os` would land in a local
folder named `ram:` instead, which the tests look for."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import uuid

import numpy as np
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


def _assert_no_local_url_folders(*folders):
    for folder in folders:
        for scheme in ("ram:", "s3:"):
            assert not os.path.exists(os.path.join(folder, scheme)), (folder, scheme)


@pytest.fixture
def no_local_url_folders(tmp_path, monkeypatch):
    """Runs the test in an empty folder; afterwards asserts that no local `ram:` (or `s3:`)
    folder appeared there or in the folder the tests were started from."""
    started_in = os.getcwd()
    monkeypatch.chdir(tmp_path)
    yield
    _assert_no_local_url_folders(tmp_path, started_in)
    assert os.listdir(tmp_path) == []


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


@pytest.fixture(scope="module")
def ram_run(synthetic_records, tmp_path_factory, kill_at_step):
    """A run trained on `ram://`: killed at step 5 of 2 epochs x 3 steps (checkpointing every 2
    steps), then resumed to the end and exported by the command line. Runs in an empty folder;
    yields {"model_dir", "export_dir", "killed_state", "killed_listing", "out"}."""
    root = f"ram://storage-{uuid.uuid4().hex[:8]}"
    model_dir, export_dir = f"{root}/run", f"{root}/export"
    argv = [*TINY_FLAGS, f"--model_dir={model_dir}"]
    argv += [f"--train_files={synthetic_records['train']}"]
    argv += [f"--valid_files={synthetic_records['valid']}"]
    started_in, workdir = os.getcwd(), tmp_path_factory.mktemp("cwd")
    os.chdir(workdir)
    try:
        fv = cli.parse(train.define_flags, ["train", *argv], "train")
        killed, kill_at = kill_at_step
        with pytest.raises(killed):
            trainer.train(config_lib.from_flags(fv), callbacks=(kill_at(5),))
        killed = {
            "killed_state": run_dir.read_state(model_dir),
            "killed_listing": files.listdir(run_dir.path(model_dir, run_dir.CHECKPOINT_DIR)),
            "killed_final": files.exists(run_dir.path(model_dir, run_dir.FINAL_MODEL_FILE)),
        }
        with _capture_stdout() as out:
            assert train.main([*argv, f"--export_dir={export_dir}"]) == 0
        yield {
            "root": root,
            "model_dir": model_dir,
            "export_dir": export_dir,
            "out": out.getvalue(),
            **killed,
        }
        _assert_no_local_url_folders(workdir, started_in)
        assert os.listdir(workdir) == []
    finally:
        os.chdir(started_in)
        files.rmtree(root)


def _capture_stdout():
    return contextlib.redirect_stdout(io.StringIO())


def test_train_with_a_mid_epoch_checkpoint_and_resume_on_ram(ram_run):
    model_dir = ram_run["model_dir"]
    state = ram_run["killed_state"]
    assert state == {**state, "epoch": 1, "epoch_step": 2, "step": 5}
    assert ram_run["killed_listing"] == [
        "epoch-0001.weights.h5",
        "epoch-0002-step-000000002.weights.h5",
        "state.json",
    ]
    assert not ram_run["killed_final"]
    assert f'"model_dir": "{model_dir}"' in ram_run["out"] and '"steps": 6' in ram_run["out"]
    summary = files.read_json(run_dir.path(model_dir, run_dir.SUMMARY_FILE))
    assert summary["resumed_from_epoch"] == 1 and summary["resumed_from_step"] == 5
    assert files.listdir(model_dir) == [
        "checkpoints", "config.json", "history.csv", "logs", "model.keras", "summary.json",
    ]  # fmt: skip
    assert files.listdir(run_dir.path(model_dir, run_dir.CHECKPOINT_DIR)) == [
        "epoch-0001.weights.h5",
        "epoch-0002.weights.h5",
        "state.json",
    ]
    rows = files.read_bytes(run_dir.path(model_dir, run_dir.HISTORY_FILE)).decode().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1"] and "val_pckh" in rows[0]
    assert tf.io.gfile.glob(f"{model_dir}/logs/train/events.out.tfevents.*")
    assert tf.io.gfile.glob(f"{model_dir}/logs/validation/events.out.tfevents.*")
    assert run_dir.load_model(model_dir).count_params() == summary["parameters"]
    export_dir = ram_run["export_dir"]
    assert files.listdir(export_dir) == ["1"]
    assert files.exists(f"{export_dir}/1/saved_model.pb")
    assert json.loads(files.read_bytes(f"{export_dir}/1/assets/joints.json"))["input_size"] == 64


def test_evaluate_the_model_dir_and_the_export_on_ram(
    capsys, ram_run, synthetic_records, no_local_url_folders
):
    """Both score what validation did at the end of training."""
    summary = files.read_json(run_dir.path(ram_run["model_dir"], run_dir.SUMMARY_FILE))
    for flag in (f"--model_dir={ram_run['model_dir']}", f"--saved_model={ram_run['export_dir']}"):
        out = _run(capsys, evaluate.main, flag, f"--data={synthetic_records['valid']}")
        assert _table_mean(out) == pytest.approx(summary["validation"]["Mean"], abs=0.01), out


@pytest.mark.large  # a LiteRT conversion (~7 s): the default run exports a SavedModel on ram://
def test_litert_export_on_ram(capsys, ram_run, no_local_url_folders):
    pytest.importorskip("ai_edge_litert")
    from stacked_hourglass.serving import litert

    tflite = f"{ram_run['root']}/lite/model.tflite"
    argv = ["--format=litert", f"--model_dir={ram_run['model_dir']}", f"--output={tflite}"]
    _run(capsys, export.main, *argv)
    assert files.listdir(f"{ram_run['root']}/lite") == ["model.json", "model.tflite"]
    lite = litert.LiteRTModel(tflite)
    assert lite.metadata["format"] == "litert" and lite.input_size == 64
    assert lite.run(np.zeros([1, 64, 64, 3], np.float32))["keypoints"].shape == (1, 16, 2)


def test_a_url_scheme_tensorflow_lacks_is_one_line(capsys, synthetic_records, no_local_url_folders):
    """A scheme without a file system in this TensorFlow (`s3://` needs a plug-in): one line,
    and no local `s3:` folder."""
    if "s3" in _registered_schemes():
        pytest.skip("this TensorFlow has an s3 file system")
    data = [f"--train_files={synthetic_records['train']}"]
    data.append(f"--valid_files={synthetic_records['valid']}")
    status = train.main([*TINY_FLAGS, *data, "--model_dir=s3://bucket/run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    # The first file the run looks at is named (its resume point, checkpoints/state.json).
    assert len(err) == 1
    assert re.fullmatch(
        r"train: error: s3://bucket/run(/\S*)?: TensorFlow has no s3:// file system", err[0]
    )


def test_an_export_dir_of_a_scheme_tensorflow_lacks_is_one_line(
    capsys, synthetic_model, no_local_url_folders
):
    """The export layout (versions, joints.json) goes through `utils.files` too."""
    if "s3" in _registered_schemes():
        pytest.skip("this TensorFlow has an s3 file system")
    status = export.main(
        [f"--model_dir={synthetic_model['model_dir']}", "--export_dir=s3://bucket/export"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1
    assert re.fullmatch(
        r"export: error: s3://bucket/export(/\S*)?: TensorFlow has no s3:// file system", err[0]
    ), err


def _registered_schemes() -> set[str]:
    try:
        tf.io.gfile.exists("s3://bucket/x")
    except tf.errors.UnimplementedError:
        return set()
    return {"s3"}
