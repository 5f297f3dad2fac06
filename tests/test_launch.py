"""`python -m stacked_hourglass.launch`: real MultiWorkerMirroredStrategy workers on 127.0.0.1.

The data is one synthetic person in one shard, augmentation off: every batch of every worker
holds the same crop, so two workers with per-replica batch 2 see the same global batch of 4 as
one process does (record sharding changes which copy a worker reads, not what it reads).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from stacked_hourglass.workflows import launch as launch_lib

STEPS = 3
TINY = [
    "--dataset=synthetic", "--num_stacks=1", "--depth=1", "--num_features=16",
    "--input_size=64", "--batch_size=4", f"--steps_per_epoch={STEPS}", "--eval_batch_size=4",
    "--valid_batches=1", "--tensorboard_images=0", "--shuffle_buffer=1", "--rotation=0",
    "--scale_aug=0", "--noflip", "--color_jitter=0", "--verbose=2", "--cluster_timeout=300",
]  # fmt: skip
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


@pytest.fixture(scope="module")
def one_person(tmp_path_factory):
    """Flags for a train split of one person (one shard) and a valid split of 4."""
    sys.path.insert(0, os.path.dirname(__file__))
    from conftest import write_synthetic_split

    root = tmp_path_factory.mktemp("one_person")
    train = write_synthetic_split(root, "train", 1, num_shards=1)
    valid = write_synthetic_split(root, "valid", 4, num_shards=1)
    return [f"--train_files={train}", f"--valid_files={valid}"]


def _launch(args, workers=2, **kwargs):
    cmd = [sys.executable, "-m", "stacked_hourglass.launch", f"--workers={workers}", "--", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, **kwargs
    )


def _weights(model_dir):
    from stacked_hourglass import run_dir

    return run_dir.load_model(str(model_dir)).get_weights()


@pytest.mark.large
def test_two_workers_match_one_process(one_person, tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    start = time.monotonic()
    process = _launch([*TINY, *one_person, "--epochs=1", f"--model_dir={two}"])
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out[-4000:]
    assert "[worker 0]" in out and "[worker 1]" in out
    two_seconds = time.monotonic() - start
    single = subprocess.run(
        [sys.executable, "-m", "stacked_hourglass.train", *TINY, *one_person, "--epochs=1",
         f"--model_dir={one}"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-4000:]
    # Only the chief's files; the other worker's temporary folder is gone.
    assert sorted(os.listdir(two)) == sorted(os.listdir(one))
    assert not [p for p in os.listdir("/tmp") if p.startswith("hourglass-worker")]
    summary = json.loads((two / "summary.json").read_text())
    assert summary["steps"] == STEPS and summary["workers"] == 2 and summary["replicas"] == 2
    loss_two = summary["history"]["loss"][0]
    loss_one = json.loads((one / "summary.json").read_text())["history"]["loss"][0]
    assert np.isfinite(loss_two) and abs(loss_two - loss_one) < 1e-4 * abs(loss_one)
    # See the module docstring of this test file and the report: RMSprop's first steps move
    # every weight by about lr / sqrt(1 - rho) = 2.5e-3 whatever the gradient's size, so the
    # float32 reduction-order differences of the all-reduce and of synchronised BatchNorm can
    # flip near-zero gradients; the bound is two such steps.
    pairs = zip(_weights(two), _weights(one), strict=True)
    diff = max(float(np.max(np.abs(a - b))) for a, b in pairs)
    assert diff < 2 * 2 * 2.5e-3, diff
    print(f"two workers: {two_seconds:.0f} s; max |weight difference| {diff:.2e}")


@pytest.mark.large
def test_a_killed_worker_resumes_from_the_chiefs_checkpoint(one_person, tmp_path):
    run = tmp_path / "run"
    args = [*TINY, *one_person, "--epochs=3", f"--model_dir={run}"]
    process = _launch(args, start_new_session=True)
    state = run / "checkpoints" / "state.json"
    deadline = time.monotonic() + 500
    while not (state.exists() and json.loads(state.read_text())["epoch"] >= 1):
        assert process.poll() is None and time.monotonic() < deadline, "no first checkpoint"
        time.sleep(0.5)
    children = subprocess.run(
        ["pgrep", "-P", str(process.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) == 2
    os.kill(int(sorted(children, key=int)[1]), signal.SIGKILL)  # worker 1
    out, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "launch: worker 1 exited with status -9; stopping all" in out
    # Restart the whole launch (MultiWorkerMirroredStrategy peers cannot continue without it).
    again = _launch(args)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-4000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from_epoch"] >= 1
    assert summary["steps"] == 3 * STEPS
    assert "Resuming" in out


def test_bad_tf_config_is_one_line_and_exit_1(one_person, tmp_path):
    for tf_config, message in [
        ('{"cluster": {"worker": ["127.0.0.1:1"]', "TF_CONFIG is not valid JSON"),
        (launch_lib.tf_configs(2)[0].replace('"index": 0', '"index": 7'), "out of range"),
    ]:
        start = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "stacked_hourglass.train", *TINY, *one_person,
             "--epochs=1", f"--model_dir={tmp_path / 'run'}"],
            capture_output=True, text=True, env=dict(ENV, TF_CONFIG=tf_config), timeout=120,
        )  # fmt: skip
        assert result.returncode == 1
        # (TF's C++ start-up lines, e.g. "failed call to cuInit", are TF's, not the command's.)
        errors = [line for line in result.stderr.splitlines() if line.startswith("train:")]
        assert len(errors) == 1 and errors[0].startswith("train: error: TF_CONFIG"), errors
        assert message in errors[0]
        assert "Traceback" not in result.stderr
        assert time.monotonic() - start < 120


def test_a_peer_that_never_comes_ends_the_worker_within_the_bound(one_person, tmp_path):
    tf_config = launch_lib.tf_configs(2)[0]  # worker 1's port: nobody listens there
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "stacked_hourglass.train", *TINY, *one_person, "--epochs=1",
         "--cluster_timeout=20", f"--model_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, env=dict(ENV, TF_CONFIG=tf_config), timeout=240,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    assert "train: worker 0 of 2: waiting up to 20 s" in result.stderr
    # The Python timer's one line, or (when TF's C++ wait holds the GIL) faulthandler's.
    assert "did not start training within 20 s" in result.stderr or "Timeout" in result.stderr
    assert elapsed < 20 + 15 + 90  # the bounds plus start-up (imports, reading the records)
