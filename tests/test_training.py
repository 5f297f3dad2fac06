"""Training end to end on tiny synthetic TFRecords: fit, resume, distribution, evaluation."""

import json
import os
import subprocess
import sys
import textwrap

import h5py
import keras
import numpy as np
import pytest

from stacked_hourglass import joints
from stacked_hourglass.data import pipeline
from stacked_hourglass.evaluation import report
from stacked_hourglass.model import ModelConfig, build_model
from stacked_hourglass.serving import exporter
from stacked_hourglass.training.optimizers import TorchRMSprop
from stacked_hourglass.training.trainer import trainer

TINY_MODEL = ModelConfig(num_stacks=2, num_features=16, input_size=64)


def _configs(records, model_dir, **train_overrides):
    data = pipeline.DataConfig(
        dataset="synthetic",
        train_files=records["train"],
        valid_files=records["valid"],
        input_size=64,
        heatmap_size=16,
        shuffle_buffer=16,
    )
    train = trainer.TrainConfig(
        model_dir=str(model_dir),
        batch_size=4,
        epochs=2,
        steps_per_epoch=3,
        eval_batch_size=8,
        tensorboard_images=2,
        verbose=0,
    )
    return TINY_MODEL, data, trainer.TrainConfig(**{**train.__dict__, **train_overrides})


def test_train_writes_model_summary_and_configs(synthetic_records, tmp_path):
    summary = trainer.train(*_configs(synthetic_records, tmp_path / "run"))
    run = tmp_path / "run"
    assert summary["steps"] == 6
    assert (run / "model.keras").exists() and (run / "summary.json").exists()
    saved = json.loads((run / "summary.json").read_text())
    assert saved["validation_metric"] == "val_pckh"
    assert 0.0 <= saved["validation"]["Mean"] <= 100.0
    assert saved["validation"]["num_people"] == 16
    assert len(saved["history"]["val_pckh"]) == 2
    model_config, data_config, train_config = trainer.load_configs(str(run))
    assert model_config.num_joints == 16 and data_config.heatmap_size == 16
    assert train_config.batch_size == 4
    assert os.listdir(run / "logs")
    model = trainer.load_trained_model(str(run))
    assert sorted(model.output_names) == ["heatmaps_1", "heatmaps_2"]
    assert trainer.format_validation(saved).splitlines()[0].split()[0] == "Head"

    def evaluate(model_dir=None, saved_model=None, output_dir=None):
        return report.run_model_evaluation(
            model_dir=model_dir,
            saved_model=saved_model,
            data=synthetic_records["valid"],
            flip_test=False,
            batch_size=5,
            joint_set=joints.SYNTHETIC,
            head="head_top",
            threshold=None,
            output_dir=output_dir,
        )

    # The evaluator scores the final model exactly as the trainer's validation did.
    figures = evaluate(model_dir=str(run), output_dir=str(tmp_path / "eval"))
    assert figures["table"]["Mean"] == pytest.approx(saved["validation"]["Mean"])
    with h5py.File(tmp_path / "eval" / "run.preds.h5") as f:
        preds, index = f["preds"][()], f["index"][()]
    assert preds.shape == (16, 16, 2) and np.all(np.diff(index) > 0)
    assert (tmp_path / "eval" / "run.pck_curves.png").stat().st_size > 10_000

    # The exported SavedModel (in-graph crop network and decoding) scores the same.
    export = exporter.export_from_model_dir(str(run), str(tmp_path / "export"))
    served = evaluate(saved_model=export)
    assert served["table"]["Mean"] == pytest.approx(saved["validation"]["Mean"], abs=0.5)


def test_loss_decreases_on_real_pipeline(synthetic_records, tmp_path):
    model_config, data_config, _ = _configs(synthetic_records, tmp_path)
    keras.utils.set_random_seed(0)
    model = build_model(model_config)
    trainer.compile_model(model, model_config, trainer.TrainConfig(learning_rate=1e-3))
    batches = (
        pipeline.make_train_dataset(data_config, 4, model_config.output_names)
        .take(1)
        .cache()
        .repeat()
    )
    history = model.fit(batches, epochs=4, steps_per_epoch=5, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0], history


def _optimizer_state(path):
    """The optimizer variables stored in a Keras weights file, in `optimizer.variables` order."""
    with h5py.File(path) as f:
        group = f["optimizer"]["vars"]
        return [group[str(i)][()] for i in range(len(group))]


def test_resume_continues_at_the_same_step_with_the_same_optimizer_state(
    synthetic_records, tmp_path
):
    run = tmp_path / "run"
    configs = _configs(synthetic_records, run, epochs=2)
    trainer.train(*configs)
    checkpoint = run / "checkpoints" / "epoch-0002.weights.h5"
    saved_state = _optimizer_state(checkpoint)
    assert json.loads((run / "checkpoints" / "state.json").read_text())["step"] == 6

    # A fresh process would rebuild and compile the model, then restore: do the same here.
    model_config, data_config, train_config = configs
    model = build_model(model_config)
    trainer.compile_model(model, model_config, train_config)
    plateau = keras.callbacks.ReduceLROnPlateau()
    resume = trainer.ResumeCheckpoint(str(run), plateau)
    initial_epoch = resume.restore(model)
    assert initial_epoch == 2
    assert int(model.optimizer.iterations.numpy()) == 6
    restored = [v.numpy() for v in model.optimizer.variables]
    assert len(restored) == len(saved_state) > 2
    for saved, now in zip(saved_state, restored, strict=True):
        np.testing.assert_array_equal(saved, now)
    velocities = [v for v in model.optimizer.variables if v.path.endswith("_velocity")]
    assert velocities and all(np.any(v.numpy() != 0) for v in velocities[:5])

    # The plateau callback's counters survive the restart too.
    saved_plateau = json.loads((run / "checkpoints" / "state.json").read_text())["plateau"]
    plateau.on_train_begin()  # resets its counters, as fit() does first...
    resume.on_train_begin()  # ...and they come back
    assert np.isfinite(plateau.best)
    assert plateau.best == saved_plateau["best"] and plateau.wait == saved_plateau["wait"]

    # Running again with more epochs resumes from epoch 2 (step 6) and trains one more epoch.
    summary = trainer.train(*_configs(synthetic_records, run, epochs=3))
    assert summary["resumed_from_epoch"] == 2
    assert summary["steps"] == 9


def test_killed_run_resumes_at_the_last_completed_epoch(synthetic_records, tmp_path):
    """A run killed during epoch 2 restarts at the end of epoch 1 (step 3)."""
    run = tmp_path / "run"
    model_config, data_config, train_config = _configs(synthetic_records, run, epochs=3)
    script = textwrap.dedent(
        f"""
        import keras, os
        from stacked_hourglass import joints
        from stacked_hourglass.evaluation import report
        from stacked_hourglass.serving import exporter
        from stacked_hourglass.data import pipeline
        from stacked_hourglass.training.trainer import trainer
        from stacked_hourglass.model import ModelConfig

        class Kill(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if int(self.model.optimizer.iterations.numpy()) == 5:
                    os._exit(17)  # as abrupt as a SIGKILL: no cleanup, no flush

        keras.callbacks.TerminateOnNaN.on_train_batch_end = Kill.on_train_batch_end
        trainer.train(
            ModelConfig(**{model_config.__dict__!r}),
            pipeline.DataConfig(**{data_config.__dict__!r}),
            trainer.TrainConfig(**{train_config.__dict__!r}),
        )
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == 17, killed.stderr[-2000:]
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state == {**state, "epoch": 1, "step": 3}
    assert not (run / "model.keras").exists()
    summary = trainer.train(model_config, data_config, train_config)
    assert summary["resumed_from_epoch"] == 1 and summary["steps"] == 9


_MIRRORED_SCRIPT = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from stacked_hourglass.model import ModelConfig, build_model

# depth 2 keeps the lowest resolution at 4x4 as in the paper: BatchNorm over a 1x1 map and two
# samples per replica is so ill-conditioned that float rounding alone changes the gradients.
config = ModelConfig(num_stacks=2, num_features=16, input_size=64, num_joints=4, depth=2,
                     sync_batch_norm=True)
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 64, 64, 3), np.float32)
y = rng.random((8, 16, 16, 4), np.float32) ** 8
def data():
    return tf.data.Dataset.from_tensor_slices((x, {n: y for n in config.output_names})).batch(4)

def compile(model):
    # Plain SGD: RMSprop's first steps are ~sign(g) * 10 * lr, which turns float rounding in a
    # near-zero gradient into a visible weight difference and would hide what is compared here.
    model.compile(optimizer=keras.optimizers.SGD(1e-3),
                  loss={n: "mse" for n in config.output_names})

keras.utils.set_random_seed(0)
single = build_model(config)
initial = single.get_weights()
compile(single)
single.fit(data(), epochs=1, verbose=0)

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
with strategy.scope():
    mirrored = build_model(config)
    mirrored.set_weights(initial)
    compile(mirrored)
mirrored.fit(data(), epochs=1, verbose=0)
diff = max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), mirrored.get_weights()))
moved = max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), initial))
print("MAXDIFF", diff, "MOVED", moved)
"""


def test_mirrored_strategy_on_two_cpus_matches_single_device():
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("MAXDIFF"))
    _, diff, _, moved = line.split()
    assert float(moved) > 1e-3  # the weights did train
    assert float(diff) < 1e-3 * float(moved), line


def test_torch_rmsprop_matches_hand_computed_step():
    var = keras.Variable(np.array([1.0, -2.0], np.float32))
    opt = TorchRMSprop(learning_rate=0.1, rho=0.9, epsilon=1e-8)
    grad = np.array([0.5, -4.0], np.float32)
    opt.apply_gradients([(grad, var)])
    velocity = 0.1 * grad**2
    expected = np.array([1.0, -2.0]) - 0.1 * grad / (np.sqrt(velocity) + 1e-8)
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-6)


def test_train_cli_rejects_missing_files(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stacked_hourglass.train",
            "--train_files=/nonexistent/train-*",
            f"--model_dir={tmp_path}/run",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "/nonexistent/train-*" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(supervise="some"), "supervise"), (dict(batch_size=0), "batch_size")],
)
def test_train_config_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        trainer.TrainConfig(**kwargs)
