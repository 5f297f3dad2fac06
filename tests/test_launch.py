"""`python -m stacked_hourglass.launch`: real MultiWorkerMirroredStrategy workers on 127.0.0.1.

The training split of the comparison is 4 synthetic people in one shard, read in order
(`--shuffle_buffer=1`) with augmentation off, so that a sample is a function of its record only.
One process batches the records four at a time: {r0, r1, r2, r3} at every step. Two workers, with
fewer files than workers, keep every other record each (worker 0: r0, r2; worker 1: r1, r3): the
global batch is the same four people at every step, two per replica. (The pipeline's parallel map
may finish records out of order, but tf.data fuses it with the `batch` that follows, whose batches
are consecutive records.) Different people on the two replicas make the comparison sensitive to
what a single person replicated would hide: BatchNorm statistics that are not synchronised across
workers (118 % of the update, measured), or workers reading the same records. This is the
two-local-workers case of synchronised BatchNorm (tests/model/test_sync_batch_norm.py has two
replicas in one process).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

from stacked_hourglass.workflows import launch_lib

STEPS = 3
TINY = [
    "--dataset=synthetic", "--num_stacks=1", "--depth=1", "--num_features=16",
    "--input_size=64", "--batch_size=4", f"--steps_per_epoch={STEPS}", "--eval_batch_size=4",
    "--valid_batches=1", "--tensorboard_images=0", "--shuffle_buffer=1", "--rotation=0",
    "--scale_aug=0", "--noflip", "--color_jitter=0", "--verbose=2", "--cluster_timeout=300",
]  # fmt: skip
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _splits(tmp_path_factory, name, people):
    """Flags for a train split of `people` people in one shard and a valid split of 4."""
    sys.path.insert(0, os.path.dirname(__file__))
    from conftest import write_synthetic_split

    root = tmp_path_factory.mktemp(name)
    return [
        f"--train_files={write_synthetic_split(root, 'train', people, num_shards=1)}",
        f"--valid_files={write_synthetic_split(root, 'valid', 4, num_shards=1)}",
    ]


@pytest.fixture(scope="module")
def one_person(tmp_path_factory):
    return _splits(tmp_path_factory, "one_person", 1)


@pytest.fixture(scope="module")
def four_people(tmp_path_factory):
    """Four people: one global batch."""
    return _splits(tmp_path_factory, "four_people", 4)


def _launch(args, workers=2, env=ENV, **kwargs):
    cmd = [sys.executable, "-m", "stacked_hourglass.launch", f"--workers={workers}", "--", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kwargs
    )


def _named_weights(model):
    return {v.path: np.asarray(v.numpy(), np.float64) for v in model.weights}


def _initial_weights(model_dir):
    """The weights `train` started from: the same seed, the same model, built the same way."""
    import keras

    from stacked_hourglass import run_dir
    from stacked_hourglass.model.hourglass import build_model

    config = run_dir.load_config(str(model_dir))
    keras.utils.set_random_seed(config.train.seed)
    return _named_weights(build_model(config.model))


# The comparison runs where its expected difference can be bounded (see the test's comments).
# RMSprop's epsilon = 1 makes the update lr * g / (sqrt(v) + 1) = lr * g * (1 - O(|g|)): linear in
# the gradient, where the default epsilon's first steps are lr * sign(g) / sqrt(1 - rho), which
# turn a gradient of rounding noise (every conv bias in front of a BatchNorm has a true gradient
# of 0) into a full step of either sign. lr = 1e-3 keeps the weights within 3 * 10 * lr of where
# they started, so that differences do not compound from step to step (with lr = 1e-2 they
# already do: 1.4e-3, 5.9e-3, 0.25 of the update at steps 1, 2, 3, measured on one person).
LINEAR = ["--epsilon=1", "--learning_rate=1e-3"]
LEARNING_RATE, RHO = 1e-3, 0.99
# Relative difference allowed between the two runs' total updates (trainable weights).
UPDATE_TOL = 5e-2
# The smallest BatchNorm input: global batch 4 x the 8 x 8 maps of the depth-1 hourglass at 64 px.
SMALLEST_BN_COUNT = 4 * 8 * 8


@pytest.mark.large
def test_two_workers_match_one_process(four_people, tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    scratch = tmp_path / "tmp"  # the launcher's TMPDIR: the workers' temporary folders go there
    scratch.mkdir()
    args = [*TINY, *LINEAR, *four_people, "--epochs=1"]
    start = time.monotonic()
    process = _launch([*args, f"--model_dir={two}"], env=dict(ENV, TMPDIR=str(scratch)))
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out[-4000:]
    assert "[worker 0]" in out and "[worker 1]" in out
    two_seconds = time.monotonic() - start
    single = subprocess.run(
        [sys.executable, "-m", "stacked_hourglass.train", *args, f"--model_dir={one}"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-4000:]
    # Only the chief's files; the other worker's temporary folder is gone.
    assert sorted(os.listdir(two)) == sorted(os.listdir(one))
    assert os.listdir(scratch) == []
    summary = json.loads((two / "summary.json").read_text())
    assert summary["steps"] == STEPS and summary["workers"] == 2 and summary["replicas"] == 2

    from stacked_hourglass import run_dir

    assert run_dir.load_config(str(two)).model.sync_batch_norm
    w_two = _named_weights(run_dir.load_model(str(two)))
    w_one = _named_weights(run_dir.load_model(str(one)))
    w_start = _initial_weights(one)
    trainable = [k for k in w_one if "moving_" not in k]
    # |update| <= lr / sqrt(1 - rho) per step (v >= (1 - rho) g^2): w_start is where both began.
    moved = max(np.max(np.abs(w[k] - w_start[k])) for w in (w_one, w_two) for k in trainable)
    assert moved <= STEPS * LEARNING_RATE / np.sqrt(1 - RHO), moved

    # The trainable weights: || update_two - update_one || / || update_one ||.
    # The gradients are float32 sums in different orders (an all-reduce of two halves; the
    # synchronised BatchNorm's two-pass moments per replica, combined, against the fused BatchNorm
    # kernel's one-pass sums on one replica): 1e-5 of the gradient apart (measured against a float64
    # evaluation of the same step, on one person, where Keras's BatchNorm flips no ReLU). But a ReLU
    # whose input lies within float32 rounding of 0 (~1e-6 after a BatchNorm) may be on in one run
    # and off in the other, and one such unit moves this small network's gradient by ~1e-3; every
    # float32 evaluation of the first step flips 3 or 4 of them against float64 (the fused single
    # process: 6.9e-3 of the gradient; Keras's BatchNorm on one replica: 3.5e-3; synchronised over
    # two: 2.6e-3). Measured between the two runs: 4.4e-3. The bound leaves room for ten times that;
    # what it is there to catch is far above it: gradients summed rather than averaged (1), each
    # worker applying its own (about 0.5), unsynchronised BatchNorm (1.2, measured), another data
    # order or other initial weights (more).
    num = sum(np.sum(((w_two[k] - w_start[k]) - (w_one[k] - w_start[k])) ** 2) for k in trainable)
    den = sum(np.sum((w_one[k] - w_start[k]) ** 2) for k in trainable)
    update_diff = float(np.sqrt(num / den))
    assert update_diff < UPDATE_TOL, update_diff

    # BatchNorm's moving statistics: both runs update the moving variance with the global batch's
    # unbiased variance, so they differ as the activations do, as the weights above do. The bound
    # is below what a biased variance on either side would make of it (a factor 1 + 1 / (n - 1),
    # n >= SMALLEST_BN_COUNT) and above the activations' difference.
    moving_diff = 0.0
    for k in (k for k in w_one if "moving_" in k):
        diff = np.max(np.abs(w_two[k] - w_one[k])) / np.max(np.abs(w_one[k]))
        assert diff < 1 / (SMALLEST_BN_COUNT - 1), (k, diff)
        moving_diff = max(moving_diff, diff)

    # The training loss (mean of the 3 steps): step 1 is the same forward pass from the same
    # weights (float32 rounding: 1e-7); at step k the weights differ by dw <= UPDATE_TOL *
    # |update|, which changes the loss by <= |g| |dw| ~ UPDATE_TOL * (the loss's fall by then),
    # to first order (with epsilon = 1 the update is -lr * g); the loss falls by < 1 % in these 3
    # steps (0.7 % measured), hence the bound below. Measured: 1e-7 (unsynchronised BatchNorm:
    # 8e-3).
    loss_two = summary["history"]["loss"][0]
    loss_one = json.loads((one / "summary.json").read_text())["history"]["loss"][0]
    assert np.isfinite(loss_two) and abs(loss_two - loss_one) < UPDATE_TOL * 1e-2 * loss_one
    print(
        f"two workers: {two_seconds:.0f} s; update difference {update_diff:.1e} of the update; "
        f"loss {loss_two:.7f} vs {loss_one:.7f}; moving statistics {moving_diff:.1e} apart"
    )


@pytest.mark.large
def test_a_killed_worker_resumes_from_the_chiefs_checkpoint(one_person, tmp_path):
    run = tmp_path / "run"
    scratch = tmp_path / "tmp"  # the launcher's TMPDIR
    scratch.mkdir()
    env = dict(ENV, TMPDIR=str(scratch))
    args = [*TINY, *one_person, "--epochs=3", f"--model_dir={run}"]
    process = _launch(args, env=env, start_new_session=True)
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
    assert "launch: worker 1 was killed by signal SIGKILL (9); stopping all" in out
    assert os.listdir(scratch) == []  # also the killed worker's temporary folder
    # Restart the whole launch (MultiWorkerMirroredStrategy peers cannot continue without it).
    again = _launch(args, env=env)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-4000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from_epoch"] >= 1
    assert summary["steps"] == 3 * STEPS
    assert "Resuming" in out
    assert os.listdir(scratch) == []


def test_bad_tf_config_is_one_line_and_exit_1(one_person, tmp_path, monkeypatch, capsys):
    # In-process: `train` reads TF_CONFIG before TensorFlow does (the command's subprocess runs
    # are the peer test below and tests/test_train.py).
    from stacked_hourglass import train

    for tf_config, message in [
        ('{"cluster": {"worker": ["127.0.0.1:1"]', "TF_CONFIG is not valid JSON"),
        (launch_lib.tf_configs(2)[0].replace('"index": 0', '"index": 7'), "out of range"),
    ]:
        start = time.monotonic()
        monkeypatch.setenv("TF_CONFIG", tf_config)
        status = train.main([*TINY, *one_person, "--epochs=1", f"--model_dir={tmp_path / 'run'}"])
        stderr = capsys.readouterr().err
        assert status == 1
        errors = [line for line in stderr.splitlines() if line.startswith("train:")]
        assert len(errors) == 1 and errors[0].startswith("train: error: TF_CONFIG"), errors
        assert message in errors[0]
        assert "Traceback" not in stderr
        assert time.monotonic() - start < 120


@pytest.mark.large  # a real worker waiting out its bound (~25 s), with the other cluster tests
def test_a_peer_that_never_comes_ends_the_worker_within_the_bound(one_person, tmp_path):
    tf_config = launch_lib.tf_configs(2)[0]  # worker 1's port: nobody listens there
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "stacked_hourglass.train", *TINY, *one_person, "--epochs=1",
         "--cluster_timeout=8", f"--model_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, env=dict(ENV, TF_CONFIG=tf_config), timeout=240,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    assert "train: worker 0 of 2: waiting up to 8 s" in result.stderr
    # The Python timer's one line, or (when TF's C++ wait holds the GIL) faulthandler's.
    assert "did not start training within 8 s" in result.stderr or "Timeout" in result.stderr
    assert elapsed < 8 + 15 + 90  # the bounds plus start-up (imports, reading the records)


def test_one_failed_worker_stops_the_others_and_their_temporary_files_go(tmp_path, monkeypatch):
    # Stand-ins for `train`: each leaves a temporary folder, as a non-chief worker killed
    # mid-run does; worker 1 fails, worker 0 would run for a minute.
    (tmp_path / "fake_worker.py").write_text(
        textwrap.dedent(
            """
            import json, os, sys, tempfile, time
            index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
            tempfile.mkdtemp(prefix=f"hourglass-worker{index}-")
            print("TMPDIR", os.environ["TMPDIR"], sys.argv[1:], flush=True)
            if index == 1:
                sys.exit(3)
            time.sleep(60)
            """
        )
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = io.StringIO()
    start = time.monotonic()
    status = launch_lib.launch(2, ["--epochs=1"], module="fake_worker", grace_seconds=5, out=out)
    assert status == 3
    log = out.getvalue()
    assert "launch: worker 1 exited with status 3; stopping all" in log
    assert f"[worker 1] TMPDIR {scratch}{os.sep}hourglass-launch-" in log
    assert "['--epochs=1', '--distribution=multi_worker']" in log
    assert os.listdir(scratch) == []
    assert time.monotonic() - start < 30


def test_a_worker_killed_by_a_signal_is_reported_by_name_and_exit_139(tmp_path, monkeypatch):
    (tmp_path / "segv_worker.py").write_text(
        textwrap.dedent(
            """
            import json, os, signal, time
            if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
                os.kill(os.getpid(), signal.SIGSEGV)
            time.sleep(60)
            """
        )
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    out = io.StringIO()
    status = launch_lib.launch(2, [], module="segv_worker", grace_seconds=5, out=out)
    assert status == 128 + 11
    assert "launch: worker 1 was killed by signal SIGSEGV (11); stopping all" in out.getvalue()


def test_exit_status_and_description():
    assert launch_lib.exit_status(3) == 3 and launch_lib.exit_status(-9) == 137
    assert launch_lib.describe_exit(-15) == "was killed by signal SIGTERM (15)"
    assert launch_lib.describe_exit(0) == "exited with status 0"
