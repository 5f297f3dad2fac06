"""The training loop's callbacks, driven by hand (no `fit`): validation, LR drops, checkpoints."""

from __future__ import annotations

import errno
import json
import os

import keras
import numpy as np
import pytest

from stacked_hourglass import joints, run_dir
from stacked_hourglass.data import pipeline
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.model import build_model
from stacked_hourglass.training import callbacks
from stacked_hourglass.training.optimizers import TorchRMSprop


def _tiny_compiled_model(learning_rate=0.1, seed=0):
    """A Dense model with a built optimizer: enough for weights + optimizer-state files."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=TorchRMSprop(learning_rate=learning_rate), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_metric_name_follows_the_normaliser():
    assert callbacks.metric_name(joints.MPII) == "val_pckh"
    assert callbacks.metric_name(joints.SYNTHETIC) == "val_pckh"
    assert callbacks.metric_name(joints.FLIC) == "val_pck"


def test_step_drop_multiplies_the_rate_after_the_given_epochs(capsys):
    model = _tiny_compiled_model(learning_rate=0.1)
    drop = callbacks.StepDrop([2, 4], 0.5)
    drop.set_model(model)
    rates = []
    for epoch in range(5):  # 0-based, as Keras passes it
        drop.on_epoch_end(epoch)
        rates.append(float(model.optimizer.learning_rate.numpy()))
    np.testing.assert_allclose(rates, [0.1, 0.05, 0.05, 0.025, 0.025], rtol=1e-6)
    assert "Epoch 2: learning rate dropped to 0.05" in capsys.readouterr().out


def test_resume_checkpoint_keeps_two_and_skips_diverged_epochs(tmp_path):
    model_dir = str(tmp_path / "run")
    model = _tiny_compiled_model()
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_pckh", mode="max")
    plateau.set_model(model)
    plateau.on_train_begin()
    resume = callbacks.ResumeCheckpoint(model_dir, plateau, keep=2)
    resume.set_model(model)
    for epoch in range(4):
        model.optimizer.iterations.assign(3 * (epoch + 1))
        plateau.on_epoch_end(epoch, {"val_pckh": 10.0 + epoch})
        resume.on_epoch_end(epoch, {"loss": 1.0})
    checkpoints = tmp_path / "run" / run_dir.CHECKPOINT_DIR
    assert sorted(os.listdir(checkpoints)) == [
        "epoch-0003.weights.h5",
        "epoch-0004.weights.h5",
        "state.json",
    ]
    state = run_dir.read_state(model_dir)
    assert state == {
        "epoch": 4,
        "epoch_step": 0,
        "checkpoint": "epoch-0004.weights.h5",
        "step": 12,
        "learning_rate": pytest.approx(0.1),
        "plateau": {"best": 13.0, "wait": 0, "cooldown_counter": 0},
    }
    # A NaN or infinite loss: the epoch is not a resume point.
    weights = model.get_weights()
    model.set_weights([np.full_like(w, np.nan) for w in weights])
    resume.on_epoch_end(4, {"loss": float("nan")})
    resume.on_epoch_end(4, {"loss": float("inf")})
    assert run_dir.read_state(model_dir) == state
    assert not (checkpoints / "epoch-0005.weights.h5").exists()

    # A fresh model restores epoch 4: weights, step, rate and the plateau's counters.
    fresh = _tiny_compiled_model(learning_rate=0.5, seed=1)
    fresh_plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_pckh", mode="max")
    fresh_plateau.set_model(fresh)
    restore = callbacks.ResumeCheckpoint(model_dir, fresh_plateau)
    assert restore.restore(fresh) == 4
    for a, b in zip(fresh.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations.numpy()) == 12
    assert float(fresh.optimizer.learning_rate.numpy()) == pytest.approx(0.1)
    fresh_plateau.on_train_begin()
    restore.on_train_begin()
    assert fresh_plateau.best == 13.0


def test_resume_checkpoint_without_state_starts_at_epoch_0(tmp_path):
    model = _tiny_compiled_model()
    resume = callbacks.ResumeCheckpoint(str(tmp_path), keras.callbacks.ReduceLROnPlateau())
    assert resume.restore(model) == 0
    assert (tmp_path / run_dir.CHECKPOINT_DIR).is_dir()


def test_resume_reads_state_files_naming_only_the_epoch(tmp_path):
    """state.json written before it named its checkpoint file."""
    model = _tiny_compiled_model()
    (tmp_path / run_dir.CHECKPOINT_DIR).mkdir()
    model.save_weights(run_dir.checkpoint_path(str(tmp_path), 7))
    state = {"epoch": 7, "learning_rate": 0.01}
    (tmp_path / run_dir.CHECKPOINT_DIR / run_dir.STATE_FILE).write_text(json.dumps(state))
    fresh = _tiny_compiled_model(seed=1)
    assert callbacks.ResumeCheckpoint(str(tmp_path), None).restore(fresh) == 7
    for a, b in zip(fresh.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_validation_logs_pckh_and_heatmap_mse(synthetic_records, tmp_path):
    codec = HeatmapCodec.for_model(64)
    dataset = pipeline.make_eval_dataset(synthetic_records["valid"], 16, codec, 8)
    validation = callbacks.Validation(
        dataset, joints.SYNTHETIC, codec, valid_batches=1, log_dir=str(tmp_path), num_images=2
    )
    keras.utils.set_random_seed(0)
    validation.set_model(
        build_model(num_stacks=1, num_features=16, depth=1, input_size=64, num_joints=16)
    )
    logs = {"loss": 1.0}
    validation.on_epoch_end(0, logs)
    assert set(logs) == {"loss", "val_pckh", "val_heatmap_mse"}
    assert 0.0 <= logs["val_pckh"] <= 100.0 and logs["val_heatmap_mse"] > 0
    # valid_batches=1: one batch of 8 of the 16 people.
    assert validation.last_table["num_people"] == 8
    # The next epochs reuse the traced prediction step: one trace per run, not per epoch.
    validation.on_epoch_end(1, {})
    validation.on_epoch_end(2, {})
    assert validation._step[1].experimental_get_tracing_count() == 1
    assert logs["val_pckh"] == validation.last_table["Mean"]
    assert os.listdir(tmp_path / "validation")


def test_resume_checkpoint_skips_an_epoch_stopped_midway(tmp_path):
    """A callback that sets `stop_training` mid-epoch: Keras still calls `on_epoch_end`, but
    the epoch is not complete, so the resume point stays at the previous one."""
    model_dir = str(tmp_path)
    model = _tiny_compiled_model()
    plateau = keras.callbacks.ReduceLROnPlateau()
    plateau.set_model(model)
    plateau.on_train_begin()
    plateau.best = 50.0  # as after its first epoch end
    resume = callbacks.ResumeCheckpoint(model_dir, plateau)
    resume.set_model(model)
    resume.set_params({"epochs": 3, "steps": 3, "verbose": 0})
    resume.on_epoch_begin(0)
    for batch in range(3):
        resume.on_train_batch_end(batch, {"loss": 1.0})
    resume.on_epoch_end(0, {"loss": 1.0})
    assert run_dir.read_state(model_dir)["epoch"] == 1
    resume.on_epoch_begin(1)
    resume.on_train_batch_end(0, {"loss": 1.0})  # then stopped
    resume.on_epoch_end(1, {"loss": 1.0})
    assert run_dir.read_state(model_dir)["epoch"] == 1
    assert not os.path.exists(run_dir.checkpoint_path(model_dir, 2))


def _driven_resume(model_dir, model, every_steps, best=50.0):
    """A ResumeCheckpoint on `model` with a plateau as after its first epoch end."""
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_pckh", mode="max")
    plateau.set_model(model)
    plateau.on_train_begin()
    plateau.best = best
    resume = callbacks.ResumeCheckpoint(model_dir, plateau, every_steps=every_steps)
    resume.set_model(model)
    return resume


def _run_steps(resume, model, epoch, batches, steps):
    """Drives one `fit` of `steps` steps in `epoch` by hand (the optimizer step follows)."""
    resume.set_params({"epochs": 10, "steps": steps, "verbose": 0})
    resume.on_train_begin()
    resume.on_epoch_begin(epoch)
    for batch in batches:
        model.optimizer.iterations.assign_add(1)
        resume.on_train_batch_end(batch, {"loss": 1.0})


def test_resume_checkpoint_every_n_steps_keeps_the_latest(tmp_path):
    """Every 2 steps of a 5-step epoch: steps 2 and 4 (not 5: the epoch end saves after
    validation); one mid-epoch file at a time, none once the epoch has ended."""
    model_dir = str(tmp_path)
    model = _tiny_compiled_model()
    resume = _driven_resume(model_dir, model, every_steps=2)
    checkpoints = tmp_path / run_dir.CHECKPOINT_DIR
    _run_steps(resume, model, epoch=0, batches=range(3), steps=5)
    assert sorted(os.listdir(checkpoints)) == ["epoch-0001-step-000000002.weights.h5", "state.json"]
    resume.on_train_batch_end(3, {"loss": 1.0})
    resume.on_train_batch_end(4, {"loss": 1.0})
    assert sorted(os.listdir(checkpoints)) == ["epoch-0001-step-000000004.weights.h5", "state.json"]
    state = run_dir.read_state(model_dir)
    assert state == {
        "epoch": 0,
        "epoch_step": 4,
        "checkpoint": "epoch-0001-step-000000004.weights.h5",
        "step": 3,
        "learning_rate": pytest.approx(0.1),
        "plateau": {"best": 50.0, "wait": 0, "cooldown_counter": 0},
    }
    assert run_dir.describe_state(state) == "epoch 0 + 4 steps of epoch 1"
    resume.on_epoch_end(0, {"loss": 1.0})
    assert sorted(os.listdir(checkpoints)) == ["epoch-0001.weights.h5", "state.json"]
    assert run_dir.read_state(model_dir)["epoch_step"] == 0


def test_resume_checkpoint_restores_mid_epoch_and_counts_on(tmp_path):
    model_dir = str(tmp_path)
    model = _tiny_compiled_model()
    resume = _driven_resume(model_dir, model, every_steps=3)
    _run_steps(resume, model, epoch=1, batches=range(4), steps=7)  # a checkpoint at step 3
    weights = model.get_weights()

    fresh = _tiny_compiled_model(seed=1)
    restore = _driven_resume(model_dir, fresh, every_steps=3)
    assert restore.restore(fresh, steps_per_epoch=7) == 1 and restore.epoch_step == 3
    for a, b in zip(fresh.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    # The trainer's fit for the rest of epoch 2 runs 4 steps, which Keras numbers 0-3: the next
    # checkpoint is the epoch's step 6.
    _run_steps(restore, fresh, epoch=1, batches=range(3), steps=4)
    assert run_dir.read_state(model_dir)["checkpoint"] == "epoch-0002-step-000000006.weights.h5"
    restore.on_train_batch_end(3, {"loss": 1.0})
    restore.on_epoch_end(1, {"loss": 1.0})
    assert run_dir.read_state(model_dir)["checkpoint"] == "epoch-0002.weights.h5"
    # The next epoch counts from 0 again.
    _run_steps(restore, fresh, epoch=2, batches=range(3), steps=7)
    assert run_dir.read_state(model_dir)["checkpoint"] == "epoch-0003-step-000000003.weights.h5"

    # --steps_per_epoch changed to 3 since: step 3 of epoch 2 is past it; the epoch restarts.
    again = _driven_resume(model_dir, _tiny_compiled_model(seed=2), every_steps=3)
    assert again.restore(again.model, steps_per_epoch=3) == 2 and again.epoch_step == 0


def test_no_step_checkpoint_after_a_non_finite_loss_or_a_stop(tmp_path):
    model_dir = str(tmp_path)
    model = _tiny_compiled_model()
    resume = _driven_resume(model_dir, model, every_steps=1)
    resume.set_params({"epochs": 1, "steps": 9, "verbose": 0})
    resume.on_epoch_begin(0)
    resume.on_train_batch_end(0, {"loss": 1.0})
    resume.on_train_batch_end(1, {"loss": float("nan")})
    resume.on_train_batch_end(2, {"loss": [float("inf")]})  # multi-worker logs are vectors
    model.stop_training = True
    resume.on_train_batch_end(3, {"loss": 1.0})
    assert run_dir.read_state(model_dir)["epoch_step"] == 1


def test_a_kill_mid_checkpoint_leaves_the_previous_resume_point(tmp_path, monkeypatch):
    """Killed while writing the weights (a partial temporary file) or between the weights and
    state.json: the resume point stays the previous complete checkpoint. An exception removes
    its partial file; what a kill -9 leaves (a hidden temporary file) the next save removes."""
    model_dir = str(tmp_path)
    model = _tiny_compiled_model()
    resume = _driven_resume(model_dir, model, every_steps=1)
    _run_steps(resume, model, epoch=0, batches=range(2), steps=9)
    good = run_dir.read_state(model_dir)
    good_weights = model.get_weights()
    checkpoints = tmp_path / run_dir.CHECKPOINT_DIR

    class Killed(BaseException):
        pass

    def killed_mid_write(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"\x89HDF\r\n half a file")
        raise Killed

    model.set_weights([w + 1 for w in good_weights])
    with monkeypatch.context() as patch:
        patch.setattr(model, "save_weights", killed_mid_write)
        with pytest.raises(Killed):
            resume.on_train_batch_end(2, {"loss": 1.0})
    with monkeypatch.context() as patch:
        patch.setattr(run_dir, "write_state", lambda *args: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            resume.on_train_batch_end(3, {"loss": 1.0})
    assert run_dir.read_state(model_dir) == good
    # What `kill -9` mid-write leaves: `files.atomic_path`'s temporary name, partly written.
    orphan = checkpoints / ".epoch-0001-step-000000003.weights.h5.4242-0123abcd.tmp"
    orphan.write_bytes(b"\x89HDF\r\n half a file")
    assert sorted(os.listdir(checkpoints)) == [
        orphan.name,  # the partial file
        "epoch-0001-step-000000002.weights.h5",
        "epoch-0001-step-000000004.weights.h5",  # complete, but state.json does not name it
        "state.json",
    ]
    fresh = _tiny_compiled_model(seed=1)
    restore = callbacks.ResumeCheckpoint(model_dir, keras.callbacks.ReduceLROnPlateau())
    assert restore.restore(fresh) == 0 and restore.epoch_step == 2
    for a, b in zip(fresh.get_weights(), good_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    resume.on_train_batch_end(4, {"loss": 1.0})
    assert sorted(os.listdir(checkpoints)) == ["epoch-0001-step-000000005.weights.h5", "state.json"]


def test_tensorboard_spans_several_fits_at_the_optimizer_step(tmp_path):
    """Keras's callback closes its writers at the end of a `fit` (the next one would fail) and
    numbers batch summaries from 0 in each; the trainer runs one `fit` per epoch."""
    import tensorflow as tf

    model = _tiny_compiled_model()
    board = callbacks.TensorBoard(log_dir=str(tmp_path), update_freq=1)
    x = np.zeros((4, 3), np.float32)
    y = np.zeros((4, 2), np.float32)
    for epoch in range(2):
        model.fit(x, y, batch_size=2, initial_epoch=epoch, epochs=epoch + 1, callbacks=[board])
    board.close()
    steps = []
    for path in (tmp_path / "train").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            steps += [event.step for value in event.summary.value if value.tag == "batch_loss"]
    assert sorted(steps) == [1, 2, 3, 4]


def test_a_full_disk_is_one_line_naming_both_checkpoints_and_leaves_no_file(tmp_path, monkeypatch):
    """HDF5 cannot survive a full disk (h5py's cleanup crashes the process), so the room is
    checked before h5py writes: the error names the step being written and the last complete
    one, and no partial file is left."""
    model_dir = str(tmp_path)
    model = _tiny_compiled_model()
    resume = _driven_resume(model_dir, model, every_steps=1)
    _run_steps(resume, model, epoch=0, batches=range(2), steps=9)
    good = run_dir.read_state(model_dir)
    before = sorted(os.listdir(tmp_path / run_dir.CHECKPOINT_DIR))
    needed = run_dir.weights_file_bytes(model)
    real_statvfs = os.statvfs

    def nearly_full(folder):
        stats = real_statvfs(folder)
        blocks = (needed - 1) // stats.f_frsize  # one block short of the file
        return os.statvfs_result((*stats[:4], blocks, *stats[5:]))

    monkeypatch.setattr(os, "statvfs", nearly_full)
    written = []
    monkeypatch.setattr(model, "save_weights", lambda *a, **k: written.append(a))
    model.optimizer.iterations.assign_add(1)
    with pytest.raises(OSError) as info:
        resume.on_train_batch_end(2, {"loss": 1.0})
    message = str(info.value)
    assert info.value.errno == errno.ENOSPC and "\n" not in message
    assert "while writing checkpoint epoch-0001-step-000000003.weights.h5 (optimizer step 3)" in (
        message
    )
    assert f"the last complete checkpoint is {good['checkpoint']} (optimizer step 2)" in message
    assert "MiB free" in message
    assert written == []  # h5py never started
    assert sorted(os.listdir(tmp_path / run_dir.CHECKPOINT_DIR)) == before
    assert run_dir.read_state(model_dir) == good


def test_weights_file_size_estimate_bounds_the_file(tmp_path):
    model = _tiny_compiled_model()
    path = str(tmp_path / "w.weights.h5")
    run_dir.save_weights(model, path)
    assert os.path.getsize(path) <= run_dir.weights_file_bytes(model)
