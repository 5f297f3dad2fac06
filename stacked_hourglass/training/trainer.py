"""Training: `model.fit` with intermediate supervision, Torch's RMSprop, plateau LR and resume.

`train(config)` is the library behind `python -m stacked_hourglass.train`. It writes a model
directory (`run_dir`): config.json first, checkpoints at every epoch end, the final model and
summary.json at the end. Re-running with the same model_dir resumes from the last checkpoint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import keras
import tensorflow as tf

from stacked_hourglass import run_dir
from stacked_hourglass.config import ExperimentConfig, ModelConfig, TrainConfig, output_name
from stacked_hourglass.data import pipeline
from stacked_hourglass.data.codec import HeatmapCodec
from stacked_hourglass.evaluation import pck
from stacked_hourglass.model.hourglass import build_model
from stacked_hourglass.training import callbacks as callbacks_lib
from stacked_hourglass.training.metrics import HeatmapPCK
from stacked_hourglass.training.optimizers import TorchRMSprop
from stacked_hourglass.utils import files


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without writing a final model."""


def make_strategy(distribution: str) -> tf.distribute.Strategy:
    """The distribution strategy for `TrainConfig.distribution`."""
    if distribution == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution == "auto" and tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def set_precision_policy(mixed_precision: str) -> str:
    """Sets Keras's global dtype policy; returns the policy name."""
    if mixed_precision == "auto":
        mixed_precision = "float16" if tf.config.list_logical_devices("GPU") else "none"
    policy = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[
        mixed_precision
    ]
    keras.mixed_precision.set_global_policy(policy)
    return policy


def compile_model(model: keras.Model, model_config: ModelConfig, train_config: TrainConfig):
    """Compiles with one MSE per supervised stack, Torch's RMSprop and heatmap PCK."""
    names = model_config.output_names
    weights = train_config.loss_weights or (1.0,) * len(names)
    model.compile(
        optimizer=TorchRMSprop(
            learning_rate=train_config.learning_rate,
            rho=train_config.rho,
            epsilon=train_config.epsilon,
        ),
        loss={name: "mse" for name in names},
        loss_weights=dict(zip(names, weights, strict=True)),
        metrics={output_name(model_config.num_stacks): [HeatmapPCK()]},
        jit_compile=train_config.jit_compile,
    )


class _StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras's TerminateOnNaN, remembering the batch where it stopped."""

    stopped_at = None

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.stopped_at is None:
            self.stopped_at = int(self.model.optimizer.iterations.numpy())


def train(config: ExperimentConfig, callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict:
    """Trains (or resumes) a stacked hourglass network; returns the summary dict.

    Args:
        config: the experiment (need not be `resolve()`d).
        callbacks: extra Keras callbacks, run after the package's own.

    Returns:
        The summary also written to `MODEL_DIR/summary.json`: steps, wall time, images/s and
        the final validation PCK table.

    Raises:
        TrainingDiverged: the loss became NaN/inf (the last good checkpoint stays the resume
            point; no final model is written).
    """
    start = time.perf_counter()
    train_config = config.train
    model_dir = train_config.model_dir
    keras.utils.set_random_seed(train_config.seed)
    policy = set_precision_policy(train_config.mixed_precision)
    strategy = make_strategy(train_config.distribution)
    config = config.resolve(num_replicas=strategy.num_replicas_in_sync)
    run_dir.save_config(model_dir, config)
    codec = HeatmapCodec.for_model(config.model.input_size, config.data.sigma)

    steps_per_epoch = train_config.steps_per_epoch or max(
        1, pipeline.count_records(config.data.train_files) // train_config.batch_size
    )
    train_ds = pipeline.make_train_dataset(
        config.data, codec, train_config.batch_size, config.model.output_names, train_config.seed
    )
    eval_ds = pipeline.make_eval_dataset(
        config.data.valid_files,
        config.model.num_joints,
        codec,
        train_config.eval_batch_size,
    )
    with strategy.scope():
        model = build_model(config.model)
        compile_model(model, config.model, train_config)

    log_dir = run_dir.path(model_dir, run_dir.LOG_DIR)
    validation = callbacks_lib.Validation(
        eval_ds,
        config.data.joint_set,
        codec,
        train_config.valid_batches,
        log_dir,
        train_config.tensorboard_images,
    )
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor=validation.monitor,
        mode="max",
        factor=train_config.lr_factor,
        patience=train_config.lr_patience,
        min_lr=train_config.min_learning_rate,
        verbose=1,
    )
    resume = callbacks_lib.ResumeCheckpoint(model_dir, plateau)
    stop_on_nan = _StopOnNaN()
    initial_epoch = resume.restore(model)
    if initial_epoch:
        print(f"Resuming {model_dir} from the end of epoch {initial_epoch}")
    all_callbacks = [
        stop_on_nan,
        validation,  # Before the plateau and checkpoint callbacks, which read what it logs.
        plateau,
        callbacks_lib.StepDrop(train_config.lr_drop_epochs, train_config.lr_factor),
        resume,  # After the two schedules: it saves the learning rate they set.
        keras.callbacks.TensorBoard(log_dir=log_dir, update_freq=max(1, steps_per_epoch // 10)),
        keras.callbacks.CSVLogger(run_dir.path(model_dir, run_dir.HISTORY_FILE), append=True),
        *callbacks,
    ]
    fit_start = time.perf_counter()
    history = keras.callbacks.History()
    if initial_epoch < train_config.epochs:
        history = model.fit(
            train_ds,
            epochs=train_config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=all_callbacks,
            verbose=train_config.verbose,
        )
    fit_seconds = time.perf_counter() - fit_start
    if stop_on_nan.stopped_at is not None:
        state = run_dir.read_state(model_dir)
        kept = f"epoch {state['epoch']}" if state else "none (no epoch completed)"
        raise TrainingDiverged(
            f"{model_dir}: the loss became NaN or infinite at step {stop_on_nan.stopped_at}; "
            f"no final model written; resume point kept: {kept}"
        )
    if validation.last_table is None:
        validation.set_model(model)
        validation.score()

    with files.atomic_path(run_dir.path(model_dir, run_dir.FINAL_MODEL_FILE)) as tmp:
        # Keras infers the format from the suffix.
        model.save(tmp + ".keras")
        os.replace(tmp + ".keras", tmp)
    trained_epochs = max(0, train_config.epochs - initial_epoch)
    images = trained_epochs * steps_per_epoch * train_config.batch_size
    summary = {
        "model_dir": model_dir,
        "final_model": run_dir.path(model_dir, run_dir.FINAL_MODEL_FILE),
        "epochs": train_config.epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps": int(model.optimizer.iterations.numpy()),
        "resumed_from_epoch": initial_epoch,
        "train_seconds": fit_seconds,
        "total_seconds": time.perf_counter() - start,
        "images_per_second": images / fit_seconds if trained_epochs and fit_seconds else None,
        "dtype_policy": policy,
        "replicas": strategy.num_replicas_in_sync,
        "parameters": int(model.count_params()),
        "validation_metric": validation.monitor,
        "validation": validation.last_table,
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
    }
    files.write_json(run_dir.path(model_dir, run_dir.SUMMARY_FILE), summary)
    return summary


def format_validation(summary: dict) -> str:
    """The validation table of a `train()` summary, as text."""
    return pck.format_table(summary["validation"])
