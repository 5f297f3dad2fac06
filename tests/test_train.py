"""`python -m stacked_hourglass.train`: one real run in a subprocess, the error paths in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stacked_hourglass import train

TINY_FLAGS = [
    "--dataset=synthetic", "--num_stacks=1", "--depth=1", "--num_features=16",
    "--input_size=64", "--batch_size=4", "--epochs=1", "--steps_per_epoch=2",
    "--eval_batch_size=8", "--tensorboard_images=1", "--shuffle_buffer=16", "--verbose=0",
]  # fmt: skip


def _data_flags(records):
    return [f"--train_files={records['train']}", f"--valid_files={records['valid']}"]


def test_train_command_line_with_a_flagfile(synthetic_records, tmp_path):
    flagfile = tmp_path / "tiny.flags"
    flagfile.write_text("\n".join([*TINY_FLAGS, "--epochs=5", *_data_flags(synthetic_records)]))
    run = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [
            sys.executable, "-m", "stacked_hourglass.train", f"--flagfile={flagfile}",
            "--epochs=1",  # flags after the flagfile override it
            f"--model_dir={run}",
        ],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f'"model_dir": "{run}"' in result.stdout
    assert "Head" in result.stdout and "Mean" in result.stdout  # the validation table
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["steps"] == 2
    assert (run / "model.keras").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["num_stacks"] == 1 and config["data"]["dataset"] == "synthetic"


def _main(capsys, *argv):
    """(exit status, stdout, stderr lines) of an in-process `train.main`."""
    status = train.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err.strip().splitlines()


@pytest.mark.parametrize("pattern", ["", "{tmp}/nothing-*.tfrecord"])
def test_no_training_files_is_one_line(capsys, tmp_path, pattern):
    pattern = pattern.format(tmp=tmp_path)
    status, out, err = _main(capsys, f"--train_files={pattern}", f"--model_dir={tmp_path}/run")
    assert status == 1
    assert err == [f"train: error: No TFRecord files match {pattern!r}"]
    assert out == ""  # no usage text
    assert not (tmp_path / "run").exists()


def test_missing_validation_files_is_one_line(capsys, synthetic_records, tmp_path):
    status, _, err = _main(
        capsys,
        f"--train_files={synthetic_records['train']}",
        f"--valid_files={tmp_path}/valid-*.tfrecord",
        f"--model_dir={tmp_path}/run",
    )
    assert status == 1 and len(err) == 1
    assert err[0].startswith("train: error: ") and f"{tmp_path}/valid-*.tfrecord" in err[0]
    assert not (tmp_path / "run").exists()


def test_records_of_another_joint_set_are_one_line(capsys, synthetic_records, tmp_path):
    status, _, err = _main(
        capsys, "--dataset=flic", *_data_flags(synthetic_records), f"--model_dir={tmp_path}/run"
    )
    assert status == 1 and len(err) == 1, err
    assert "cannot read its first record as a person of 11 joints (flic; see --dataset)" in err[0]
    assert "Key: person/keypoints" in err[0] and "{{" not in err[0]
    assert not (tmp_path / "run").exists()


def test_a_file_that_is_not_tfrecords_is_one_line(capsys, synthetic_records, tmp_path):
    bad = tmp_path / "train-0.tfrecord"
    bad.write_bytes(b"not a TFRecord file at all")
    status, _, err = _main(
        capsys,
        f"--train_files={bad}",
        f"--valid_files={synthetic_records['valid']}",
        f"--model_dir={tmp_path}/run",
    )
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith(f"train: error: {bad}: cannot read its first record")
    assert "corrupted record" in err[0]


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--supervise=some", "supervise"),
        ("--batch_size=0", "batch_size must be a positive integer, got 0"),
        ("--learning_rate=0", "learning_rate must be > 0"),
        ("--checkpoint_every_steps=-1", "checkpoint_every_steps must be >= 0, got -1"),
        ("--lr_drop_epochs=6,x", "--lr_drop_epochs: expected comma-separated ints"),
        ("--input_size=100", "input_size must be divisible by"),
        ("--dataset=lsp", "dataset"),
        ("--num_stack=2", "num_stack"),
        ("positional", "unexpected arguments: positional"),
    ],
)
def test_bad_flags_are_one_line(capsys, tmp_path, flag, message):
    status, out, err = _main(capsys, flag, f"--model_dir={tmp_path}/run")
    assert status == 1 and out == ""
    assert len(err) == 1 and err[0].startswith("train: error: ") and message in err[0], err
    assert not (tmp_path / "run").exists()


def test_help_lists_the_config_flags(capsys):
    status, out, err = _main(capsys, "--help")
    assert status == 0 and err == []
    assert "Trains a stacked hourglass network" in out
    for flag in (
        "--learning_rate",
        "--num_stacks",
        "--train_files",
        "--export_dir",
        "--checkpoint_every_steps",
    ):
        assert flag in out


def test_main_can_run_repeatedly_in_process(capsys, tmp_path):
    """Flags are declared per call: a second call neither fails on duplicate flags nor sees
    the first call's values."""
    for _ in range(2):
        status, _, err = _main(capsys, "--train_files=", f"--model_dir={tmp_path}/run")
        assert status == 1 and err == ["train: error: No TFRecord files match ''"]


def test_diverging_run_exits_non_zero_without_a_final_model(capsys, synthetic_records, tmp_path):
    # A rate of 1e30: RMSprop's first step moves every weight by ~1e31, and the loss of the
    # second step is not finite.
    run = tmp_path / "run"
    status, _, err = _main(
        capsys,
        *TINY_FLAGS,
        *_data_flags(synthetic_records),
        "--learning_rate=1e30",
        "--epochs=2",
        "--steps_per_epoch=2",
        f"--model_dir={run}",
    )
    assert status == 1
    assert len(err) == 1 and err[0].startswith("train: error: "), err
    assert "NaN or infinite" in err[0] and "no final model written" in err[0]
    assert "resume point kept: none (no checkpoint written)" in err[0]
    assert not (run / "model.keras").exists() and not (run / "summary.json").exists()
    assert not (run / "checkpoints" / "state.json").exists()


@pytest.mark.large
def test_a_run_killed_with_sigkill_mid_epoch_resumes_where_its_checkpoint_left_it(
    synthetic_records, tmp_path
):
    """A real `kill -9` (no Python cleanup runs) as soon as a mid-epoch checkpoint exists: the
    next run resumes from the step `state.json` names and ends at the planned step count."""
    import signal
    import time

    run = tmp_path / "run"
    argv = [
        sys.executable, "-m", "stacked_hourglass.train", *TINY_FLAGS,
        *_data_flags(synthetic_records), "--epochs=3", "--steps_per_epoch=40",
        "--checkpoint_every_steps=5", f"--model_dir={run}",
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state_file = run / "checkpoints" / "state.json"
    deadline = time.monotonic() + 300
    while not (state_file.exists() and json.loads(state_file.read_text())["epoch_step"] > 0):
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no mid-epoch checkpoint within 300 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    state = json.loads(state_file.read_text())
    assert 0 < state["step"] < 120 and not (run / "model.keras").exists()

    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from_step"] == state["step"] and summary["steps"] == 120
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def _noise_jpeg(seed: int, height=48, width=64) -> bytes:
    import numpy as np
    import tensorflow as tf

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    return tf.io.encode_jpeg(pixels, quality=95).numpy()


def test_an_image_that_does_not_decode_stops_training_with_one_line_naming_it(
    capsys, person_example, synthetic_records, tmp_path
):
    """A truncated JPEG passes every header check; its decode fails mid-epoch. The error is one
    line naming the shard, the record and the decoder's reason, exit 1."""
    from stacked_hourglass.data.records import shards

    truncated = _noise_jpeg(7)[:1500]
    examples = [person_example(i, image=truncated if i == 5 else _noise_jpeg(i)) for i in range(8)]
    shards.write_split(
        examples, 8, tmp_path, "train", "synthetic", num_shards=2, show_progress=False
    )
    status, _, err = _main(
        capsys,
        *TINY_FLAGS,
        "--steps_per_epoch=4",
        "--shuffle_buffer=1",
        f"--train_files={tmp_path}/train-*.tfrecord",
        f"--valid_files={synthetic_records['valid']}",
        f"--model_dir={tmp_path}/run",
    )
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith(f"train: error: {tmp_path}/train-00001-of-00002.tfrecord: record 1: ")
    assert "unreadable person record or image (jpeg::Uncompress failed" in err[0], err[0]
    assert "stack traces" not in err[0]


def test_a_shard_with_a_flipped_byte_stops_training_with_one_line(
    capsys, person_example, synthetic_records, tmp_path
):
    from stacked_hourglass.data.records import shards

    examples = [person_example(i, image=_noise_jpeg(i)) for i in range(8)]
    shards.write_split(examples, 8, tmp_path, "train", "synthetic", num_shards=1,
                       show_progress=False)  # fmt: skip
    shard = tmp_path / "train-00000-of-00001.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    status, _, err = _main(
        capsys,
        *TINY_FLAGS,
        "--steps_per_epoch=2",
        f"--train_files={shard}",
        f"--valid_files={synthetic_records['valid']}",
        f"--model_dir={tmp_path}/run",
    )
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith(f"train: error: {shard}: record 3: cannot be read (corrupted record")
