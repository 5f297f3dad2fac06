"""The training loop's callbacks, driven by hand (no `fit`): validation, LR drops, checkpoints."""

from __future__ import annotations

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
